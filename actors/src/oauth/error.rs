//! Why a token could not be had. Messages name the upstream and the cause
//! and never carry a token, secret or assertion.
use std::sync::Arc;

/// A failed token acquisition; cheap to clone so every waiter of one flight
/// gets the same answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// The authorization server rejected our client (`invalid_client`,
    /// `unauthorized_client`, …): a configuration problem, not retried.
    #[error("upstream '{server}': the authorization server rejected the client: {error}{}", describe(.description))]
    Rejected {
        /// Upstream name.
        server: Arc<str>,
        /// The OAuth `error` code.
        error: String,
        /// The server's `error_description`, if any.
        description: Option<String>,
    },
    /// The token endpoint kept failing (network errors or 5xx) after retries.
    #[error("upstream '{server}': token endpoint unavailable: {reason}")]
    Unavailable {
        /// Upstream name.
        server: Arc<str>,
        /// Last network error or HTTP status.
        reason: String,
    },
    /// The token response was unusable.
    #[error("upstream '{server}': invalid token response: {reason}")]
    InvalidResponse {
        /// Upstream name.
        server: Arc<str>,
        /// What is wrong with it.
        reason: String,
    },
    /// The token lacks scopes we asked for.
    #[error("upstream '{server}': the token lacks the requested scopes {missing:?}")]
    MissingScopes {
        /// Upstream name.
        server: Arc<str>,
        /// The scopes not granted.
        missing: Vec<String>,
    },
    /// The token endpoint could not be discovered or is not allowed.
    #[error("upstream '{server}': OAuth discovery failed: {reason}")]
    Discovery {
        /// Upstream name.
        server: Arc<str>,
        /// Which step failed.
        reason: String,
    },
    /// The client could not be set up (bad key, bad certificate).
    #[error("upstream '{server}': OAuth client misconfigured: {reason}")]
    Config {
        /// Upstream name.
        server: Arc<str>,
        /// What is wrong.
        reason: String,
    },
    /// The token actor is not running.
    #[error("the token actor is not running")]
    ActorDown,
}

fn describe(description: &Option<String>) -> String {
    description
        .as_deref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default()
}
