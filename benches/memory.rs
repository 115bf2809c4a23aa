//! The gateway's memory under big payloads and many upstreams. Prints
//! figures; asserts nothing (speed and size belong here, not in tests).
//!
//! - `payloads`: a 1 MB and a 10 MB `big_output` result (the `huge` demo),
//!   called directly on the demo's HTTP endpoint and through the gateway
//!   (default guardrails, the output size limit raised to let 10 MB pass)
//!   with the demo as a stdio upstream and as a remote one: p50 latency
//!   and the added latency, and the gateway's peak RSS growth over its idle
//!   baseline (VmHWM, reset before each case through `/proc/PID/clear_refs`).
//! - `upstreams`: 1,000 configured upstreams, remote ones on one demo echo
//!   server (the gateway's own cost), then stdio ones (a `demo-server echo`
//!   process each): seconds until `/ready`, the gateway's CPU and RSS, and
//!   the upstreams' own CPU (their start time).
//!
//! `cargo bench --bench memory [-- payloads|upstreams]`
//! (`BULWARK_BENCH_BASELINE=/path/to/older/bulwark` measures that gateway too; the
//! demo upstreams are always this build's);
//! `BULWARK_BENCH_UPSTREAMS=N` changes the upstream count,
//! `BULWARK_BENCH_STDIO_UPSTREAMS=N` the stdio one (0 skips it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::json;
use support::{BIN, reset_peak_rss, spawn, spawn_bin, status_kib};

/// User + system CPU seconds of `pid` (`/proc/PID/stat` fields 14 and 15).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces: fields start after its `)`.
    let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    // `/proc` counts in USER_HZ, 100 on Linux whatever the kernel's HZ.
    let hz = 100.0;
    ticks as f64 / hz
}

/// The pids whose parent is `parent`.
fn children(parent: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
        .map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

async fn client(url: &str) -> RunningService<RoleClient, ()> {
    ().serve(StreamableHttpClientTransport::from_uri(url.to_owned()))
        .await
        .unwrap()
}

/// Calls `tool` with `bytes` `rounds` times; the median latency in ms.
async fn call_p50(
    client: &RunningService<RoleClient, ()>,
    tool: &str,
    bytes: usize,
    rounds: usize,
) -> f64 {
    let mut latencies = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let params = CallToolRequestParams::new(tool.to_owned())
            .with_arguments(json!({"bytes": bytes}).as_object().unwrap().clone());
        let start = Instant::now();
        let result = client.call_tool(params).await.unwrap();
        latencies.push(start.elapsed());
        let text = result
            .content
            .first()
            .and_then(|c| c.as_text())
            .map_or(0, |t| t.text.len());
        assert_eq!(
            text, bytes,
            "{tool}: result of {bytes} bytes expected, got {result:?}"
        );
    }
    latencies.sort();
    latencies[latencies.len() / 2].as_secs_f64() * 1e3
}

async fn payloads(label: &str, gateway_bin: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (_demo, demo_url) = spawn(
        &["demo-server", "huge", "--http", "127.0.0.1:0"],
        dir.path(),
    );
    let config = dir.path().join("bulwark.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n[auth]\nenabled = false\n\
             [guardrails.output]\nadditional_config = {{ max_bytes = 16777216 }}\n\
             [upstreams.stdio]\ncommand = {BIN:?}\nargs = [\"demo-server\", \"huge\"]\n\
             [upstreams.remote]\nurl = {demo_url:?}\n",
            dir.path().join("data").display().to_string(),
        ),
    )
    .unwrap();
    let (gateway, url) = spawn_bin(
        gateway_bin,
        &["serve", "--config", config.to_str().unwrap()],
        dir.path(),
    );
    let pid = gateway.0.id();
    support::wait_ready(url.trim_end_matches("/mcp")).await;

    let direct = client(&demo_url).await;
    let through = client(&url).await;
    // Warm both routes (sessions, lists) before the idle baseline.
    for tool in ["stdio__big_output", "remote__big_output"] {
        call_p50(&through, tool, 10, 1).await;
    }
    call_p50(&direct, "big_output", 10, 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle = status_kib(pid, "VmRSS:");
    println!("[{label}] [payloads] gateway idle RSS {idle} KiB");
    for (bytes, rounds) in [(1_000_000, 15), (10_000_000, 7)] {
        let mb = bytes as f64 / 1e6;
        let floor = call_p50(&direct, "big_output", bytes, rounds).await;
        println!("[{label}] [payloads] {mb} MB direct to the demo (HTTP): p50 {floor:.1} ms");
        for route in ["stdio", "remote"] {
            reset_peak_rss(pid);
            let base = status_kib(pid, "VmRSS:");
            let p50 = call_p50(&through, &format!("{route}__big_output"), bytes, rounds).await;
            let peak = status_kib(pid, "VmHWM:");
            tokio::time::sleep(Duration::from_millis(200)).await;
            let after = status_kib(pid, "VmRSS:");
            let growth = peak.saturating_sub(idle) as f64 * 1024.0;
            println!(
                "[{label}] [payloads] {mb} MB via {route} upstream: p50 {p50:.1} ms (+{:.1} ms over direct); \
                 peak RSS {peak} KiB = idle +{:.1} MB ({:.2}x the payload; {base} KiB before, {after} KiB after)",
                p50 - floor,
                growth / 1e6,
                growth / bytes as f64,
            );
        }
    }
    drop(gateway);
}

/// Starts a gateway with `count` upstreams made by `upstream(i)` and waits
/// for `/ready`: prints the time, the gateway's CPU and RSS, and the CPU of
/// its children (the upstreams' own start).
async fn upstreams_scenario(
    label: &str,
    gateway_bin: &str,
    count: usize,
    kind: &str,
    servers: &[u32],
    upstream: impl Fn(usize) -> String,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n[auth]\nenabled = false\n",
        dir.path().join("data").display().to_string(),
    );
    for i in 0..count {
        config.push_str(&upstream(i));
    }
    let path = dir.path().join("bulwark.toml");
    std::fs::write(&path, config).unwrap();
    let start = Instant::now();
    let (gateway, url) = spawn_bin(
        gateway_bin,
        &["serve", "--config", path.to_str().unwrap()],
        dir.path(),
    );
    let pid = gateway.0.id();
    let listening = start.elapsed();
    // Not `support::wait_ready`: 1,000 process starts on a small shared
    // machine may take longer than its two minutes.
    let http = reqwest::Client::new();
    let ready_url = format!("{}/ready", url.trim_end_matches("/mcp"));
    while !http
        .get(&ready_url)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(start.elapsed() < Duration::from_secs(900), "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready = start.elapsed();
    let gateway_cpu = cpu_seconds(pid);
    // The upstreams' own work: their processes, or the demo server behind
    // the remote ones (its CPU before the start is a few ms).
    let upstream_cpu = children(pid)
        .into_iter()
        .chain(servers.iter().copied())
        .map(cpu_seconds)
        .fold(0.0, |sum, cpu| sum + cpu);
    let rss = status_kib(pid, "VmRSS:");
    let peak = status_kib(pid, "VmHWM:");
    println!(
        "[{label}] [upstreams] {count} {kind}: listening after {:.2} s, ready after {:.2} s; gateway CPU {gateway_cpu:.2} s, \
         upstreams' own CPU {upstream_cpu:.2} s; gateway RSS {rss} KiB ({:.1} KiB per upstream), peak {peak} KiB",
        listening.as_secs_f64(),
        ready.as_secs_f64(),
        rss as f64 / count as f64,
    );
    drop(gateway);
}

async fn upstreams(label: &str, gateway_bin: &str) {
    let count = env_count("BULWARK_BENCH_UPSTREAMS", 1_000);
    let dir = tempfile::tempdir().unwrap();
    let (demo, demo_url) = spawn(
        &["demo-server", "echo", "--http", "127.0.0.1:0"],
        dir.path(),
    );
    upstreams_scenario(
        label,
        gateway_bin,
        count,
        "remote upstreams (one demo echo server)",
        &[demo.0.id()],
        |i| format!("[upstreams.r{i}]\nurl = {demo_url:?}\n"),
    )
    .await;
    let stdio = env_count("BULWARK_BENCH_STDIO_UPSTREAMS", count);
    if stdio > 0 {
        upstreams_scenario(
            label,
            gateway_bin,
            stdio,
            "stdio upstreams (demo-server echo each)",
            &[],
            |i| {
                format!("[upstreams.s{i}]\ncommand = {BIN:?}\nargs = [\"demo-server\", \"echo\"]\n")
            },
        )
        .await;
    }
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut builds = Vec::new();
    if let Ok(baseline) = std::env::var("BULWARK_BENCH_BASELINE") {
        builds.push(("before", baseline));
    }
    builds.push(("after", BIN.to_owned()));
    for (label, bin) in &builds {
        if wants("payloads") {
            runtime.block_on(payloads(label, bin));
        }
    }
    for (label, bin) in &builds {
        if wants("upstreams") {
            runtime.block_on(upstreams(label, bin));
        }
    }
}
