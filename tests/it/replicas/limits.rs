//! With `backend = "redis"` each rate limit (per key, per key and upstream,
//! per key and tool) is one budget across replicas; with Redis unreachable
//! each replica falls back to its own limiter and says so.
use std::time::Duration;

use serde_json::{Value, json};

use super::initialize_status;
use crate::auth::TestKey;
use crate::common::{self, Gateway};
use crate::gateway::{HEAD, demo_upstream};

/// The per-key budget: N requests per minute (burst N).
const N: u64 = 6;

fn config(key: &TestKey, redis_url: &str) -> String {
    format!(
        "{HEAD}{}[auth.rate_limits]\nper_key = {{ per_minute = {N} }}\nbackend = \"redis\"\nredis_url = {redis_url:?}\n",
        key.entry("alice", "admin", false)
    )
}

async fn start(n: usize, config: &str) -> Vec<Gateway> {
    let nodes: Vec<Gateway> = (0..n)
        .map(|_| Gateway::builder(config).with_auth().start())
        .collect();
    for node in &nodes {
        node.wait_ready(Duration::from_secs(60)).await;
    }
    nodes
}

/// Sends `count` requests round robin over `nodes` → how many were admitted,
/// and how many more the budget could have refilled meanwhile.
async fn admitted(nodes: &[Gateway], key: &TestKey, count: u64) -> (u64, u64) {
    let started = std::time::Instant::now();
    let mut admitted = 0;
    for i in 0..count {
        let node = &nodes[usize::try_from(i).unwrap() % nodes.len()];
        match initialize_status(node, &key.secret).await {
            200 => admitted += 1,
            429 => {}
            other => panic!("unexpected status {other} from {}", node.base_url()),
        }
    }
    (admitted, started.elapsed().as_secs() * N / 60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_key_limit_of_n_per_minute_admits_at_most_n_across_three_replicas() {
    if common::require_redis().is_none() {
        return;
    }
    // A fresh key: a fresh bucket in Redis.
    let key = TestKey::new();
    let nodes = start(3, &config(&key, "redis://127.0.0.1:6379")).await;
    let (admitted, refilled) = admitted(&nodes, &key, 3 * N).await;
    // Each replica alone would admit N (3N in all); shared, N in all.
    assert!(
        admitted >= N && admitted <= N + refilled,
        "admitted {admitted} of {} (limit {N}, refilled {refilled})",
        3 * N
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_unreachable_each_replica_falls_back_to_its_local_limit_and_says_so() {
    let key = TestKey::new();
    // Nothing listens there.
    let url = format!("redis://127.0.0.1:{}", common::free_port());
    let nodes = start(1, &config(&key, &url)).await;
    let (admitted, refilled) = admitted(&nodes, &key, 2 * N).await;
    assert!(
        admitted >= N && admitted <= N + refilled,
        "local fallback admitted {admitted} (limit {N})"
    );
    assert!(
        nodes[0].wait_for_log(
            "falling back to this replica's local limiter",
            Duration::from_secs(10)
        ),
        "no fallback warning:\n{}",
        nodes[0].logs()
    );
    let (status, text) = crate::telemetry::scrape_with(&nodes[0], Some(&key.secret)).await;
    assert_eq!(status, 200, "{text}");
    let samples = crate::telemetry::parse(&text);
    let fallbacks = crate::telemetry::value(&samples, "bulwark_ratelimit_fallbacks_total", &[]);
    assert!(
        fallbacks >= (2 * N) as f64,
        "fallbacks {fallbacks}:\n{text}"
    );
}

/// One POST of `body` to `gw`'s `/mcp` as `key` → (status, session id, the
/// JSON-RPC answer from a JSON or SSE body, or Null).
async fn post_as(
    gw: &Gateway,
    key: &TestKey,
    session: Option<&str>,
    body: &Value,
) -> (u16, Option<String>, Value) {
    let mut request = gw
        .http()
        .post(gw.mcp_url())
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2025-06-18")
        .header("Authorization", format!("Bearer {}", key.secret))
        .json(body);
    if let Some(session) = session {
        request = request.header("Mcp-Session-Id", session);
    }
    let response = request.send().await.expect("POST /mcp");
    let status = response.status().as_u16();
    let id = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.unwrap_or_default();
    let answer = serde_json::from_str(&text).unwrap_or_else(|_| {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|m| m.get("id").is_some())
            .unwrap_or(Value::Null)
    });
    (status, id, answer)
}

/// Opens a session on every node as `key` → their ids.
async fn open_sessions(nodes: &[Gateway], key: &TestKey) -> Vec<String> {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "replica-limits", "version": "1"}}});
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let mut sessions = Vec::new();
    for node in nodes {
        let (status, id, answer) = post_as(node, key, None, &init).await;
        assert_eq!(status, 200, "{answer}");
        let id = id.expect("a session id");
        let (status, _, _) = post_as(node, key, Some(&id), &initialized).await;
        assert_eq!(status, 202);
        sessions.push(id);
    }
    sessions
}

/// Calls `tool` `count` times round robin over `nodes` (one session on
/// each) → how many were admitted, and how many more the budget of `n` per
/// minute could have refilled meanwhile. Every refusal must name `limit`.
async fn calls_admitted(
    nodes: &[Gateway],
    key: &TestKey,
    tool: &str,
    count: u64,
    n: u64,
    limit: &str,
) -> (u64, u64) {
    let sessions = open_sessions(nodes, key).await;
    let arguments = if tool.ends_with("__add") {
        json!({"a": 1, "b": 2})
    } else {
        json!({"message": "m"})
    };
    let started = std::time::Instant::now();
    let mut admitted = 0;
    for i in 0..count {
        let at = usize::try_from(i).unwrap() % nodes.len();
        let call = json!({"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments}});
        let (status, _, answer) = post_as(&nodes[at], key, Some(&sessions[at]), &call).await;
        assert_eq!(status, 200, "{answer}");
        if answer.get("result").is_some() {
            admitted += 1;
        } else {
            assert_eq!(answer["error"]["data"]["limit"], limit, "{answer}");
        }
    }
    (admitted, started.elapsed().as_secs() * n / 60)
}

/// Three replicas sharing the budgets `limits` (TOML inside
/// `[auth.rate_limits]`) in Redis, with the echo demo upstream.
async fn start_with_limits(key: &TestKey, limits: &str) -> Vec<Gateway> {
    let config = format!(
        "{HEAD}{}{}[auth.rate_limits]\n{limits}backend = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\n",
        key.entry("alice", "admin", false),
        demo_upstream("echo", "\"echo\""),
    );
    start(3, &config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_tool_limit_of_n_per_minute_admits_at_most_n_calls_across_three_replicas() {
    if common::require_redis().is_none() {
        return;
    }
    let key = TestKey::new();
    let limits = format!("per_tool = {{ \"echo__echo\" = {{ per_minute = {N} }} }}\n");
    let nodes = start_with_limits(&key, &limits).await;
    let (admitted, refilled) =
        calls_admitted(&nodes, &key, "echo__echo", 3 * N, N, "per_tool").await;
    // Each replica alone would admit N (3N in all); shared, N in all.
    assert!(
        admitted >= N && admitted <= N + refilled,
        "admitted {admitted} of {} (limit {N}, refilled {refilled})",
        3 * N
    );
    // Another tool of that upstream has no such limit.
    let (admitted, _) = calls_admitted(&nodes, &key, "echo__add", N + 1, N, "none").await;
    assert_eq!(admitted, N + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_upstream_limit_of_n_per_minute_admits_at_most_n_calls_across_three_replicas() {
    if common::require_redis().is_none() {
        return;
    }
    let key = TestKey::new();
    let limits = format!("per_upstream = {{ per_minute = {N} }}\n");
    let nodes = start_with_limits(&key, &limits).await;
    let (admitted, refilled) =
        calls_admitted(&nodes, &key, "echo__add", 3 * N, N, "per_upstream").await;
    assert!(
        admitted >= N && admitted <= N + refilled,
        "admitted {admitted} of {} (limit {N}, refilled {refilled})",
        3 * N
    );
}
