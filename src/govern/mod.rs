//! Governance of the management API: users and their roles, who may call
//! which `/api/v1` route, logins, and the audit trail.
//!
//! - [`roles`]: the four roles and the route → permission table.
//! - [`guard`]: the one layer in front of `/api/v1` that authenticates,
//!   authorizes by that table and audits every mutation and refusal.
//! - [`login`]: session tokens and the failed-login windows.
//! - [`password`]: argon2id hashes.
//! - [`audit`]: masking, action and target names, retention.
//! - [`calls`]: the optional per-call audit of MCP traffic, off the request path.
pub mod audit;
pub mod calls;
pub mod guard;
pub mod login;
pub mod password;
pub mod roles;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::auth::Auth;
use crate::store::Store;
use login::{FailureWindows, Sessions, TokenError};
use roles::Role;

/// `[login]`: session tokens and lockout.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginConfig {
    /// Lifetime of a session token from `POST /api/v1/auth/login`.
    pub token_ttl_secs: u64,
    /// Consecutive failed logins that lock a user.
    pub max_failures: u32,
    /// How long a lockout lasts.
    pub lockout_secs: u64,
    /// Failed logins per client address per minute before further
    /// attempts from it are refused with 429.
    pub address_failures_per_minute: u32,
    /// Failed logins per user name per minute (known or not) before 429.
    pub user_failures_per_minute: u32,
}

impl Default for LoginConfig {
    fn default() -> Self {
        Self {
            token_ttl_secs: 900,
            max_failures: 5,
            lockout_secs: 900,
            address_failures_per_minute: 20,
            user_failures_per_minute: 10,
        }
    }
}

/// `[audit]`: the audit trail.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Entries older than this many days are deleted (0: kept forever).
    pub retention_days: u64,
    /// Also audit every MCP tool call (identity, project, server, tool,
    /// outcome, latency).
    pub mcp_calls: bool,
    /// With `mcp_calls`: record arguments and results too (after the
    /// guardrails' redaction, masked again).
    pub include_payloads: bool,
    /// With `mcp_calls`: records waiting to be written; beyond it they are
    /// dropped and counted, never waited for.
    pub queue: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            retention_days: 90,
            mcp_calls: false,
            include_payloads: false,
            queue: 10_000,
        }
    }
}

/// Who a management request acts for, and with which role. Put into the
/// request extensions by the [`guard`].
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user name (`anonymous` with authentication off).
    pub actor: String,
    /// The role that applies.
    pub role: Role,
    /// `key:ID`, `jwt:SUB` or `login:NAME`.
    pub credential: String,
}

impl Caller {
    /// True for admins, who see and touch everything.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// Where a request came from, for the audit trail.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    /// `X-Request-Id`, taken from the request or made up.
    pub request_id: String,
    /// The peer address.
    pub client: String,
}

/// The shared state of the guard and of the users, login and audit routes.
pub struct Governance {
    /// The management store (users, audit).
    pub store: Store,
    /// Keys, JWTs and per-key limits.
    pub auth: Arc<Auth>,
    /// Session tokens.
    pub sessions: Sessions,
    /// Failed logins in the last minute, per user and per address.
    pub failures: FailureWindows,
    /// Lockout and token settings.
    pub login: LoginConfig,
    /// The MCP side's audit queue (its drop counter is reported).
    pub calls: Arc<calls::CallAudit>,
    /// Whether every MCP tool call is audited.
    pub mcp_calls: bool,
    /// Rebuilt after a user changes, so a disabled user's keys stop at once.
    pub credentials: Arc<crate::control::credentials::LiveCredentials>,
}

impl Governance {
    /// Governance over `store`, loading (or creating) the signing key.
    pub async fn new(
        store: Store,
        auth: Arc<Auth>,
        credentials: Arc<crate::control::credentials::LiveCredentials>,
        login: LoginConfig,
        calls: Arc<calls::CallAudit>,
        mcp_calls: bool,
    ) -> Result<Arc<Self>, TokenError> {
        let sessions =
            Sessions::load(&store, Duration::from_secs(login.token_ttl_secs.max(1))).await?;
        Ok(Arc::new(Self {
            store,
            auth,
            sessions,
            failures: FailureWindows::new(Duration::from_secs(60)),
            login,
            calls,
            mcp_calls,
            credentials,
        }))
    }
}
