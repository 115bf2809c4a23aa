//! Routes built on first use: `/mcp/{server}` and `/mcp/v/{name}` serve
//! names that come and go while the gateway runs (the control plane adds
//! upstreams, a reload changes virtual servers), so each is one pattern whose
//! handler looks the name up per request and builds that name's
//! streamable-HTTP route once, behind the same MCP layers as `/mcp`.
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use serde_json::json;
use tower::ServiceExt;

use super::owners::SessionOwners;
use super::{Gateway, HttpSettings, McpLayers};
use crate::auth::middleware::McpGuard;
use crate::front::screen::Screen;

/// One family of lazily built routes: how its names are looked up and how a
/// name's service is made.
pub trait RouteKind: Send + Sync + 'static {
    /// What a name of this family is, for the 404 message ("upstream").
    const WHAT: &'static str;

    /// Whether `name` is served now.
    fn exists(gateway: &Gateway, name: &str) -> bool;

    /// The key of `name`'s session manager in [`super::ServerSessions`].
    fn sessions_key(name: &str) -> String;

    /// The router of `name` over `sessions`, its service behind `layers`
    /// ([`super::guarded`]).
    fn build(
        gateway: &Arc<Gateway>,
        settings: &HttpSettings,
        name: &Arc<str>,
        sessions: Arc<LocalSessionManager>,
        layers: McpLayers,
    ) -> Router;

    /// The guard of `name`'s route (which server it pins, if any).
    fn guard(gateway: &Gateway, name: &Arc<str>) -> McpGuard;
}

/// What a lazily routed family needs to build a name's route on first use.
pub struct LazyFront<K> {
    gateway: Arc<Gateway>,
    settings: HttpSettings,
    screen: Arc<Screen>,
    owners: Arc<SessionOwners>,
    /// Built routes, with the session manager each was built over (a
    /// removed and re-added name gets a new one).
    routes: DashMap<Arc<str>, (Arc<LocalSessionManager>, Router)>,
    kind: std::marker::PhantomData<K>,
}

impl<K: RouteKind> LazyFront<K> {
    /// The front over `gateway`, sharing the federated route's screen and
    /// session owners.
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
            kind: std::marker::PhantomData,
        })
    }

    /// The route of `name`, or `None` when it is not served.
    fn route(&self, name: &str) -> Option<Router> {
        if !K::exists(&self.gateway, name) {
            // Its sessions stay until the control plane closes them (for
            // an upstream, once its calls in flight have drained).
            self.routes.remove(name);
            return None;
        }
        let sessions = self
            .gateway
            .server_sessions
            .get_or_create(&K::sessions_key(name));
        if let Some(built) = self.routes.get(name)
            && Arc::ptr_eq(&built.0, &sessions)
        {
            return Some(built.1.clone());
        }
        let name: Arc<str> = Arc::from(name);
        let layers = McpLayers {
            screen: self.screen.clone(),
            owners: self.owners.clone(),
            guard: K::guard(&self.gateway, &name),
        };
        let router = K::build(
            &self.gateway,
            &self.settings,
            &name,
            sessions.clone(),
            layers,
        );
        // Rare (a first request, or one after a re-add): also drop the
        // routes of names that went away without another request.
        self.routes
            .retain(|known, _| K::exists(&self.gateway, known));
        self.routes.insert(name, (sessions, router.clone()));
        Some(router)
    }
}

/// The handler of a lazily routed pattern: the name's route, or 404 naming it.
pub async fn dispatch<K: RouteKind>(
    State(front): State<Arc<LazyFront<K>>>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    match front.route(&name) {
        Some(router) => match router.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        None => {
            tracing::debug!(
                name,
                what = K::WHAT,
                "request for a name that is not served"
            );
            let body = json!({
                "error": "not_found",
                "message": format!("no {} named '{name}' on this gateway", K::WHAT),
            });
            (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
        }
    }
}
