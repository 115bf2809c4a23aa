//! Bounds of the HTTP front (`[server.limits]`): what one connection, one
//! request and one caller may hold. Every default is safe for a public
//! listener; tests lower them to show the bound holding.
use std::time::Duration;

use serde::Deserialize;

/// `[server.limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FrontLimits {
    /// Open connections at once; further connections wait in the kernel's
    /// backlog. Lowered automatically to fit the file-descriptor limit.
    pub max_connections: usize,
    /// Seconds a connection may take to send a request's headers; also how
    /// long an idle keep-alive connection stays open.
    pub header_read_timeout_secs: u64,
    /// Seconds a request may take to send its body.
    pub body_read_timeout_secs: u64,
    /// Body bytes of a `tools/call` (arguments may be large).
    pub max_tool_body_bytes: usize,
    /// Body bytes of every other JSON-RPC message.
    pub max_body_bytes: usize,
    /// JSON values (objects, arrays, scalars) in a `tools/call` body.
    pub max_tool_json_values: usize,
    /// JSON values in any other message.
    pub max_json_values: usize,
    /// Nesting depth of a JSON body.
    pub max_json_depth: usize,
    /// Open MCP sessions per caller (API key or token subject), all routes together.
    pub max_sessions_per_caller: usize,
    /// Milliseconds a call's response holds its head for the call's first
    /// message, so that a quick call leaves in one write (one wake-up of the
    /// client instead of two), as plain JSON when that message is its
    /// result; a slower call gets its SSE head when this ends. 0 sends the
    /// head at once.
    pub response_head_wait_ms: u64,
}

impl Default for FrontLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            max_tool_body_bytes: 4 * 1024 * 1024,
            max_body_bytes: 256 * 1024,
            max_tool_json_values: 200_000,
            max_json_values: 10_000,
            max_json_depth: 64,
            max_sessions_per_caller: 64,
            response_head_wait_ms: 50,
        }
    }
}

impl FrontLimits {
    /// How long headers (and keep-alive idleness) may take.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs.max(1))
    }

    /// How long a body may take.
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_secs(self.body_read_timeout_secs.max(1))
    }

    /// How long a call's response head waits for its first message; `None`
    /// when it does not wait.
    pub fn response_head_wait(&self) -> Option<Duration> {
        (self.response_head_wait_ms > 0).then(|| Duration::from_millis(self.response_head_wait_ms))
    }

    /// Body bytes allowed before the method is known: the larger limit.
    pub fn max_any_body_bytes(&self) -> usize {
        self.max_tool_body_bytes.max(self.max_body_bytes)
    }

    /// Byte and value limits of a message with `method`.
    pub fn for_method(&self, method: Option<&str>) -> (usize, usize) {
        if method == Some("tools/call") {
            (self.max_tool_body_bytes, self.max_tool_json_values)
        } else {
            (self.max_body_bytes, self.max_json_values)
        }
    }
}
