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
