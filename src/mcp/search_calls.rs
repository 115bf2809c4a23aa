//! `bulwark__search_tools` and the `search` tool listing for one session.
//! Both read the upstreams' tool lists through the cache, screened by the
//! guardrails as `tools/list` shows them, and apply the caller's grant to
//! every result; the index only ever holds upstream data.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::future::join_all;
use rmcp::model::{ListToolsResult, PaginatedRequestParams};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde_json::{Value, json};

use crate::auth::identity::Identity;
use crate::config::auth::ToolListing;

use super::access::Guarded;
use super::error::GatewayError;
use super::gateway_tools::{MAX_SEARCH_LIMIT, SearchToolsArgs};
use super::handler::GatewayHandler;
use super::listing::Listing;
use super::search::Segment;
use super::sessions::Scope;

impl GatewayHandler {
    /// `tools/list`: the project's `search` listing on `/mcp`, else the full one.
    pub(super) async fn list_tools_for_caller(
        &self,
        request: Option<PaginatedRequestParams>,
        context: &RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        if !matches!(self.scope(), Scope::Federated) {
            return self.list(request, context).await;
        }
        // `current` charges nothing; the listing that runs takes the caller.
        let Some(current) = self.access().current(context) else {
            return self.list(request, context).await;
        };
        if !self.gateway().naming.tool_names().all_prefixed() {
            self.record_tool_names(context).await;
            let visible = self.visible_servers(&current);
            let collisions = self
                .gateway()
                .naming
                .tool_names()
                .collisions(Some(&visible));
            if let Some(collision) = collisions.into_iter().next() {
                return Err(GatewayError::from(collision).into());
            }
        }
        if current.grant.tool_listing() != ToolListing::Search {
            return self.list(request, context).await;
        }
        let identity = self.access().caller(context)?;
        self.search_listing(&identity, context).await
    }

    /// The gateway's own tools and the project's pinned ones it may use.
    async fn search_listing(
        &self,
        identity: &Identity,
        context: &RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let gateway = self.gateway();
        let mut pinned: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
        for name in identity.grant.pinned_tools() {
            if let Ok((server, tool)) = self.route_tool_now(name) {
                pinned.entry(server.into_owned()).or_default().insert(tool);
            }
        }
        let servers: Vec<Arc<str>> = self
            .ready_servers(identity)
            .into_iter()
            .filter(|server| pinned.contains_key(&**server))
            .collect();
        let lists = join_all(servers.iter().map(|server| {
            self.upstream_whole_list::<ListToolsResult>(server, None, false, context)
        }))
        .await;
        let mut tools = Vec::new();
        for (server, list) in servers.iter().zip(lists) {
            let list = match list {
                Ok(list) => list.screened(server, &gateway.guardrails),
                Err(err) => {
                    tracing::warn!(server = %server, %err, "pinned tools left out of a search listing");
                    continue;
                }
            };
            let wanted = pinned.get(&**server);
            tools.extend(
                list.tools
                    .into_iter()
                    .filter(|tool| wanted.is_some_and(|w| w.contains(&*tool.name)))
                    .filter(|tool| tool.visible(server, &identity.grant))
                    .map(|mut tool| {
                        ListToolsResult::federate(&mut tool, server, &gateway.naming);
                        tool
                    }),
            );
        }
        if gateway.gateway_tools {
            tools.extend(ListToolsResult::gateway_items(&gateway.naming));
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    /// Runs `bulwark__search_tools` over the ready servers the caller sees.
    pub(super) async fn search_tools(
        &self,
        visible: &[Arc<str>],
        identity: &Identity,
        args: SearchToolsArgs,
        context: &RequestContext<RoleServer>,
    ) -> Result<Value, ErrorData> {
        if args.limit == 0 || args.limit > MAX_SEARCH_LIMIT {
            return Err(ErrorData::invalid_params(
                format!("limit must be between 1 and {MAX_SEARCH_LIMIT}"),
                None,
            ));
        }
        let mut servers = self.ready_servers(identity);
        if let Some(wanted) = &args.server {
            if !visible.iter().any(|name| **name == **wanted) {
                return Err(ErrorData::invalid_params(
                    format!("unknown server '{wanted}'"),
                    None,
                ));
            }
            servers.retain(|name| **name == **wanted);
        }
        if !self.gateway().naming.tool_names().all_prefixed() {
            self.record_tool_names(context).await;
        }
        self.index(&servers, context).await;
        let gateway = self.gateway();
        let grant = &identity.grant;
        let hits = gateway
            .tool_index
            .search(&args.query, args.limit, &servers, |server, tool| {
                tool.visible(server, grant)
                    && gateway.guardrails.tool_allowed(server, &tool.name).is_ok()
            });
        let tools: Vec<Value> = hits
            .into_iter()
            .map(|hit| {
                let mut tool = hit.tool;
                ListToolsResult::federate(&mut tool, &hit.server, &gateway.naming);
                json!({ "server": hit.server, "score": hit.score, "tool": tool })
            })
            .collect();
        Ok(json!({ "query": args.query, "tools": tools }))
    }

    /// Indexes the current tool list of every one of `servers` not indexed
    /// yet (first use, or its list changed since). A server whose list
    /// cannot be had is left out of this search and logged.
    async fn index(&self, servers: &[Arc<str>], context: &RequestContext<RoleServer>) {
        let index = &self.gateway().tool_index;
        let missing = servers
            .iter()
            .filter(|server| index.segment(server).is_none());
        join_all(missing.map(|server| async move {
            let generation = index.generation(server);
            match self
                .upstream_whole_list::<ListToolsResult>(server, None, false, context)
                .await
            {
                Ok(list) => {
                    let tools = list.screened(server, &self.gateway().guardrails).tools;
                    index.insert(server, generation, Segment::build(server, tools));
                }
                Err(err) => {
                    tracing::warn!(server = %server, %err, "upstream left out of a tool search")
                }
            }
        }))
        .await;
    }
}
