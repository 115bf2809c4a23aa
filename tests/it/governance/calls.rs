//! The per-call MCP audit: a real client's tool calls through a key show up
//! as `mcp.call` entries (identity, project, server, tool, outcome,
//! latency), with arguments and results only when payloads are on, masked.
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use super::start;
use crate::auth::TestKey;
use crate::common::{Gateway, peers};
use crate::control::{StoreUnderTest, send};

/// Polls the audit trail until `action=mcp.call` holds `count` entries.
async fn calls(gw: &Gateway, admin: &TestKey, count: usize) -> (Vec<Value>, Value) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, page) = send(
            gw,
            Method::GET,
            "/api/v1/audit?action=mcp.call",
            None,
            Some(&admin.secret),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap().clone();
        if items.len() >= count {
            return (items, page["mcp_calls"].clone());
        }
        assert!(
            Instant::now() < deadline,
            "{count} mcp.call entries never came: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn audited_calls(payloads: bool) {
    let Some(peers) = peers() else { return };
    let member = TestKey::new();
    let extra = format!(
        "{}[audit]\nmcp_calls = true\ninclude_payloads = {payloads}\n",
        member.entry("mia", "demo", false)
    );
    let (gw, admin) = start(&StoreUnderTest::Sqlite, &extra).await;
    let mut session = peers.session_with_headers(gw.mcp_url(), &member.headers());
    let answer = session.call(
        "echo__echo",
        json!({"message": "hello token=hunter2-hunter2"}),
    );
    assert!(
        answer["result"]["text"].as_str().unwrap().contains("hello"),
        "{answer}"
    );
    let refused = session.call("echo__no_such_tool", json!({}));
    assert!(refused["error"].is_object(), "{refused}");
    drop(session);

    let (entries, state) = calls(&gw, &admin, 2).await;
    assert_eq!(state, json!({"enabled": true, "dropped": 0}));
    let ok = entries.iter().find(|e| e["target"] == "echo/echo").unwrap();
    assert_eq!(
        (
            ok["actor"].as_str(),
            ok["outcome"].as_str(),
            ok["credential"].as_str()
        ),
        (
            Some("mia"),
            Some("success"),
            Some(format!("key:{}", member.id).as_str())
        )
    );
    assert_eq!(ok["after"]["project"], "demo");
    assert!(ok["after"]["latency_ms"].is_u64(), "{ok}");
    let failed = entries
        .iter()
        .find(|e| e["target"] == "echo/no_such_tool")
        .unwrap();
    assert_eq!(failed["outcome"], "failure", "{failed}");
    let text = serde_json::to_string(&entries).unwrap();
    assert!(
        !text.contains("hunter2"),
        "a secret in a recorded payload: {text}"
    );
    if payloads {
        assert!(
            ok["after"]["arguments"]["message"]
                .as_str()
                .unwrap()
                .starts_with("hello"),
            "{ok}"
        );
        assert!(ok["after"]["result"].is_object(), "{ok}");
    } else {
        assert!(
            ok["after"].get("arguments").is_none() && ok["after"].get("result").is_none(),
            "{ok}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_calls_are_audited_without_payloads_by_default() {
    audited_calls(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_call_payloads_are_recorded_masked_when_asked() {
    audited_calls(true).await;
}

/// `/mcp` refusals reach the audit trail through the same queue, with the
/// client address and never the credential, per-call audit on or off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_refusals_are_audited_off_the_request_path() {
    let (gw, admin) = start(&StoreUnderTest::Sqlite, "").await;
    let forged = "bk_forgedforgedforgedforgedforgedforgedforge";
    let response = crate::auth::initialize(&gw, "/mcp", &[("X-API-Key", forged)]).await;
    assert_eq!(response.status(), 401);
    let deadline = Instant::now() + Duration::from_secs(20);
    let entry = loop {
        let (_, page) = send(
            &gw,
            Method::GET,
            "/api/v1/audit?action=auth.failed&target=POST%20/mcp",
            None,
            Some(&admin.secret),
        )
        .await;
        if let Some(entry) = page["items"].as_array().and_then(|items| items.first()) {
            break entry.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no auth.failed entry for /mcp: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (
            entry["status"].as_i64(),
            entry["client"].as_str(),
            entry["actor"].as_str()
        ),
        (Some(401), Some("127.0.0.1"), Some("unknown")),
        "{entry}"
    );
    assert!(!entry.to_string().contains(forged), "{entry}");
}
