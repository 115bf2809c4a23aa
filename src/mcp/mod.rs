//! The MCP front door: `/mcp` (federated), `/mcp/{server}` (transparent
//! proxy) and the stdio front.
//!
//! - [`handler`]: the per-session MCP server; federation and proxying.
//! - [`access`]: the session's caller, its grant and call budgets.
//! - [`deadline`]: upstream operations' deadlines, counted from the request's arrival.
//! - `affinity`: which pool instance a session with affinity is bound to.
//! - [`owners`]: each HTTP session belongs to the caller that opened it.
//! - [`directory`]: sessions any replica can continue (Redis).
//! - [`attempts`]: a load balancer's replays of a call recognised across replicas.
//! - [`listing`]: the four list kinds behind one generic path.
//! - [`naming`]: `server__tool` names and federated resource URIs.
//! - [`prefixes`]: per-upstream prefix modes and the bare tool-name table.
//! - [`sessions`]: live sessions, fan-out of list changes and resource updates.
//! - [`lazy_routes`]: routes built on first use for names that come and go.
//! - [`server_routes`]: `/mcp/{server}`, looked up per request.
//! - [`virtual_servers`]: `/mcp/v/{name}`, curated and renamed tool sets.
//! - [`caller`]: routes an upstream's mid-call traffic to the calling session.
//! - [`log_levels`]: per-session log levels over a shared upstream.
//! - [`meta`]: which request `_meta` keys travel upstream.
//! - [`param_headers`]: tool parameters mirrored into `Mcp-Param-*` headers (SEP-2243), checked against the body.
//! - `cache_hints`: `ttlMs` / `cacheScope` on the list and read results sent to 2026-07-28 clients.
//! - [`tasks`]: the tasks extension: upstream tasks under namespaced ids, kept to their creator.
//! - [`mrtr`]: upstream sampling/elicitation/roots bridged into `input_required` rounds for stateless clients.
//! - [`error`]: the one mapping from gateway failures to JSON-RPC errors.
//! - [`guard`]: the guardrail steps of the request path.
//! - [`gateway_tools`]: the gateway's own tools (`bulwark__*`).
//! - [`search`]: the tool index behind `bulwark__search_tools`; `search_calls`
//!   runs it and the `search` tool listing for a session.
//! - `measure`: the per-operation metrics of the handler.
pub mod access;
mod affinity;
pub mod attempts;
mod cache_hints;
pub mod caller;
pub mod deadline;
pub mod directory;
pub mod error;
mod gateway_calls;
pub mod gateway_tools;
pub mod guard;
pub mod handler;
pub mod lazy_routes;
pub mod listing;
pub mod lists;
pub mod log_levels;
mod measure;
pub mod meta;
pub mod mrtr;
pub mod naming;
pub mod observer;
pub mod owners;
pub mod param_headers;
pub mod prefixes;
pub mod search;
mod search_calls;
pub mod server_routes;
pub mod sessions;
pub mod subscriptions;
pub mod tasks;
pub mod virtual_servers;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use bulwark_actors::cache::{CacheHandle, Scope as CacheScope};
use bulwark_actors::guardrail::Guardrails;
use bulwark_actors::timeout::Escalation;
use bulwark_supervisors::registry::Registry;
use dashmap::DashMap;
use rmcp::model::{Tool, ToolAnnotations};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::auth::middleware::{self, McpGuard};
use access::Access;
use handler::GatewayHandler;
use naming::Naming;
use server_routes::{ServerFront, ServerSessions};
use sessions::{Scope, Sessions};

/// Shared state of the MCP front: read by every session, owned by nobody.
pub struct Gateway {
    /// Configured upstreams and their live status.
    pub registry: Arc<Registry>,
    /// Federated naming.
    pub naming: Naming,
    /// Live sessions (also the observer of upstream announcements).
    pub sessions: Arc<Sessions>,
    /// The streamable-HTTP sessions of each `/mcp/{server}` route.
    pub server_sessions: Arc<ServerSessions>,
    /// Whether `/mcp` lists the gateway's own tools.
    pub gateway_tools: bool,
    /// Input, output and tool-list checks.
    pub guardrails: Guardrails,
    /// Client authentication, grants and rate limits.
    pub auth: Arc<Auth>,
    /// Cached lists and tool results.
    pub cache: CacheHandle,
    /// Deadlines of calls in flight.
    pub deadlines: Escalation,
    /// The request path's metrics.
    pub metrics: crate::telemetry::RequestMetrics,
    /// `[virtual_servers]`, served at `/mcp/v/{name}`.
    pub virtual_servers: virtual_servers::VirtualServers,
    /// Every upstream's tools, searchable; a segment goes when its list does.
    pub tool_index: Arc<search::ToolIndex>,
    /// The per-call audit, when `[audit] mcp_calls` is on (set once at start).
    pub call_audit: std::sync::OnceLock<Arc<crate::govern::calls::CallAudit>>,
    /// Each tool's annotations from its server's latest list: whether its
    /// results may be cached.
    /// Keyed by server, then tool, so a call looks it up without allocating.
    annotations:
        DashMap<Arc<str>, HashMap<String, Option<ToolAnnotations>>, foldhash::fast::RandomState>,
    /// The tools whose parameters travel in `Mcp-Param-*` headers too.
    pub param_headers: param_headers::ParamHeaders,
    /// Restart count of each server when its lists were last cached.
    restarts_seen: DashMap<Arc<str>, u32>,
    /// Calls of stateless clients parked while they wait for client input.
    pub mrtr: Arc<mrtr::Bridge>,
    /// Upstream tasks created through this process, and who created them.
    pub tasks: tasks::Tasks,
    /// The session directory, where replicas claim call attempts (set once
    /// at start, with `[sessions] backend = "redis"`).
    pub attempts: std::sync::OnceLock<Arc<directory::Directory>>,
}

/// The shared services the request path uses next to the upstreams.
pub struct Services {
    /// Input, output and tool-list checks.
    pub guardrails: Guardrails,
    /// Client authentication, grants and rate limits.
    pub auth: Arc<Auth>,
    /// Cached lists and tool results.
    pub cache: CacheHandle,
    /// Deadlines of calls in flight.
    pub deadlines: Escalation,
    /// The request path's metrics.
    pub metrics: crate::telemetry::RequestMetrics,
}

impl Gateway {
    /// The MCP front over `registry`, guarded by `auth` and `guardrails`.
    pub fn new(
        registry: Arc<Registry>,
        naming: Naming,
        gateway_tools: bool,
        services: Services,
    ) -> Arc<Self> {
        Arc::new(Self {
            registry,
            sessions: Sessions::new(naming.clone()),
            server_sessions: Arc::default(),
            naming,
            gateway_tools,
            guardrails: services.guardrails,
            auth: services.auth,
            cache: services.cache,
            deadlines: services.deadlines,
            metrics: services.metrics,
            call_audit: std::sync::OnceLock::new(),
            tool_index: Arc::default(),
            virtual_servers: virtual_servers::VirtualServers::default(),
            annotations: DashMap::default(),
            param_headers: param_headers::ParamHeaders::default(),
            restarts_seen: DashMap::new(),
            mrtr: Arc::default(),
            tasks: tasks::Tasks::default(),
            attempts: std::sync::OnceLock::new(),
        })
    }

    /// Drops `server`'s cached entries when it restarted since they were
    /// cached: a new instance may list other things.
    pub async fn forget_if_restarted(&self, server: &str) {
        let Some(entry) = self.registry.get(server) else {
            return;
        };
        let restarts = entry.pool.restarts();
        let seen = self.restarts_seen.insert(Arc::from(server), restarts);
        if seen.is_some_and(|seen| seen != restarts) {
            self.tool_index.invalidate(server);
            self.param_headers.forget(server);
            self.cache
                .invalidate(CacheScope::Upstream(Arc::from(server)));
            // Rare, and the next read must not see the old instance's lists.
            self.cache.flush().await;
        }
    }

    /// Records the annotations of `server`'s tools from a list. At most
    /// [`MAX_REMEMBERED_TOOLS`] per server: past it the record starts over
    /// from this list, so an upstream renaming its tools endlessly cannot
    /// grow it (a forgotten tool's result is just not cached by annotation).
    pub fn remember_tools(&self, server: &str, tools: &[Tool]) {
        let mut known = self.annotations.entry(Arc::from(server)).or_default();
        if known.len().saturating_add(tools.len()) > MAX_REMEMBERED_TOOLS {
            known.clear();
        }
        for tool in tools.iter().take(MAX_REMEMBERED_TOOLS) {
            known.insert(tool.name.to_string(), tool.annotations.clone());
        }
    }

    /// Whether `server` listed `tool` lately: only such names become metric
    /// labels, so a name a client invents never creates a series.
    pub fn knows_tool(&self, server: &str, tool: &str) -> bool {
        self.annotations
            .get(server)
            .is_some_and(|tools| tools.contains_key(tool))
    }

    /// How long a result of `server`'s `tool` may be cached, if at all.
    pub fn result_ttl(&self, server: &str, tool: &str) -> Option<std::time::Duration> {
        let config = self.cache.config();
        // Per-tool rules are keyed by federated name; without any, skip the join.
        let federated = if config.tools.is_empty() {
            String::new()
        } else {
            self.naming.join(server, tool)
        };
        let known = self.annotations.get(server);
        let annotations = known
            .as_ref()
            .and_then(|tools| tools.get(tool))
            .and_then(Option::as_ref);
        config.result_ttl(&federated, annotations)
    }
}

/// Most tool annotations remembered per upstream (see [`Gateway::remember_tools`]).
pub const MAX_REMEMBERED_TOOLS: usize = 10_000;

/// HTTP-level settings of the streamable HTTP front.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Bounds of bodies and sessions.
    pub limits: crate::front::limits::FrontLimits,
    /// Cancelled at shutdown: ends every session.
    pub shutdown: CancellationToken,
    /// Where sessions can be found by any replica (`[sessions] backend = "redis"`).
    pub directory: Option<Arc<directory::Directory>>,
}

fn service(
    gateway: &Arc<Gateway>,
    scope: Scope,
    settings: &HttpSettings,
    sessions: Arc<LocalSessionManager>,
) -> StreamableHttpService<GatewayHandler, LocalSessionManager> {
    let gateway = gateway.clone();
    StreamableHttpService::new(
        move || {
            let access = Access::http(gateway.auth.clone());
            Ok(GatewayHandler::new(gateway.clone(), scope.clone(), access))
        },
        sessions,
        http_config(settings),
    )
}

/// The streamable HTTP settings every MCP route shares.
fn http_config(settings: &HttpSettings) -> StreamableHttpServerConfig {
    // Stateless (2026-07-28) calls that emit nothing before their result are
    // answered as plain JSON instead of a one-event SSE stream.
    let mut config = StreamableHttpServerConfig::default()
        .with_json_response(true)
        // Session calls that answer within the head's wait, with nothing
        // before their result, are answered as plain JSON too: no SSE
        // framing, priming event or chunked body for the client to parse.
        .with_session_json_response(true)
        // A session's `tools/call` runs in the task that read it, not
        // through rmcp's session worker and serve loop, and a stateless
        // request without a serve loop of its own; what a call sends on its
        // way still rides its response.
        .with_direct_calls(true)
        .with_first_message_window(settings.limits.response_head_wait())
        .with_cancellation_token(settings.shutdown.child_token());
    // `Host` and `Origin` are checked for every route by `front::origin`,
    // outside these routes; rmcp's own check parsed the same `Host` again
    // (three authority parses, ~4k instructions per request).
    config = config
        .disable_allowed_hosts()
        .disable_allowed_origins()
        .with_max_request_body_bytes(settings.limits.max_any_body_bytes());
    if let Some(directory) = &settings.directory {
        // A session this replica does not hold is restored from the
        // directory (its handshake replayed) instead of answering 404.
        config.session_store = Some(directory.clone());
    }
    config
}

/// The `/mcp`, `/mcp/{server}` and `/mcp/v/{name}` routes, each behind the
/// auth layer. Only these paths: `/mcp/echo/extra` is 404, and so is `/mcp/nope` while no
/// upstream called `nope` runs (servers are looked up per request, so
/// upstreams added at run time are routed at once).
pub fn routes(gateway: &Arc<Gateway>, settings: &HttpSettings) -> Router {
    let federated = Arc::new(LocalSessionManager::default());
    let owners = owners::SessionOwners::new(
        federated.clone(),
        gateway.server_sessions.clone(),
        settings.limits.max_sessions_per_caller,
        settings.directory.clone(),
    );
    let screen = crate::front::screen::Screen::new(settings.limits.clone());
    let guard = McpGuard {
        auth: gateway.auth.clone(),
        server: None,
    };
    let federated = guarded(
        "/mcp",
        service(gateway, Scope::Federated, settings, federated),
        McpLayers {
            screen: screen.clone(),
            owners: owners.clone(),
            guard,
        },
    );
    let virtuals = virtual_servers::VirtualFront::new(
        gateway.clone(),
        settings.clone(),
        screen.clone(),
        owners.clone(),
    );
    let servers = ServerFront::new(gateway.clone(), settings.clone(), screen, owners);
    let per_server = Router::new()
        .route(
            "/mcp/{server}",
            axum::routing::any(lazy_routes::dispatch::<server_routes::ServerRoutes>),
        )
        .with_state(servers);
    let virtual_routes = Router::new()
        .route(
            "/mcp/v/{name}",
            axum::routing::any(lazy_routes::dispatch::<virtual_servers::VirtualRoutes>),
        )
        .with_state(virtuals);
    federated
        .merge(per_server)
        .merge(virtual_routes)
        .merge(crate::auth::metadata::routes(gateway.auth.oauth()))
}

/// What stands in front of every MCP route: the guard (who calls, and the
/// server it pins, if any), the session owners and the body screen.
pub struct McpLayers {
    /// Reads each POST body within bounds.
    pub screen: Arc<crate::front::screen::Screen>,
    /// Which caller owns which session.
    pub owners: Arc<owners::SessionOwners>,
    /// Authentication, and the server a route pins.
    pub guard: McpGuard,
}

/// A router serving `service` at `path` behind the MCP layers, in order:
/// authenticate, check the session's owner, then read the body within
/// bounds.
///
/// The layers wrap the service itself, not a router of it: every
/// middleware clones what it wraps per request, and a router's route is a
/// box, so layering a router cloned (and allocated) that box at each
/// level; the service clones by reference counts. Only the one route made
/// here is boxed.
fn guarded<S>(path: &str, service: S, layers: McpLayers) -> Router
where
    S: tower::Service<axum::extract::Request, Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Response: axum::response::IntoResponse,
    S::Future: Send + 'static,
{
    let McpLayers {
        screen,
        owners,
        guard,
    } = layers;
    let stack = tower::ServiceBuilder::new()
        .layer(axum::middleware::from_fn_with_state(guard, middleware::mcp))
        .layer(axum::middleware::from_fn_with_state(owners, owners::layer))
        .layer(axum::middleware::from_fn_with_state(
            screen,
            crate::front::screen::layer,
        ))
        .service(service);
    Router::new().route_service(path, stack)
}
