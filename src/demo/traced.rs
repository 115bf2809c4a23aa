//! The `traced` demo server: a `trace_context` tool that reports the W3C
//! trace context its request arrived with, so tests can see what the
//! gateway propagates: `_meta.traceparent` (any transport) and the
//! `traceparent` HTTP header (streamable HTTP only).
use rmcp::{
    ErrorData as McpError, RoleServer,
    model::{CallToolRequestParams, CallToolResult, Tool},
    service::RequestContext,
};
use serde_json::json;

use super::common::{from_json, text_result};
use super::echo::{EchoServer, ExtraTools};

/// The `traced` kind's extra tool.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracedTools;

/// The `traced` demo server.
pub type TracedServer = EchoServer<TracedTools>;

impl TracedServer {
    /// A traced server.
    pub fn traced() -> Self {
        EchoServer::with_extras(TracedTools)
    }
}

impl ExtraTools for TracedTools {
    fn server_name(&self) -> &'static str {
        "bulwark-demo-traced"
    }

    fn tools(&self) -> Result<Vec<Tool>, McpError> {
        from_json(json!([{
            "name": "trace_context",
            "description": "Reports the traceparent this request carried in _meta and in its HTTP header",
            "inputSchema": { "type": "object", "properties": {} }
        }]))
    }

    async fn call(
        &self,
        request: &CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Option<Result<CallToolResult, McpError>> {
        if request.name != "trace_context" {
            return None;
        }
        let meta = context.meta.0.get("traceparent").cloned();
        let header = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.headers.get("traceparent"))
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let report = json!({ "meta": meta, "header": header });
        // On stderr too: the gateway keeps it in the upstream's stderr tail.
        eprintln!("demo-server traced: trace context {report}");
        Some(Ok(text_result(report.to_string())))
    }
}
