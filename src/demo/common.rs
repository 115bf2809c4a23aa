//! Pieces shared by the demo servers: request counting, the `echo`/`add`
//! tools, and small helpers to build rmcp model values from JSON.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use rmcp::{
    ErrorData as McpError,
    model::{CallToolRequestParams, CallToolResult, ContentBlock, JsonObject, Tool},
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Builds an rmcp model value from its wire JSON.
///
/// Most rmcp model types are `#[non_exhaustive]`; writing the wire shape keeps
/// the demo fixtures literal and identical to what the specs show.
pub fn from_json<T: DeserializeOwned>(value: Value) -> Result<T, McpError> {
    serde_json::from_value(value)
        .map_err(|e| McpError::internal_error(format!("invalid demo fixture: {e}"), None))
}

/// Counts requests per JSON-RPC method; shared by every session of one process.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl RequestCounter {
    /// Records one request of `method`.
    pub fn hit(&self, method: &str) {
        // A poisoned lock only means another handler panicked mid-increment;
        // the counts are still usable.
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry(method.to_owned()).or_default() += 1;
    }

    /// The counts so far as a JSON object, e.g. `{"tools/call":5,"tools/list":3}`.
    pub fn snapshot(&self) -> Value {
        let counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        json!(*counts)
    }
}

/// The arguments of a tool call (empty when the caller sent none).
pub fn arguments(request: &CallToolRequestParams) -> JsonObject {
    request.arguments.clone().unwrap_or_default()
}

/// Reads a required string argument.
pub fn string_arg<'a>(args: &'a JsonObject, name: &str) -> Result<&'a str, McpError> {
    args.get(name).and_then(Value::as_str).ok_or_else(|| {
        McpError::invalid_params(format!("argument `{name}` must be a string"), None)
    })
}

/// Reads a required number argument.
pub fn number_arg(args: &JsonObject, name: &str) -> Result<f64, McpError> {
    args.get(name).and_then(Value::as_f64).ok_or_else(|| {
        McpError::invalid_params(format!("argument `{name}` must be a number"), None)
    })
}

/// A result holding one text block.
pub fn text_result(text: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(text)])
}

/// Error for a `tools/call` naming a tool the server does not have.
pub fn unknown_tool(name: &str) -> McpError {
    McpError::invalid_params(format!("unknown tool `{name}`"), None)
}

/// Tool definitions of `echo`, `add` and `request_count`, offered by every
/// non-conformance demo kind.
pub fn echo_tools() -> Result<Vec<Tool>, McpError> {
    from_json(json!([
        {
            "name": "echo",
            "description": "Returns the given message unchanged",
            "inputSchema": {
                "type": "object",
                "properties": { "message": { "type": "string", "description": "Text to echo" } },
                "required": ["message"]
            }
        },
        {
            "name": "add",
            "description": "Adds two numbers",
            "inputSchema": {
                "type": "object",
                "properties": { "a": { "type": "number" }, "b": { "type": "number" } },
                "required": ["a", "b"]
            }
        },
        {
            "name": "request_count",
            "description": "How many requests of each method this server process has received",
            "inputSchema": { "type": "object", "properties": {} }
        }
    ]))
}

/// Runs `echo`, `add` or `request_count`; `None` when `name` is none of them.
pub fn call_echo_tool(
    name: &str,
    args: &JsonObject,
    counter: &RequestCounter,
) -> Option<Result<CallToolResult, McpError>> {
    let result = match name {
        "echo" => string_arg(args, "message").map(text_result),
        "add" => number_arg(args, "a")
            .and_then(|a| Ok(a + number_arg(args, "b")?))
            .map(|sum| text_result(format_number(sum))),
        "request_count" => Ok(text_result(counter.snapshot().to_string())),
        _ => return None,
    };
    Some(result)
}

/// Formats whole sums without a trailing `.0` so `add(2, 3)` reads `5`.
fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_formats_integers_without_fraction() {
        assert_eq!(format_number(5.0), "5");
        assert_eq!(format_number(2.5), "2.5");
    }

    #[test]
    fn counter_snapshot_is_a_json_object() {
        let counter = RequestCounter::default();
        counter.hit("tools/list");
        counter.hit("tools/call");
        counter.hit("tools/call");
        assert_eq!(
            counter.snapshot(),
            json!({"tools/call": 2, "tools/list": 1})
        );
    }

    #[test]
    fn echo_tools_parse() {
        let tools = echo_tools().unwrap();
        assert_eq!(tools.len(), 3);
    }
}
