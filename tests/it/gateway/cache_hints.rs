//! SEP-2549 caching hints through the gateway: the demo echo server sends
//! `ttlMs` / `cacheScope` on its lists and reads (`--cache-hints`); the
//! gateway's cache keeps a `private` list per caller and never past its
//! `ttlMs`, and stateless (2026-07-28) clients get hints that say what the
//! gateway's own answer allows.
use std::time::Duration;

use serde_json::{Value, json};

use super::{HEAD, demo_upstream};
use crate::auth::TestKey;
use crate::common::Gateway;

/// Three echo upstreams: a private list, a public one, and one immediately stale.
fn upstreams() -> String {
    [
        demo_upstream("priv", r#""echo", "--cache-hints", "60000:private""#),
        demo_upstream("pub", r#""echo", "--cache-hints", "30000:public""#),
        demo_upstream("stale", r#""echo", "--cache-hints", "0:public""#),
    ]
    .concat()
}

/// One stateless 2026-07-28 request to `path` (with `key`'s credential): its response.
async fn stateless(
    gw: &Gateway,
    path: &str,
    key: Option<&TestKey>,
    method: &str,
    params: Value,
) -> Value {
    super::stateless_request(gw, path, key, method, params, json!({})).await
}

/// `server`'s upstream `tools/list` count (its `request_count` tool).
async fn tools_lists(gw: &Gateway, key: Option<&TestKey>, server: &str) -> u64 {
    let answer = stateless(
        gw,
        "/mcp",
        key,
        "tools/call",
        json!({ "name": format!("{server}__request_count"), "arguments": {} }),
    )
    .await;
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    let counts: Value = serde_json::from_str(text).unwrap();
    counts["tools/list"].as_u64().unwrap_or(0)
}

/// `tools_lists` of priv, pub and stale, one after the other.
async fn all_tools_lists(gw: &Gateway, key: &TestKey) -> Vec<u64> {
    let mut counts = Vec::new();
    for server in ["priv", "pub", "stale"] {
        counts.push(tools_lists(gw, Some(key), server).await);
    }
    counts
}

fn hints(answer: &Value) -> (u64, String) {
    let result = &answer["result"];
    let ttl = result["ttlMs"]
        .as_u64()
        .unwrap_or_else(|| panic!("{answer}"));
    let scope = result["cacheScope"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    (ttl, scope.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_list_is_cached_per_caller_and_ttl_ms_bounds_the_cache() {
    let (alice, bob, carol) = (TestKey::new(), TestKey::new(), TestKey::new());
    let config = format!(
        "{HEAD}{}{}{}{}",
        upstreams(),
        alice.entry("alice", "admin", false),
        bob.entry("bob", "admin", false),
        carol.entry("carol", "admin", false)
    );
    let gw = Gateway::builder(&config).with_auth().start();
    gw.wait_ready(Duration::from_secs(60)).await;

    let list = |key| stateless(&gw, "/mcp", Some(key), "tools/list", json!({}));
    // Counted by a third caller: a 2026-07-28 call of an upstream whose list
    // the gateway never read reads it first (its `Mcp-Param-*` headers are
    // checked, and a federated call reads every unread list to route its
    // name), and that caller's private list is then cached. One call at a
    // time: a count read while another call's list read is on its way
    // would miss that read. Each new instance's list is also read once by
    // the gateway's fingerprint task, whenever it runs after `ready`: the
    // count starts once both reads reached every upstream.
    let mut before = all_tools_lists(&gw, &carol).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while before.iter().any(|&count| count < 2) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "upstream tools/list calls {before:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        before = all_tools_lists(&gw, &carol).await;
    }
    for key in [&alice, &alice, &bob, &bob] {
        let answer = list(key).await;
        assert!(
            answer["result"]["tools"]
                .as_array()
                .is_some_and(|t| t.len() > 6),
            "{answer}"
        );
        // The shortest upstream freshness (the stale upstream's 0); private with auth on.
        assert_eq!(hints(&answer), (0, "private".to_owned()), "{answer}");
    }
    let after = all_tools_lists(&gw, &carol).await;
    let fetched: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    // priv: once per caller; pub: once for both; stale (ttlMs 0): every time.
    assert_eq!(fetched[0], 2, "upstream tools/list calls {fetched:?}");
    assert!(fetched[1] <= 1, "upstream tools/list calls {fetched:?}");
    assert!(fetched[2] >= 4, "upstream tools/list calls {fetched:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_clients_get_the_upstream_hints_aged_and_scoped() {
    // Authentication off: every caller gets the same answer, so public stays public.
    let gw = Gateway::start(&format!("{HEAD}{}", upstreams()), &[]);
    gw.wait_ready(Duration::from_secs(60)).await;

    let public = stateless(&gw, "/mcp/pub", None, "tools/list", json!({})).await;
    let (ttl, scope) = hints(&public);
    assert!(ttl > 0 && ttl <= 30_000, "{public}");
    assert_eq!(scope, "public", "{public}");
    let private = stateless(&gw, "/mcp/priv", None, "tools/list", json!({})).await;
    let (ttl, scope) = hints(&private);
    assert!(ttl > 0 && ttl <= 60_000, "{private}");
    assert_eq!(scope, "private", "{private}");
    // Federated: the shortest freshness, private when any part is.
    let merged = stateless(&gw, "/mcp", None, "prompts/list", json!({})).await;
    assert_eq!(hints(&merged), (0, "private".to_owned()), "{merged}");

    let read = stateless(
        &gw,
        "/mcp",
        None,
        "resources/read",
        json!({ "uri": "bulwark://pub/demo://greeting" }),
    )
    .await;
    let (ttl, scope) = hints(&read);
    assert_eq!((ttl, scope.as_str()), (30_000, "public"), "{read}");
}
