//! The input-required tools for a 2025 session peer (a gateway's upstream
//! session, say): a session peer cannot receive an `InputRequiredResult`, so
//! the same questions go out as server→client requests
//! (`elicitation/create`, `sampling/createMessage`, `roots/list`) and their
//! answers are fed back into the tool as `inputResponses`, round after round.
//!
//! Each request names its input key in `_meta` ([`INPUT_KEY_META`]), so a
//! gateway that bridges them into an `input_required` result for a
//! stateless client keeps the keys the tool chose.

use std::collections::BTreeMap;

use futures::future::join_all;
use rmcp::{
    ErrorData as McpError, RoleServer,
    model::{
        DEFAULT_MRTR_MAX_ROUNDS, GetMeta, InputRequest, InputRequiredResult, InputResponses,
        ServerRequest,
    },
    service::RequestContext,
};
use serde_json::Value;

pub use crate::mcp::mrtr::INPUT_KEY_META;

/// Whether `context`'s peer takes `InputRequiredResult`s (2026-07-28 or later).
pub fn takes_input_required(context: &RequestContext<RoleServer>) -> bool {
    crate::mcp::mrtr::is_stateless(context)
}

/// Runs `round` until it completes, asking the client over the session for
/// whatever each round requires. A request the client refuses is not asked
/// again; when only refused ones remain, the first refusal is the answer.
pub async fn fulfil<T>(
    context: &RequestContext<RoleServer>,
    mut round: impl FnMut(
        InputResponses,
        Option<String>,
    ) -> Result<Result<T, InputRequiredResult>, McpError>,
) -> Result<T, McpError> {
    let mut responses = InputResponses::new();
    let mut state = None;
    let mut refused: BTreeMap<String, McpError> = BTreeMap::new();
    for _ in 0..DEFAULT_MRTR_MAX_ROUNDS {
        let asked = match round(responses.clone(), state.take())? {
            Ok(done) => return Ok(done),
            Err(asked) => asked,
        };
        state = asked.request_state;
        let requests: Vec<_> = (asked.input_requests.unwrap_or_default().into_iter())
            .filter(|(key, _)| !refused.contains_key(key))
            .collect();
        if requests.is_empty() {
            return Err(refused.into_values().next().unwrap_or_else(|| {
                McpError::internal_error("an input round asked for nothing", None)
            }));
        }
        let answers = join_all(requests.into_iter().map(|(key, request)| async move {
            let answer = ask(context, &key, request).await;
            (key, answer)
        }))
        .await;
        for (key, answer) in answers {
            match answer {
                Ok(value) => {
                    responses.insert(key, value);
                }
                Err(err) => {
                    refused.insert(key, err);
                }
            }
        }
    }
    Err(McpError::internal_error(
        format!("no result after {DEFAULT_MRTR_MAX_ROUNDS} input rounds"),
        None,
    ))
}

/// Sends one input request to the client, its key in `_meta`.
async fn ask(
    context: &RequestContext<RoleServer>,
    key: &str,
    request: InputRequest,
) -> Result<Value, McpError> {
    let mut request = match request {
        InputRequest::CreateMessage(request) => ServerRequest::CreateMessageRequest(request),
        InputRequest::Elicitation(request) => ServerRequest::ElicitRequest(request),
        InputRequest::ListRoots(request) => ServerRequest::ListRootsRequest(request),
        _ => {
            return Err(McpError::internal_error(
                "unsupported input request kind",
                None,
            ));
        }
    };
    let meta = request.get_meta_mut();
    meta.insert(INPUT_KEY_META.to_owned(), Value::String(key.to_owned()));
    // Over stdio nothing else ties the request to the call it serves.
    meta.insert(
        "io.modelcontextprotocol/related-request-id".to_owned(),
        context.id.clone().into_json_value(),
    );
    send(context, request).await
}

/// Sends a server→client request; the client's own JSON-RPC error is kept.
pub async fn send(
    context: &RequestContext<RoleServer>,
    request: ServerRequest,
) -> Result<Value, McpError> {
    let answer = context
        .peer
        .send_request(request)
        .await
        .map_err(|err| match err {
            rmcp::service::ServiceError::McpError(error) => error,
            other => McpError::internal_error(format!("client request failed: {other}"), None),
        })?;
    serde_json::to_value(&answer).map_err(|e| McpError::internal_error(e.to_string(), None))
}
