//! End-to-end tests of the gateway: the real binary, real upstream processes,
//! real MCP clients (the official Python SDK).
mod bursts;
mod cache_hints;
pub mod conformance;
mod crash;
mod direct_calls;
mod federation;
pub mod mrtr;
mod own_tools;
mod param_headers;
mod server_result_parse;
mod session_channels;
mod shutdown;
mod stateless_streams;
mod tasks;

use std::time::Duration;

use serde_json::Value;

use crate::common::{Gateway, wait_until};

/// A `[upstreams.NAME]` table running one of our demo servers.
pub fn demo_upstream(name: &str, args: &str) -> String {
    format!(
        "[upstreams.{name}]\ncommand = {bin:?}\nargs = [\"demo-server\", {args}]\n",
        bin = env!("CARGO_BIN_EXE_bulwark"),
    )
}

/// The config head every test uses: an ephemeral port.
pub const HEAD: &str = "[server]\nlisten = \"127.0.0.1:0\"\n";

/// The upstream actor node of `server` in `/api/v1/actors`.
pub async fn upstream_node(gw: &Gateway, server: &str) -> Value {
    let (status, tree) = gw.get_json("/api/v1/actors").await;
    assert!(status.is_success(), "{tree}");
    tree["children"]
        .as_array()
        .and_then(|servers| {
            servers
                .iter()
                .find(|s| s["name"] == server && s["kind"] == "server_supervisor")
        })
        .map(|s| s["children"][0].clone())
        .unwrap_or_else(|| panic!("no actor for {server} in {tree}"))
}

/// The pid the current instance of a demo upstream reported on stderr.
pub async fn demo_pid(gw: &Gateway, server: &str) -> i32 {
    pid_in_tail(&upstream_node(gw, server).await)
}

/// The pid a demo instance reported on stderr (`pid=N`), from an actor
/// node's `stderr_tail`.
pub fn pid_in_tail(node: &Value) -> i32 {
    node["stderr_tail"]
        .as_array()
        .and_then(|lines| {
            lines.iter().rev().find_map(|l| {
                l.as_str()?
                    .split("pid=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
        })
        .unwrap_or_else(|| panic!("no pid line in {node}"))
}

/// Polls the actor tree until `server`'s upstream satisfies `cond`.
pub async fn wait_for_upstream(
    gw: &Gateway,
    server: &str,
    timeout: Duration,
    cond: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let node = upstream_node(gw, server).await;
        if cond(&node) {
            return node;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "upstream {server} never reached the expected state: {node}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// True while a process with this pid exists.
pub fn gone_within(pid: i32, timeout: Duration) -> bool {
    wait_until(timeout, || !crate::common::alive(pid))
}

/// One stateless (2026-07-28) JSON-RPC request to `path`, with the given
/// client capabilities and, when given, an API key: the JSON-RPC response
/// (from a JSON body, or the last `data:` line of an SSE stream).
pub async fn stateless_request(
    gw: &Gateway,
    path: &str,
    key: Option<&crate::auth::TestKey>,
    method: &str,
    params: Value,
    capabilities: Value,
) -> Value {
    let mut headers = Vec::new();
    if let Some(key) = key {
        headers.push(("x-api-key", key.secret.as_str()));
    }
    (stateless_post(gw, path, method, params, capabilities, &headers).await).1
}

/// [`stateless_request`] with `headers` next to the standard ones
/// (`Mcp-Method`, `Mcp-Name` from the params): the HTTP status too.
pub async fn stateless_post(
    gw: &Gateway,
    path: &str,
    method: &str,
    mut params: Value,
    capabilities: Value,
    headers: &[(&str, &str)],
) -> (reqwest::StatusCode, Value) {
    params["_meta"] = serde_json::json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": capabilities,
        "io.modelcontextprotocol/clientInfo": { "name": "bulwark-it", "version": "0" },
    });
    let name = ["name", "uri", "taskId"]
        .iter()
        .find_map(|field| params[*field].as_str())
        .map(str::to_owned);
    let mut request = gw
        .http()
        .post(gw.url(path))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    if let Some(name) = name {
        request = request.header("mcp-name", name);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
    let response = request.json(&body).send().await.expect("gateway answers");
    let status = response.status();
    let text = response.text().await.expect("body");
    let json_text = text
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .next_back()
        .unwrap_or(&text);
    let json = serde_json::from_str(json_text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, json)
}
