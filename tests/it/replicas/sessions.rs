//! With `[sessions] backend = "redis"` a client session opened on one
//! replica keeps working on another, also after its replica died (raw
//! streamable HTTP, so the test picks the replica of each request).
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::common::{self, Gateway};
use crate::gateway::{HEAD, demo_upstream};

const PROTOCOL: &str = "2025-06-18";

/// One POST of `body` to `gw`'s `/mcp` on `session` → (status, headers, the
/// JSON-RPC answer from a JSON or SSE body, or Null).
async fn post(gw: &Gateway, session: Option<&str>, body: &Value) -> (u16, HeaderMap, Value) {
    post_attempt(gw, session, None, body).await
}

/// [`post`] with the load balancer's `Bulwark-Attempt` id, when given.
async fn post_attempt(
    gw: &Gateway,
    session: Option<&str>,
    attempt: Option<&str>,
    body: &Value,
) -> (u16, HeaderMap, Value) {
    let mut request = gw
        .http()
        .post(gw.mcp_url())
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", PROTOCOL)
        .json(body);
    if let Some(session) = session {
        request = request.header("Mcp-Session-Id", session);
    }
    if let Some(attempt) = attempt {
        request = request.header("Bulwark-Attempt", attempt);
    }
    let response = request.send().await.expect("POST /mcp");
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let text = response.text().await.unwrap_or_default();
    let answer = serde_json::from_str(&text).unwrap_or_else(|_| {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|m| m.get("id").is_some())
            .unwrap_or(Value::Null)
    });
    (status, headers, answer)
}

/// Opens a session on `gw` → its id.
pub async fn open(gw: &Gateway) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": PROTOCOL, "capabilities": {},
        "clientInfo": {"name": "replica-sessions", "version": "1"}}});
    let (status, headers, answer) = post(gw, None, &init).await;
    assert_eq!(status, 200, "{answer}");
    let session = headers["mcp-session-id"].to_str().unwrap().to_owned();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let (status, _, _) = post(gw, Some(&session), &initialized).await;
    assert_eq!(status, 202);
    session
}

/// Calls `echo__echo` on `gw` within `session` → the echoed text.
async fn echo(gw: &Gateway, session: &str, id: u64, message: &str) -> Value {
    let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "echo__echo", "arguments": {"message": message}}});
    let (status, _, answer) = post(gw, Some(session), &call).await;
    assert_eq!(status, 200, "{answer}");
    answer["result"]["content"][0]["text"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_continues_on_another_replica_and_outlives_its_replica() {
    if common::require_redis().is_none() {
        return;
    }
    let config = format!(
        "{HEAD}{}[sessions]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\n",
        demo_upstream("echo", "\"echo\"")
    );
    let nodes: Vec<Gateway> = (0..2).map(|_| Gateway::start(&config, &[])).collect();
    for node in &nodes {
        node.wait_ready(Duration::from_secs(60)).await;
    }
    let session = open(&nodes[0]).await;
    assert_eq!(echo(&nodes[0], &session, 2, "here").await, "here");
    // The load balancer moves the client: the other replica continues it.
    assert_eq!(echo(&nodes[1], &session, 3, "there").await, "there");
    assert_eq!(echo(&nodes[0], &session, 4, "back").await, "back");

    // The replica that opened it dies: the session lives on.
    killpg(Pid::from_raw(nodes[0].pid()), Signal::SIGKILL).unwrap();
    assert_eq!(echo(&nodes[1], &session, 5, "after").await, "after");

    // An unknown id is still refused.
    let call = json!({"jsonrpc": "2.0", "id": 6, "method": "tools/list"});
    let (status, _, _) = post(&nodes[1], Some("no-such-session"), &call).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_session_is_refused_to_another_caller() {
    if common::require_redis().is_none() {
        return;
    }
    let (alice, bob) = (crate::auth::TestKey::new(), crate::auth::TestKey::new());
    let config = format!(
        "{HEAD}{}{}{}[sessions]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\n",
        demo_upstream("echo", "\"echo\""),
        alice.entry("alice", "admin", false),
        bob.entry("bob", "admin", false),
    );
    let nodes: Vec<Gateway> = (0..2)
        .map(|_| Gateway::builder(&config).with_auth().start())
        .collect();
    for node in &nodes {
        node.wait_ready(Duration::from_secs(60)).await;
    }
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": PROTOCOL, "capabilities": {},
        "clientInfo": {"name": "replica-sessions", "version": "1"}}});
    let opened = nodes[0]
        .http()
        .post(nodes[0].mcp_url())
        .header("Accept", "application/json, text/event-stream")
        .header("X-API-Key", &alice.secret)
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 200);
    let session = opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let as_caller = |key: &str| {
        nodes[1]
            .http()
            .post(nodes[1].mcp_url())
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", PROTOCOL)
            .header("Mcp-Session-Id", &session)
            .header("X-API-Key", key.to_owned())
            .json(&list)
            .send()
    };
    assert_eq!(as_caller(&bob.secret).await.unwrap().status(), 403);
    assert_eq!(as_caller(&alice.secret).await.unwrap().status(), 200);
}

/// The `tools/call` count of the one remote upstream both replicas share.
async fn upstream_calls(gw: &Gateway, session: &str, id: u64) -> u64 {
    let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "echo__request_count", "arguments": {}}});
    let (status, _, answer) = post(gw, Some(session), &call).await;
    assert_eq!(status, 200, "{answer}");
    let counts: Value =
        serde_json::from_str(answer["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    counts["tools/call"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_call_attempt_runs_on_no_second_replica() {
    if common::require_redis().is_none() {
        return;
    }
    // One upstream behind both replicas, so its count is every run of a tool.
    let upstream = crate::remote::DemoHttp::start("echo");
    let config = format!(
        "{HEAD}[upstreams.echo]\nurl = {:?}\n[sessions]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\n",
        upstream.url()
    );
    let nodes: Vec<Gateway> = (0..2).map(|_| Gateway::start(&config, &[])).collect();
    for node in &nodes {
        node.wait_ready(Duration::from_secs(60)).await;
    }
    let session = open(&nodes[0]).await;
    let attempt = format!("test-{}", std::process::id());
    let call = |id: u64, message: &str| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "echo__echo", "arguments": {"message": message}}})
    };
    let before = upstream_calls(&nodes[0], &session, 2).await;

    // The first replica to see the attempt serves it.
    let (status, _, answer) =
        post_attempt(&nodes[0], Some(&session), Some(&attempt), &call(3, "once")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["content"][0]["text"], "once", "{answer}");
    // The claim outlives the answered call by about a minute, not ten.
    let ttl_ms = attempt_ttl_ms(&attempt).await;
    assert!((1..=60_000).contains(&ttl_ms), "claim kept {ttl_ms} ms");
    // A load balancer's replay of it on another replica (or the same) does not run.
    for node in &nodes {
        let (status, _, answer) =
            post_attempt(node, Some(&session), Some(&attempt), &call(4, "once")).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["error"]["code"], -32002, "{answer}");
        assert_eq!(answer["error"]["data"]["reason"], "replayed", "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("may have run"),
            "{answer}"
        );
    }
    // Another attempt id runs, and so does a call without one.
    let fresh = format!("{attempt}-2");
    let (_, _, answer) =
        post_attempt(&nodes[1], Some(&session), Some(&fresh), &call(5, "fresh")).await;
    assert_eq!(answer["result"]["content"][0]["text"], "fresh", "{answer}");
    assert_eq!(echo(&nodes[1], &session, 6, "plain").await, "plain");
    // The upstream ran echo three times, plus the two counting calls.
    assert_eq!(upstream_calls(&nodes[1], &session, 7).await, before + 4);
}

/// How long Redis keeps the claim of `attempt` (`PTTL`: -2 when gone).
async fn attempt_ttl_ms(attempt: &str) -> i64 {
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("PTTL")
        .arg(format!("bulwark:attempt:{attempt}"))
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_is_renewed_while_its_call_runs_and_lapses_after() {
    use bulwark::mcp::attempts::{self, LeaseTiming};
    use bulwark::mcp::directory::{Directory, SessionsBackend, SessionsConfig};
    if common::require_redis().is_none() {
        return;
    }
    let config = SessionsConfig {
        backend: SessionsBackend::Redis,
        redis_url: Some("redis://127.0.0.1:6379".into()),
        ..SessionsConfig::default()
    };
    let directory = Directory::from_config(&config, None).unwrap().unwrap();
    let timing = LeaseTiming {
        ttl: Duration::from_millis(800),
        renew_every: Duration::from_millis(200),
    };
    let attempt = format!("lease-{}-{}", std::process::id(), fastrand::u64(..));
    let claim = attempts::claim_attempt(&directory, &attempt, timing)
        .await
        .unwrap();
    // Held (its call running) three times its lifetime, the claim stays: a
    // replay then is refused.
    tokio::time::sleep(Duration::from_millis(2_400)).await;
    let replay = attempts::claim_attempt(&directory, &attempt, timing).await;
    assert!(
        matches!(replay, Err(bulwark::mcp::error::GatewayError::Replayed)),
        "{replay:?}"
    );
    let ttl_ms = attempt_ttl_ms(&attempt).await;
    assert!((1..=800).contains(&ttl_ms), "claim kept {ttl_ms} ms");
    // Nothing renews it once the call has ended: it lapses within its ttl.
    drop(claim);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while attempt_ttl_ms(&attempt).await != -2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the claim was still there 5 s after its call ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Once lapsed, the id can be claimed again.
    assert!(
        attempts::claim_attempt(&directory, &attempt, timing)
            .await
            .is_ok()
    );
}
