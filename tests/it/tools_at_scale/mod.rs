//! Living with hundreds of tools, end to end: `bulwark__search_tools`, the
//! `search` tool listing, virtual servers and prefix modes. The real binary,
//! the `catalog` and `echo` demo upstreams, the official Python SDK client.
mod naming;
mod search;
mod virtual_servers;

use serde_json::Value;

use crate::common::{PythonSession, SESSION_ANSWER_TIMEOUT};

/// The names in a `tools` listing answer (names only, or `full` definitions).
pub fn tool_names(listed: &Value) -> Vec<String> {
    listed["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {listed}"))
        .iter()
        .filter_map(|tool| tool.as_str().or_else(|| tool["name"].as_str()))
        .map(str::to_owned)
        .collect()
}

/// `tools/list` with full definitions.
pub fn list_full(session: &mut PythonSession) -> Value {
    session.command(
        serde_json::json!({ "list": "tools", "full": true }),
        SESSION_ANSWER_TIMEOUT,
    )
}

/// The federated names `bulwark__search_tools` found, best first.
pub fn found(answer: &Value) -> Vec<String> {
    assert_eq!(answer["ok"], true, "{answer}");
    answer["result"]["structuredContent"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {answer}"))
        .iter()
        .filter_map(|hit| hit["tool"]["name"].as_str().map(str::to_owned))
        .collect()
}
