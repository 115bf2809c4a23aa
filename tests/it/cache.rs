//! The cache on the request path, with real upstream processes that count
//! the requests they get (the demo servers' `request_count` tool).
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Gateway, PythonSession, eventually, kill9, peers, require_redis};
use crate::gateway::{HEAD, demo_pid, demo_upstream, wait_for_upstream};

/// Requests `server` has answered, per method (its `request_count` call included).
fn counts(session: &mut PythonSession, server: &str) -> Value {
    let answer = session.call(&format!("{server}__request_count"), json!({}));
    assert_eq!(answer["ok"], true, "{answer}");
    serde_json::from_str(answer["result"]["text"].as_str().unwrap()).unwrap()
}

fn count(counts: &Value, method: &str) -> u64 {
    counts[method].as_u64().unwrap_or(0)
}

fn list_ok(session: &mut PythonSession) {
    let listed = session.list("tools");
    assert_eq!(listed["ok"], true, "{listed}");
}

fn structured(answer: &Value) -> Value {
    assert_eq!(answer["ok"], true, "{answer}");
    answer["result"]["structuredContent"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_are_cached_until_list_changed_restart_or_clear() {
    let Some(peers) = peers() else { return };
    let config = format!(
        "{HEAD}[guardrails]\ntool_poisoning = \"flag\"\n{}{}",
        demo_upstream("echo", "\"echo\""),
        demo_upstream("rug", "\"rugpull\""),
    );
    let gw = Gateway::start(&config, &[]);
    gw.wait_ready(Duration::from_secs(30)).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);

    // Two lists, one upstream tools/list.
    let before = count(&counts(&mut session, "echo"), "tools/list");
    list_ok(&mut session);
    list_ok(&mut session);
    list_ok(&mut session);
    assert_eq!(
        count(&counts(&mut session, "echo"), "tools/list"),
        before + 1
    );
    let stats = structured(&session.call("bulwark__cache_status", json!({})));
    let tools = stats["stats"]["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "tools")
        .cloned()
        .unwrap();
    assert!(tools["hits"].as_u64().unwrap() >= 2, "{stats}");

    // list_changed from the upstream drops its list.
    let rug_before = count(&counts(&mut session, "rug"), "tools/list");
    list_ok(&mut session);
    assert_eq!(
        count(&counts(&mut session, "rug"), "tools/list"),
        rug_before
    );
    assert_eq!(session.call("rug__mutate", json!({}))["ok"], true);
    let mut rug_after = rug_before;
    assert!(
        eventually(Duration::from_secs(10), || {
            list_ok(&mut session);
            rug_after = count(&counts(&mut session, "rug"), "tools/list");
            rug_after > rug_before
        })
        .await,
        "tools/list_changed never reached the cache"
    );

    // An explicit clear of one server and kind.
    let echo_before = count(&counts(&mut session, "echo"), "tools/list");
    let cleared = session.call(
        "bulwark__cache_clear",
        json!({"server": "echo", "kind": "tools"}),
    );
    assert_eq!(
        structured(&cleared)["cleared"]["kind"],
        "tools",
        "{cleared}"
    );
    list_ok(&mut session);
    assert_eq!(
        count(&counts(&mut session, "echo"), "tools/list"),
        echo_before + 1
    );

    // A restart: the new instance is asked again.
    kill9(demo_pid(&gw, "echo").await);
    wait_for_upstream(&gw, "echo", Duration::from_secs(20), |n| {
        n["restarts"] == 1 && n["state"] == "ready"
    })
    .await;
    let fresh = count(&counts(&mut session, "echo"), "tools/list");
    list_ok(&mut session);
    assert_eq!(
        count(&counts(&mut session, "echo"), "tools/list"),
        fresh + 1,
        "after a restart the list comes from the new instance"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cacheable_results_are_served_from_cache_and_others_are_not() {
    let Some(peers) = peers() else { return };
    let config = format!(
        "{HEAD}[cache.tools.\"echo__echo\"]\ncacheable = true\nttl_secs = 60\n{}",
        demo_upstream("echo", "\"echo\""),
    );
    let gw = Gateway::start(&config, &[]);
    gw.wait_ready(Duration::from_secs(30)).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);

    let calls = |session: &mut PythonSession| count(&counts(session, "echo"), "tools/call");
    let before = calls(&mut session);
    for _ in 0..3 {
        let answer = session.call("echo__echo", json!({"message": "same"}));
        assert_eq!(answer["result"]["text"], "same", "{answer}");
    }
    // One echo reached the upstream, plus the request_count call itself.
    assert_eq!(calls(&mut session), before + 2);

    let before = calls(&mut session);
    let other = session.call("echo__echo", json!({"message": "different"}));
    assert_eq!(other["result"]["text"], "different");
    assert_eq!(calls(&mut session), before + 2, "other arguments miss");

    let before = calls(&mut session);
    for _ in 0..2 {
        assert_eq!(
            session.call("echo__add", json!({"a": 1, "b": 2}))["ok"],
            true
        );
    }
    assert_eq!(calls(&mut session), before + 3, "add is not cacheable");
}

#[tokio::test(flavor = "multi_thread")]
async fn cached_results_do_not_survive_an_upstream_restart() {
    let Some(peers) = peers() else { return };
    let config = format!(
        "{HEAD}[cache.tools.\"echo__echo\"]\ncacheable = true\nttl_secs = 600\n{}",
        demo_upstream("echo", "\"echo\""),
    );
    restart_drops_cached_results(&peers, &config).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cached_results_in_redis_do_not_survive_an_upstream_restart() {
    let Some(peers) = peers() else { return };
    let Some(redis) = require_redis() else { return };
    let prefix = format!("bulwark:test:restart:{}", std::process::id());
    let config = redis_config(&format!("redis://{redis}"), &prefix);
    restart_drops_cached_results(&peers, &config).await;
}

/// Two calls (the second from the cache), a `kill -9` of the upstream, and
/// the first call after the restart must reach the new instance.
async fn restart_drops_cached_results(peers: &crate::common::Peers, config: &str) {
    let gw = Gateway::start(config, &[]);
    gw.wait_ready(Duration::from_secs(30)).await;
    let mut session = PythonSession::start(peers, &[gw.mcp_url()]);
    let calls = |session: &mut PythonSession| count(&counts(session, "echo"), "tools/call");
    for _ in 0..2 {
        let answer = session.call("echo__echo", json!({"message": "kept"}));
        assert_eq!(answer["result"]["text"], "kept", "{answer}");
    }
    // One echo upstream (the second from the cache), plus request_count.
    assert_eq!(calls(&mut session), 2);

    kill9(demo_pid(&gw, "echo").await);
    wait_for_upstream(&gw, "echo", Duration::from_secs(20), |n| {
        n["restarts"] == 1 && n["state"] == "ready"
    })
    .await;
    // The very first call after the restart already reaches the new instance.
    let answer = session.call("echo__echo", json!({"message": "kept"}));
    assert_eq!(answer["result"]["text"], "kept", "{answer}");
    assert_eq!(
        calls(&mut session),
        2,
        "the cached result of the previous instance was served"
    );
    // And the new instance's answer is cached in turn.
    let answer = session.call("echo__echo", json!({"message": "kept"}));
    assert_eq!(answer["result"]["text"], "kept", "{answer}");
    assert_eq!(calls(&mut session), 3);
}

fn redis_config(url: &str, prefix: &str) -> String {
    format!(
        "{HEAD}[cache]\nbackend = \"redis\"\nredis_url = {url:?}\nkey_prefix = {prefix:?}\n\
         [cache.tools.\"echo__echo\"]\ncacheable = true\nttl_secs = 60\n{}",
        demo_upstream("echo", "\"echo\""),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn two_gateways_share_a_redis_cache() {
    let Some(peers) = peers() else { return };
    let Some(redis) = require_redis() else { return };
    let url = format!("redis://{redis}");
    let prefix = format!("bulwark:test:{}", std::process::id());
    let config = redis_config(&url, &prefix);
    let first = Gateway::start(&config, &[]);
    let second = Gateway::start(&config, &[]);
    first.wait_ready(Duration::from_secs(30)).await;
    second.wait_ready(Duration::from_secs(30)).await;
    let mut one = PythonSession::start(&peers, &[first.mcp_url()]);
    let mut two = PythonSession::start(&peers, &[second.mcp_url()]);

    let answer = one.call("echo__echo", json!({"message": "shared"}));
    assert_eq!(answer["result"]["text"], "shared");
    // The first gateway's cache actor writes to Redis after answering.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let pattern = format!("{prefix}:tool_result:*");
    let mut stored = false;
    for _ in 0..200 {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            assert!(
                keys.iter().all(|k| !k.contains("shared")),
                "raw arguments in a key: {keys:?}"
            );
            stored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(stored, "nothing stored under {pattern}");

    let before = count(&counts(&mut two, "echo"), "tools/call");
    let answer = two.call("echo__echo", json!({"message": "shared"}));
    assert_eq!(answer["result"]["text"], "shared", "{answer}");
    assert_eq!(
        count(&counts(&mut two, "echo"), "tools/call"),
        before + 1,
        "the second gateway's upstream saw only the request_count call"
    );
    let _: () = redis::cmd("DEL")
        .arg(
            redis::cmd("KEYS")
                .arg(format!("{prefix}:*"))
                .query_async::<Vec<String>>(&mut conn)
                .await
                .unwrap(),
        )
        .query_async(&mut conn)
        .await
        .unwrap_or(());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_that_refuses_connections_leaves_calls_working() {
    let Some(peers) = peers() else { return };
    let gw = Gateway::start(
        &redis_config("redis://127.0.0.1:1", "bulwark:test:refused"),
        &[],
    );
    gw.wait_ready(Duration::from_secs(30)).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    for message in ["one", "one", "two"] {
        let answer = session.call("echo__echo", json!({"message": message}));
        assert_eq!(answer["result"]["text"], message, "{answer}");
    }
    list_ok(&mut session);
    let stats = structured(&session.call("bulwark__cache_status", json!({})));
    assert_eq!(stats["backend"], "redis", "{stats}");
}
