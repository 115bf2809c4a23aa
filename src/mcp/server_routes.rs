//! `/mcp/{server}`: the transparent proxy of each upstream, looked up at
//! request time. Upstreams come and go while the gateway runs (the control
//! plane adds and removes them), so the route is one pattern: a request for
//! a server the registry has gets that server's streamable-HTTP service
//! (made on first use, see [`super::lazy_routes`]); any other name is a
//! plain 404. A removed server's
//! sessions are closed by the control plane once its calls have drained.
use std::sync::Arc;

use axum::Router;
use dashmap::DashMap;
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;

use super::lazy_routes::{LazyFront, RouteKind};
use super::sessions::Scope;
use super::{Gateway, HttpSettings};
use crate::auth::middleware::McpGuard;

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

/// `/mcp/{server}`: one upstream's transparent proxy, pinned to it.
pub struct ServerRoutes;

impl RouteKind for ServerRoutes {
    const WHAT: &'static str = "upstream";

    fn exists(gateway: &Gateway, name: &str) -> bool {
        gateway.registry.get(name).is_some()
    }

    fn sessions_key(name: &str) -> String {
        name.to_owned()
    }

    fn build(
        gateway: &Arc<Gateway>,
        settings: &HttpSettings,
        name: &Arc<str>,
        sessions: Arc<LocalSessionManager>,
        layers: super::McpLayers,
    ) -> Router {
        let service = super::service(gateway, Scope::Server(name.clone()), settings, sessions);
        super::guarded("/mcp/{server}", service, layers)
    }

    fn guard(gateway: &Gateway, name: &Arc<str>) -> McpGuard {
        McpGuard {
            auth: gateway.auth.clone(),
            server: Some(name.clone()),
        }
    }
}

/// What `/mcp/{server}` needs to build a server's route on first use.
pub type ServerFront = LazyFront<ServerRoutes>;

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
