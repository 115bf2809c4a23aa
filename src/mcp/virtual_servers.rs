//! Virtual servers: `/mcp/v/{name}` serves a curated set of upstream tools
//! (`[virtual_servers.NAME]`), renamed and re-described. A virtual session
//! wraps an ordinary federated [`GatewayHandler`]: listing reads the
//! upstreams' cached lists, screened and filtered by the caller's grant, and
//! a call is translated to its `server__tool` name and sent down the
//! ordinary `tools/call` path (grant, limits, guardrails, cache, audit).
use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::Router;
use futures::future::join_all;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, InitializeRequestParams,
    InitializeResult, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
    Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::{ErrorData, RoleServer, ServerHandler};

use crate::auth::middleware::McpGuard;
use crate::config::virtual_servers::VirtualServerConfig;

use super::access::{Access, Guarded};
use super::handler::GatewayHandler;
use super::lazy_routes::{LazyFront, RouteKind};
use super::listing::Listing;
use super::sessions::Scope;
use super::{Gateway, HttpSettings};

/// One virtual server as configured.
#[derive(Debug)]
pub struct VirtualServer {
    name: Arc<str>,
    tools: Vec<VirtualTool>,
}

/// One exposed tool and the upstream tool behind it.
#[derive(Debug)]
struct VirtualTool {
    server: Arc<str>,
    tool: String,
    name: String,
    description: Option<String>,
}

impl VirtualServer {
    fn new(name: &str, config: &VirtualServerConfig, separator: &str) -> Self {
        let tools = config
            .tools
            .iter()
            .filter_map(|tool| {
                let (server, upstream_tool) = tool.target(separator)?;
                Some(VirtualTool {
                    server: Arc::from(server),
                    tool: upstream_tool.to_owned(),
                    name: tool.exposed(separator).to_owned(),
                    description: tool.description.clone(),
                })
            })
            .collect();
        Self {
            name: Arc::from(name),
            tools,
        }
    }

    fn tool(&self, name: &str) -> Option<&VirtualTool> {
        self.tools.iter().find(|tool| tool.name == name)
    }
}

/// Every virtual server, swapped whole when the configuration changes.
#[derive(Debug, Default)]
pub struct VirtualServers {
    servers: ArcSwap<BTreeMap<String, Arc<VirtualServer>>>,
}

impl VirtualServers {
    /// Replaces the set with `configs` (already validated).
    pub fn set(&self, configs: &BTreeMap<String, VirtualServerConfig>, separator: &str) {
        let servers = configs
            .iter()
            .map(|(name, config)| {
                let server = Arc::new(VirtualServer::new(name, config, separator));
                (name.clone(), server)
            })
            .collect();
        self.servers.store(Arc::new(servers));
    }

    /// The virtual server called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<VirtualServer>> {
        self.servers.load().get(name).cloned()
    }
}

/// The MCP server of one `/mcp/v/{name}` session.
pub struct VirtualHandler {
    inner: GatewayHandler,
    server: Arc<VirtualServer>,
}

impl VirtualHandler {
    /// A session of `server` acting for `access`.
    pub fn new(gateway: Arc<Gateway>, server: Arc<VirtualServer>, access: Access) -> Self {
        Self {
            inner: GatewayHandler::new(gateway, Scope::Federated, access),
            server,
        }
    }

    /// The exposed tools the caller may use, in configuration order.
    async fn tools(&self, context: &RequestContext<RoleServer>) -> Result<Vec<Tool>, ErrorData> {
        let identity = self.inner.access().caller(context)?;
        let ready = self.inner.ready_servers(&identity);
        let mut servers: Vec<&Arc<str>> = self
            .server
            .tools
            .iter()
            .map(|tool| &tool.server)
            .filter(|server| ready.contains(server))
            .collect();
        servers.dedup();
        let gateway = self.inner.gateway();
        let lists = join_all(servers.iter().map(|server| {
            self.inner
                .upstream_whole_list::<ListToolsResult>(server, None, false, context)
        }))
        .await;
        let mut by_server: BTreeMap<&str, Vec<Tool>> = BTreeMap::new();
        for (server, list) in servers.iter().zip(lists) {
            match list {
                Ok(list) => {
                    let tools = list.screened(server, &gateway.guardrails).tools;
                    by_server.insert(server, tools);
                }
                Err(err) => {
                    tracing::warn!(server = %server, virtual_server = %self.server.name, %err, "upstream left out of a virtual server's list")
                }
            }
        }
        Ok(self
            .server
            .tools
            .iter()
            .filter_map(|exposed| {
                let listed = by_server.get(&*exposed.server)?;
                let mut tool = listed.iter().find(|t| t.name == exposed.tool)?.clone();
                if !tool.visible(&exposed.server, &identity.grant) {
                    return None;
                }
                tool.name = exposed.name.clone().into();
                if let Some(description) = &exposed.description {
                    tool.description = Some(description.clone().into());
                }
                Some(tool)
            })
            .collect())
    }
}

impl ServerHandler for VirtualHandler {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .build();
        let mut config = ServerConfig::new(capabilities);
        config.server_info = Implementation::new(
            format!("bulwark/{}", self.server.name),
            env!("CARGO_PKG_VERSION"),
        );
        config
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        // Binds the session to the caller that opens it.
        self.inner.access().caller(&context)?;
        context.peer.set_peer_info(request.clone());
        self.inner.track(&context);
        self.negotiate_initialize(&request)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools(&context).await?))
    }

    async fn call_tool(
        &self,
        mut request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(exposed) = self.server.tool(&request.name) else {
            return Err(ErrorData::invalid_params(
                format!(
                    "unknown tool '{}' on virtual server '{}'",
                    request.name, self.server.name
                ),
                None,
            ));
        };
        let naming = &self.inner.gateway().naming;
        request.name = naming.join(&exposed.server, &exposed.tool).into();
        self.inner.call_tool(request, context).await
    }
}

/// `/mcp/v/{name}`: a curated set of upstream tools.
pub struct VirtualRoutes;

impl RouteKind for VirtualRoutes {
    const WHAT: &'static str = "virtual server";

    fn exists(gateway: &Gateway, name: &str) -> bool {
        gateway.virtual_servers.get(name).is_some()
    }

    /// Kept with the per-server session managers, so ended sessions'
    /// owners are swept with theirs; `v/` is no upstream name.
    fn sessions_key(name: &str) -> String {
        format!("v/{name}")
    }

    fn build(
        gateway: &Arc<Gateway>,
        settings: &HttpSettings,
        name: &Arc<str>,
        sessions: Arc<LocalSessionManager>,
        layers: super::McpLayers,
    ) -> Router {
        let gateway = gateway.clone();
        let virtual_name = name.clone();
        let service = StreamableHttpService::new(
            move || {
                // Looked up per session: a reloaded definition applies to new sessions.
                let server = gateway.virtual_servers.get(&virtual_name).ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "virtual server removed")
                })?;
                let access = Access::http(gateway.auth.clone());
                Ok(VirtualHandler::new(gateway.clone(), server, access))
            },
            sessions,
            super::http_config(settings),
        );
        super::guarded("/mcp/v/{name}", service, layers)
    }

    fn guard(gateway: &Gateway, _name: &Arc<str>) -> McpGuard {
        McpGuard {
            auth: gateway.auth.clone(),
            server: None,
        }
    }
}

/// What `/mcp/v/{name}` needs to build a virtual server's route on first use.
pub type VirtualFront = LazyFront<VirtualRoutes>;
