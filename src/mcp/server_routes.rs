//! `/mcp/{server}`: the transparent proxy of each upstream, looked up at
//! request time. Upstreams come and go while the gateway runs (the control
//! plane adds and removes them), so the route is one pattern: a request for
//! a server the registry has gets that server's streamable-HTTP service
//! (made on first use); any other name is a plain 404. A removed server's
//! sessions are closed by the control plane once its calls have drained.
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use serde_json::json;
use tower::ServiceExt;

use super::owners::SessionOwners;
use super::sessions::Scope;
use super::{Gateway, HttpSettings};
use crate::auth::middleware::McpGuard;
use crate::front::screen::Screen;

/// The streamable-HTTP sessions of each upstream's `/mcp/{server}`.
/// Owned by the [`Gateway`], so the control plane can close a removed
/// upstream's sessions; the HTTP side only looks them up.
#[derive(Default)]
pub struct ServerSessions {
    managers: DashMap<Arc<str>, Arc<LocalSessionManager>>,
}

impl ServerSessions {
    /// `server`'s session manager, made on first use.
    pub(super) fn get_or_create(&self, server: &str) -> Arc<LocalSessionManager> {
        if let Some(manager) = self.managers.get(server) {
            return manager.clone();
        }
        self.managers
            .entry(Arc::from(server))
            .or_insert_with(|| Arc::new(LocalSessionManager::default()))
            .clone()
    }

    /// Every server's session manager (to sweep ended sessions' owners).
    pub fn all(&self) -> Vec<Arc<LocalSessionManager>> {
        self.managers.iter().map(|m| m.value().clone()).collect()
    }

    /// Ends every session on `server`'s route: the upstream is gone, and an
    /// open GET stream would otherwise wait on it for ever.
    pub async fn forget(&self, server: &str) {
        let Some((_, manager)) = self.managers.remove(server) else {
            return;
        };
        let ids: Vec<_> = manager.sessions.read().await.keys().cloned().collect();
        for id in &ids {
            // Already closed by its client: nothing left to do.
            let _ = manager.close_session(id).await;
        }
        if !ids.is_empty() {
            tracing::info!(
                server,
                sessions = ids.len(),
                "closed the sessions of a removed upstream"
            );
        }
    }
}

/// What `/mcp/{server}` needs to build a server's route on first use.
pub struct ServerFront {
    gateway: Arc<Gateway>,
    settings: HttpSettings,
    screen: Arc<Screen>,
    owners: Arc<SessionOwners>,
    /// Built routes, with the session manager each was built over (a
    /// removed and re-added server gets a new one).
    routes: DashMap<Arc<str>, (Arc<LocalSessionManager>, Router)>,
}

impl ServerFront {
    /// The per-server front over `gateway`, sharing the federated route's
    /// screen and session owners.
    pub fn new(
        gateway: Arc<Gateway>,
        settings: HttpSettings,
        screen: Arc<Screen>,
        owners: Arc<SessionOwners>,
    ) -> Arc<Self> {
        Arc::new(Self {
            gateway,
            settings,
            screen,
            owners,
            routes: DashMap::new(),
        })
    }

    /// The route of `server`, or `None` when no such upstream runs.
    fn route(&self, server: &str) -> Option<Router> {
        if self.gateway.registry.get(server).is_none() {
            // Its sessions stay until the control plane has drained its
            // calls in flight; only then are they closed (see
            // [`ServerSessions::forget`]).
            self.routes.remove(server);
            return None;
        }
        let sessions = self.gateway.server_sessions.get_or_create(server);
        if let Some(built) = self.routes.get(server)
            && Arc::ptr_eq(&built.0, &sessions)
        {
            return Some(built.1.clone());
        }
        let router = self.build(server, sessions.clone());
        // Rare (a first request, or one after a re-add): also drop the
        // routes of upstreams that went away without another request.
        let registry = &self.gateway.registry;
        self.routes.retain(|name, _| registry.get(name).is_some());
        self.routes
            .insert(Arc::from(server), (sessions, router.clone()));
        Some(router)
    }

    /// The route of `server` over its `sessions`, behind the MCP layers.
    fn build(&self, server: &str, sessions: Arc<LocalSessionManager>) -> Router {
        let name: Arc<str> = Arc::from(server);
        let guard = McpGuard {
            auth: self.gateway.auth.clone(),
            server: Some(name.clone()),
        };
        let service = super::service(&self.gateway, Scope::Server(name), &self.settings, sessions);
        let router = Router::new().route_service("/mcp/{server}", service);
        super::guarded(router, &self.screen, &self.owners, guard)
    }
}

/// The `/mcp/{server}` handler: the server's route, or 404 naming it.
pub async fn dispatch(
    State(front): State<Arc<ServerFront>>,
    Path(server): Path<String>,
    request: Request,
) -> Response {
    match front.route(&server) {
        Some(router) => match router.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        None => {
            tracing::debug!(server, "request for an upstream that does not run");
            let body = json!({
                "error": "not_found",
                "message": format!("no upstream named '{server}' runs on this gateway"),
            });
            (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn forgetting_a_server_closes_its_sessions_and_a_new_manager_follows() {
        let sessions = ServerSessions::default();
        let first = sessions.get_or_create("echo");
        assert!(Arc::ptr_eq(&first, &sessions.get_or_create("echo")));
        let (id, _transport) = first.create_session().await.unwrap();
        assert!(first.sessions.read().await.contains_key(&id));
        sessions.forget("echo").await;
        assert!(first.sessions.read().await.is_empty());
        assert!(sessions.all().is_empty());
        assert!(!Arc::ptr_eq(&first, &sessions.get_or_create("echo")));
        // Forgetting an unknown server is harmless.
        sessions.forget("ghost").await;
    }
}
