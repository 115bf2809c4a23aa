//! `GatewayHandler`: the MCP server one client session talks to. In the
//! federated scope it merges every upstream's lists under prefixed names and
//! routes each request to its upstream; in a server scope it is a transparent
//! proxy to one upstream.
// Logging, subscriptions and roots are deprecated by SEP-2577; clients still use them.
#![allow(deprecated)]
use std::sync::Arc;

use bulwark_actors::cache::CacheKey;
use bulwark_actors::guardrail::InputKind;
use bulwark_actors::timeout::{OpGuard, OpKind};
use bulwark_actors::trace_context::Step;
use bulwark_actors::upstream::CallError;
use futures::future::join_all;
use rmcp::model::GetMeta;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams, ClientRequest,
    CompleteRequestParams, CompleteResult, DiscoverResult, GetPromptRequestParams,
    GetPromptResponse, GetTaskParams, GetTaskResult, Implementation, InitializeRequestParams,
    InitializeResult, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
    Reference, Request, ServerCapabilities, ServerConfig, ServerResult, SetLevelRequestParams,
    SubscribeRequestParams, SubscriptionFilter, TASKS_EXTENSION_ID, UnsubscribeRequestParams,
    UpdateTaskParams,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};

use crate::auth::identity::Identity;
use crate::telemetry::metrics::Outcome;
use crate::telemetry::traces::service::{CallFields, RequestTrace};

use super::Gateway;
use super::access::{Access, Guarded};
use super::affinity::Bindings;
use super::cache_hints::Merge;
use super::caller::SessionCaller;
use super::error::GatewayError;
use super::gateway_tools::{self, GatewayTool};
use super::guard;
use super::listing::Listing;
use super::log_levels::{Audience, SessionLevel};
use super::meta::{forwardable, strip};
use super::sessions::Scope;

/// How long a call past its deadline may take to withdraw before its client
/// is answered regardless.
const WITHDRAW_GRACE: std::time::Duration = std::time::Duration::from_millis(250);

/// Deregisters the session when rmcp drops its handler.
struct SessionGuard {
    gateway: Arc<Gateway>,
    id: u64,
    /// Set once the session's peer is registered (its first request).
    registered: std::sync::atomic::AtomicBool,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let gateway = &self.gateway;
        super::subscriptions::session_closed(&gateway.sessions, &gateway.registry, self.id);
    }
}

/// The MCP server behind `/mcp`, `/mcp/{server}` and `bulwark stdio`.
pub struct GatewayHandler {
    gateway: Arc<Gateway>,
    scope: Scope,
    session: SessionGuard,
    access: Access,
    /// This session's `logging/setLevel`.
    level: Arc<SessionLevel>,
    /// The instances this session is bound to (`affinity = "session"` pools).
    bindings: Bindings,
}

impl GatewayHandler {
    /// A handler for one client session; `access` says who it acts for.
    pub fn new(gateway: Arc<Gateway>, scope: Scope, access: Access) -> Self {
        let id = gateway.sessions.allocate();
        Self {
            session: SessionGuard {
                gateway: gateway.clone(),
                id,
                registered: std::sync::atomic::AtomicBool::new(false),
            },
            gateway,
            scope,
            access,
            level: Arc::default(),
            bindings: Bindings::default(),
        }
    }

    /// The shared gateway state.
    pub(super) fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// Federated, or one upstream.
    pub(super) fn scope(&self) -> &Scope {
        &self.scope
    }

    /// This session's id in [`Sessions`](super::sessions::Sessions): what
    /// notifications meant for it alone are addressed to.
    pub(super) fn session_id(&self) -> u64 {
        self.session.id
    }

    /// Who this session acts for.
    pub(super) fn access(&self) -> &Access {
        &self.access
    }

    /// Registers the session for notifications (once) and records who its
    /// current request acts for, so mid-call traffic and logs reach only
    /// what that caller's grant may see.
    ///
    /// A stateless (2026-07-28) request is no session: registered, it got
    /// every broadcast (an upstream's `tools/list_changed`, say) on its own
    /// response stream, and one arriving before the answer turned an error
    /// that must be an HTTP 400 into a 200 event stream. Such clients hear
    /// of changes through `subscriptions/listen`.
    pub(super) fn track(&self, context: &RequestContext<RoleServer>) -> Option<Identity> {
        use std::sync::atomic::Ordering;
        let identity = self.access.current(context);
        if super::mrtr::is_stateless(context) {
            return identity;
        }
        if !self.session.registered.swap(true, Ordering::Relaxed) {
            self.gateway.sessions.register(
                self.session.id,
                context.peer.clone(),
                self.scope.clone(),
            );
        }
        if let Some(identity) = &identity {
            let audience = Audience {
                grant: identity.grant.clone(),
                level: self.level.clone(),
            };
            self.gateway
                .sessions
                .set_audience(self.session.id, audience);
        }
        identity
    }

    /// Sends `request` to `server` on behalf of this client request, under
    /// the `default` deadline (prompts, resources, completion, subscribe,
    /// setLevel): no upstream operation waits for ever.
    pub(super) async fn forward(
        &self,
        server: &str,
        request: ClientRequest,
        context: &RequestContext<RoleServer>,
    ) -> Result<ServerResult, GatewayError> {
        let op = self.deadline(OpKind::Default, Arc::from(server), None, context);
        (self.forward_tracked(server, request, context, Some(op))).await
    }

    /// Like [`Self::forward`], under the deadline `op` is tracked with: when
    /// the escalation actor times it out, the upstream call is cancelled
    /// (`notifications/cancelled`) and the client gets a timeout error.
    pub(super) async fn forward_tracked(
        &self,
        server: &str,
        mut request: ClientRequest,
        context: &RequestContext<RoleServer>,
        op: Option<Arc<OpGuard>>,
    ) -> Result<ServerResult, GatewayError> {
        let method = request.method();
        // A step of the request's trace, held for the call.
        let mut step = Step::start("upstream.call").client();
        step.str("mcp.method.name", method)
            .str("bulwark.upstream", server);
        step.rename(|| [method, " ", server].concat());
        // The upstream's request is a child of this step: stdio upstreams
        // read `_meta.traceparent`, remote ones also get the header from it.
        step.to_meta(request.get_meta_mut());
        let result = Box::pin(self.forward_link(server, request, context, op)).await;
        drop(step);
        result
    }

    /// [`Self::forward_tracked`] without its span: through the upstream's link.
    async fn forward_link(
        &self,
        server: &str,
        mut request: ClientRequest,
        context: &RequestContext<RoleServer>,
        op: Option<Arc<OpGuard>>,
    ) -> Result<ServerResult, GatewayError> {
        let identity = self.track(context);
        let entry = self
            .gateway
            .registry
            .get(server)
            .ok_or_else(|| GatewayError::UnknownServer(server.to_owned()))?;
        if self.gateway.registry.is_closing() {
            return Err(GatewayError::shutting_down(server));
        }
        let link = self.bindings.link(&entry.pool).ok_or_else(|| {
            let admin = identity.as_ref().is_some_and(Identity::is_admin);
            GatewayError::unavailable(&entry, admin)
        })?;
        let stateless = super::mrtr::is_stateless(context);
        let level = if stateless {
            Arc::new(SessionLevel::per_request(context.meta.log_level()))
        } else {
            self.level.clone()
        };
        let caller = Arc::new(SessionCaller {
            peer: context.peer.clone(),
            request_id: context.id.clone(),
            progress_token: context.meta.get_progress_token(),
            op: op.clone(),
            tenant: identity.as_ref().map(|identity| identity.project.clone()),
            server: Arc::from(server),
            guardrails: self.gateway.guardrails.clone(),
            level,
        });
        let bridge = &self.gateway.mrtr;
        let binding = (stateless && bridge.enabled())
            .then(|| match identity.as_ref() {
                Some(identity) => {
                    super::mrtr::binding(&request, &[&identity.project, &identity.subject, server])
                }
                None => super::mrtr::binding(&request, &[]),
            })
            .flatten();
        let Some(binding) = binding else {
            let call = call_link(
                link,
                Arc::from(server),
                request,
                caller,
                context.ct.child_token(),
                op,
            );
            return call.await;
        };
        // A stateless client: upstream requests become `input_required` rounds.
        if let Some((state, responses)) = super::mrtr::take_retry(&mut request) {
            let waiting = bridge.resume(&state, responses, &binding, &context.ct);
            return match &op {
                None => waiting.await,
                Some(op) => tokio::select! {
                    result = waiting => result,
                    () = op.expired() => Err(op
                        .timed_out()
                        .map_or_else(|| GatewayError::InputBridge("cancelled".into()), GatewayError::Timeout)),
                },
            };
        }
        let client = context.client_capabilities().unwrap_or_default();
        let (bridged, start) = bridge.caller(caller, client);
        let call = call_link(
            link,
            Arc::from(server),
            request,
            bridged,
            start.cancel(),
            op,
        );
        bridge
            .start(start, Box::pin(call), &binding, &context.ct)
            .await
    }

    /// A `tools/call` after authorization: guardrails on the arguments,
    /// the upstream call, guardrails on the result. With `arguments`, the
    /// arguments as the guardrails left them are copied there (per-call audit).
    async fn call_checked(
        &self,
        server: &str,
        tool: &str,
        mut request: CallToolRequestParams,
        context: &RequestContext<RoleServer>,
        arguments: Option<&mut Option<Option<serde_json::Value>>>,
    ) -> Result<CallToolResponse, ErrorData> {
        let guardrails = &self.gateway.guardrails;
        guardrails
            .tool_allowed(server, tool)
            .map_err(GatewayError::from)?;
        request.name = tool.to_owned().into();
        request.meta = request.meta.map(strip);
        if super::tasks::client_declared(context)
            && super::tasks::upstream_supports(server, &self.gateway)
        {
            super::tasks::declare(request.meta.get_or_insert_default());
        }
        let redactions = guard::arguments(
            guardrails,
            server,
            InputKind::ToolArguments,
            &mut request.arguments,
        )
        .await?;
        if let Some(arguments) = arguments {
            *arguments = Some(request.arguments.clone().map(serde_json::Value::Object));
        }
        let result = self
            .call_upstream_tool(server, tool, request, context)
            .await?;
        match result {
            ServerResult::CallToolResult(result) => Ok(CallToolResponse::Complete(
                guard::tool_output(guardrails, server, result, &redactions).await?,
            )),
            ServerResult::InputRequiredResult(result) => {
                Ok(CallToolResponse::InputRequired(result))
            }
            ServerResult::CreateTaskResult(result) => Ok(CallToolResponse::Task(
                self.task_created(server, result, redactions, context)?,
            )),
            _ => Err(unexpected(server)),
        }
    }

    /// A `tools/call` to `server` after the checks: served from the result
    /// cache when the tool is cacheable, else run under its deadline (and
    /// cached when it succeeds).
    async fn call_upstream_tool(
        &self,
        server: &str,
        tool: &str,
        request: CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<ServerResult, GatewayError> {
        let cache = &self.gateway.cache;
        // An unknown server fails here, before a deadline (and its metric
        // series) is opened under a name the client made up.
        let server_name = self
            .gateway
            .registry
            .get(server)
            .map(|entry| entry.pool.name_arc())
            .ok_or_else(|| GatewayError::UnknownServer(server.to_owned()))?;
        let key = self.gateway.result_ttl(server, tool).map(|ttl| {
            let arguments = request.arguments.as_ref();
            (
                CacheKey::tool_result_of(server_name.clone(), tool, arguments),
                ttl,
            )
        });
        if let Some((key, _)) = &key {
            let mut step = Step::start("cache.lookup");
            step.str("cache.kind", "tool_result");
            // Boxed: only cacheable tools wait here (Redis, perhaps).
            let hit = Box::pin(cache.get_as::<CallToolResult>(key)).await;
            step.bool("cache.hit", hit.is_some());
            drop(step);
            if let Some(hit) = hit {
                return Ok(ServerResult::CallToolResult(hit));
            }
        }
        let op = self.deadline(
            OpKind::ToolExecution,
            server_name,
            Some(Arc::from(tool)),
            context,
        );
        let result = self
            .forward_tracked(
                server,
                ClientRequest::CallToolRequest(Request::new(request)),
                context,
                Some(op),
            )
            .await?;
        if let (Some((key, ttl)), ServerResult::CallToolResult(done)) = (key, &result)
            && done.is_error != Some(true)
            && let Ok(value) = serde_json::to_value(done)
        {
            cache.put_with_ttl(key, value, ttl);
        }
        Ok(result)
    }

    /// `tools/call`: the caller, its attempt claimed (replicas, see
    /// [`super::attempts`]) for as long as the call runs, routing, grant,
    /// then [`Self::call_checked`], with the per-call audit record when that
    /// is on.
    async fn call_tool_checked(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
        trace_fields: &CallFields,
    ) -> Result<CallToolResponse, ErrorData> {
        let identity = self.access.caller(&context)?;
        // Held until the call has ended.
        let _claim = super::attempts::claim(self.gateway.attempts.get(), &context).await?;
        let name = request.name.to_string();
        let (server, tool) = self.route_tool(&name, &context).await?;
        let server = &*server;
        if let Some(own) = self.gateway_tool(server, tool) {
            crate::telemetry::traces::record_untooled(trace_fields);
            // Boxed, as every rare path here: the future of each call is
            // as large as its largest wait, and is copied at each await level.
            return Box::pin(self.call_gateway_tool(own, request.arguments, context))
                .await
                .map(CallToolResponse::Complete);
        }
        // Limits, spans and audit know a tool by `server__tool`, whatever
        // its prefix mode lists it as; usually that is the client's name.
        let federated = match self.gateway.naming.split(&name) {
            Ok((s, t)) if s == server && t == tool => std::borrow::Cow::Borrowed(name.as_str()),
            _ => std::borrow::Cow::Owned(self.gateway.naming.join(server, tool)),
        };
        self.access
            .authorize(&identity, server, Some((tool, &federated)))
            .await?;
        self.check_param_headers(server, tool, &request, &context)
            .await?;
        // Only names the gateway knows become span attributes.
        if self.gateway.registry.get(server).is_some() {
            crate::telemetry::traces::record_tool(&federated, server, tool, trace_fields);
        } else {
            crate::telemetry::traces::record_untooled(trace_fields);
        }
        let Some(audit) = self.gateway.call_audit.get() else {
            return self
                .call_checked(server, tool, request, &context, None)
                .await;
        };
        let started = std::time::Instant::now();
        let mut arguments = None;
        let payloads = audit.include_payloads().then_some(&mut arguments);
        let answer = self
            .call_checked(server, tool, request, &context, payloads)
            .await;
        audit.record(crate::govern::calls::CallRecord {
            at: crate::store::now_ms(),
            actor: identity.user.to_string(),
            credential: identity.subject.to_string(),
            project: identity.project.to_string(),
            server: server.to_owned(),
            tool: tool.to_owned(),
            latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            error: answer.as_ref().err().map(|err| err.message.to_string()),
            arguments: arguments.flatten(),
            result: match &answer {
                Ok(CallToolResponse::Complete(result)) if audit.include_payloads() => {
                    serde_json::to_value(result).ok()
                }
                _ => None,
            },
        });
        answer
    }

    /// `prompts/get` after routing.
    async fn get_prompt_checked(
        &self,
        mut request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let name = request.name.clone();
        let (server, prompt) = self.route(&name)?;
        self.authorize_server(server, &context).await?;
        request.name = prompt.to_owned();
        request.meta = request.meta.map(strip);
        let guardrails = &self.gateway.guardrails;
        let redactions = guard::arguments(
            guardrails,
            server,
            InputKind::PromptArguments,
            &mut request.arguments,
        )
        .await?;
        match self
            .forward(
                server,
                ClientRequest::GetPromptRequest(Request::new(request)),
                &context,
            )
            .await?
        {
            ServerResult::GetPromptResult(result) => Ok(GetPromptResponse::Complete(
                guard::output(guardrails, server, result, &redactions).await?,
            )),
            ServerResult::InputRequiredResult(result) => {
                Ok(GetPromptResponse::InputRequired(result))
            }
            _ => Err(unexpected(server)),
        }
    }

    /// `resources/read` after routing.
    async fn read_resource_checked(
        &self,
        mut request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri.clone();
        let (server, original) = self.route_uri(&uri)?;
        self.authorize_server(server, &context).await?;
        request.uri = original.to_owned();
        request.meta = request.meta.map(strip);
        // A result reached through input rounds depends on the answers: never cacheable.
        let retried = request.input_responses.is_some() || request.request_state.is_some();
        let guardrails = &self.gateway.guardrails;
        guard::uri(guardrails, server, original).await?;
        match self
            .forward(
                server,
                ClientRequest::ReadResourceRequest(Request::new(request)),
                &context,
            )
            .await?
        {
            ServerResult::ReadResourceResult(result) => {
                let mut hints = Merge::for_caller(&self.access.caller(&context)?);
                hints.add(result.ttl_ms.filter(|_| !retried), result.cache_scope);
                let mut result =
                    guard::output(guardrails, server, result, &Default::default()).await?;
                (result.ttl_ms, result.cache_scope) = hints.finish(&context);
                if matches!(self.scope, Scope::Federated) {
                    for content in &mut result.contents {
                        rename_content_uri(content, |u| self.gateway.naming.join_uri(server, u));
                    }
                }
                Ok(ReadResourceResponse::Complete(result))
            }
            ServerResult::InputRequiredResult(result) => {
                Ok(ReadResourceResponse::InputRequired(result))
            }
            _ => Err(unexpected(server)),
        }
    }

    /// Configured servers this caller may see, ready or not, in
    /// configuration order.
    pub(super) fn visible_servers(&self, identity: &Identity) -> Vec<Arc<str>> {
        match &self.scope {
            Scope::Server(name) => vec![name.clone()],
            Scope::Federated => self
                .gateway
                .registry
                .servers()
                .iter()
                .filter(|entry| identity.grant.allows_server(&entry.spec.name))
                .map(|entry| Arc::from(entry.spec.name.as_str()))
                .collect(),
        }
    }

    /// Servers this caller may see that are ready, in configuration order.
    /// A server scope keeps its one server even when it is down, so the
    /// client learns why instead of getting an empty answer.
    pub(super) fn ready_servers(&self, identity: &Identity) -> Vec<Arc<str>> {
        let federated = matches!(self.scope, Scope::Federated);
        self.visible_servers(identity)
            .into_iter()
            .filter(|name| {
                !federated
                    || self
                        .gateway
                        .registry
                        .get(name)
                        .is_some_and(|entry| entry.pool.has_routable())
            })
            .collect()
    }

    /// The gateway tool `server`/`tool` names, if it names one this session sees.
    pub(super) fn gateway_tool(&self, server: &str, tool: &str) -> Option<GatewayTool> {
        let federated = matches!(self.scope, Scope::Federated);
        (federated && self.gateway.gateway_tools && server == gateway_tools::SERVER)
            .then(|| GatewayTool::from_name(tool))
            .flatten()
    }

    /// Resolves a client-facing tool name to (server, upstream name); a bare
    /// name of an upstream whose list was never read is looked up after it is.
    async fn route_tool<'a>(
        &'a self,
        name: &'a str,
        context: &RequestContext<RoleServer>,
    ) -> Result<(std::borrow::Cow<'a, str>, &'a str), GatewayError> {
        if matches!(self.scope, Scope::Federated)
            && !self.gateway.naming.tool_names().unrecorded().is_empty()
        {
            // Boxed: a rare wait (lists read upstream), kept out of the
            // future of every call, which each await level copies whole.
            Box::pin(self.record_tool_names(context)).await;
        }
        self.route_tool_now(name)
    }

    /// [`Self::route_tool`] with the bare names known now.
    pub(super) fn route_tool_now<'a>(
        &'a self,
        name: &'a str,
    ) -> Result<(std::borrow::Cow<'a, str>, &'a str), GatewayError> {
        match &self.scope {
            Scope::Server(server) => Ok((std::borrow::Cow::Borrowed(&**server), name)),
            Scope::Federated => self.gateway.naming.split_tool(name),
        }
    }

    /// Resolves a client-facing name to (server, upstream name).
    pub(super) fn route<'a>(&'a self, name: &'a str) -> Result<(&'a str, &'a str), GatewayError> {
        match &self.scope {
            Scope::Server(server) => Ok((server, name)),
            Scope::Federated => self.gateway.naming.split(name),
        }
    }

    /// (Un)subscribes this session to a resource; the upstream is asked only
    /// when the first session subscribes or the last one leaves, since one
    /// upstream session serves them all.
    async fn subscription(
        &self,
        uri: &str,
        subscribe: bool,
        context: &RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let (server, original) = self.route_uri(uri)?;
        self.authorize_server(server, context).await?;
        let sessions = &self.gateway.sessions;
        let request = if subscribe {
            if !sessions.subscribe(self.session.id, server, original) {
                return Ok(());
            }
            ClientRequest::SubscribeRequest(Request::new(SubscribeRequestParams::new(original)))
        } else {
            if !sessions.unsubscribe(self.session.id, server, original) {
                return Ok(());
            }
            ClientRequest::UnsubscribeRequest(Request::new(UnsubscribeRequestParams::new(original)))
        };
        if let Err(err) = self.forward(server, request, context).await {
            if subscribe {
                // Not subscribed upstream: neither is any session.
                sessions.subscribe_failed(server, original);
            }
            return Err(err.into());
        }
        Ok(())
    }

    /// Authorizes the calling client for `server` (its grant, its call budgets).
    async fn authorize_server(
        &self,
        server: &str,
        context: &RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let identity = self.access.caller(context)?;
        Ok(self.access.authorize(&identity, server, None).await?)
    }

    fn route_uri<'a>(&'a self, uri: &'a str) -> Result<(&'a str, &'a str), GatewayError> {
        match &self.scope {
            Scope::Server(server) => Ok((server, uri)),
            Scope::Federated => self.gateway.naming.split_uri(uri),
        }
    }

    /// A list request: passed through in a server scope (pages intact);
    /// federated, every visible upstream is asked at once and the renamed
    /// items merged. An upstream that fails is left out of the merge and
    /// logged, never failing the whole list.
    pub(super) async fn list<L: Listing>(
        &self,
        request: Option<PaginatedRequestParams>,
        context: &RequestContext<RoleServer>,
    ) -> Result<L, ErrorData>
    where
        L::Item: Guarded,
    {
        let identity = self.access.caller(context)?;
        let grant = &identity.grant;
        let request = request.map(forwardable);
        let mut hints = Merge::for_caller(&identity);
        if let Scope::Server(server) = &self.scope {
            self.access.authorize(&identity, server, None).await?;
            let mut list: L = self.upstream_list(server, request, false, context).await?;
            list.retain(|item| item.visible(server, grant));
            let (ttl_ms, scope) = list.cache_hints();
            hints.add(ttl_ms, scope);
            let mut list = list.screened(server, &self.gateway.guardrails);
            list.set_cache_hints(hints.finish(context));
            return Ok(list);
        }
        let servers = self.ready_servers(&identity);
        let results =
            join_all(servers.iter().map(|server| {
                self.upstream_whole_list::<L>(server, request.clone(), false, context)
            }))
            .await;
        let naming = &self.gateway.naming;
        let mut merged = Vec::new();
        for (server, result) in servers.iter().zip(results) {
            match result {
                Ok(list) => merged.extend({
                    let (ttl_ms, scope) = list.cache_hints();
                    hints.add(ttl_ms, scope);
                    list.screened(server, &self.gateway.guardrails)
                        .into_items()
                        .into_iter()
                        .filter(|item| item.visible(server, grant))
                        .map(|mut item| {
                            L::federate(&mut item, server, naming);
                            item
                        })
                }),
                Err(err) => {
                    tracing::warn!(server = %server, %err, "upstream left out of a merged list")
                }
            }
        }
        if self.gateway.gateway_tools {
            merged.extend(L::gateway_items(naming));
        }
        let mut list = L::from_items(merged);
        list.set_cache_hints(hints.finish(context));
        Ok(list)
    }
}

/// One upstream request through `link` under the deadline `op` is tracked
/// with: when the escalation actor times it out, the upstream call is
/// cancelled (`notifications/cancelled`) and the client gets a timeout error.
async fn call_link(
    link: bulwark_actors::upstream::UpstreamLink,
    server: Arc<str>,
    request: ClientRequest,
    caller: Arc<dyn bulwark_actors::upstream::Caller>,
    cancel: tokio_util::sync::CancellationToken,
    op: Option<Arc<OpGuard>>,
) -> Result<ServerResult, GatewayError> {
    let result = match &op {
        None => link.request(request, Some(caller), &cancel).await,
        // Its deadline passed while the request queued: the upstream is
        // not asked at all.
        Some(op) if op.expire_if_due() => Err(CallError::Cancelled { server }),
        Some(op) => {
            let on_deadline = {
                let cancel = cancel.clone();
                async move {
                    // The actor's verdict, or the caller's own backstop.
                    op.expired().await;
                    cancel.cancel();
                    // The call withdraws itself at once; should anything
                    // on its way still hold it, the client is answered anyway.
                    tokio::time::sleep(WITHDRAW_GRACE).await;
                }
            };
            tokio::select! {
                result = link.request(request, Some(caller), &cancel) => result,
                () = on_deadline => Err(CallError::Cancelled { server }),
            }
        }
    };
    if let Some(info) = op.as_ref().and_then(|op| op.timed_out()) {
        return Err(GatewayError::Timeout(info));
    }
    let mut result = result?;
    super::meta::mark_complete(&mut result);
    Ok(result)
}

/// Drops the tasks extension from capabilities shown to a caller none of
/// whose upstreams supports it.
fn forget_tasks(capabilities: &mut ServerCapabilities) {
    if let Some(extensions) = capabilities.extensions.as_mut() {
        extensions.remove(TASKS_EXTENSION_ID);
    }
}

fn unexpected(server: &str) -> ErrorData {
    GatewayError::UnexpectedResult(server.to_owned()).into()
}

impl ServerHandler for GatewayHandler {
    fn get_info(&self) -> ServerConfig {
        let gateway_info = Implementation::new("bulwark", env!("CARGO_PKG_VERSION"));
        if let Scope::Server(server) = &self.scope
            && let Some(info) = self
                .gateway
                .registry
                .get(server)
                .and_then(|entry| entry.pool.any_link())
                .and_then(|link| link.peer_info())
        {
            let mut config = ServerConfig::new(info.capabilities.clone());
            config.server_info = info.server_info.clone().unwrap_or(gateway_info);
            config.instructions = info.instructions.clone();
            return config;
        }
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_resources_list_changed()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_logging()
            .enable_completions()
            .build();
        let mut capabilities = capabilities;
        // Dispatch of tasks/* needs it; what a caller is shown is narrowed
        // to its upstreams in `initialize` and `discover`.
        if (self.gateway.registry.servers().iter())
            .any(|entry| super::tasks::upstream_supports(&entry.spec.name, &self.gateway))
        {
            capabilities
                .extensions
                .get_or_insert_default()
                .insert(TASKS_EXTENSION_ID.to_owned(), Default::default());
        }
        let mut config = ServerConfig::new(capabilities);
        config.server_info = gateway_info;
        config
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        let trace = RequestTrace::start(&context, "initialize");
        trace
            .run(Box::pin(async move {
                // Binds the session to the caller that opens it.
                self.access.caller(&context)?;
                context.peer.set_peer_info(request.clone());
                // From now on it hears list changes, even if it never calls anything.
                let identity = self.track(&context);
                let mut result = self.negotiate_initialize(&request)?;
                if !self.tasks_visible(identity.as_ref()) {
                    forget_tasks(&mut result.capabilities);
                }
                Ok(result)
            }))
            .await
    }

    async fn discover(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<DiscoverResult, ErrorData> {
        let identity = self.access.caller(&context)?;
        let mut result = DiscoverResult::from_server_info(
            self.supported_protocol_versions().into_owned(),
            self.get_info(),
        );
        if !self.tasks_visible(Some(&identity)) {
            forget_tasks(&mut result.capabilities);
        }
        Ok(result)
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        let trace = RequestTrace::start(&context, "tasks/get");
        trace
            .run(Box::pin(self.get_task_checked(request, &context)))
            .await
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let trace = RequestTrace::start(&context, "tasks/update");
        trace
            .run(Box::pin(self.update_task_checked(request, &context)))
            .await
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let trace = RequestTrace::start(&context, "tasks/cancel");
        trace
            .run(Box::pin(self.cancel_task_checked(request, &context)))
            .await
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let trace = RequestTrace::start(&context, "tools/list");
        let listed = self.list_tools_for_caller(request, &context);
        trace
            .run(Box::pin(self.measured(
                "tools/list",
                self.scope_upstream(),
                listed,
            )))
            .await
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let (trace, trace_fields) = RequestTrace::start_call(&context);
        let span = trace.span().clone();
        let started = tokio::time::Instant::now();
        let name = request.name.clone();
        let result = trace
            .run_call(
                Box::pin(self.call_tool_checked(request, context, &trace_fields)),
                &trace_fields,
            )
            .await;
        let outcome = match &result {
            Ok(CallToolResponse::Complete(done)) if done.is_error == Some(true) => {
                span.record("bulwark.outcome", "tool_error");
                Outcome::ToolError
            }
            Ok(_) => Outcome::Ok,
            Err(err) => Outcome::Error(err),
        };
        // A tool error may be an upstream's answer to a name it does not know.
        let target = self.metric_target(&name, matches!(outcome, Outcome::Ok));
        (self.gateway.metrics).record("tools/call", target, started, outcome);
        result
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let trace = RequestTrace::start(&context, "prompts/list");
        let listed = self.list(request, &context);
        trace
            .run(Box::pin(self.measured(
                "prompts/list",
                self.scope_upstream(),
                listed,
            )))
            .await
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let trace = RequestTrace::start(&context, "prompts/get");
        let upstream =
            self.known_upstream(self.route(&request.name).ok().map(|(server, _)| server));
        let measured = self.get_prompt_checked(request, context);
        trace
            .run(Box::pin(self.measured("prompts/get", upstream, measured)))
            .await
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let trace = RequestTrace::start(&context, "resources/list");
        let listed = self.list(request, &context);
        trace
            .run(Box::pin(self.measured(
                "resources/list",
                self.scope_upstream(),
                listed,
            )))
            .await
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let trace = RequestTrace::start(&context, "resources/templates/list");
        let listed = self.list(request, &context);
        trace
            .run(Box::pin(self.measured(
                "resources/templates/list",
                self.scope_upstream(),
                listed,
            )))
            .await
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let trace = RequestTrace::start(&context, "resources/read");
        let upstream =
            self.known_upstream(self.route_uri(&request.uri).ok().map(|(server, _)| server));
        let measured = self.read_resource_checked(request, context);
        trace
            .run(Box::pin(self.measured(
                "resources/read",
                upstream,
                measured,
            )))
            .await
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let trace = RequestTrace::start(&context, "resources/subscribe");
        trace
            .run(Box::pin(async move {
                self.subscription(&request.uri, true, &context).await
            }))
            .await
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let trace = RequestTrace::start(&context, "resources/unsubscribe");
        trace
            .run(Box::pin(async move {
                self.subscription(&request.uri, false, &context).await
            }))
            .await
    }

    async fn complete(
        &self,
        mut request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let trace = RequestTrace::start(&context, "completion/complete");
        trace
            .run(Box::pin(async move {
                let server = match &mut request.r#ref {
                    Reference::Prompt(prompt) => {
                        let name = prompt.name.clone();
                        let (server, original) = self.route(&name)?;
                        prompt.name = original.to_owned();
                        server.to_owned()
                    }
                    Reference::Resource(resource) => {
                        let uri = resource.uri.clone();
                        let (server, original) = self.route_uri(&uri)?;
                        resource.uri = original.to_owned();
                        server.to_owned()
                    }
                    _ => {
                        return Err(ErrorData::invalid_params(
                            "unsupported completion reference",
                            None,
                        ));
                    }
                };
                self.authorize_server(&server, &context).await?;
                request.meta = None;
                match self
                    .forward(
                        &server,
                        ClientRequest::CompleteRequest(Request::new(request)),
                        &context,
                    )
                    .await?
                {
                    ServerResult::CompleteResult(result) => Ok(result),
                    _ => Err(unexpected(&server)),
                }
            }))
            .await
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        // List changes only: resource updates over listen streams are not bridged yet.
        let mut accepted = requested.clone();
        accepted.resource_subscriptions = None;
        Some(accepted)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let identity = self.access.caller(context.request_context())?;
        let _listening = self.gateway.sessions.listen(
            self.scope.clone(),
            identity.grant.clone(),
            context.sink().clone(),
        );
        context.cancelled().await;
        Ok(())
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let trace = RequestTrace::start(&context, "logging/setLevel");
        trace
            .run(Box::pin(async move {
                let identity = self.access.caller(&context)?;
                self.level.set(request.level);
                self.track(&context);
                // The upstream session is shared: it only ever gets more verbose, and
                // each session filters to its own level (`SessionCaller`, `Sessions`).
                let servers: Vec<_> = self
                    .ready_servers(&identity)
                    .into_iter()
                    .filter(|server| self.gateway.sessions.levels.lower_to(server, request.level))
                    .collect();
                let results = join_all(servers.iter().map(|server| {
                    let mut request = request.clone();
                    request.meta = None;
                    self.forward(
                        server,
                        ClientRequest::SetLevelRequest(Request::new(request)),
                        &context,
                    )
                }))
                .await;
                // One upstream is one scope: its error is the client's error. Federated,
                // an upstream without logging must not fail the others.
                if let (Scope::Server(_), Some(Err(err))) =
                    (&self.scope, results.into_iter().next())
                {
                    return Err(err.into());
                }
                Ok(())
            }))
            .await
    }
}

fn rename_content_uri(
    content: &mut rmcp::model::ResourceContents,
    rename: impl Fn(&str) -> String,
) {
    use rmcp::model::ResourceContents;
    match content {
        ResourceContents::TextResourceContents { uri, .. }
        | ResourceContents::BlobResourceContents { uri, .. } => *uri = rename(uri),
        #[allow(unreachable_patterns)]
        _ => {}
    }
}
