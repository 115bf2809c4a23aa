//! A stateless (2026-07-28) request's response stream carries only what
//! concerns that request: a broadcast to the gateway's sessions (an
//! upstream's `tools/list_changed`) while it runs does not reach it. One
//! did, and a notification ahead of the answer made the answer an event
//! stream, so an error that must be an HTTP 400 left as a 200.
use std::time::Duration;

use serde_json::json;

use super::{HEAD, demo_upstream, stateless_post};
use crate::common::Gateway;

#[tokio::test]
async fn a_list_change_during_a_stateless_call_stays_off_its_stream() {
    let gw = Gateway::start(
        &format!(
            "{HEAD}{}{}",
            demo_upstream("slow", "\"slow\""),
            demo_upstream("geo", "\"conformance\"")
        ),
        &[],
    );
    gw.wait_ready(Duration::from_secs(60)).await;

    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": { "name": "bulwark-it", "version": "0" },
    });
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "slow__slow", "arguments": { "ms": 1500 }, "_meta": meta } });
    let slow = gw
        .http()
        .post(gw.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "slow__slow")
        .json(&body)
        .send();
    let change = async {
        // While the slow call runs, the conformance upstream announces a
        // changed tool list, which the gateway tells its sessions.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let moved = json!({ "name": "test_move_header_param", "arguments": {} });
        stateless_post(&gw, "/mcp/geo", "tools/call", moved, json!({}), &[]).await
    };
    let (slow, (status, moved)) = tokio::join!(slow, change);
    assert!(status.is_success(), "{status} {moved}");

    let slow = slow.expect("gateway answers");
    let content_type = slow
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = slow.text().await.expect("body");
    assert!(
        !text.contains("list_changed"),
        "a broadcast reached a stateless call's stream: {text}"
    );
    assert!(
        content_type.starts_with("application/json"),
        "one answer, as JSON: {content_type} {text}"
    );
    let answer: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(answer["id"], 1, "{answer}");
    assert!(answer["result"]["content"].is_array(), "{answer}");
}
