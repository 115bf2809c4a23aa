//! Who a session acts for and what it may use. The HTTP layer has already
//! authenticated the request and put its [`Identity`] into the request
//! extensions (rmcp hands them to the handler inside `http::request::Parts`);
//! stdio sessions carry one fixed identity. A session belongs to the identity
//! that opened it: a request on it from anyone else is refused.
use std::sync::{Arc, OnceLock};

use rmcp::RoleServer;
use rmcp::model::{Prompt, Resource, ResourceTemplate, Tool};
use rmcp::service::RequestContext;

use super::error::GatewayError;
use crate::auth::grants::Grant;
use crate::auth::identity::Identity;
use crate::auth::{Auth, AuthError};

/// One session's caller and the checks made on its behalf.
pub struct Access {
    auth: Arc<Auth>,
    bound: OnceLock<Identity>,
    /// stdio has no HTTP layer in front: the per-key budget is taken here.
    check_key_limit: bool,
}

impl Access {
    /// A session behind the HTTP layer: bound to the first caller it sees.
    pub fn http(auth: Arc<Auth>) -> Self {
        Self {
            auth,
            bound: OnceLock::new(),
            check_key_limit: false,
        }
    }

    /// A stdio session: always `identity`.
    pub fn fixed(auth: Arc<Auth>, identity: Identity) -> Self {
        Self {
            auth,
            bound: OnceLock::from(identity),
            check_key_limit: true,
        }
    }

    /// Who this request acts for, without checking or charging anything:
    /// for routing and screening after [`Self::caller`] admitted it.
    pub fn current(&self, context: &RequestContext<RoleServer>) -> Option<Identity> {
        context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Identity>())
            .or_else(|| self.bound.get())
            .cloned()
    }

    /// The caller of this request; the first one binds the session.
    pub fn caller(&self, context: &RequestContext<RoleServer>) -> Result<Identity, GatewayError> {
        let presented = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Identity>());
        let identity = match (presented, self.bound.get()) {
            (Some(presented), Some(bound)) if !presented.same_caller(bound) => {
                tracing::warn!(
                    owner = %bound.subject,
                    caller = %presented.subject,
                    "request on another caller's session refused"
                );
                return Err(GatewayError::SessionOwner);
            }
            // The presented identity carries the project's grant as of now.
            (Some(presented), _) => {
                self.bound.get_or_init(|| presented.clone());
                presented.clone()
            }
            (None, Some(bound)) => bound.clone(),
            // Fail closed: a request that skipped the HTTP layer.
            (None, None) => return Err(AuthError::Missing.into()),
        };
        if self.check_key_limit {
            self.auth
                .limits()
                .check_key(&identity.subject)
                .map_err(AuthError::from)?;
        }
        Ok(identity)
    }

    /// Takes one inner call of a `bulwark__call_tools` batch from the caller's
    /// per-key budget: a batch costs what its calls would cost one by one.
    /// (stdio charges it already in [`Self::caller`], which each inner call passes.)
    pub async fn charge_inner_call(&self, identity: &Identity) -> Result<(), GatewayError> {
        if self.check_key_limit {
            return Ok(());
        }
        self.auth
            .limits()
            .admit_key(&identity.subject)
            .await
            .map_err(|limited| AuthError::from(limited).into())
    }

    /// May `identity` send this request to `server` (and call `tool`, with
    /// `federated` its client-facing name)? Takes from the call budgets
    /// (shared by the replicas when they are kept in Redis).
    pub async fn authorize(
        &self,
        identity: &Identity,
        server: &str,
        tool: Option<(&str, &str)>,
    ) -> Result<(), GatewayError> {
        let granted = match tool {
            Some((tool, _)) => identity.grant.allows_tool(server, tool),
            None => identity.grant.allows_server(server),
        };
        if !granted {
            return Err(GatewayError::NotGranted {
                project: identity.project.to_string(),
                what: match tool {
                    Some((_, federated)) => format!("tool '{federated}'"),
                    None => format!("server '{server}'"),
                },
            });
        }
        self.auth
            .limits()
            .admit_call(
                &identity.subject,
                server,
                tool.map(|(_, federated)| federated),
            )
            .await
            .map_err(|limited| GatewayError::RateLimited {
                server: server.to_owned(),
                limited,
            })
    }
}

/// A listed item the grant may hide.
pub trait Guarded {
    /// True when a caller with `grant` may see this item of `server`.
    fn visible(&self, server: &str, grant: &Grant) -> bool;
}

impl Guarded for Tool {
    fn visible(&self, server: &str, grant: &Grant) -> bool {
        grant.allows_tool(server, &self.name)
    }
}

macro_rules! by_server {
    ($($item:ty),*) => {$(
        impl Guarded for $item {
            fn visible(&self, server: &str, grant: &Grant) -> bool {
                grant.allows_server(server)
            }
        }
    )*};
}

by_server!(Prompt, Resource, ResourceTemplate);
