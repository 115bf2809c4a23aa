//! Load scenario: `tools/call` on the demo echo upstream through `/mcp`,
//! against the same demo echo served directly over streamable HTTP (the
//! floor), at concurrency 1 and 32; plus the gateway's RSS idle and with 100
//! upstreams, the time from an upstream crash to its first successful call,
//! the cost of the security plane (API key + rate limits + local guardrails
//! on, against all of them off), and `tools/list` over five upstreams with a
//! warm list cache against a cold one.
//! Prints its figures; asserts nothing about speed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

#[path = "callgrind/mod.rs"]
mod callgrind;
#[path = "gateway_load_audit/mod.rs"]
mod gateway_load_audit;
#[path = "hot_path/mod.rs"]
mod hot_path;
mod support;
#[path = "tracing_cost/mod.rs"]
mod tracing_cost;

use support::{BIN, spawn, status_kib, wait_ready};
const RUN_FOR: Duration = Duration::from_secs(4);

async fn client(url: &str) -> RunningService<RoleClient, ()> {
    keyed_client(url, None).await
}

/// When set, clients speak stateless 2026-07-28 (`server/discover`, no
/// session) instead of `initialize` and a session.
static STATELESS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// When set, clients keep their HTTP connections (a pooling `reqwest`
/// client, as the TypeScript and Python SDKs' HTTP stacks do) instead of
/// rmcp's default client, which opens a connection per request.
static POOLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A client that sends `key` as `Authorization: Bearer` when given.
async fn keyed_client(url: &str, key: Option<&str>) -> RunningService<RoleClient, ()> {
    use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
    if let Some(key) = key {
        config = config.auth_header(key.to_owned());
    }
    let transport = if POOLED.load(std::sync::atomic::Ordering::Relaxed) {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .unwrap();
        StreamableHttpClientTransport::with_client(http, config)
    } else {
        StreamableHttpClientTransport::from_config(config)
    };
    if STATELESS.load(std::sync::atomic::Ordering::Relaxed) {
        let lifecycle = ClientLifecycleMode::Discover {
            preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
        };
        return ().serve_with_lifecycle(transport, lifecycle).await.unwrap();
    }
    ().serve(transport).await.unwrap()
}

async fn echo(client: &RunningService<RoleClient, ()>, tool: &str) -> bool {
    let mut params = CallToolRequestParams::new(tool.to_owned());
    params.arguments = serde_json::json!({"message": "bench"}).as_object().cloned();
    client
        .peer()
        .call_tool(params)
        .await
        .is_ok_and(|r| r.is_error != Some(true))
}

struct Figures {
    calls: usize,
    calls_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
}

async fn load(url: &str, tool: &str, concurrency: usize) -> Figures {
    load_with(url, None, tool, concurrency, None).await
}

/// Calls `tool` at `concurrency` for `RUN_FOR`; with `cost`, records what
/// process `pid` spent during the run (CPU ticks, thread switches).
async fn load_with(
    url: &str,
    key: Option<&str>,
    tool: &str,
    concurrency: usize,
    cost: Option<(&[u32], &mut Vec<hot_path::ProcessCost>)>,
) -> Figures {
    /// Calls made before the run is measured.
    const WARM_UP_CALLS: usize = 200;
    let client = Arc::new(keyed_client(url, key).await);
    for _ in 0..WARM_UP_CALLS {
        assert!(echo(&client, tool).await, "warm-up call failed");
    }
    let cost_before: Option<Vec<_>> = cost.as_ref().map(|(pids, _)| {
        pids.iter()
            .map(|pid| hot_path::ProcessCost::now(*pid))
            .collect()
    });
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = client.clone();
            let tool = tool.to_owned();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while start.elapsed() < RUN_FOR {
                    let t = Instant::now();
                    assert!(echo(&client, &tool).await);
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
    if let (Some((pids, spent)), Some(before)) = (cost, cost_before) {
        *spent = pids
            .iter()
            .zip(&before)
            .map(|(pid, before)| hot_path::ProcessCost::now(*pid).since(before))
            .collect();
    }
    all.sort();
    let pct =
        |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1e6;
    Figures {
        calls: all.len(),
        calls_per_sec: all.len() as f64 / elapsed,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    }
}

/// `tools/list` on `url` for `RUN_FOR`, one call at a time.
async fn list_load(url: &str) -> Figures {
    let client = client(url).await;
    let mut latencies = Vec::new();
    let start = Instant::now();
    while start.elapsed() < RUN_FOR {
        let t = Instant::now();
        let tools = client.peer().list_tools(None).await.unwrap();
        assert!(tools.tools.len() >= 15, "five upstreams' tools");
        latencies.push(t.elapsed());
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64()
            * 1e6
    };
    Figures {
        calls: latencies.len(),
        calls_per_sec: latencies.len() as f64 / elapsed,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    }
}

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// What the gateway checks on each call.
#[derive(Clone, Copy, PartialEq)]
enum Security {
    /// Authentication and guardrails off: the bare request path.
    Off,
    /// An API key with rate limits (high enough never to refuse), and the
    /// default local guardrails on inputs, outputs and tool lists.
    On,
}

fn config(dir: &std::path::Path, upstreams: usize, security: Security, key_hash: &str) -> String {
    // A one-second restart window, so each crash sample below is a lone crash
    // (restarted at once) rather than a repeat (backed off). State goes to
    // the bench's temp dir.
    let security_toml = match security {
        Security::Off => "[auth]\nenabled = false\n[guardrails]\nenabled = false\n".to_owned(),
        Security::On => format!(
            "[auth]\nenabled = true\n[[auth.keys]]\nid = \"bench\"\nhash = {key_hash:?}\nuser = \"bench\"\nproject = \"admin\"\n\
             [auth.rate_limits]\nper_key = {{ per_minute = 60000000, burst = 1000000 }}\n\
             per_upstream = {{ per_minute = 60000000, burst = 1000000 }}\n"
        ),
    };
    let mut toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {data:?}\n{security_toml}[supervision]\nwindow_secs = 1\n",
        data = dir.join("data").display().to_string(),
    );
    for i in 0..upstreams {
        let name = if i == 0 {
            "echo".to_owned()
        } else {
            format!("echo{i}")
        };
        toml.push_str(&format!(
            "[upstreams.{name}]\ncommand = {BIN:?}\nargs = [\"demo-server\", \"echo\"]\n"
        ));
    }
    let on = if security == Security::On {
        "-secure"
    } else {
        ""
    };
    let path = dir.join(format!("bench-{upstreams}{on}.toml"));
    std::fs::write(&path, toml).unwrap();
    path.display().to_string()
}

async fn upstream_pid(base: &str) -> i32 {
    let tree: serde_json::Value = reqwest::get(format!("{base}/api/v1/actors"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let server = tree["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|node| node["kind"] == "server_supervisor")
        .unwrap();
    let tail = server["children"][0]["stderr_tail"]
        .as_array()
        .unwrap()
        .clone();
    tail.iter()
        .rev()
        .find_map(|l| {
            l.as_str()?
                .split("pid=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap()
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    if std::env::var_os("BULWARK_BENCH_AUDIT_ONLY").is_some() {
        audit_cost(dir.path()).await;
        return;
    }
    if std::env::var_os("BULWARK_BENCH_METRICS_ONLY").is_some() {
        metrics_cost(dir.path()).await;
        return;
    }
    if std::env::var_os("BULWARK_BENCH_CALLGRIND").is_some() {
        return callgrind::run(dir.path()).await;
    }
    if std::env::var_os("BULWARK_BENCH_TRACING_ONLY").is_some() {
        return tracing_cost::run(dir.path()).await;
    }
    if std::env::var_os("BULWARK_BENCH_HOT_PATH_ONLY").is_none() {
        scenario(dir.path()).await;
    }
    let key = bulwark::auth::keys::generate().unwrap();
    if let Some(seconds) = std::env::var("BULWARK_BENCH_PROFILE")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return hot_path::profile(&key, dir.path(), seconds).await;
    }
    if let Some(rounds) = std::env::var("BULWARK_BENCH_AB")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return hot_path::ab(&key, dir.path(), rounds).await;
    }
    let builds = hot_path::builds();
    let mut reports = Vec::new();
    for build in &builds {
        reports.push(hot_path::run(build, &key, dir.path()).await);
    }
    hot_path::compare(&builds, &reports);
}

/// The per-call audit's cost: keyed calls (security plane on) with
/// `[audit] mcp_calls` on and off, interleaved so drift hits both alike;
/// then the drop counter under a slow sink.
async fn audit_cost(dir: &std::path::Path) {
    let key = bulwark::auth::keys::generate().unwrap();
    let secure = config(dir, 1, Security::On, &key.hash.to_stored());
    let audited_path = dir.join("bench-audited.toml");
    let mut audited = std::fs::read_to_string(&secure).unwrap();
    audited.push_str("[audit]\nmcp_calls = true\n");
    std::fs::write(&audited_path, audited).unwrap();
    let (off_gw, off_url) = spawn(&["serve", "--config", &secure], dir);
    wait_ready(off_url.trim_end_matches("/mcp")).await;
    let (on_gw, on_url) = spawn(
        &["serve", "--config", &audited_path.display().to_string()],
        dir,
    );
    let on_base = on_url.trim_end_matches("/mcp").to_owned();
    wait_ready(&on_base).await;
    compare_on_off(
        "per-call audit on vs off (API key + limits + guardrails on in both)",
        (&off_url, off_gw.0.id()),
        (&on_url, on_gw.0.id()),
        &key.secret,
    )
    .await;
    let audit: serde_json::Value = reqwest::Client::new()
        .get(format!("{on_base}/api/v1/audit?action=mcp.call&limit=1"))
        .bearer_auth(&key.secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    println!(
        "  audited calls stored: {}, dropped: {}",
        audit["total"], audit["mcp_calls"]["dropped"]
    );
    gateway_load_audit::slow_sink(1024, Duration::from_secs(2)).await;
}

/// Throughput and the gateway's own CPU per call of two gateways (`off`
/// and `on`: URL and PID), interleaved so drift hits both alike. The CPU
/// ratio is the figure to trust on a busy machine: it leaves out the client
/// and the rest of the machine.
async fn compare_on_off(title: &str, off: (&str, u32), on: (&str, u32), secret: &str) {
    println!("{title}, {} s runs:", RUN_FOR.as_secs());
    for concurrency in [1, 32] {
        let (mut off_runs, mut on_runs) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            off_runs.push(
                hot_path::measured(off.1, off.0, Some(secret), "echo__echo", concurrency).await,
            );
            on_runs.push(
                hot_path::measured(on.1, on.0, Some(secret), "echo__echo", concurrency).await,
            );
        }
        let rate = |v: &[hot_path::Measured]| {
            v.iter().map(|m| m.figures.calls_per_sec).sum::<f64>() / v.len() as f64
        };
        let cpu = |v: &[hot_path::Measured]| {
            v.iter().map(|m| m.cpu_us_per_call).sum::<f64>() / v.len() as f64
        };
        println!(
            "  c={concurrency}: off {:.0} calls/s, on {:.0} calls/s: on is {:.3} of off; gateway CPU per call off {:.1} µs, on {:.1} µs: on costs {:+.1}%",
            rate(&off_runs),
            rate(&on_runs),
            rate(&on_runs) / rate(&off_runs),
            cpu(&off_runs),
            cpu(&on_runs),
            (cpu(&on_runs) / cpu(&off_runs) - 1.0) * 100.0
        );
    }
}

/// The metrics' cost (`BULWARK_BENCH_METRICS_ONLY=1`): the same build with
/// `[telemetry] metrics = false` against the default (metrics on), with a
/// scrape of `/metrics` every second during the "on" runs' lifetime.
async fn metrics_cost(dir: &std::path::Path) {
    let key = bulwark::auth::keys::generate().unwrap();
    let secure = config(dir, 1, Security::On, &key.hash.to_stored());
    let off_path = dir.join("bench-metrics-off.toml");
    let mut off = std::fs::read_to_string(&secure).unwrap();
    off.push_str("\n[telemetry]\nmetrics = false\n");
    std::fs::write(&off_path, off).unwrap();
    let (off_gw, off_url) = spawn(&["serve", "--config", &off_path.display().to_string()], dir);
    wait_ready(off_url.trim_end_matches("/mcp")).await;
    let (on_gw, on_url) = spawn(&["serve", "--config", &secure], dir);
    let on_base = on_url.trim_end_matches("/mcp").to_owned();
    wait_ready(&on_base).await;
    let scraper = {
        let (base, secret) = (on_base.clone(), key.secret.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            loop {
                let _ = http
                    .get(format!("{base}/metrics"))
                    .bearer_auth(&secret)
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    compare_on_off(
        "metrics on (scraped every second) vs off (API key + limits + guardrails on in both)",
        (&off_url, off_gw.0.id()),
        (&on_url, on_gw.0.id()),
        &key.secret,
    )
    .await;
    scraper.abort();
}

/// The original scenario (this build only).
async fn scenario(dir: &std::path::Path) {
    let (_floor, floor_url) = spawn(&["demo-server", "echo", "--http", "127.0.0.1:0"], dir);
    let key = bulwark::auth::keys::generate().unwrap();
    let hash = key.hash.to_stored();
    let (gateway, gw_url) = spawn(
        &["serve", "--config", &config(dir, 1, Security::Off, &hash)],
        dir,
    );
    let base = gw_url.trim_end_matches("/mcp").to_owned();
    wait_ready(&base).await;
    let idle_rss = rss_kib(gateway.0.id());

    println!("tools/call echo, {} s per run", RUN_FOR.as_secs());
    println!(
        "{:<28}{:>12}{:>12}{:>12}{:>10}",
        "", "calls/s", "p50 µs", "p99 µs", "ratio"
    );
    for concurrency in [1, 32] {
        let floor = load(&floor_url, "echo", concurrency).await;
        let through = load(&gw_url, "echo__echo", concurrency).await;
        for (label, f) in [("direct (floor)", &floor), ("through /mcp", &through)] {
            println!(
                "{:<28}{:>12.0}{:>12.0}{:>12.0}{:>10.2}",
                format!("{label}, c={concurrency}"),
                f.calls_per_sec,
                f.p50_us,
                f.p99_us,
                f.calls_per_sec / floor.calls_per_sec
            );
        }
        println!(
            "added p50 at c={concurrency}: {:.0} µs",
            through.p50_us - floor.p50_us
        );
    }

    // Crash to serving: kill -9 the upstream, then call until one succeeds.
    let client = client(&gw_url).await;
    let mut samples = Vec::new();
    for _ in 0..5 {
        let pid = upstream_pid(&base).await;
        let killed = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        while !echo(&client, "echo__echo").await {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        samples.push(killed.elapsed());
        // Let the restart window forget this crash so each sample is a lone crash.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    // The upstream's own start time: spawn to first answered call over stdio.
    let mut start_times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut command = tokio::process::Command::new(BIN);
        command.args(["demo-server", "echo"]);
        let child = rmcp::transport::TokioChildProcess::new(command).unwrap();
        let service = ().serve(child).await.unwrap();
        assert!(echo(&service, "echo").await);
        start_times.push(t.elapsed());
        let _ = service.cancel().await;
    }
    let ms =
        |d: &[Duration]| d.iter().map(Duration::as_secs_f64).sum::<f64>() / d.len() as f64 * 1e3;
    println!(
        "crash → first successful call: {:.1} ms mean (upstream's own start-to-first-call: {:.1} ms; overhead {:.1} ms)",
        ms(&samples),
        ms(&start_times),
        ms(&samples) - ms(&start_times)
    );
    drop(gateway);

    // The security plane's cost: the same calls with key, limits and guardrails on.
    let (secure, secure_url) = spawn(
        &["serve", "--config", &config(dir, 1, Security::On, &hash)],
        dir,
    );
    wait_ready(secure_url.trim_end_matches("/mcp")).await;
    println!(
        "security plane (API key + rate limits + local guardrails) vs all off, same gateway build:"
    );
    let (_plain, plain_url) = spawn(
        &["serve", "--config", &config(dir, 1, Security::Off, &hash)],
        dir,
    );
    wait_ready(plain_url.trim_end_matches("/mcp")).await;
    for concurrency in [1, 32] {
        let off = load(&plain_url, "echo__echo", concurrency).await;
        let on = load_with(
            &secure_url,
            Some(&key.secret),
            "echo__echo",
            concurrency,
            None,
        )
        .await;
        println!(
            "  c={concurrency}: off {:.0} calls/s (p50 {:.0} µs), on {:.0} calls/s (p50 {:.0} µs): {:.2} of off",
            off.calls_per_sec,
            off.p50_us,
            on.calls_per_sec,
            on.p50_us,
            on.calls_per_sec / off.calls_per_sec
        );
    }
    drop(secure);

    // tools/list over five upstreams: warm cache vs none (a zero TTL).
    let five = config(dir, 5, Security::Off, &hash);
    let cold_path = dir.join("bench-5-cold.toml");
    let cold_toml = std::fs::read_to_string(&five).unwrap().replace(
        "[supervision]",
        "[cache.ttl_secs]\ntools = 0\n[supervision]",
    );
    std::fs::write(&cold_path, cold_toml).unwrap();
    let (warm_gw, warm_url) = spawn(&["serve", "--config", &five], dir);
    wait_ready(warm_url.trim_end_matches("/mcp")).await;
    let warm = list_load(&warm_url).await;
    drop(warm_gw);
    let (cold_gw, cold_url) = spawn(
        &["serve", "--config", &cold_path.display().to_string()],
        dir,
    );
    wait_ready(cold_url.trim_end_matches("/mcp")).await;
    let cold = list_load(&cold_url).await;
    drop(cold_gw);
    println!(
        "tools/list, 5 upstreams: warm cache {:.0}/s (p50 {:.0} µs, p99 {:.0} µs), cold {:.0}/s (p50 {:.0} µs, p99 {:.0} µs)",
        warm.calls_per_sec, warm.p50_us, warm.p99_us, cold.calls_per_sec, cold.p50_us, cold.p99_us
    );

    let (gateway100, url100) = spawn(
        &["serve", "--config", &config(dir, 100, Security::Off, &hash)],
        dir,
    );
    wait_ready(url100.trim_end_matches("/mcp")).await;
    println!(
        "gateway RSS idle (1 upstream): {:.1} MiB",
        idle_rss as f64 / 1024.0
    );
    println!(
        "gateway RSS with 100 upstreams: {:.1} MiB",
        rss_kib(gateway100.0.id()) as f64 / 1024.0
    );
}
