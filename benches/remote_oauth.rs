//! Load scenario: `tools/call` through the gateway to a remote upstream (the
//! demo echo served over streamable HTTP), once with an OAuth token from the
//! cache on every request and once without OAuth. Rounds alternate between
//! the two so machine noise hits both alike. Also times the token path on
//! its own (`TokenSource::bearer` on a cached token). Prints its figures;
//! asserts nothing about speed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bulwark_actors::oauth::{OAuthSpec, Tokens};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;

mod support;

use support::{Proc, spawn};
const ROUND: Duration = Duration::from_secs(2);
const ROUNDS: usize = 5;

/// A loopback token endpoint issuing hour-long tokens; counts requests.
async fn token_endpoint(requests: Arc<AtomicUsize>) -> String {
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(move || {
            let n = requests.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                axum::Json(serde_json::json!({
                    "access_token": format!("bench-token-{n}"),
                    "token_type": "Bearer",
                    "expires_in": 3600,
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn client(url: &str) -> RunningService<RoleClient, ()> {
    ().serve(StreamableHttpClientTransport::from_uri(url.to_owned()))
        .await
        .unwrap()
}

async fn echo(client: &RunningService<RoleClient, ()>) {
    let mut params = CallToolRequestParams::new("remote__echo");
    params.arguments = serde_json::json!({"message": "bench"}).as_object().cloned();
    let result = client.peer().call_tool(params).await.unwrap();
    assert_ne!(result.is_error, Some(true));
}

/// Calls for one round; returns the per-call latencies in microseconds.
async fn round(client: &RunningService<RoleClient, ()>) -> Vec<f64> {
    let start = Instant::now();
    let mut latencies = Vec::new();
    while start.elapsed() < ROUND {
        let t = Instant::now();
        echo(client).await;
        latencies.push(t.elapsed().as_secs_f64() * 1e6);
    }
    latencies
}

fn gateway(
    dir: &std::path::Path,
    name: &str,
    upstream: &str,
    oauth: Option<&str>,
) -> (Proc, String) {
    let mut toml =
        format!("[server]\nlisten = \"127.0.0.1:0\"\n[upstreams.remote]\nurl = {upstream:?}\n");
    if let Some(token_url) = oauth {
        toml.push_str(&format!(
            "[upstreams.remote.oauth]\nclient_id = \"bench\"\nclient_secret = \"bench-secret\"\ntoken_url = {token_url:?}\n"
        ));
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, toml).unwrap();
    spawn(&["serve", "--config", path.to_str().unwrap()], dir)
}

async fn wait_ready(mcp_url: &str) {
    let base = mcp_url.trim_end_matches("/mcp");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let ready = http.get(format!("{base}/ready")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("gateway never became ready");
}

fn summary(samples: &mut [f64]) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    (mean, samples[samples.len() / 2])
}

/// Cost of the token path alone: a cache hit in `TokenSource::bearer`.
async fn bearer_cost(token_url: String) -> f64 {
    let tokens = Tokens::new();
    tokens.spawn(None).await.unwrap();
    let mut spec = OAuthSpec::basic("bench", "bench-secret");
    spec.token_url = Some(token_url);
    let source = tokens.source("bench", spec, None).unwrap();
    source.bearer().await.unwrap();
    const N: u32 = 1_000_000;
    let start = Instant::now();
    for _ in 0..N {
        std::hint::black_box(source.bearer().await.unwrap());
    }
    start.elapsed().as_secs_f64() * 1e9 / f64::from(N)
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let token_url = token_endpoint(requests.clone()).await;
    let (_upstream, upstream_url) = spawn(
        &["demo-server", "echo", "--http", "127.0.0.1:0"],
        dir.path(),
    );
    let (_plain, plain_url) = gateway(dir.path(), "plain", &upstream_url, None);
    let (_oauth, oauth_url) = gateway(dir.path(), "oauth", &upstream_url, Some(&token_url));
    wait_ready(&plain_url).await;
    wait_ready(&oauth_url).await;
    let plain = client(&plain_url).await;
    let oauth = client(&oauth_url).await;
    for _ in 0..200 {
        echo(&plain).await;
        echo(&oauth).await;
    }
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        without.extend(round(&plain).await);
        with.extend(round(&oauth).await);
    }
    let (plain_mean, plain_p50) = summary(&mut without);
    let (oauth_mean, oauth_p50) = summary(&mut with);
    println!(
        "tools/call through a remote upstream, concurrency 1, {ROUNDS} alternating rounds of {ROUND:?}:"
    );
    println!(
        "  without OAuth:       mean {plain_mean:8.1} µs  p50 {plain_p50:8.1} µs  ({} calls)",
        without.len()
    );
    println!(
        "  with a cached token: mean {oauth_mean:8.1} µs  p50 {oauth_p50:8.1} µs  ({} calls)",
        with.len()
    );
    println!(
        "  difference:          mean {:+8.1} µs  p50 {:+8.1} µs",
        oauth_mean - plain_mean,
        oauth_p50 - plain_p50
    );
    println!(
        "  token endpoint requests during the run: {}",
        requests.load(Ordering::SeqCst)
    );
    println!(
        "token path alone (TokenSource::bearer, cache hit): {:.0} ns per call",
        bearer_cost(token_url).await
    );
}
