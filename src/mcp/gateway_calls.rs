//! Runs the gateway's own tools ([`super::gateway_tools`]) for one session.
//! Every tool sees only the servers the session may use, and batch calls go
//! through the session's ordinary `tools/call` path, checks included. What
//! reaches upstreams or the shared cache is paid for like ordinary traffic:
//! each inner call of a batch counts against `per_key` (and, through the
//! ordinary path, `per_upstream`/`per_tool`); a fresh discovery or a cache
//! clear counts against `per_upstream` for each server it touches.
use std::sync::Arc;

use bulwark_actors::cache::{CacheKind, Scope as CacheScope};
use futures::future::{BoxFuture, join_all};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, JsonObject, ListToolsResult,
    RequestMetaObject,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

use crate::auth::identity::Identity;

use super::error::exit_for;
use super::gateway_tools::{
    BatchCall, CacheClearArgs, CallToolsArgs, DiscoverToolsArgs, GatewayTool, MAX_BATCH, NoArgs,
    SearchToolsArgs, ServerInfoArgs, ServerSummary, parse_args,
};
use super::handler::GatewayHandler;

impl GatewayHandler {
    /// Runs gateway tool `tool` with `arguments`. Boxed because `call_tools`
    /// reaches `call_tool` again, and recursive futures need a known size.
    pub(super) fn call_gateway_tool(
        &self,
        tool: GatewayTool,
        arguments: Option<JsonObject>,
        context: RequestContext<RoleServer>,
    ) -> BoxFuture<'_, Result<CallToolResult, ErrorData>> {
        Box::pin(self.run_gateway_tool(tool, arguments, context))
    }

    async fn run_gateway_tool(
        &self,
        tool: GatewayTool,
        arguments: Option<JsonObject>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let identity = self.access().caller(&context)?;
        let visible = self.visible_servers(&identity);
        let value = match tool {
            GatewayTool::ListServers => {
                parse_args::<NoArgs>(tool, arguments)?;
                json!({ "servers": self.server_summaries(&visible) })
            }
            GatewayTool::ServerInfo => {
                let args: ServerInfoArgs = parse_args(tool, arguments)?;
                self.server_info(&identity, &visible, &args.server, &context)
                    .await?
            }
            GatewayTool::DiscoverTools => {
                let args: DiscoverToolsArgs = parse_args(tool, arguments)?;
                self.discover_tools(&identity, &visible, args, &context)
                    .await?
            }
            GatewayTool::CallTools => {
                let args: CallToolsArgs = parse_args(tool, arguments)?;
                self.call_tools(&identity, args.calls, &context).await?
            }
            GatewayTool::CacheStatus => {
                parse_args::<NoArgs>(tool, arguments)?;
                let cache = &self.gateway().cache;
                json!({ "backend": cache.backend(), "stats": cache.stats() })
            }
            GatewayTool::CacheClear => {
                let args: CacheClearArgs = parse_args(tool, arguments)?;
                self.cache_clear(&identity, &visible, args).await?
            }
            GatewayTool::SearchTools => {
                let args: SearchToolsArgs = parse_args(tool, arguments)?;
                self.search_tools(&visible, &identity, args, &context)
                    .await?
            }
            GatewayTool::TimeoutMetrics => {
                parse_args::<NoArgs>(tool, arguments)?;
                let mut metrics = self.gateway().deadlines.metrics();
                // Only the servers this caller may use.
                metrics.upstreams.retain(|m| visible.contains(&m.upstream));
                metrics.tools.retain(|m| visible.contains(&m.upstream));
                json!(metrics)
            }
        };
        Ok(CallToolResult::structured(value))
    }

    fn server_summaries(&self, visible: &[Arc<str>]) -> Vec<ServerSummary> {
        visible
            .iter()
            .filter_map(|name| self.gateway().registry.get(name))
            .map(|entry| ServerSummary::of(&entry))
            .collect()
    }

    async fn server_info(
        &self,
        identity: &Identity,
        visible: &[Arc<str>],
        server: &str,
        context: &RequestContext<RoleServer>,
    ) -> Result<Value, ErrorData> {
        let entry = visible
            .iter()
            .find(|name| &***name == server)
            .and_then(|name| self.gateway().registry.get(name))
            .ok_or_else(|| ErrorData::invalid_params(format!("unknown server '{server}'"), None))?;
        let summary = ServerSummary::of(&entry);
        let tools = match self.upstream_tools(server, false, context).await {
            Ok(tools) => json!(tools),
            Err(err) => json!({ "error": err.message }),
        };
        Ok(json!({
            "name": summary.name,
            "state": summary.state,
            "restarts": summary.restarts,
            "calls_in_flight": summary.calls_in_flight,
            "last_error": entry.pool.last_exit().map(|exit| exit_for(&entry, &exit, identity.is_admin())),
            "tools": tools,
        }))
    }

    async fn discover_tools(
        &self,
        identity: &Identity,
        visible: &[Arc<str>],
        args: DiscoverToolsArgs,
        context: &RequestContext<RoleServer>,
    ) -> Result<Value, ErrorData> {
        let servers: Vec<Arc<str>> = match &args.server {
            Some(server) => {
                let name = visible
                    .iter()
                    .find(|name| ***name == **server)
                    .ok_or_else(|| {
                        ErrorData::invalid_params(format!("unknown server '{server}'"), None)
                    })?;
                vec![name.clone()]
            }
            None => visible.to_vec(),
        };
        let lists = join_all(servers.iter().map(|server| async move {
            // A fresh list goes to the upstream: it pays like any request to it.
            if args.fresh {
                self.access().authorize(identity, server, None).await?;
            }
            self.upstream_tools(server, args.fresh, context).await
        }))
        .await;
        let mut out = serde_json::Map::new();
        for (server, list) in servers.iter().zip(lists) {
            let value = match list {
                Ok(tools) => json!({ "tools": tools }),
                Err(err) => json!({ "error": err.message }),
            };
            out.insert(server.to_string(), value);
        }
        Ok(json!({ "servers": out, "fresh": args.fresh }))
    }

    /// Runs a batch concurrently through the ordinary `tools/call` path; the
    /// outcome of each call is reported in order, one failure never failing
    /// the batch.
    async fn call_tools(
        &self,
        identity: &Identity,
        calls: Vec<BatchCall>,
        context: &RequestContext<RoleServer>,
    ) -> Result<Value, ErrorData> {
        if calls.len() > MAX_BATCH {
            return Err(ErrorData::invalid_params(
                format!(
                    "a batch holds at most {MAX_BATCH} calls, got {}",
                    calls.len()
                ),
                None,
            ));
        }
        let outcomes = join_all(calls.into_iter().map(|call| {
            let mut context = context.clone();
            // Progress of one sub-call must not pose as the batch's progress.
            context.meta = RequestMetaObject::default();
            let name = call.name.clone();
            let mut params = CallToolRequestParams::new(call.name);
            params.arguments = call.arguments;
            async move {
                let outcome = if super::gateway_tools::is_batch(&name, &self.gateway().naming) {
                    Err(ErrorData::invalid_params("call_tools cannot call itself", None))
                } else if let Err(limited) = self.access().charge_inner_call(identity).await {
                    Err(limited.into())
                } else {
                    self.call_tool(params, context).await
                };
                match outcome {
                    Ok(CallToolResponse::Complete(result)) => {
                        json!({ "name": name, "ok": !result.is_error.unwrap_or(false), "result": result })
                    }
                    Ok(_) => json!({
                        "name": name,
                        "ok": false,
                        "error": { "message": "the tool asked for input; call it directly" },
                    }),
                    Err(err) => json!({
                        "name": name,
                        "ok": false,
                        "error": { "code": err.code.0, "message": err.message },
                    }),
                }
            }
        }))
        .await;
        Ok(json!({ "results": outcomes }))
    }

    /// Clears the cache within what the caller may see: one server or all it
    /// may use, one kind or every kind. Tool results of a server whose tools
    /// the grant restricts are left alone (their keys do not say which tool,
    /// and some belong to tools the caller may not use). Each server cleared
    /// counts against `per_upstream`. Answers once it is applied.
    async fn cache_clear(
        &self,
        identity: &Identity,
        visible: &[Arc<str>],
        args: CacheClearArgs,
    ) -> Result<Value, ErrorData> {
        let kind = match args.kind.as_deref() {
            None => None,
            Some(name) => Some(CacheKind::from_name(name).ok_or_else(|| {
                ErrorData::invalid_params(
                    format!(
                        "unknown cache kind '{name}': expected tools, resources, resource_templates, prompts or tool_result"
                    ),
                    None,
                )
            })?),
        };
        let servers: Vec<Arc<str>> = match &args.server {
            Some(server) => vec![
                visible
                    .iter()
                    .find(|name| ***name == **server)
                    .cloned()
                    .ok_or_else(|| {
                        ErrorData::invalid_params(format!("unknown server '{server}'"), None)
                    })?,
            ],
            None => visible.to_vec(),
        };
        for server in &servers {
            self.access().authorize(identity, server, None).await?;
        }
        let cache = &self.gateway().cache;
        let mut kept = Vec::new();
        for server in &servers {
            let whole = identity.grant.allows_every_tool(server);
            let kinds: Vec<CacheKind> = match kind {
                Some(kind) => vec![kind],
                None if whole => {
                    cache.invalidate(CacheScope::Upstream(server.clone()));
                    continue;
                }
                None => CacheKind::ALL.to_vec(),
            };
            for kind in kinds {
                if kind == CacheKind::ToolResult && !whole {
                    kept.push(server.clone());
                    continue;
                }
                cache.invalidate(CacheScope::KindOf(kind, server.clone()));
            }
        }
        cache.flush().await;
        Ok(json!({
            "cleared": { "servers": servers, "kind": kind },
            "tool_results_kept": kept,
        }))
    }

    /// Tools of one upstream under their upstream names.
    async fn upstream_tools(
        &self,
        server: &str,
        fresh: bool,
        context: &RequestContext<RoleServer>,
    ) -> Result<Vec<Value>, ErrorData> {
        let list: ListToolsResult = self
            .upstream_whole_list(server, None, fresh, context)
            .await?;
        Ok(list
            .tools
            .into_iter()
            .map(|tool| json!({ "name": tool.name, "description": tool.description }))
            .collect())
    }
}
