//! The front door under attack: each test plays one attack against the real
//! binary, then shows a normal call still served and the gateway's memory
//! within a stated bound (RSS from `/proc`).
mod body;
mod connections;
mod paths;
mod revocation;
mod sessions;
mod tenants;

use std::time::Duration;

use serde_json::{Value, json};

use crate::auth::{PROTOCOL, post};
use crate::common::Gateway;

/// Resident and peak resident memory of `pid`, in KiB.
pub fn rss_kib(pid: i32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A raw MCP session on `path`: its id after `initialize` + `initialized`.
pub async fn open_session(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> String {
    let response = crate::auth::initialize(gw, path, headers).await;
    assert!(response.status().is_success(), "{}", response.status());
    let id = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = response.text().await;
    let mut with_session: Vec<(&str, &str)> = headers.to_vec();
    with_session.push(("mcp-session-id", &id));
    with_session.push(("mcp-protocol-version", PROTOCOL));
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let answer = post(gw, path, &with_session, &note).await;
    assert!(answer.status().is_success(), "{}", answer.status());
    id
}

/// A POST of raw `body` bytes on a session; (status, body text).
pub async fn post_raw(
    gw: &Gateway,
    path: &str,
    session: Option<&str>,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, String) {
    let mut request = gw
        .http()
        .post(gw.url(path))
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .header("mcp-protocol-version", PROTOCOL)
        .body(body);
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// The JSON-RPC message in a response body, plain or the last SSE `data:`.
pub fn message(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|_| {
        body.lines()
            .rev()
            .filter_map(|line| line.strip_prefix("data:"))
            .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
            .next()
            .unwrap_or_else(|| panic!("no JSON-RPC message in {body:?}"))
    })
}

/// A normal `echo__echo` call on a fresh session answers.
pub async fn normal_call_served(gw: &Gateway, headers: &[(&str, &str)]) {
    let session = open_session(gw, "/mcp", headers).await;
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo__echo", "arguments": {"message": "still here"}}});
    let (status, body) = post_raw(
        gw,
        "/mcp",
        Some(&session),
        headers,
        serde_json::to_vec(&call).unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        message(&body)["result"]["content"][0]["text"],
        "still here",
        "{body}"
    );
}

/// A gateway (auth off) with the echo demo upstream and `extra` config.
pub async fn echo_gateway(extra: &str) -> Gateway {
    let toml = format!(
        "{}{}{extra}",
        crate::gateway::HEAD,
        crate::gateway::demo_upstream("echo", "\"echo\"")
    );
    let gw = Gateway::start(&toml, &[]);
    gw.wait_ready(Duration::from_secs(60)).await;
    gw
}

/// A `tools/call` of `name` on `session`: the JSON-RPC message answered.
pub async fn call_on(
    gw: &Gateway,
    session: &str,
    headers: &[(&str, &str)],
    name: &str,
    arguments: Value,
) -> Value {
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": name, "arguments": arguments}});
    let (status, body) = post_raw(
        gw,
        "/mcp",
        Some(session),
        headers,
        serde_json::to_vec(&call).unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    message(&body)
}
