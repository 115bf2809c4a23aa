//! Multi round-trip requests (SEP-2322, protocol 2026-07-28): instead of
//! sending `elicitation/create`, `sampling/createMessage` or `roots/list` to
//! the client, a tool (or prompt) answers with an `InputRequiredResult`; the
//! client retries the same request with `inputResponses` and the echoed,
//! integrity-protected `requestState`.

use std::hash::{BuildHasher, RandomState};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use rmcp::{
    ErrorData as McpError, RoleServer,
    model::{
        CallToolRequestParams, CallToolResponse, GetPromptRequestParams, GetPromptResponse,
        GetPromptResult, InputRequiredResult, InputResponses, JsonObject,
    },
    service::RequestContext,
};
use serde_json::{Value, json};

use crate::demo::common::{from_json, text_result};

/// What the names of the input-required tools start with.
pub const TOOL_PREFIX: &str = "test_input_required_result_";

/// Name of the prompt that needs client input before it can be rendered.
pub const PROMPT_NAME: &str = "test_input_required_result_prompt";

/// Definitions of the input-required tools, appended to `tools/list`.
pub fn tools() -> Vec<Value> {
    [
        (
            "test_input_required_result_elicitation",
            "Asks the user's name via an input request",
        ),
        (
            "test_input_required_result_sampling",
            "Asks the client's LLM via an input request",
        ),
        (
            "test_input_required_result_list_roots",
            "Asks for the client's roots via an input request",
        ),
        (
            "test_input_required_result_request_state",
            "Round-trips a sealed requestState",
        ),
        (
            "test_input_required_result_multiple_inputs",
            "Needs elicitation, sampling and roots at once",
        ),
        (
            "test_input_required_result_multi_round",
            "Needs two rounds of elicitation",
        ),
        (
            "test_input_required_result_tampered_state",
            "Rejects a requestState that was modified",
        ),
        (
            "test_input_required_result_capabilities",
            "Only asks for what the client declared",
        ),
    ]
    .into_iter()
    .map(|(name, description)| {
        json!({
            "name": name,
            "description": description,
            "inputSchema": { "type": "object", "properties": {} }
        })
    })
    .collect()
}

/// Seals `requestState` so a client cannot forge or alter it.
///
/// SipHash with a per-process random key is a keyed MAC; that is enough for a
/// test fixture and needs no crypto dependency. States do not survive a restart.
#[derive(Debug, Clone, Default)]
pub struct StateSealer {
    key: RandomState,
}

impl StateSealer {
    /// `base64url(json) "." hex(tag)`.
    pub fn seal(&self, payload: &Value) -> String {
        let body = URL_SAFE_NO_PAD.encode(payload.to_string());
        let tag = self.key.hash_one(&body);
        format!("{body}.{tag:016x}")
    }

    /// The payload of a state sealed by [`Self::seal`]; `-32602` if it was tampered with.
    pub fn open(&self, sealed: &str) -> Result<Value, McpError> {
        let invalid = || {
            McpError::invalid_params(
                "requestState failed its integrity check",
                Some(json!({ "requestState": sealed })),
            )
        };
        let (body, tag) = sealed.rsplit_once('.').ok_or_else(invalid)?;
        let tag = u64::from_str_radix(tag, 16).map_err(|_| invalid())?;
        if tag != self.key.hash_one(body) {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| invalid())?;
        serde_json::from_slice(&bytes).map_err(|_| invalid())
    }
}

pub(super) fn input_required(
    requests: Value,
    state: Option<String>,
) -> Result<InputRequiredResult, McpError> {
    let mut result = json!({ "resultType": "input_required", "inputRequests": requests });
    if let Some(state) = state {
        result["requestState"] = Value::String(state);
    }
    from_json(result)
}

pub(super) fn ask_elicit(message: &str, field: &str, field_type: &str) -> Value {
    json!({
        "method": "elicitation/create",
        "params": {
            "message": message,
            "requestedSchema": {
                "type": "object",
                "properties": { field: { "type": field_type } },
                "required": [field]
            }
        }
    })
}

fn ask_sampling(text: &str, max_tokens: u32) -> Value {
    json!({
        "method": "sampling/createMessage",
        "params": {
            "messages": [{ "role": "user", "content": { "type": "text", "text": text } }],
            "maxTokens": max_tokens
        }
    })
}

fn ask_roots() -> Value {
    json!({ "method": "roots/list", "params": {} })
}

fn malformed(key: &str, expected: &str) -> McpError {
    McpError::invalid_params(
        format!("inputResponses.{key} must be {expected}"),
        Some(json!({ "key": key })),
    )
}

/// The accepted content of elicitation response `key`.
///
/// `Ok(None)`: no response yet (ask again). A declined or cancelled
/// elicitation yields an empty object so the tool can still complete.
pub(super) fn elicited(
    responses: &InputResponses,
    key: &str,
) -> Result<Option<JsonObject>, McpError> {
    let Some(response) = responses.get(key) else {
        return Ok(None);
    };
    let object = response
        .as_object()
        .ok_or_else(|| malformed(key, "an ElicitResult object"))?;
    match object.get("action").and_then(Value::as_str) {
        Some("accept") => Ok(Some(
            object
                .get("content")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        )),
        Some("decline" | "cancel") => Ok(Some(JsonObject::new())),
        _ => Err(malformed(key, "an ElicitResult with an action")),
    }
}

/// The text the client's LLM answered in sampling response `key`.
fn sampled(responses: &InputResponses, key: &str) -> Result<Option<String>, McpError> {
    let Some(response) = responses.get(key) else {
        return Ok(None);
    };
    let content = response
        .get("content")
        .ok_or_else(|| malformed(key, "a CreateMessageResult"))?;
    let text = content
        .get("text")
        .and_then(Value::as_str)
        .map_or_else(|| content.to_string(), str::to_owned);
    Ok(Some(text))
}

/// The root URIs listed in roots response `key`.
fn roots(responses: &InputResponses, key: &str) -> Result<Option<Vec<String>>, McpError> {
    let Some(response) = responses.get(key) else {
        return Ok(None);
    };
    let roots = response
        .get("roots")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed(key, "a ListRootsResult"))?;
    Ok(Some(
        roots
            .iter()
            .filter_map(|r| r.get("uri").and_then(Value::as_str).map(str::to_owned))
            .collect(),
    ))
}

pub(super) fn field(content: &JsonObject, name: &str) -> String {
    match content.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "(none)".to_owned(),
    }
}

/// The input-required tools.
pub struct InputRequiredTools<'a> {
    /// Seals and checks `requestState`.
    pub sealer: &'a StateSealer,
}

impl InputRequiredTools<'_> {
    /// Runs an input-required tool; `None` when `request` names none of them.
    pub fn call(
        &self,
        request: &CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Option<Result<CallToolResponse, McpError>> {
        let empty = InputResponses::new();
        let responses = request.input_responses.as_ref().unwrap_or(&empty);
        let state = request.request_state.as_deref();
        let result = match request.name.as_ref() {
            "test_input_required_result_elicitation" => self.elicitation(responses),
            "test_input_required_result_sampling" => self.sampling(responses),
            "test_input_required_result_list_roots" => self.list_roots(responses),
            "test_input_required_result_request_state" => {
                self.sealed_confirm(&request.name, responses, state)
            }
            "test_input_required_result_tampered_state" => {
                self.sealed_confirm(&request.name, responses, state)
            }
            "test_input_required_result_multiple_inputs" => self.multiple(responses, state),
            "test_input_required_result_multi_round" => self.multi_round(responses, state),
            "test_input_required_result_capabilities" => self.capabilities(responses, context),
            _ => return None,
        };
        Some(result)
    }

    fn elicitation(&self, responses: &InputResponses) -> Result<CallToolResponse, McpError> {
        match elicited(responses, "user_name")? {
            None => Ok(input_required(
                json!({ "user_name": ask_elicit("What is your name?", "name", "string") }),
                None,
            )?
            .into()),
            Some(content) => Ok(text_result(format!("Hello, {}!", field(&content, "name"))).into()),
        }
    }

    fn sampling(&self, responses: &InputResponses) -> Result<CallToolResponse, McpError> {
        match sampled(responses, "capital_question")? {
            None => Ok(input_required(
                json!({ "capital_question": ask_sampling("What is the capital of France?", 100) }),
                None,
            )?
            .into()),
            Some(text) => Ok(text_result(format!("LLM response: {text}")).into()),
        }
    }

    fn list_roots(&self, responses: &InputResponses) -> Result<CallToolResponse, McpError> {
        match roots(responses, "client_roots")? {
            None => Ok(input_required(json!({ "client_roots": ask_roots() }), None)?.into()),
            Some(uris) => Ok(text_result(format!("Client roots: {}", uris.join(", "))).into()),
        }
    }

    /// Opens `state` and checks it was issued for `tool` at `round`.
    fn expect_state(&self, state: &str, tool: &str, round: u64) -> Result<Value, McpError> {
        let payload = self.sealer.open(state)?;
        if payload["tool"] != tool || payload["round"] != round {
            return Err(McpError::invalid_params(
                "requestState belongs to another request",
                None,
            ));
        }
        Ok(payload)
    }

    fn sealed_confirm(
        &self,
        tool: &str,
        responses: &InputResponses,
        state: Option<&str>,
    ) -> Result<CallToolResponse, McpError> {
        // The state is checked before anything else: a tampered one is an error
        // even when the responses look fine.
        if let Some(state) = state {
            self.expect_state(state, tool, 1)?;
        }
        match (elicited(responses, "confirm")?, state) {
            (Some(content), Some(_)) => {
                Ok(text_result(format!("state-ok: confirmed={}", field(&content, "ok"))).into())
            }
            _ => Ok(input_required(
                json!({ "confirm": ask_elicit("Please confirm", "ok", "boolean") }),
                Some(self.sealer.seal(&json!({ "tool": tool, "round": 1 }))),
            )?
            .into()),
        }
    }

    fn multiple(
        &self,
        responses: &InputResponses,
        state: Option<&str>,
    ) -> Result<CallToolResponse, McpError> {
        const TOOL: &str = "test_input_required_result_multiple_inputs";
        if let Some(state) = state {
            self.expect_state(state, TOOL, 1)?;
        }
        let name = elicited(responses, "user_name")?;
        let greeting = sampled(responses, "greeting")?;
        let uris = roots(responses, "client_roots")?;
        match (name, greeting, uris, state) {
            (Some(name), Some(greeting), Some(uris), Some(_)) => Ok(text_result(format!(
                "name={}, greeting={greeting}, roots={}",
                field(&name, "name"),
                uris.join(",")
            ))
            .into()),
            _ => Ok(input_required(
                json!({
                    "user_name": ask_elicit("What is your name?", "name", "string"),
                    "greeting": ask_sampling("Generate a greeting", 50),
                    "client_roots": ask_roots()
                }),
                Some(self.sealer.seal(&json!({ "tool": TOOL, "round": 1 }))),
            )?
            .into()),
        }
    }

    fn multi_round(
        &self,
        responses: &InputResponses,
        state: Option<&str>,
    ) -> Result<CallToolResponse, McpError> {
        const TOOL: &str = "test_input_required_result_multi_round";
        let round = match state {
            None => 0,
            Some(state) => self.sealer.open(state)?["round"].as_u64().unwrap_or(0),
        };
        let step1 = || {
            input_required(
                json!({ "step1": ask_elicit("Step 1: What is your name?", "name", "string") }),
                Some(self.sealer.seal(&json!({ "tool": TOOL, "round": 1 }))),
            )
        };
        match round {
            1 => {
                let Some(state) = state else {
                    return Ok(step1()?.into());
                };
                self.expect_state(state, TOOL, 1)?;
                match elicited(responses, "step1")? {
                    None => Ok(step1()?.into()),
                    Some(content) => Ok(input_required(
                        json!({
                            "step2": ask_elicit("Step 2: What is your favorite color?", "color", "string")
                        }),
                        Some(self.sealer.seal(&json!({
                            "tool": TOOL,
                            "round": 2,
                            "name": field(&content, "name")
                        }))),
                    )?
                    .into()),
                }
            }
            2 => {
                let Some(state) = state else {
                    return Ok(step1()?.into());
                };
                let payload = self.expect_state(state, TOOL, 2)?;
                let name = payload["name"].as_str().unwrap_or("(none)").to_owned();
                match elicited(responses, "step2")? {
                    None => Err(McpError::invalid_params(
                        "inputResponses.step2 is missing",
                        None,
                    )),
                    Some(content) => Ok(text_result(format!(
                        "{name}'s favorite color is {}",
                        field(&content, "color")
                    ))
                    .into()),
                }
            }
            _ => Ok(step1()?.into()),
        }
    }

    fn capabilities(
        &self,
        responses: &InputResponses,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let caps = context.client_capabilities().unwrap_or_default();
        let mut asks = JsonObject::new();
        if caps.sampling.is_some() && !responses.contains_key("capital_question") {
            asks.insert(
                "capital_question".into(),
                ask_sampling("What is the capital of France?", 100),
            );
        }
        if caps.elicitation.is_some() && !responses.contains_key("user_name") {
            asks.insert(
                "user_name".into(),
                ask_elicit("What is your name?", "name", "string"),
            );
        }
        if caps.roots.is_some() && !responses.contains_key("client_roots") {
            asks.insert("client_roots".into(), ask_roots());
        }
        if asks.is_empty() {
            let answered: Vec<&str> = responses.keys().map(String::as_str).collect();
            return Ok(text_result(format!("answered: [{}]", answered.join(", "))).into());
        }
        Ok(input_required(Value::Object(asks), None)?.into())
    }
}

/// `prompts/get` of [`PROMPT_NAME`]: asks for context, then renders it.
pub fn prompt(request: &GetPromptRequestParams) -> Result<GetPromptResponse, McpError> {
    let empty = InputResponses::new();
    let responses = request.input_responses.as_ref().unwrap_or(&empty);
    match elicited(responses, "user_context")? {
        None => Ok(input_required(
            json!({
                "user_context": ask_elicit("What context should the prompt use?", "context", "string")
            }),
            None,
        )?
        .into()),
        Some(content) => {
            let result: GetPromptResult = from_json(super::fixtures::complete(json!({
                "description": "A prompt rendered with client-provided context",
                "messages": [{
                    "role": "user",
                    "content": {
                        "type": "text",
                        "text": format!("Use this context: {}", field(&content, "context"))
                    }
                }]
            })))?;
            Ok(result.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_state_round_trips_and_detects_tampering() {
        let sealer = StateSealer::default();
        let sealed = sealer.seal(&json!({ "round": 1 }));
        assert_eq!(sealer.open(&sealed).unwrap(), json!({ "round": 1 }));
        assert!(sealer.open(&format!("{sealed}-TAMPERED")).is_err());
        assert!(StateSealer::default().open(&sealed).is_err());
    }

    #[test]
    fn elicited_validates_shape() {
        let mut responses = InputResponses::new();
        assert!(elicited(&responses, "k").unwrap().is_none());
        responses.insert("k".into(), json!(12345));
        assert!(elicited(&responses, "k").is_err());
        responses.insert(
            "k".into(),
            json!({ "action": "accept", "content": { "name": "A" } }),
        );
        assert_eq!(
            field(&elicited(&responses, "k").unwrap().unwrap(), "name"),
            "A"
        );
    }
}
