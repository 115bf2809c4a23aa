//! A client call as the upstream link sees it: where mid-call traffic from the
//! upstream (progress, logs, sampling, elicitation, roots) is delivered.
//!
//! That traffic passes the same guardrails as results and arguments: the
//! upstream's request is screened as output on its way to the client (its
//! placeholders are not restored: the upstream never learns what they hide),
//! and the client's answer as input on its way upstream (secrets in it become
//! placeholders). Log lines are screened as output and filtered by the
//! session's own level.
// Logging, sampling and roots are deprecated by SEP-2577; clients still use them.
#![allow(deprecated)]
use std::sync::Arc;

use bulwark_actors::guardrail::{Guardrails, InputKind, Redactions};
use bulwark_actors::timeout::OpGuard;
use futures::FutureExt;
use futures::future::BoxFuture;
use rmcp::model::{
    ClientResult, ErrorData, GetExtensions, ProgressToken, RequestId, ServerNotification,
    ServerRequest,
};
use rmcp::service::OriginatingRequestId;
use rmcp::{Peer, RoleServer};
use serde::Serialize;
use serde::de::DeserializeOwned;

use bulwark_actors::upstream::Caller;

use super::log_levels::SessionLevel;

/// The client session and request a call came from.
pub struct SessionCaller {
    /// The client session.
    pub peer: Peer<RoleServer>,
    /// The client's request id: server requests ride that request's stream.
    pub request_id: RequestId,
    /// The client's progress token, if it asked for progress.
    pub progress_token: Option<ProgressToken>,
    /// The call's deadline: upstream progress may push it back.
    pub op: Option<Arc<OpGuard>>,
    /// The caller's project: ambiguous traffic goes only to one tenant.
    pub tenant: Option<Arc<str>>,
    /// The upstream called, whose policies screen the traffic.
    pub server: Arc<str>,
    /// The checks applied to mid-call traffic.
    pub guardrails: Guardrails,
    /// The session's log level.
    pub level: Arc<SessionLevel>,
}

impl Caller for SessionCaller {
    fn request(
        &self,
        request: ServerRequest,
    ) -> BoxFuture<'static, Result<ClientResult, ErrorData>> {
        let peer = self.peer.clone();
        let request_id = self.request_id.clone();
        let (guardrails, server) = (self.guardrails.clone(), self.server.clone());
        async move {
            let extensions = request.extensions().clone();
            let mut request: ServerRequest = screen_output(&guardrails, &server, request).await?;
            *request.extensions_mut() = extensions;
            request
                .extensions_mut()
                .insert(OriginatingRequestId(request_id));
            let answer = peer.send_request(request).await.map_err(|err| match err {
                rmcp::service::ServiceError::McpError(error) => error,
                other => ErrorData::internal_error(
                    format!("the client session could not answer: {other}"),
                    None,
                ),
            })?;
            screen_answer(&guardrails, &server, answer).await
        }
        .boxed()
    }

    fn notify(&self, notification: ServerNotification) -> BoxFuture<'static, ()> {
        if let (Some(op), ServerNotification::ProgressNotification(_)) = (&self.op, &notification) {
            op.progress();
        }
        if let ServerNotification::LoggingMessageNotification(log) = &notification
            && !self.level.admits(log.params.level)
        {
            return async {}.boxed();
        }
        let peer = self.peer.clone();
        let (guardrails, server) = (self.guardrails.clone(), self.server.clone());
        async move {
            let notification = match notification {
                ServerNotification::LoggingMessageNotification(_) => {
                    match screen_output(&guardrails, &server, notification).await {
                        Ok(screened) => screened,
                        Err(err) => {
                            tracing::info!(%server, reason = %err.message, "log message withheld by the guardrails");
                            return;
                        }
                    }
                }
                other => other,
            };
            let _ = peer.send_notification(notification).await;
        }
        .boxed()
    }

    fn progress_token(&self) -> Option<ProgressToken> {
        self.progress_token.clone()
    }

    fn tenant(&self) -> Option<Arc<str>> {
        self.tenant.clone()
    }
}

/// An upstream's message screened as output, with no placeholder restored.
pub(super) async fn screen_output<T: Serialize + DeserializeOwned>(
    guardrails: &Guardrails,
    server: &str,
    message: T,
) -> Result<T, ErrorData> {
    let value = to_value(&message)?;
    let mut screened = value.clone();
    guardrails
        .check_output(server, &mut screened, &Redactions::default())
        .await
        .map_err(|block| ErrorData::invalid_request(block.to_string(), None))?;
    rebuilt(message, &value, screened)
}

/// The client's answer screened as input on its way upstream.
pub(super) async fn screen_answer(
    guardrails: &Guardrails,
    server: &str,
    answer: ClientResult,
) -> Result<ClientResult, ErrorData> {
    let value = to_value(&answer)?;
    let mut screened = value.clone();
    guardrails
        .check_input(server, InputKind::ClientAnswer, &mut screened)
        .await
        .map_err(|block| ErrorData::invalid_request(block.to_string(), None))?;
    rebuilt(answer, &value, screened)
}

fn to_value<T: Serialize>(message: &T) -> Result<serde_json::Value, ErrorData> {
    serde_json::to_value(message).map_err(|err| ErrorData::internal_error(err.to_string(), None))
}

/// `original` when screening changed nothing (untagged unions need not
/// survive a round trip), else the screened value read back.
fn rebuilt<T: DeserializeOwned>(
    original: T,
    before: &serde_json::Value,
    after: serde_json::Value,
) -> Result<T, ErrorData> {
    if *before == after {
        return Ok(original);
    }
    serde_json::from_value(after).map_err(|err| ErrorData::internal_error(err.to_string(), None))
}
