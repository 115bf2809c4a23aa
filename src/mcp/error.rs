//! The one place gateway failures become what an MCP client sees. Messages
//! name the server and the reason; they never carry secrets.
use bulwark_actors::guardrail::GuardrailBlock;
use bulwark_actors::timeout::TimeoutInfo;
use bulwark_actors::upstream::{CallError, ExitReason, UpstreamState};
use bulwark_supervisors::registry::ServerEntry;
use rmcp::model::{ErrorCode, ErrorData};
use serde_json::json;

/// JSON-RPC code: the upstream is not serving (starting, restarting, failed).
pub const UPSTREAM_UNAVAILABLE: ErrorCode = ErrorCode(-32001);
/// JSON-RPC code: the upstream died or its session broke mid-call.
pub const UPSTREAM_LOST: ErrorCode = ErrorCode(-32002);
/// JSON-RPC code: the request was cancelled (as in LSP).
pub const REQUEST_CANCELLED: ErrorCode = ErrorCode(-32800);
/// JSON-RPC code: the caller is not authenticated, or not this session's owner.
pub const UNAUTHORIZED: ErrorCode = ErrorCode(-32003);
/// JSON-RPC code: the caller's grant does not cover the request.
pub const FORBIDDEN: ErrorCode = ErrorCode(-32004);
/// JSON-RPC code: over a rate limit; data carries `limit` and `retry_after_ms`.
pub const RATE_LIMITED: ErrorCode = ErrorCode(-32005);
/// JSON-RPC code: the call ran past its deadline and was cancelled upstream.
pub const DEADLINE_EXCEEDED: ErrorCode = ErrorCode(-32007);
/// JSON-RPC code: a guardrail policy refused the request or its result.
pub const GUARDRAIL_BLOCKED: ErrorCode = ErrorCode(-32006);

/// Why the gateway could not serve a request.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No upstream by that name.
    #[error("unknown server '{0}'")]
    UnknownServer(String),
    /// A federated name without a server prefix.
    #[error("'{name}' does not name a server: expected SERVER{separator}NAME")]
    Unprefixed {
        /// The name as the client sent it.
        name: String,
        /// The configured separator.
        separator: String,
    },
    /// The upstream exists but is not ready.
    #[error("server '{server}' is unavailable ({state}){}", reason.as_deref().map(|r| format!(": last exit: {r}")).unwrap_or_default())]
    Unavailable {
        /// Server name.
        server: String,
        /// Its current state.
        state: &'static str,
        /// Why its last instance ended.
        reason: Option<String>,
    },
    /// The upstream call failed.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The upstream answered with a result of the wrong kind.
    #[error("server '{0}' answered with an unexpected result type")]
    UnexpectedResult(String),
    /// A guardrail refused the input or the output.
    #[error(transparent)]
    Guardrail(#[from] GuardrailBlock),
    /// The call ran past its deadline.
    #[error(transparent)]
    Timeout(#[from] TimeoutInfo),
    /// A bug or an impossible state; the message names where.
    #[error("internal error: {0}")]
    Internal(String),
    /// Two `prefix = "never"` upstreams expose the same tool name.
    #[error(transparent)]
    NameCollision(#[from] super::prefixes::Collision),
    /// Authentication failed (or was skipped) for this request.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// The session belongs to another caller.
    #[error("this session belongs to another caller")]
    SessionOwner,
    /// The caller's project does not grant this.
    #[error("project '{project}' may not use {what}")]
    NotGranted {
        /// The caller's project.
        project: String,
        /// What was refused, e.g. `tool 'echo__add'`.
        what: String,
    },
    /// A `requestState` the gateway cannot accept (forged, altered,
    /// stale or expired) or a retry it cannot match.
    #[error("{0}")]
    InvalidState(String),
    /// The client of a bridged call went away, or too many calls wait for input.
    #[error("{0}")]
    InputBridge(String),
    /// A load balancer's replay of a call another replica already saw
    /// (see [`super::attempts`]): it may have run there, so it does not run again.
    #[error(
        "this call reached a gateway replica that stopped while serving it; it may have run there, so it was not run again"
    )]
    Replayed,
    /// A call budget ran out.
    #[error("{limited} (server '{server}')")]
    RateLimited {
        /// The server called.
        server: String,
        /// Which limit, and when to retry.
        limited: crate::auth::rate_limit::RateLimited,
    },
}

impl GatewayError {
    /// The error for a call that arrives while shutdown drains.
    pub fn shutting_down(server: &str) -> Self {
        Self::Unavailable {
            server: server.to_owned(),
            state: "gateway shutting down",
            reason: None,
        }
    }

    /// The error for a server that has no ready session. Why its last
    /// instance ended is masked for everyone, and only its kind for a caller
    /// outside the admin project (see [`exit_for`]).
    pub fn unavailable(entry: &ServerEntry, admin: bool) -> Self {
        let status = &entry.pool;
        let state = match status.state() {
            UpstreamState::Starting => "starting",
            // Ready yet no link: health checks ejected every ready instance.
            UpstreamState::Ready => "unhealthy: ejected by health checks",
            UpstreamState::Restarting => "restarting",
            UpstreamState::Failed => "failed: circuit open",
            UpstreamState::Stopped => "stopped",
        };
        Self::Unavailable {
            server: status.name().to_owned(),
            state,
            reason: status.last_exit().map(|exit| exit_for(entry, &exit, admin)),
        }
    }
}

/// Why an upstream's instance ended, as a client may read it: masked for the
/// admin project, only the kind for everyone else (the details can name
/// paths, hosts and command lines a tenant has no business seeing).
pub fn exit_for(entry: &ServerEntry, exit: &ExitReason, admin: bool) -> String {
    if admin {
        return crate::mask::mask_upstream(entry, &exit.to_string());
    }
    match exit {
        ExitReason::Exited(_) | ExitReason::Signaled(_) => "the process ended".into(),
        ExitReason::SpawnFailed(_) => "the process could not start".into(),
        ExitReason::SessionFailed(_) => "its MCP session failed".into(),
        ExitReason::ConnectionLost(_) => "the connection was lost".into(),
        ExitReason::Hung(_) => "it stopped answering and was restarted".into(),
        other => other.to_string(),
    }
}

impl From<GatewayError> for ErrorData {
    fn from(err: GatewayError) -> Self {
        let message = err.to_string();
        match err {
            GatewayError::UnknownServer(_)
            | GatewayError::Unprefixed { .. }
            | GatewayError::InvalidState(_) => ErrorData::invalid_params(message, None),
            GatewayError::InputBridge(_) => ErrorData::new(UPSTREAM_UNAVAILABLE, message, None),
            GatewayError::Unavailable { server, state, .. } => ErrorData::new(
                UPSTREAM_UNAVAILABLE,
                message,
                Some(json!({ "server": server, "state": state })),
            ),
            GatewayError::Call(CallError::Upstream(error)) => error,
            GatewayError::Call(CallError::Lost { server, reason }) => ErrorData::new(
                UPSTREAM_LOST,
                message,
                Some(json!({ "server": &*server, "reason": reason })),
            ),
            GatewayError::Replayed => ErrorData::new(
                UPSTREAM_LOST,
                message,
                Some(json!({ "reason": "replayed" })),
            ),
            GatewayError::Call(CallError::Cancelled { server }) => ErrorData::new(
                REQUEST_CANCELLED,
                message,
                Some(json!({ "server": &*server })),
            ),
            GatewayError::UnexpectedResult(_) | GatewayError::Internal(_) => {
                ErrorData::internal_error(message, None)
            }
            GatewayError::NameCollision(collision) => ErrorData::internal_error(
                message,
                Some(
                    json!({ "tool": collision.tool, "servers": [&*collision.servers.0, &*collision.servers.1] }),
                ),
            ),
            GatewayError::Timeout(info) => ErrorData::new(
                DEADLINE_EXCEEDED,
                message,
                Some(json!({
                    "kind": info.kind,
                    "server": &*info.upstream,
                    "tool": info.tool.as_deref(),
                    "deadline_ms": u64::try_from(info.deadline.as_millis()).unwrap_or(u64::MAX),
                })),
            ),
            GatewayError::Guardrail(block) => ErrorData::new(
                GUARDRAIL_BLOCKED,
                message,
                Some(json!({
                    "policy": block.policy_name,
                    "direction": block.direction,
                    "detector": block.detector,
                    "provider": block.provider,
                })),
            ),
            GatewayError::Auth(crate::auth::AuthError::RateLimited(limited))
            | GatewayError::RateLimited { limited, .. } => ErrorData::new(
                RATE_LIMITED,
                message,
                Some(json!({
                    "limit": limited.limit.as_str(),
                    "retry_after_ms": u64::try_from(limited.retry_after.as_millis()).unwrap_or(u64::MAX),
                })),
            ),
            GatewayError::Auth(err) if err.is_forbidden() => {
                ErrorData::new(FORBIDDEN, message, None)
            }
            GatewayError::Auth(_) | GatewayError::SessionOwner => {
                ErrorData::new(UNAUTHORIZED, message, None)
            }
            GatewayError::NotGranted { .. } => ErrorData::new(FORBIDDEN, message, None),
        }
    }
}
