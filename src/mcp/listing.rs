//! The four list requests (tools, prompts, resources, resource templates)
//! differ only in their request, result and item types and in how an item is
//! renamed for the federated view; [`Listing`] names those differences so one
//! generic path in the handler serves all four.
use rmcp::model::{
    CacheScope, ClientRequest, Cursor, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, Prompt, RequestOptionalParam,
    Resource, ResourceTemplate, ServerResult, Tool,
};

use bulwark_actors::cache::CacheKind;
use bulwark_actors::guardrail::Guardrails;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::gateway_tools::GatewayTool;
use super::naming::Naming;

/// One kind of MCP list result.
pub trait Listing: Sized + Serialize + DeserializeOwned + Send + 'static {
    /// Where this kind is cached.
    const CACHE_KIND: CacheKind;
    /// The listed item.
    type Item;
    /// The upstream request for one page.
    fn request(params: Option<PaginatedRequestParams>) -> ClientRequest;
    /// This kind's result out of an upstream answer.
    fn from_result(result: ServerResult) -> Option<Self>;
    /// The items of one page.
    fn into_items(self) -> Vec<Self::Item>;
    /// How many items the result holds.
    fn item_count(&self) -> usize;
    /// Takes the cursor of the page after this one.
    fn take_next_cursor(&mut self) -> Option<Cursor>;
    /// Appends the next page: its items, and its cursor as this one's.
    fn append(&mut self, page: Self);
    /// A single-page result holding `items`.
    fn from_items(items: Vec<Self::Item>) -> Self;
    /// The result's caching hints (`ttlMs`, `cacheScope`).
    fn cache_hints(&self) -> (Option<u64>, Option<CacheScope>);
    /// Replaces the result's caching hints.
    fn set_cache_hints(&mut self, hints: (Option<u64>, Option<CacheScope>));
    /// Keeps only the items `keep` admits (the page's cursor stays).
    fn retain(&mut self, keep: impl FnMut(&Self::Item) -> bool);
    /// Renames an item of `server` for the federated view.
    fn federate(item: &mut Self::Item, server: &str, naming: &Naming);
    /// The list as guardrails let clients see it (tool lists are scanned for
    /// poisoning and rug pulls; other kinds pass).
    fn screened(self, _server: &str, _guardrails: &Guardrails) -> Self {
        self
    }
    /// The gateway's own items of this kind, listed next to the federated ones.
    fn gateway_items(_naming: &Naming) -> Vec<Self::Item> {
        Vec::new()
    }
}

fn optional<M: Default, P>(params: Option<P>) -> RequestOptionalParam<M, P> {
    RequestOptionalParam {
        method: M::default(),
        params,
        extensions: Default::default(),
    }
}

macro_rules! listing {
    ($result:ident, $kind:ident, $request:ident, $items:ident: $item_ty:ty, |$item:ident, $server:ident, $naming:ident| $rename:expr $(, own: |$own_naming:ident| $own:expr)? $(, screen: |$list:ident, $screen_server:ident, $guardrails:ident| $screen:expr)?) => {
        impl Listing for $result {
            const CACHE_KIND: CacheKind = CacheKind::$kind;
            type Item = $item_ty;

            fn request(params: Option<PaginatedRequestParams>) -> ClientRequest {
                ClientRequest::$request(optional(params))
            }

            fn from_result(result: ServerResult) -> Option<Self> {
                match result {
                    ServerResult::$result(result) => Some(result),
                    _ => None,
                }
            }

            fn into_items(self) -> Vec<Self::Item> {
                self.$items
            }

            fn item_count(&self) -> usize {
                self.$items.len()
            }

            fn take_next_cursor(&mut self) -> Option<Cursor> {
                self.next_cursor.take()
            }

            fn append(&mut self, page: Self) {
                self.$items.extend(page.$items);
                self.next_cursor = page.next_cursor;
            }

            fn from_items(items: Vec<Self::Item>) -> Self {
                Self::with_all_items(items)
            }

            fn cache_hints(&self) -> (Option<u64>, Option<CacheScope>) {
                (self.ttl_ms, self.cache_scope)
            }

            fn set_cache_hints(&mut self, (ttl_ms, cache_scope): (Option<u64>, Option<CacheScope>)) {
                self.ttl_ms = ttl_ms;
                self.cache_scope = cache_scope;
            }

            fn retain(&mut self, keep: impl FnMut(&Self::Item) -> bool) {
                self.$items.retain(keep);
            }

            fn federate($item: &mut Self::Item, $server: &str, $naming: &Naming) {
                $rename
            }
            $(
            fn gateway_items($own_naming: &Naming) -> Vec<Self::Item> {
                $own
            }
            )?
            $(
            fn screened(self, $screen_server: &str, $guardrails: &Guardrails) -> Self {
                let $list = self;
                $screen
            }
            )?
        }
    };
}

listing!(ListToolsResult, Tools, ListToolsRequest, tools: Tool, |tool, server, naming| {
    tool.name = naming.tool(server, &tool.name).into();
}, own: |naming| {
    GatewayTool::ALL.iter().map(|tool| tool.definition(naming)).collect()
}, screen: |list, server, guardrails| {
    let mut list = list;
    list.tools = guardrails.scan_tools(server, std::mem::take(&mut list.tools)).tools;
    list
});
listing!(ListPromptsResult, Prompts, ListPromptsRequest, prompts: Prompt, |prompt, server, naming| {
    prompt.name = naming.join(server, &prompt.name);
});
listing!(ListResourcesResult, Resources, ListResourcesRequest, resources: Resource, |resource, server, naming| {
    resource.uri = naming.join_uri(server, &resource.uri);
});
listing!(
    ListResourceTemplatesResult,
    ResourceTemplates,
    ListResourceTemplatesRequest,
    resource_templates: ResourceTemplate,
    |template, server, naming| {
        template.uri_template = naming.join_uri(server, &template.uri_template);
    }
);
