//! The `echo` demo server, also the base of `slow` and `crash`.
//!
//! Tools `echo`, `add`, `request_count` (plus whatever [`ExtraTools`] adds),
//! resource `demo://greeting` (subscribable; a subscribe to any other URI
//! is refused, and `request_count` counts both) and prompt `greet`.

// Subscriptions are deprecated by SEP-2577; clients still use them.
#![allow(deprecated)]

use std::future::Future;

use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler,
    model::{
        CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult,
        GetPromptRequestParams, GetPromptResponse, GetPromptResult, Implementation,
        InitializeRequestParams, InitializeResult, ListPromptsResult, ListResourcesResult,
        ListToolsResult, PaginatedRequestParams, PromptMessage, ReadResourceRequestParams,
        ReadResourceResponse, ReadResourceResult, ResourceContents, Role, ServerCapabilities,
        ServerConfig, SubscribeRequestParams, Tool, UnsubscribeRequestParams,
    },
    service::RequestContext,
};
use serde_json::json;

use super::common::{
    RequestCounter, arguments, call_echo_tool, echo_tools, from_json, unknown_tool,
};

/// URI of the echo server's only resource.
pub const GREETING_URI: &str = "demo://greeting";
/// Text of [`GREETING_URI`].
pub const GREETING_TEXT: &str = "Hello from the echo demo server";

/// Tools a demo kind adds on top of the echo server's.
pub trait ExtraTools: Clone + Send + Sync + 'static {
    /// Server name reported in `initialize`.
    fn server_name(&self) -> &'static str;

    /// Definitions of the extra tools.
    fn tools(&self) -> Result<Vec<Tool>, McpError>;

    /// Called for every `tools/call` before dispatch (the crash kind counts them).
    fn before_call(&self) {}

    /// Whether the server announces `notifications/tools/list_changed`.
    fn tool_list_changes(&self) -> bool {
        false
    }

    /// Awaited before any request is handled: a hung server never finishes it.
    fn gate(&self) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }

    /// Runs an extra tool; `None` when `request` names none of them.
    fn call(
        &self,
        request: &CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> impl Future<Output = Option<Result<CallToolResult, McpError>>> + Send;
}

/// No extra tools: the plain `echo` kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoExtras;

impl ExtraTools for NoExtras {
    fn server_name(&self) -> &'static str {
        "bulwark-demo-echo"
    }

    fn tools(&self) -> Result<Vec<Tool>, McpError> {
        Ok(Vec::new())
    }

    async fn call(
        &self,
        _request: &CallToolRequestParams,
        _context: &RequestContext<RoleServer>,
    ) -> Option<Result<CallToolResult, McpError>> {
        None
    }
}

/// The echo server, extended by `X`.
#[derive(Debug, Clone)]
pub struct EchoServer<X = NoExtras> {
    counter: RequestCounter,
    extras: X,
    /// `ttlMs` / `cacheScope` put on every list and read result (`--cache-hints`).
    hints: Option<(u64, CacheScope)>,
}

impl EchoServer {
    /// The plain `echo` kind.
    pub fn new() -> Self {
        Self::with_extras(NoExtras)
    }
}

impl Default for EchoServer {
    fn default() -> Self {
        Self::new()
    }
}

impl<X: ExtraTools> EchoServer<X> {
    /// An echo server that also serves `extras`.
    pub fn with_extras(extras: X) -> Self {
        Self {
            counter: RequestCounter::default(),
            extras,
            hints: None,
        }
    }

    /// Puts `ttl_ms` and `scope` on every list and read result.
    pub fn with_cache_hints(mut self, hints: Option<(u64, CacheScope)>) -> Self {
        self.hints = hints;
        self
    }

    /// The extra tools this server serves.
    pub fn extras(&self) -> &X {
        &self.extras
    }

    /// Per-method request counts, as returned by the `request_count` tool.
    pub fn counter(&self) -> &RequestCounter {
        &self.counter
    }
}

impl<X> EchoServer<X> {
    fn hints(&self) -> (Option<u64>, Option<CacheScope>) {
        self.hints
            .map_or((None, None), |(ttl, scope)| (Some(ttl), Some(scope)))
    }
}

impl<X: ExtraTools> ServerHandler for EchoServer<X> {
    fn get_info(&self) -> ServerConfig {
        let mut capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_prompts()
            .build();
        if let Some(tools) = capabilities
            .tools
            .as_mut()
            .filter(|_| self.extras.tool_list_changes())
        {
            tools.list_changed = Some(true);
        }
        ServerConfig::new(capabilities).with_server_info(Implementation::new(
            self.extras.server_name(),
            env!("CARGO_PKG_VERSION"),
        ))
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        self.extras.gate().await;
        self.counter.hit("initialize");
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    async fn ping(&self, _context: RequestContext<RoleServer>) -> Result<(), McpError> {
        self.extras.gate().await;
        self.counter.hit("ping");
        Ok(())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        self.extras.gate().await;
        self.counter.hit("tools/list");
        let mut tools = echo_tools()?;
        tools.extend(self.extras.tools()?);
        let mut list = ListToolsResult::with_all_items(tools);
        (list.ttl_ms, list.cache_scope) = self.hints();
        Ok(list)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.extras.gate().await;
        self.counter.hit("tools/call");
        self.extras.before_call();
        let args = arguments(&request);
        if let Some(result) = call_echo_tool(&request.name, &args, &self.counter) {
            return result.map(Into::into);
        }
        match self.extras.call(&request, &context).await {
            Some(result) => result.map(Into::into),
            None => Err(unknown_tool(&request.name)),
        }
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        self.extras.gate().await;
        self.counter.hit("resources/list");
        let mut list = ListResourcesResult::with_all_items(from_json(json!([{
            "uri": GREETING_URI,
            "name": "greeting",
            "description": "A fixed greeting",
            "mimeType": "text/plain"
        }]))?);
        (list.ttl_ms, list.cache_scope) = self.hints();
        Ok(list)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        self.extras.gate().await;
        self.counter.hit("resources/read");
        if request.uri != GREETING_URI {
            return Err(McpError::resource_not_found(
                format!("no resource {}", request.uri),
                Some(json!({ "uri": request.uri })),
            ));
        }
        let mut result = ReadResourceResult::new(vec![
            ResourceContents::text(GREETING_TEXT, GREETING_URI).with_mime_type("text/plain"),
        ]);
        (result.ttl_ms, result.cache_scope) = self.hints();
        Ok(result.into())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.extras.gate().await;
        // Counted even when refused: tests see whether the gateway asked.
        self.counter.hit("resources/subscribe");
        if request.uri != GREETING_URI {
            return Err(McpError::resource_not_found(
                format!("no resource {} to subscribe to", request.uri),
                Some(json!({ "uri": request.uri })),
            ));
        }
        Ok(())
    }

    async fn unsubscribe(
        &self,
        _request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.extras.gate().await;
        self.counter.hit("resources/unsubscribe");
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        self.extras.gate().await;
        self.counter.hit("prompts/list");
        let mut list = ListPromptsResult::with_all_items(from_json(json!([{
            "name": "greet",
            "description": "Greets someone by name",
            "arguments": [{ "name": "name", "description": "Who to greet", "required": true }]
        }]))?);
        (list.ttl_ms, list.cache_scope) = self.hints();
        Ok(list)
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        self.extras.gate().await;
        self.counter.hit("prompts/get");
        if request.name != "greet" {
            return Err(McpError::invalid_params(
                format!("unknown prompt `{}`", request.name),
                None,
            ));
        }
        let name = request
            .arguments
            .as_ref()
            .and_then(|args| args.get("name"))
            .and_then(|v| v.as_str())
            .ok_or_else(|| McpError::invalid_params("argument `name` is required", None))?;
        Ok(GetPromptResult::new(vec![PromptMessage::new_text(
            Role::User,
            format!("Hello, {name}!"),
        )])
        .into())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use rmcp::{
        RoleClient, ServiceExt,
        model::{CallToolRequestParams, GetPromptRequestParams, ReadResourceRequestParams},
        service::RunningService,
    };
    use serde_json::json;

    use super::*;

    /// Connects an in-process client to `server` over an in-memory pipe.
    pub(crate) async fn connect<S: ServerHandler>(server: S) -> RunningService<RoleClient, ()> {
        connect_with(server, ()).await
    }

    /// Connects `client` to `server` over an in-memory pipe.
    pub(crate) async fn connect_with<S: ServerHandler, C: rmcp::ClientHandler>(
        server: S,
        client: C,
    ) -> RunningService<RoleClient, C> {
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            if let Ok(running) = server.serve(server_io).await {
                let _ = running.waiting().await;
            }
        });
        client.serve(client_io).await.unwrap()
    }

    /// The text of a one-block tool result.
    pub(crate) fn text(result: &CallToolResult) -> String {
        serde_json::to_value(&result.content).unwrap()[0]["text"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A JSON object as tool arguments.
    pub(crate) fn args(value: serde_json::Value) -> rmcp::model::JsonObject {
        value.as_object().unwrap().clone()
    }

    #[tokio::test]
    async fn echo_add_and_request_count() {
        let client = connect(EchoServer::new()).await;
        let tools = client.list_tools(None).await.unwrap();
        let names: Vec<_> = tools.tools.iter().map(|t| t.name.to_string()).collect();
        assert_eq!(names, ["echo", "add", "request_count"]);

        let echoed = client
            .call_tool(
                CallToolRequestParams::new("echo").with_arguments(args(json!({"message": "hi"}))),
            )
            .await
            .unwrap();
        assert_eq!(text(&echoed), "hi");

        let sum = client
            .call_tool(
                CallToolRequestParams::new("add").with_arguments(args(json!({"a": 2, "b": 3.5}))),
            )
            .await
            .unwrap();
        assert_eq!(text(&sum), "5.5");

        let counts = client
            .call_tool(CallToolRequestParams::new("request_count"))
            .await
            .unwrap();
        let counts: serde_json::Value = serde_json::from_str(&text(&counts)).unwrap();
        assert_eq!(counts["tools/list"], 1);
        assert_eq!(counts["tools/call"], 3);
        client.cancel().await.unwrap();
    }

    #[tokio::test]
    async fn greeting_resource_and_prompt() {
        let client = connect(EchoServer::new()).await;
        let read = client
            .read_resource(ReadResourceRequestParams::new(GREETING_URI))
            .await
            .unwrap();
        let read = serde_json::to_value(read).unwrap();
        assert_eq!(read["contents"][0]["text"], GREETING_TEXT);

        let prompt = client
            .get_prompt(
                GetPromptRequestParams::new("greet").with_arguments(args(json!({"name": "Ada"}))),
            )
            .await
            .unwrap();
        let prompt = serde_json::to_value(prompt).unwrap();
        assert_eq!(prompt["messages"][0]["content"]["text"], "Hello, Ada!");
        assert_eq!(prompt["messages"][0]["role"], "user");
        client.cancel().await.unwrap();
    }
}
