//! The front door under load: the gateway's RSS per idle session (5,000
//! sessions that sent `initialize` and `notifications/initialized`; the
//! issue measured ~83 KB each before the front door was bounded) and the peak RSS of the amplification body (a
//! ~2.8 MB `ping` of tiny objects, ~380 MB each before; 16 at once). Prints
//! figures; asserts nothing (speed and size belong here, not in tests).
//!
//! `cargo bench --bench front_door` (`BULWARK_BENCH_BASELINE=/path/to/older/bulwark`
//! measures that build too; `BULWARK_BENCH_SESSIONS=N` changes the session count).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::json;
use support::{BIN, spawn_bin, status_kib};

const PROTOCOL: &str = "2025-06-18";

async fn initialize(http: &reqwest::Client, url: &str) -> bool {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": PROTOCOL, "capabilities": {},
            "clientInfo": {"name": "front-door-bench", "version": "1"}}});
    let Ok(response) = http
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .json(&body)
        .send()
        .await
    else {
        return false;
    };
    let ok = response.status().is_success();
    let session = response.headers().get("mcp-session-id").cloned();
    let _ = response.bytes().await;
    // An idle session is one that finished its handshake.
    let Some(session) = session.filter(|_| ok) else {
        return false;
    };
    http.post(url)
        .header("Accept", "application/json, text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", PROTOCOL)
        .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

fn amplification_body() -> Vec<u8> {
    let pad = "{},".repeat(930_000);
    format!(
        r#"{{"jsonrpc":"2.0","id":9,"method":"ping","params":{{"_meta":{{"pad":[{pad}{{}}]}}}}}}"#
    )
    .into_bytes()
}

async fn measure(label: &str, bin: &str, sessions: usize) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bulwark.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n[server.limits]\nmax_sessions_per_caller = {}\n[auth]\nenabled = false\n[upstreams.echo]\ncommand = {BIN:?}\nargs = [\"demo-server\", \"echo\"]\n",
            dir.path().join("data").display().to_string(),
            sessions + 10,
        ),
    )
    .unwrap();
    let (gateway, url) = spawn_bin(
        bin,
        &["serve", "--config", config.to_str().unwrap()],
        dir.path(),
    );
    let pid = gateway.0.id();
    let http = reqwest::Client::new();
    support::wait_ready(url.trim_end_matches("/mcp")).await;

    let before = status_kib(pid, "VmRSS:");
    let mut opened = 0;
    for chunk in (0..sessions).collect::<Vec<_>>().chunks(32) {
        let results =
            futures::future::join_all(chunk.iter().map(|_| initialize(&http, &url))).await;
        opened += results.into_iter().filter(|ok| *ok).count();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = status_kib(pid, "VmRSS:");
    println!(
        "[{label}] RSS per idle session: {:.1} KiB ({opened} sessions; {before} -> {after} KiB)",
        after.saturating_sub(before) as f64 / opened.max(1) as f64
    );

    let body = amplification_body();
    let base = status_kib(pid, "VmRSS:");
    let sends = (0..16).map(|_| {
        http.post(&url)
            .header("Accept", "application/json, text/event-stream")
            .header("Content-Type", "application/json")
            .header("mcp-protocol-version", PROTOCOL)
            .body(body.clone())
            .send()
    });
    let statuses: Vec<u16> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|r| r.map_or(0, |r| r.status().as_u16()))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let peak = status_kib(pid, "VmHWM:");
    let end = status_kib(pid, "VmRSS:");
    println!(
        "[{label}] amplification body x16 ({} bytes each, answered {:?}): RSS {base} KiB before, peak {peak} KiB (+{:.1} MiB), {end} KiB after",
        body.len(),
        statuses.first(),
        peak.saturating_sub(base) as f64 / 1024.0
    );
    drop(gateway);
}

fn main() {
    let sessions = std::env::var("BULWARK_BENCH_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    if let Ok(baseline) = std::env::var("BULWARK_BENCH_BASELINE") {
        runtime.block_on(measure("before", &baseline, sessions));
    }
    runtime.block_on(measure("after", BIN, sessions));
}
