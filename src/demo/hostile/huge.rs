//! The `huge` demo server: `big_output` returns text of an exact size
//! (`--size-bytes`, default 5 MiB; the `bytes` argument overrides it).
use rmcp::{
    ErrorData as McpError, RoleServer,
    model::{CallToolRequestParams, CallToolResult, Tool},
    service::RequestContext,
};
use serde_json::{Value, json};

use crate::demo::common::{arguments, from_json, text_result};
use crate::demo::echo::{EchoServer, ExtraTools};

/// Default output size: 5 MiB.
pub const DEFAULT_SIZE_BYTES: usize = 5 * 1024 * 1024;
/// The largest size a call may ask for (64 MiB), so a typo cannot exhaust memory.
pub const MAX_SIZE_BYTES: usize = 64 * 1024 * 1024;

const FILLER: &str = "All work and no play makes a large tool result. ";

/// The `huge` kind's extra tool.
#[derive(Debug, Clone, Copy)]
pub struct HugeTools {
    size_bytes: usize,
}

/// The `huge` demo server.
pub type HugeServer = EchoServer<HugeTools>;

impl HugeServer {
    /// A huge server whose `big_output` returns `size_bytes` unless told otherwise.
    pub fn with_size_bytes(size_bytes: usize) -> Self {
        EchoServer::with_extras(HugeTools { size_bytes })
    }
}

/// Text of exactly `bytes` bytes (ASCII filler).
pub fn filler(bytes: usize) -> String {
    FILLER.chars().cycle().take(bytes).collect()
}

impl ExtraTools for HugeTools {
    fn server_name(&self) -> &'static str {
        "bulwark-demo-huge"
    }

    fn tools(&self) -> Result<Vec<Tool>, McpError> {
        from_json(json!([{
            "name": "big_output",
            "description": "Returns a text result of the given size in bytes",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "bytes": { "type": "integer", "minimum": 0, "maximum": MAX_SIZE_BYTES }
                }
            }
        }]))
    }

    async fn call(
        &self,
        request: &CallToolRequestParams,
        _context: &RequestContext<RoleServer>,
    ) -> Option<Result<CallToolResult, McpError>> {
        if request.name != "big_output" {
            return None;
        }
        let bytes = match arguments(request).get("bytes").map(Value::as_u64) {
            None => self.size_bytes,
            Some(Some(n)) if n as usize <= MAX_SIZE_BYTES => n as usize,
            Some(_) => {
                return Some(Err(McpError::invalid_params(
                    format!("`bytes` must be an integer from 0 to {MAX_SIZE_BYTES}"),
                    None,
                )));
            }
        };
        Some(Ok(text_result(filler(bytes))))
    }
}
