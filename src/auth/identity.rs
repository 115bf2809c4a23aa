//! Who a request acts for, as the middleware found it.
use std::sync::Arc;

use super::grants::Grant;

/// How the caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKind {
    /// A `bk_` API key.
    ApiKey,
    /// A JWT from an identity provider.
    Jwt,
    /// Authentication is off: everyone is this one caller.
    Anonymous,
}

/// An authenticated caller. Carried in the HTTP request extensions of `/mcp`
/// routes, so the MCP handler finds it in the rmcp request context.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Stable identity the rate limits and session binding key on: the key id
    /// (`key:ID`) or the token subject (`jwt:SUB`).
    pub subject: Arc<str>,
    /// The user the key or token belongs to.
    pub user: Arc<str>,
    /// The project whose grant applies.
    pub project: Arc<str>,
    /// How the caller authenticated.
    pub kind: IdentityKind,
    /// What the project may use.
    pub grant: Arc<Grant>,
}

impl Identity {
    /// The caller when authentication is off: may use everything.
    pub fn anonymous() -> Self {
        Self {
            subject: "anonymous".into(),
            user: "anonymous".into(),
            project: crate::config::auth::ADMIN_PROJECT.into(),
            kind: IdentityKind::Anonymous,
            grant: Arc::new(Grant::all()),
        }
    }

    /// True for members of the admin project (and everyone with auth off).
    pub fn is_admin(&self) -> bool {
        &*self.project == crate::config::auth::ADMIN_PROJECT
    }

    /// True when both are the same caller (same subject and kind).
    pub fn same_caller(&self, other: &Identity) -> bool {
        self.kind == other.kind && self.subject == other.subject
    }
}
