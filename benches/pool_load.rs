//! Pool throughput: `tools/call` through `/mcp` on a slow upstream that
//! serves one call at a time (`demo-server slow --serial --delay-ms 20`),
//! as a pool of 1 and of 4 instances, at concurrency 16. A pool of N should
//! come close to N times the calls per second of one instance.
//! Prints its figures; asserts nothing about speed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;

mod support;

use support::{BIN, spawn};

const RUN_FOR: Duration = Duration::from_secs(5);
const CONCURRENCY: usize = 16;
const DELAY_MS: u64 = 20;

async fn call(client: &RunningService<RoleClient, ()>) -> bool {
    client
        .peer()
        .call_tool(CallToolRequestParams::new("slow__slow"))
        .await
        .is_ok_and(|r| r.is_error != Some(true))
}

/// Waits until every instance of the pool is ready.
async fn wait_instances(base: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let ready = reqwest::get(format!("{base}/api/v1/actors"))
            .await
            .ok()
            .map(|r| r.json::<serde_json::Value>());
        if let Some(tree) = ready {
            let tree = tree.await.unwrap_or_default();
            let ready = tree["children"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|s| s["kind"] == "server_supervisor")
                .flat_map(|s| s["children"].as_array().cloned().unwrap_or_default())
                .filter(|n| n["state"] == "ready")
                .count();
            if ready == count {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("pool never became ready");
}

/// Calls per second and p50/p99 (ms) through a gateway running `instances`.
async fn run(dir: &std::path::Path, instances: usize, strategy: &str) -> (f64, f64, f64) {
    let data = dir.join(format!("data-{instances}-{strategy}"));
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {data:?}\n\
         [auth]\nenabled = false\n[guardrails]\nenabled = false\n\
         [upstreams.slow]\ncommand = {BIN:?}\n\
         args = [\"demo-server\", \"slow\", \"--serial\", \"--delay-ms\", \"{DELAY_MS}\"]\n\
         instances = {instances}\nstrategy = \"{strategy}\"\n"
    );
    let path = dir.join(format!("pool-{instances}-{strategy}.toml"));
    std::fs::write(&path, config).unwrap();
    let (_gateway, url) = spawn(
        &["serve", "--config", path.to_str().unwrap()],
        &std::fs::canonicalize(dir).unwrap(),
    );
    let base = url.trim_end_matches("/mcp").to_owned();
    wait_instances(&base, instances).await;
    let client = Arc::new(
        ().serve(StreamableHttpClientTransport::from_uri(url))
            .await
            .unwrap(),
    );
    for _ in 0..20 {
        assert!(call(&client).await, "warm-up call failed");
    }
    let start = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while start.elapsed() < RUN_FOR {
                    let t = Instant::now();
                    assert!(call(&client).await);
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    let pct =
        |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1e3;
    (all.len() as f64 / elapsed, pct(0.50), pct(0.99))
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    println!(
        "pool throughput: slow upstream serving one call at a time ({DELAY_MS} ms each), c={CONCURRENCY}, {}s per run",
        RUN_FOR.as_secs()
    );
    let (one, p50, p99) = run(dir.path(), 1, "round_robin").await;
    println!(
        "  1 instance                     {one:8.1} calls/s  p50 {p50:6.1} ms  p99 {p99:6.1} ms"
    );
    for strategy in ["round_robin", "least_connections", "power_of_two_choices"] {
        let (four, p50, p99) = run(dir.path(), 4, strategy).await;
        println!(
            "  4 instances, {strategy:<20} {four:8.1} calls/s  p50 {p50:6.1} ms  p99 {p99:6.1} ms  ({:.2}x)",
            four / one
        );
    }
}
