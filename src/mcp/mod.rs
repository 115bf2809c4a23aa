//! The MCP front door: `/mcp` (federated), `/mcp/{server}` (transparent
//! proxy) and the stdio front.
//!
//! - [`handler`]: the per-session MCP server; federation and proxying.
//! - [`listing`]: the four list kinds behind one generic path.
//! - [`naming`]: `server__tool` names and federated resource URIs.
//! - [`sessions`]: live sessions, fan-out of list changes and resource updates.
//! - [`caller`]: routes an upstream's mid-call traffic to the calling session.
//! - [`meta`]: which request `_meta` keys travel upstream.
//! - [`error`]: the one mapping from gateway failures to JSON-RPC errors.
//! - [`guard`]: the guardrail steps of the request path.
//! - [`gateway_tools`]: the gateway's own tools (`bulwark__*`).
pub mod caller;
pub mod error;
mod gateway_calls;
pub mod gateway_tools;
pub mod guard;
pub mod handler;
pub mod listing;
pub mod meta;
pub mod naming;
pub mod sessions;

use std::sync::Arc;

use axum::Router;
use bulwark_actors::guardrail::Guardrails;
use bulwark_supervisors::registry::Registry;
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use tokio_util::sync::CancellationToken;

use handler::GatewayHandler;
use naming::Naming;
use sessions::{Scope, Sessions};

/// Shared state of the MCP front: read by every session, owned by nobody.
pub struct Gateway {
    /// Configured upstreams and their live status.
    pub registry: Arc<Registry>,
    /// Federated naming.
    pub naming: Naming,
    /// Live sessions (also the observer of upstream announcements).
    pub sessions: Arc<Sessions>,
    /// Whether `/mcp` lists the gateway's own tools.
    pub gateway_tools: bool,
    /// Input, output and tool-list checks.
    pub guardrails: Guardrails,
}

impl Gateway {
    /// The MCP front over `registry`.
    pub fn new(
        registry: Arc<Registry>,
        naming: Naming,
        gateway_tools: bool,
        guardrails: Guardrails,
    ) -> Arc<Self> {
        Arc::new(Self {
            registry,
            sessions: Sessions::new(naming.clone()),
            naming,
            gateway_tools,
            guardrails,
        })
    }
}

/// HTTP-level settings of the streamable HTTP front.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Allowed `Host` values (DNS-rebinding protection); empty allows any.
    pub allowed_hosts: Vec<String>,
    /// Allowed `Origin` values; empty accepts requests without checking.
    pub allowed_origins: Vec<String>,
    /// Cancelled at shutdown: ends every session.
    pub shutdown: CancellationToken,
}

fn service(
    gateway: &Arc<Gateway>,
    scope: Scope,
    settings: &HttpSettings,
) -> StreamableHttpService<GatewayHandler, LocalSessionManager> {
    let mut config = StreamableHttpServerConfig::default()
        .with_cancellation_token(settings.shutdown.child_token());
    config = if settings.allowed_hosts.is_empty() {
        config.disable_allowed_hosts()
    } else {
        config.with_allowed_hosts(settings.allowed_hosts.clone())
    };
    if !settings.allowed_origins.is_empty() {
        config = config.with_allowed_origins(settings.allowed_origins.clone());
    }
    let gateway = gateway.clone();
    StreamableHttpService::new(
        move || Ok(GatewayHandler::new(gateway.clone(), scope.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

/// The `/mcp` and `/mcp/{server}` routes.
pub fn routes(gateway: &Arc<Gateway>, settings: &HttpSettings) -> Router {
    let mut router =
        Router::new().nest_service("/mcp", service(gateway, Scope::Federated, settings));
    for entry in gateway.registry.servers() {
        let name = entry.spec.name.as_str();
        router = router.nest_service(
            &format!("/mcp/{name}"),
            service(gateway, Scope::Server(name.into()), settings),
        );
    }
    router
}
