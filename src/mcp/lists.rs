//! One upstream's list for this session: the cache first (first pages only),
//! the upstream under a discovery deadline on a miss. The cached list is the
//! upstream's own; grants and guardrails are applied per caller afterwards.
//! Views that merge upstreams (the federated list, search, virtual servers)
//! read an upstream's whole list ([`GatewayHandler::upstream_whole_list`]);
//! a server's own scope passes its pages through.
use std::any::Any;
use std::sync::Arc;

use bulwark_actors::cache::{CacheKey, Scope as CacheScope};
use bulwark_actors::timeout::OpKind;
use rmcp::model::{ListToolsResult, PaginatedRequestParams};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};

use super::error::GatewayError;
use super::handler::GatewayHandler;
use super::listing::Listing;

/// Most pages of one upstream's list read for a merged view.
pub const MAX_PAGES: usize = 100;
/// Most items of one upstream's list read for a merged view.
pub const MAX_ITEMS: usize = super::MAX_REMEMBERED_TOOLS;

/// How far [`GatewayHandler::later_pages`] read a list.
pub(super) enum Pages {
    /// The first page was the whole list.
    One,
    /// Every page was read.
    Whole,
    /// Cut at [`MAX_PAGES`] or [`MAX_ITEMS`].
    Cut,
    /// A later page failed; the pages before it were read.
    Failed(ErrorData),
}

impl GatewayHandler {
    /// `server`'s list of kind `L`; `fresh` skips (and refills) the cache.
    pub(super) async fn upstream_list<L: Listing + Any>(
        &self,
        server: &str,
        request: Option<PaginatedRequestParams>,
        fresh: bool,
        context: &RequestContext<RoleServer>,
    ) -> Result<L, ErrorData> {
        let gateway = self.gateway();
        let first_page = request.as_ref().is_none_or(|r| r.cursor.is_none());
        if !first_page {
            return self.fetch_list(server, request, context).await;
        }
        gateway.forget_if_restarted(server).await;
        let key = CacheKey::list(L::CACHE_KIND, server.to_owned());
        if fresh {
            gateway.cache.invalidate(CacheScope::Key(key.clone()));
            gateway.cache.flush().await;
        }
        // A `private` list is cached for its caller only (SEP-2549).
        let caller = self
            .access()
            .current(context)
            .map_or_else(String::new, |identity| {
                format!("{}\u{0}{}", identity.project, identity.subject)
            });
        let fetch = || async {
            let list: L = self.fetch_list(server, request.clone(), context).await?;
            let mut value = serde_json::to_value(&list).map_err(|err| {
                ErrorData::from(GatewayError::Internal(format!("list of '{server}': {err}")))
            })?;
            super::cache_hints::stamp(&mut value);
            Ok::<_, ErrorData>(value)
        };
        let value = gateway
            .cache
            .get_or_fetch_hinted(key, &caller, fetch)
            .await
            .map_err(|err| (*err).clone())?;
        let mut list: L = serde_json::from_value((*value).clone()).map_err(|err| {
            ErrorData::from(GatewayError::Internal(format!(
                "cached list of '{server}': {err}"
            )))
        })?;
        let (ttl_ms, scope) = list.cache_hints();
        list.set_cache_hints((super::cache_hints::remaining(&value, ttl_ms), scope));
        if let Some(tools) = (&list as &dyn Any).downcast_ref::<ListToolsResult>() {
            gateway.remember_tools(server, &tools.tools);
            // The schemas count only from a whole list (`param_headers`).
            if tools.next_cursor.is_none() {
                (gateway.param_headers).record(server, &tools.tools, super::MAX_REMEMBERED_TOOLS);
            }
            let names = tools.tools.iter().map(|tool| &*tool.name);
            gateway.naming.tool_names().record(server, names);
        }
        Ok(list)
    }

    /// `server`'s whole list of kind `L` for a merged view: the first page as
    /// [`Self::upstream_list`] reads it (cached), then [`Self::later_pages`].
    /// A list cut at the bounds, or by a later page that fails, is what was
    /// read, logged: a merged view shows what it can, as for an upstream
    /// that fails outright.
    pub(super) async fn upstream_whole_list<L: Listing + Any>(
        &self,
        server: &str,
        request: Option<PaginatedRequestParams>,
        fresh: bool,
        context: &RequestContext<RoleServer>,
    ) -> Result<L, ErrorData> {
        let mut list: L = self.upstream_list(server, request, fresh, context).await?;
        match self.later_pages(server, &mut list, context).await {
            Pages::One => {}
            Pages::Whole => self.remember_whole(server, &list),
            Pages::Cut => tracing::warn!(
                server,
                items = list.item_count(),
                "an upstream's list is longer than a merged view reads: the rest is left out"
            ),
            Pages::Failed(err) => tracing::warn!(
                server,
                %err,
                "a later page of an upstream's list failed: the rest is left out"
            ),
        }
        Ok(list)
    }

    /// Appends to `list` (a first page) the pages behind it, from the
    /// upstream, up to [`MAX_PAGES`] pages or [`MAX_ITEMS`] items.
    pub(super) async fn later_pages<L: Listing>(
        &self,
        server: &str,
        list: &mut L,
        context: &RequestContext<RoleServer>,
    ) -> Pages {
        let Some(mut cursor) = list.take_next_cursor() else {
            return Pages::One;
        };
        for _ in 1..MAX_PAGES {
            if list.item_count() >= MAX_ITEMS {
                break;
            }
            let request = PaginatedRequestParams::default().with_cursor(Some(cursor));
            match self.fetch_list::<L>(server, Some(request), context).await {
                Ok(page) => list.append(page),
                Err(err) => return Pages::Failed(err),
            }
            match list.take_next_cursor() {
                Some(next) => cursor = next,
                None => return Pages::Whole,
            }
        }
        Pages::Cut
    }

    /// Records what a whole tool list tells (annotations, bare names).
    fn remember_whole<L: Any>(&self, server: &str, list: &L) {
        if let Some(tools) = (list as &dyn Any).downcast_ref::<ListToolsResult>() {
            let gateway = self.gateway();
            gateway.remember_tools(server, &tools.tools);
            let names = tools.tools.iter().map(|tool| &*tool.name);
            gateway.naming.tool_names().record(server, names);
        }
    }

    /// Reads the tool list of every ready upstream whose bare names the
    /// prefix table lacks, so names come out the same whoever lists first.
    pub(super) async fn record_tool_names(&self, context: &RequestContext<RoleServer>) {
        let gateway = self.gateway();
        let missing: Vec<String> = gateway
            .naming
            .tool_names()
            .unrecorded()
            .into_iter()
            .filter(|server| {
                (gateway.registry.get(server)).is_some_and(|entry| entry.pool.link().is_some())
            })
            .collect();
        futures::future::join_all(missing.iter().map(|server| {
            self.upstream_whole_list::<ListToolsResult>(server, None, false, context)
        }))
        .await;
    }

    /// One page of `server`'s list of kind `L`, from the upstream (pages
    /// after the first are not cached).
    pub(super) async fn fetch_list<L: Listing>(
        &self,
        server: &str,
        request: Option<PaginatedRequestParams>,
        context: &RequestContext<RoleServer>,
    ) -> Result<L, ErrorData> {
        let op = self.deadline(OpKind::Discovery, Arc::from(server), None, context);
        let result = self
            .forward_tracked(server, L::request(request), context, Some(op))
            .await?;
        L::from_result(result)
            .ok_or_else(|| GatewayError::UnexpectedResult(server.to_owned()).into())
    }
}
