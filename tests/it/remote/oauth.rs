//! OAuth through the gateway: a remote upstream whose token comes from a
//! loopback authorization server that counts its token requests.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::{DemoHttp, remote_upstream, restarted_because};
use crate::common::{Gateway, PythonSession, eventually, peers};
use crate::gateway::{HEAD, wait_for_upstream};

const SECRET: &str = "gateway-test-client-secret";

/// Token endpoint: answers from a script, then with fresh tokens.
#[derive(Default)]
struct TokenEndpoint {
    requests: AtomicUsize,
    script: Mutex<VecDeque<(StatusCode, Value)>>,
    expires_in: AtomicUsize,
}

async fn token(State(server): State<Arc<TokenEndpoint>>) -> Response {
    let n = server.requests.fetch_add(1, Ordering::SeqCst) + 1;
    if let Some((status, body)) = server.script.lock().unwrap().pop_front() {
        return (status, Json(body)).into_response();
    }
    Json(json!({
        "access_token": format!("gateway-token-{n}"),
        "token_type": "Bearer",
        "expires_in": server.expires_in.load(Ordering::SeqCst),
    }))
    .into_response()
}

async fn token_endpoint(
    expires_in: usize,
    script: Vec<(StatusCode, Value)>,
) -> (Arc<TokenEndpoint>, String) {
    let server = Arc::new(TokenEndpoint::default());
    server.expires_in.store(expires_in, Ordering::SeqCst);
    server.script.lock().unwrap().extend(script);
    let app = Router::new()
        .route("/token", post(token))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (server, url)
}

fn oauth_table(token_url: &str, extra: &str) -> String {
    format!(
        "[upstreams.remote.oauth]\nclient_id = \"gateway\"\nclient_secret = \"${{BULWARK_TEST_SECRET}}\"\ntoken_url = {token_url:?}\n{extra}\n"
    )
}

fn gateway(upstream: &DemoHttp, oauth: &str) -> Gateway {
    Gateway::builder(&format!(
        "{HEAD}{}",
        remote_upstream("remote", &upstream.url(), oauth)
    ))
    .env("BULWARK_TEST_SECRET", SECRET)
    .start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_calls_need_one_token_request() {
    let Some(peers) = peers() else { return };
    let (endpoint, token_url) = token_endpoint(3600, Vec::new()).await;
    let upstream = DemoHttp::start("echo");
    let gw = gateway(&upstream, &oauth_table(&token_url, ""));
    gw.wait_ready(Duration::from_secs(60)).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    let answer = session.concurrent(100, "remote__echo", json!({"message": "hi"}));
    assert_eq!(answer["okCount"], 100, "{answer}");
    assert_eq!(endpoint.requests.load(Ordering::SeqCst), 1);

    let (_, tree) = gw.get_json("/api/v1/actors").await;
    let oauth = tree["children"]
        .as_array()
        .and_then(|c| c.iter().find(|n| n["kind"] == "token_actor"))
        .cloned()
        .unwrap_or_else(|| panic!("no token actor in {tree}"));
    assert_eq!(oauth["tokens"]["acquisitions"], 1, "{oauth}");
    assert!(oauth["tokens"]["hits"].as_u64().unwrap() >= 100, "{oauth}");
    assert!(
        !tree.to_string().contains("gateway-token-"),
        "no token in the API"
    );
    assert!(
        !gw.logs().contains("gateway-token-"),
        "no token in the logs"
    );
    assert!(!gw.logs().contains(SECRET), "no secret in the logs");
    session.quit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_refreshed_before_it_expires() {
    let Some(peers) = peers() else { return };
    let (endpoint, token_url) = token_endpoint(3, Vec::new()).await;
    let upstream = DemoHttp::start("echo");
    let gw = gateway(
        &upstream,
        &oauth_table(&token_url, "refresh_before_secs = 2"),
    );
    gw.wait_ready(Duration::from_secs(60)).await;
    assert_eq!(endpoint.requests.load(Ordering::SeqCst), 1);
    // Due a second after issue, two before expiry, with no call asking.
    assert!(
        eventually(Duration::from_secs(5), || endpoint
            .requests
            .load(Ordering::SeqCst)
            >= 2)
        .await,
        "the token was never refreshed"
    );
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    let answer = session.call("remote__echo", json!({"message": "fresh"}));
    assert_eq!(answer["result"]["text"], "fresh", "{answer}");
    session.quit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_token_endpoint_is_retried() {
    let (endpoint, token_url) = token_endpoint(
        3600,
        vec![(StatusCode::INTERNAL_SERVER_ERROR, json!({"error": "oops"}))],
    )
    .await;
    let upstream = DemoHttp::start("echo");
    let gw = gateway(&upstream, &oauth_table(&token_url, ""));
    gw.wait_ready(Duration::from_secs(60)).await;
    let node = wait_for_upstream(&gw, "remote", Duration::from_secs(10), |n| {
        n["state"] == "ready"
    })
    .await;
    assert_eq!(node["restarts"], 0, "retried inside one start: {node}");
    assert_eq!(endpoint.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_client_is_not_retried_and_the_error_says_why() {
    let (endpoint, token_url) = token_endpoint(
        3600,
        (0..10)
            .map(|_| {
                (
                    StatusCode::BAD_REQUEST,
                    json!({"error": "invalid_client", "error_description": "unknown client"}),
                )
            })
            .collect(),
    )
    .await;
    let upstream = DemoHttp::start("echo");
    let policy = "[upstreams.remote.restart]\nmax_restarts = 1\nwindow_secs = 60\nbackoff_min_ms = 10\nbackoff_max_ms = 20\nprobe_interval_secs = 3600\n";
    let gw = gateway(
        &upstream,
        &format!("{}{policy}", oauth_table(&token_url, "")),
    );
    let node = wait_for_upstream(&gw, "remote", Duration::from_secs(30), |n| {
        n["state"] == "failed"
    })
    .await;
    let last_exit = node["last_exit"].as_str().unwrap_or_default();
    assert!(
        last_exit.contains("invalid_client") && last_exit.contains("unknown client"),
        "{node}"
    );
    assert!(!last_exit.contains(SECRET), "{node}");
    // One request per start: the circuit opened after one restart.
    assert_eq!(endpoint.requests.load(Ordering::SeqCst), 2, "{node}");
    assert!(!gw.logs().contains(SECRET));
}

/// The variables of a live process.
fn environ(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', "\n"))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdio_upstream_gets_its_token_in_env_and_restarts_on_rotation() {
    let (endpoint, token_url) = token_endpoint(3, Vec::new()).await;
    let toml = format!(
        "{HEAD}{}token_env = \"UPSTREAM_TOKEN\"\n{}",
        crate::gateway::demo_upstream("tool", "\"echo\""),
        oauth_table(&token_url, "refresh_before_secs = 2").replace("remote", "tool"),
    );
    let gw = Gateway::builder(&toml)
        .env("BULWARK_TEST_SECRET", SECRET)
        .start();
    gw.wait_ready(Duration::from_secs(60)).await;
    let first = crate::gateway::demo_pid(&gw, "tool").await;
    assert!(environ(first).contains("UPSTREAM_TOKEN=gateway-token-1"));

    // The token is refreshed a second after issue; the process restarts with it.
    restarted_because(&gw, "tool", "new OAuth token").await;
    let second = crate::gateway::demo_pid(&gw, "tool").await;
    assert_ne!(first, second);
    let env = environ(second);
    assert!(
        env.contains("UPSTREAM_TOKEN=gateway-token-"),
        "the new process carries a token"
    );
    assert!(
        !env.contains("UPSTREAM_TOKEN=gateway-token-1\n"),
        "and it is a new one"
    );
    assert!(endpoint.requests.load(Ordering::SeqCst) >= 2);
    assert!(
        !gw.logs().contains("gateway-token-"),
        "no token in the logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_rotations_are_not_crashes_and_let_calls_in_flight_finish() {
    let Some(peers) = peers() else { return };
    let (_endpoint, token_url) = token_endpoint(3, Vec::new()).await;
    // One crash allowed: counted as crashes, the rotations would open the circuit.
    let toml = format!(
        "{HEAD}{}token_env = \"UPSTREAM_TOKEN\"\n[upstreams.tool.restart]\nmax_restarts = 1\nwindow_secs = 600\n{}",
        crate::gateway::demo_upstream("tool", "\"slow\", \"--delay-ms\", \"1500\""),
        oauth_table(&token_url, "refresh_before_secs = 2").replace("remote", "tool"),
    );
    let gw = Gateway::builder(&toml)
        .env("BULWARK_TEST_SECRET", SECRET)
        .start();
    gw.wait_ready(Duration::from_secs(60)).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    // The token rotates about every second: each 1.5 s call spans a rotation.
    let mut done = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while done < 2 {
        assert!(tokio::time::Instant::now() < deadline, "{}", gw.logs());
        wait_for_upstream(&gw, "tool", Duration::from_secs(30), |n| {
            n["state"] == "ready"
        })
        .await;
        let answer = session.call_timeout("tool__slow", json!({}), Duration::from_secs(30));
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        // Refused at the door while a rotation drains: not a call in flight.
        if message.contains("unavailable") {
            continue;
        }
        assert_eq!(answer["ok"], true, "a call in flight failed: {answer}");
        done += 1;
    }
    let node = wait_for_upstream(&gw, "tool", Duration::from_secs(30), |n| {
        n["restarts"].as_u64().unwrap_or(0) >= 3 && n["state"] == "ready"
    })
    .await;
    assert!(
        node["last_exit"]
            .as_str()
            .unwrap_or_default()
            .contains("new OAuth token"),
        "{node}"
    );
    session.quit();
}
