//! Rate limits keyed on the caller: per key at the HTTP layer (429 with
//! Retry-After), per upstream as a JSON-RPC error; a new session does not
//! get a new budget; the budget comes back after the time the gateway names.
use std::time::Duration;

use serde_json::json;

use super::{initialize, start_with_keys};
use crate::common::peers;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_limit_answers_429_with_retry_after_and_recovers() {
    let limits = "[auth.rate_limits]\nper_key = { per_minute = 60, burst = 3 }\n";
    let ([alice, bob], gw) = start_with_keys([("alice", "demo"), ("bob", "demo")], limits).await;
    let key = [("X-API-Key", alice.secret.as_str())];
    for _ in 0..3 {
        assert_eq!(initialize(&gw, "/mcp", &key).await.status(), 200);
    }
    let limited = initialize(&gw, "/mcp", &key).await;
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["limit"], "per_key", "{body}");
    assert!(body["retry_after_ms"].as_u64().unwrap() <= 1000, "{body}");
    // Another key has its own budget.
    assert_eq!(
        initialize(&gw, "/mcp", &[("X-API-Key", &bob.secret)])
            .await
            .status(),
        200
    );
    // After the time the gateway named, one more request fits.
    tokio::time::sleep(Duration::from_millis(
        body["retry_after_ms"].as_u64().unwrap() + 50,
    ))
    .await;
    assert_eq!(initialize(&gw, "/mcp", &key).await.status(), 200);
    assert_eq!(initialize(&gw, "/mcp", &key).await.status(), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_upstream_limit_is_a_json_rpc_error_that_a_new_session_does_not_reset() {
    let Some(peers) = peers() else { return };
    // One call every 10 s, two at once: slow enough that a new session
    // cannot outrun it, fast enough to see the budget come back.
    let limits = "[auth.rate_limits]\nper_upstream = { per_minute = 6, burst = 2 }\n";
    let ([alice], gw) = start_with_keys([("alice", "demo")], limits).await;
    let mut session = peers.session_with_headers(gw.mcp_url(), &alice.headers());
    for i in 0..2 {
        let answer = session.call("echo__echo", json!({"message": format!("call {i}")}));
        assert_eq!(answer["ok"], true, "{answer}");
    }
    let refused = session.call("echo__echo", json!({"message": "one too many"}));
    assert_eq!(refused["error"]["code"], -32005, "{refused}");
    assert_eq!(
        refused["error"]["data"]["limit"], "per_upstream",
        "{refused}"
    );
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("per_upstream") && message.contains("'echo'"),
        "{message}"
    );
    session.quit();

    // A fresh session of the same key draws on the same bucket.
    let mut again = peers.session_with_headers(gw.mcp_url(), &alice.headers());
    let refused = again.call("echo__echo", json!({"message": "new session"}));
    assert_eq!(refused["error"]["code"], -32005, "{refused}");
    let wait = refused["error"]["data"]["retry_after_ms"].as_u64().unwrap();
    assert!(wait > 0 && wait <= 10_000, "{refused}");
    std::thread::sleep(Duration::from_millis(wait + 50));
    let answer = again.call("echo__echo", json!({"message": "recovered"}));
    assert_eq!(answer["result"]["text"], "recovered", "{answer}");
}

/// A batch of 32 calls draws 32 from `per_key`: with 9 left after the
/// session's own requests, 9 inner calls run and the rest are refused, and
/// the next request is over the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_call_of_a_batch_counts_against_per_key() {
    use crate::attacks::{call_on, open_session};
    let limits = "[auth.rate_limits]\nper_key = { per_minute = 1, burst = 12 }\n";
    let ([alice], gw) = start_with_keys([("alice", "demo")], limits).await;
    let key = [("X-API-Key", alice.secret.as_str())];
    // initialize + initialized + the batch itself: 3 of 12.
    let session = open_session(&gw, "/mcp", &key).await;
    let calls: Vec<_> = (0..32)
        .map(|i| json!({"name": "echo__echo", "arguments": {"message": format!("{i}")}}))
        .collect();
    let answer = call_on(
        &gw,
        &session,
        &key,
        "bulwark__call_tools",
        json!({"calls": calls}),
    )
    .await;
    let results = answer["result"]["structuredContent"]["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(results.len(), 32);
    let ran = results.iter().filter(|r| r["ok"] == true).count();
    let limited = results
        .iter()
        .filter(|r| r["error"]["code"] == -32005)
        .count();
    assert_eq!((ran, limited), (9, 23), "{answer}");
    assert_eq!(initialize(&gw, "/mcp", &key).await.status(), 429);
}

/// `discover_tools {fresh: true}` and `cache_clear` pay `per_upstream` for
/// each server they touch, and a clear leaves alone the tool results of a
/// server whose tools the grant restricts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_discovery_and_cache_clear_pay_per_upstream() {
    use crate::attacks::{call_on, open_session};
    let limits = "[auth.rate_limits]\nper_upstream = { per_minute = 1, burst = 2 }\n";
    let ([alice], gw) = start_with_keys([("alice", "demo")], limits).await;
    let key = [("X-API-Key", alice.secret.as_str())];
    let session = open_session(&gw, "/mcp", &key).await;
    let fresh = json!({"fresh": true});
    let answer = call_on(
        &gw,
        &session,
        &key,
        "bulwark__discover_tools",
        fresh.clone(),
    )
    .await;
    let servers = &answer["result"]["structuredContent"]["servers"];
    assert!(servers["echo"]["tools"].is_array(), "{answer}");
    assert!(
        servers.get("other").is_none(),
        "only granted servers: {answer}"
    );

    let cleared = call_on(&gw, &session, &key, "bulwark__cache_clear", json!({})).await;
    let cleared = &cleared["result"]["structuredContent"];
    assert_eq!(cleared["cleared"]["servers"], json!(["echo"]), "{cleared}");
    assert_eq!(cleared["tool_results_kept"], json!(["echo"]), "{cleared}");

    // The budget of two is spent: both now refuse.
    let answer = call_on(&gw, &session, &key, "bulwark__discover_tools", fresh).await;
    let error = answer["result"]["structuredContent"]["servers"]["echo"]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    assert!(error.contains("per_upstream"), "{answer}");
    let refused = call_on(&gw, &session, &key, "bulwark__cache_clear", json!({})).await;
    assert_eq!(refused["error"]["code"], -32005, "{refused}");
}
