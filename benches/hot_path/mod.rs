//! The hot-path figures of issue 16, for one build of the binary or, with
//! `BULWARK_BENCH_BASELINE=/path/to/old/bulwark`, for a baseline build and
//! this one side by side in the same run (same machine, same load):
//!
//! - gateway CPU per `tools/call` (its own utime+stime over the run, so the
//!   client's cost and the machine's noise drop out) next to the floor's
//!   (the demo echo served directly over streamable HTTP), and beside them
//!   what the load client and the gateway's stdio upstream spent per call
//!   (all share this machine's cores, so throughput is bound by the sum);
//! - write syscalls per call (`/proc/PID/io` `syscw`): the response's, and
//!   for the gateway also the request's to its stdio upstream;
//! - throughput at c=1 and c=32 against the floor (the rmcp client);
//! - both again with a client that keeps its connections (rmcp's default
//!   client opens one per request);
//! - a keep-alive HTTP/1.1 client at c=1 (one pooled connection, each
//!   response read to its end): p50 against the floor;
//! - 1 MB and 10 MB tool results with guardrails on: added p50, and the
//!   peak RSS above a warm gateway (one small call made first; what that
//!   first call costs is its own figure);
//! - RSS per idle session;
//! - 1,000 configured upstreams: start to ready, gateway RSS;
//! - a remote (HTTP) upstream: added p50 against calling it directly
//!   (alone with `BULWARK_BENCH_REMOTE_ONLY=1`).
//!
//! `BULWARK_BENCH_AB=N` instead runs N alternating rounds of pooled c=32
//! load on the floor and each build's secure gateway and prints the medians
//! (see [`ab`]): the way to compare two builds on this drifting machine.
//! With `BULWARK_BENCH_AB_REMOTE=1` the rounds go on with a remote upstream
//! (pooled c=1: added p50 and gateway CPU per call).
//!
//! `BULWARK_BENCH_PROFILE=N` instead keeps a pooled c=32 load on the secure
//! gateway for N seconds and prints its pid first, for a profiler to attach
//! (`perf record -p PID`); each 4 s round prints its CPU per call split
//! into user and kernel time. With `BULWARK_BENCH_PROFILE_REMOTE=1` the
//! load is pooled c=1 through a remote (HTTP) upstream.
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::support::{BIN, Proc, median, reset_peak_rss, spawn_bin};
use super::{Figures, Security, config, load_with, rss_kib, wait_ready};

/// A build of the binary under measurement.
pub struct Build {
    pub label: &'static str,
    pub bin: String,
}

/// The builds to compare: the baseline (when given) first, then this one.
pub fn builds() -> Vec<Build> {
    let mut builds = Vec::new();
    if let Ok(bin) = std::env::var("BULWARK_BENCH_BASELINE") {
        builds.push(Build {
            label: "before",
            bin,
        });
    }
    builds.push(Build {
        label: "after",
        bin: BIN.to_owned(),
    });
    builds
}

/// User and kernel CPU clock ticks `pid` has spent so far.
fn user_and_kernel_ticks(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces): state is 3rd, utime 14th, stime 15th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    (fields[11].parse().unwrap(), fields[12].parse().unwrap())
}

/// Context switches of all of `pid`'s threads so far, voluntary or not: at
/// c=1 most of a call's CPU on this machine is the kernel switching
/// threads, so this counts what a change in task hand-offs saves.
fn context_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter(|line| line.contains("ctxt_switches:"))
                .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// Write-family syscalls (`write`, `writev`, …) `pid` has made so far:
/// each one to a socket or pipe can wake the process reading it.
fn write_syscalls(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|line| line.strip_prefix("syscw:"))
                .and_then(|count| count.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// What a process has spent: CPU clock ticks in user space and in the
/// kernel, thread switches and write syscalls.
#[derive(Debug, Default)]
pub struct ProcessCost {
    user: u64,
    kernel: u64,
    switches: u64,
    writes: u64,
}

impl ProcessCost {
    /// What `pid` has spent so far.
    pub fn now(pid: u32) -> Self {
        let (user, kernel) = user_and_kernel_ticks(pid);
        Self {
            user,
            kernel,
            switches: context_switches(pid),
            writes: write_syscalls(pid),
        }
    }

    /// CPU clock ticks in all, user and kernel.
    fn cpu(&self) -> u64 {
        self.user + self.kernel
    }

    /// What was spent between `before` and this.
    pub fn since(&self, before: &Self) -> Self {
        Self {
            user: self.user - before.user,
            kernel: self.kernel - before.kernel,
            switches: self.switches - before.switches,
            writes: self.writes - before.writes,
        }
    }
}

fn clock_ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

fn peak_rss_kib(pid: u32) -> u64 {
    super::status_kib(pid, "VmHWM:")
}

/// A load run with what the process `pid` spent on it, and what the load
/// client (this process) and `pid`'s children (a gateway's stdio upstreams)
/// spent beside it: on a 2-core machine all three share the cores, so the
/// throughput at c=32 is bound by their sum, not by the server alone.
pub(crate) struct Measured {
    pub(crate) figures: Figures,
    pub(crate) cpu_us_per_call: f64,
    /// The kernel's part of `cpu_us_per_call`.
    pub(crate) kernel_us_per_call: f64,
    pub(crate) switches_per_call: f64,
    /// `pid`'s write syscalls per call: the response's, and for a gateway
    /// the request's to its upstream.
    pub(crate) writes_per_call: f64,
    /// The load client's CPU per call.
    pub(crate) client_us_per_call: f64,
    /// `pid`'s children's CPU per call (0 for a server without any).
    pub(crate) children_us_per_call: f64,
}

/// The processes `pid` started and that still run.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|child| child.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

pub(crate) async fn measured(
    pid: u32,
    url: &str,
    key: Option<&str>,
    tool: &str,
    concurrency: usize,
) -> Measured {
    let mut pids = vec![pid, std::process::id()];
    pids.extend(children(pid));
    let mut costs = Vec::new();
    let figures = load_with(url, key, tool, concurrency, Some((&pids, &mut costs))).await;
    let calls = figures.calls as f64;
    let per_call = |ticks: u64| ticks as f64 / clock_ticks_per_sec() * 1e6 / calls;
    let server = &costs[0];
    Measured {
        cpu_us_per_call: per_call(server.cpu()),
        kernel_us_per_call: per_call(server.kernel),
        switches_per_call: server.switches as f64 / calls,
        writes_per_call: server.writes as f64 / calls,
        client_us_per_call: per_call(costs[1].cpu()),
        children_us_per_call: costs[2..].iter().map(|child| per_call(child.cpu())).sum(),
        figures,
    }
}

/// The CPU per call beside the server's, of the floor's run `f` and the
/// gateway's run `g`: the load client's in each, and the gateway's upstream.
fn beside(f: &Measured, g: &Measured) -> String {
    format!(
        "{:.0} / {:.0} / {:.0}",
        f.client_us_per_call, g.client_us_per_call, g.children_us_per_call
    )
}

/// A keep-alive MCP client over plain HTTP/1.1: one pooled connection,
/// every response read to its end (as wrk and most HTTP libraries do).
struct KeepAlive {
    http: reqwest::Client,
    url: String,
    session: Option<String>,
    key: Option<String>,
    next_id: u64,
}

impl KeepAlive {
    async fn open(url: &str, key: Option<&str>) -> Self {
        let mut client = Self {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap(),
            url: url.to_owned(),
            session: None,
            key: key.map(str::to_owned),
            next_id: 0,
        };
        let (session, _) = client
            .post(json!({
                "jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "keepalive-bench", "version": "1"}}
            }))
            .await;
        client.session = session;
        client
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        client
    }

    /// Posts one message; returns the session id header and the whole body.
    async fn post(&mut self, message: Value) -> (Option<String>, Vec<u8>) {
        let mut request = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(message.to_string());
        if let Some(session) = &self.session {
            request = request
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", "2025-06-18");
        }
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let session = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (session, response.bytes().await.unwrap().to_vec())
    }

    async fn call(&mut self, tool: &str, arguments: Value) -> Vec<u8> {
        self.next_id += 1;
        let (_, body) = self
            .post(
                json!({"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call",
                         "params": {"name": tool, "arguments": arguments}}),
            )
            .await;
        assert!(
            !body.windows(8).any(|w| w == b"\"error\":"),
            "{}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
        body
    }
}

fn p50(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e6
}

/// p50 of `tool` calls on one keep-alive connection for `run_for`.
async fn keep_alive_p50(url: &str, key: Option<&str>, tool: &str, run_for: Duration) -> f64 {
    let mut client = KeepAlive::open(url, key).await;
    for _ in 0..20 {
        client.call(tool, json!({"message": "bench"})).await;
    }
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < run_for {
        let t = Instant::now();
        client.call(tool, json!({"message": "bench"})).await;
        samples.push(t.elapsed());
        // A slow (stalled) connection would otherwise take forever.
        if samples.len() >= 20_000 {
            break;
        }
    }
    p50(samples)
}

fn write_config(dir: &std::path::Path, name: &str, toml: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, toml).unwrap();
    path.display().to_string()
}

/// A gateway with authentication and guardrails off in front of the MCP
/// server at `url`, as the upstream `echo`.
pub(crate) fn remote_config(dir: &std::path::Path, url: &str) -> String {
    format!(
        "{}[upstreams.echo]\nurl = {url:?}\n",
        head(
            dir,
            "[auth]\nenabled = false\n[guardrails]\nenabled = false\n"
        )
    )
}

fn head(dir: &std::path::Path, security: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n{security}",
        dir.join("data").display().to_string()
    )
}

async fn start(bin: &str, config: &str, dir: &std::path::Path) -> (Proc, String) {
    let (proc, url) = spawn_bin(bin, &["serve", "--config", config], dir);
    wait_ready(url.trim_end_matches("/mcp")).await;
    (proc, url)
}

/// Everything measured for one build.
#[derive(Default)]
pub struct Report {
    rows: Vec<(String, String)>,
}

impl Report {
    fn add(&mut self, what: impl Into<String>, value: impl Into<String>) {
        let (what, value) = (what.into(), value.into());
        println!("  {what:<58} {value}");
        self.rows.push((what, value));
    }
}

/// CPU per call and throughput at c=1 and c=32, the floor's (pid, url)
/// beside the secure gateway's (pid, url, key), as rows named `label …`.
async fn floor_and_secure(
    report: &mut Report,
    label: &str,
    (floor_pid, floor_url): (u32, &str),
    (gw_pid, gw_url, key): (u32, &str, &str),
    (plain_pid, plain_url): (u32, &str),
) {
    for concurrency in [1, 32] {
        let f = measured(floor_pid, floor_url, None, "echo", concurrency).await;
        let g = measured(gw_pid, gw_url, Some(key), "echo__echo", concurrency).await;
        // The same gateway with auth, limits and guardrails off: what
        // bridging HTTP to stdio through rmcp's server and client costs
        // before any of the security plane, so the ceiling of its ratio.
        let o = measured(plain_pid, plain_url, None, "echo__echo", concurrency).await;
        report.add(
            format!("{label} c={concurrency} CPU µs/call: floor / gw secure / gw all off"),
            format!(
                "{:.0} / {:.0} / {:.0}",
                f.cpu_us_per_call, g.cpu_us_per_call, o.cpu_us_per_call
            ),
        );
        report.add(
            format!("{label} c={concurrency} CPU µs/call: client (floor, gw) / upstream"),
            beside(&f, &g),
        );
        report.add(
            format!("{label} c={concurrency} write syscalls/call: floor / gw secure"),
            format!("{:.2} / {:.2}", f.writes_per_call, g.writes_per_call),
        );
        report.add(
            format!("{label} c={concurrency} calls/s: floor / gw secure / gw all off (ratios)"),
            format!(
                "{:.0} / {:.0} / {:.0} ({:.2}x / {:.2}x)",
                f.figures.calls_per_sec,
                g.figures.calls_per_sec,
                o.figures.calls_per_sec,
                g.figures.calls_per_sec / f.figures.calls_per_sec,
                o.figures.calls_per_sec / f.figures.calls_per_sec
            ),
        );
    }
}

/// A remote upstream: the floor's echo at `floor_url` through the gateway
/// over HTTP, against calling it directly.
async fn remote(bin: &str, dir: &std::path::Path, floor_url: &str, report: &mut Report) {
    let remote = write_config(dir, "remote.toml", &remote_config(dir, floor_url));
    let (remote_gw, remote_url) = start(bin, &remote, dir).await;
    // Both with rmcp's default client (a connection per request) and with
    // one that keeps its connections, as the SDKs' HTTP stacks do.
    for pooled in [false, true] {
        super::POOLED.store(pooled, std::sync::atomic::Ordering::Relaxed);
        let direct = load_with(floor_url, None, "echo", 1, None).await;
        let Measured {
            figures: through,
            cpu_us_per_call,
            switches_per_call,
            ..
        } = measured(remote_gw.0.id(), &remote_url, None, "echo__echo", 1).await;
        let label = if pooled { "pooled " } else { "" };
        report.add(
            format!("remote upstream {label}c=1 p50 µs: direct / through (added)"),
            format!(
                "{:.0} / {:.0} ({:+.0})",
                direct.p50_us,
                through.p50_us,
                through.p50_us - direct.p50_us
            ),
        );
        report.add(
            format!("remote upstream {label}c=1 gateway CPU µs, switches /call"),
            format!("{cpu_us_per_call:.0}, {switches_per_call:.1}"),
        );
    }
    super::POOLED.store(false, std::sync::atomic::Ordering::Relaxed);
    // The same at c=32: with a remote upstream the stdio link is out of the
    // picture, so this tells the front door's limit from the link's.
    let direct = load_with(floor_url, None, "echo", 32, None).await;
    let through = load_with(&remote_url, None, "echo__echo", 32, None).await;
    report.add(
        "remote upstream c=32 calls/s: direct / through (ratio)",
        format!(
            "{:.0} / {:.0} ({:.2}x)",
            direct.calls_per_sec,
            through.calls_per_sec,
            through.calls_per_sec / direct.calls_per_sec
        ),
    );
    drop(remote_gw);
}

/// A pooled c=32 load on a secure gateway for `seconds`, for a profiler;
/// with `BULWARK_BENCH_PROFILE_REMOTE=1`, a pooled c=1 load on a gateway
/// in front of a remote upstream (the floor's echo over HTTP) instead.
pub async fn profile(key: &bulwark::auth::keys::NewKey, dir: &std::path::Path, seconds: u64) {
    let remote = std::env::var_os("BULWARK_BENCH_PROFILE_REMOTE").is_some();
    let mut floor = None;
    let (gateway, url, secret, concurrency) = if remote {
        let (echo, echo_url) =
            spawn_bin(BIN, &["demo-server", "echo", "--http", "127.0.0.1:0"], dir);
        println!("profiling: the remote echo's pid {}", echo.0.id());
        let config = write_config(dir, "remote.toml", &remote_config(dir, &echo_url));
        floor = Some(echo);
        let (gateway, url) = start(BIN, &config, dir).await;
        (gateway, url, None, 1)
    } else {
        let secure = config(dir, 1, Security::On, &key.hash.to_stored());
        let (gateway, url) = start(BIN, &secure, dir).await;
        (gateway, url, Some(key.secret.as_str()), 32)
    };
    let pid = gateway.0.id();
    println!("profiling: gateway pid {pid}, pooled c={concurrency} for {seconds} s");
    super::POOLED.store(true, std::sync::atomic::Ordering::Relaxed);
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        let run = measured(pid, &url, secret, "echo__echo", concurrency).await;
        println!(
            "  {:.0} calls/s, p50 {:.0} µs, CPU µs/call {:.0} (user {:.0}, kernel {:.0}), switches/call {:.1}, writes/call {:.2}",
            run.figures.calls_per_sec,
            run.figures.p50_us,
            run.cpu_us_per_call,
            run.cpu_us_per_call - run.kernel_us_per_call,
            run.kernel_us_per_call,
            run.switches_per_call,
            run.writes_per_call
        );
    }
    super::POOLED.store(false, std::sync::atomic::Ordering::Relaxed);
    drop(floor);
}

/// Starts a gateway of every build, each in its own state directory
/// (`{name}-{i}` under `dir`) with the config file `config` writes there.
async fn start_builds(
    dir: &std::path::Path,
    name: &str,
    config: impl Fn(&std::path::Path) -> String,
) -> Vec<(&'static str, Proc, String)> {
    let mut gateways = Vec::new();
    for (i, build) in builds().into_iter().enumerate() {
        let own = dir.join(format!("{name}-{i}"));
        std::fs::create_dir_all(&own).unwrap();
        let (gateway, url) = start(&build.bin, &config(&own), &own).await;
        gateways.push((build.label, gateway, url));
    }
    gateways
}

/// The demo echo served by stock rmcp (`benches/stock_floor`), when
/// `BULWARK_BENCH_STOCK_FLOOR` names its binary: the floor as issue 16
/// defines it, rmcp's own serving, where the bench's floor (`bulwark
/// demo-server`) runs the vendored rmcp with the gateway's patches.
fn stock_floor(dir: &std::path::Path) -> Option<(Proc, String)> {
    let bin = std::env::var("BULWARK_BENCH_STOCK_FLOOR").ok()?;
    Some(spawn_bin(&bin, &["127.0.0.1:0"], dir))
}

/// `BULWARK_BENCH_AB=N`: N rounds of pooled c=32 load (stateless with
/// `BULWARK_BENCH_AB_STATELESS=1`) on the floor, on
/// the secure gateway of every build (the baseline's too, when given) and on
/// this build's gateway with auth, limits and guardrails off, one
/// after another within each round, all running throughout; prints each
/// round and then the medians. This machine's speed drifts by ±15% within
/// minutes, which can decide a before/after taken from two separate runs;
/// alternating exposes every build to the same drift, and the per-round
/// ratio to the floor cancels most of it.
pub async fn ab(key: &bulwark::auth::keys::NewKey, dir: &std::path::Path, rounds: usize) {
    let hash = key.hash.to_stored();
    let (floor, floor_url) = spawn_bin(BIN, &["demo-server", "echo", "--http", "127.0.0.1:0"], dir);
    let gateways = start_builds(dir, "ab", |own| config(own, 1, Security::On, &hash)).await;
    let stock = stock_floor(dir);
    // Everything measured against the floor each round: (label, pid, url,
    // key, tool); the stock rmcp floor first when given, then every build.
    let mut contenders: Vec<(&str, u32, &str, Option<&str>, &str)> = Vec::new();
    if let Some((stock, stock_url)) = &stock {
        contenders.push(("stock rmcp", stock.0.id(), stock_url, None, "echo"));
    }
    for (label, gateway, url) in &gateways {
        contenders.push((label, gateway.0.id(), url, Some(&key.secret), "echo__echo"));
    }
    // This build with auth, limits and guardrails off: the ratio's ceiling
    // for a gateway that bridges through rmcp's server and client.
    let all_off = dir.join("ab-all-off");
    std::fs::create_dir_all(&all_off).unwrap();
    let (plain, plain_url) = start(BIN, &config(&all_off, 1, Security::Off, &hash), &all_off).await;
    contenders.push(("all off", plain.0.id(), &plain_url, None, "echo__echo"));
    // `BULWARK_BENCH_AB_STATELESS=1`: stateless (2026-07-28) calls, a
    // connection per call, instead of a session's pooled ones;
    // `BULWARK_BENCH_AB_CONNECTION=1`: a session's calls, a connection per
    // call (rmcp's default client, as issue 16's c=32 figure was taken).
    let stateless = std::env::var_os("BULWARK_BENCH_AB_STATELESS").is_some();
    let per_connection = std::env::var_os("BULWARK_BENCH_AB_CONNECTION").is_some();
    let mode = match (stateless, per_connection) {
        (true, _) => "stateless",
        (false, true) => "connection per call",
        (false, false) => "pooled",
    };
    super::POOLED.store(
        !stateless && !per_connection,
        std::sync::atomic::Ordering::Relaxed,
    );
    super::STATELESS.store(stateless, std::sync::atomic::Ordering::Relaxed);
    // Per contender: (CPU µs/call, calls/s relative to the round's floor).
    let mut seen: Vec<(Vec<f64>, Vec<f64>)> = vec![Default::default(); contenders.len()];
    let mut floor_cpu = Vec::new();
    println!("A/B, {mode} c=32, {rounds} rounds: CPU µs/call and calls/s ratio to the floor");
    for round in 1..=rounds {
        let f = measured(floor.0.id(), &floor_url, None, "echo", 32).await;
        floor_cpu.push(f.cpu_us_per_call);
        let mut line = format!("  round {round}: floor {:.0}", f.cpu_us_per_call);
        for (&(label, pid, url, key, tool), (cpu, ratio)) in contenders.iter().zip(&mut seen) {
            let g = measured(pid, url, key, tool, 32).await;
            let to_floor = g.figures.calls_per_sec / f.figures.calls_per_sec;
            line.push_str(&format!(
                ", {label} {:.0} ({to_floor:.2}x)",
                g.cpu_us_per_call
            ));
            cpu.push(g.cpu_us_per_call);
            ratio.push(to_floor);
        }
        println!("{line}");
    }
    super::POOLED.store(false, std::sync::atomic::Ordering::Relaxed);
    super::STATELESS.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut line = format!("  median: floor {:.0}", median(&floor_cpu));
    for ((label, ..), (cpu, ratio)) in contenders.iter().zip(&seen) {
        line.push_str(&format!(
            ", {label} {:.0} ({:.2}x)",
            median(cpu),
            median(ratio)
        ));
    }
    println!("{line}");
    if std::env::var_os("BULWARK_BENCH_AB_REMOTE").is_some() {
        ab_remote(&floor_url, dir, rounds).await;
    }
}

/// The remote upstream in alternating rounds (`BULWARK_BENCH_AB_REMOTE=1`
/// with `BULWARK_BENCH_AB=N`): each build's gateway in front of the floor's
/// echo over HTTP, pooled c=1; per round the added p50 against calling the
/// floor directly just before, and the gateway's CPU per call.
async fn ab_remote(floor_url: &str, dir: &std::path::Path, rounds: usize) {
    let gateways = start_builds(dir, "ab-remote", |own| {
        write_config(own, "remote.toml", &remote_config(own, floor_url))
    })
    .await;
    super::POOLED.store(true, std::sync::atomic::Ordering::Relaxed);
    // Per build: (added p50 µs, CPU µs/call).
    let mut seen: Vec<(Vec<f64>, Vec<f64>)> = vec![Default::default(); gateways.len()];
    println!("A/B remote upstream, pooled c=1, {rounds} rounds: added p50 µs, gateway CPU µs/call");
    for round in 1..=rounds {
        let mut line = format!("  round {round}:");
        for ((label, gateway, url), (added, cpu)) in gateways.iter().zip(&mut seen) {
            let direct = load_with(floor_url, None, "echo", 1, None).await;
            let g = measured(gateway.0.id(), url, None, "echo__echo", 1).await;
            let more = g.figures.p50_us - direct.p50_us;
            line.push_str(&format!(" {label} {more:+.0} ({:.0})", g.cpu_us_per_call));
            added.push(more);
            cpu.push(g.cpu_us_per_call);
        }
        println!("{line}");
    }
    super::POOLED.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut line = "  median:".to_owned();
    for ((label, ..), (added, cpu)) in gateways.iter().zip(&seen) {
        line.push_str(&format!(
            " {label} {:+.0} ({:.0})",
            median(added),
            median(cpu)
        ));
    }
    println!("{line}");
}

/// Runs every hot-path measurement for `build`.
pub async fn run(
    build: &Build,
    key: &bulwark::auth::keys::NewKey,
    dir: &std::path::Path,
) -> Report {
    let mut report = Report::default();
    let bin = build.bin.as_str();
    println!("hot path, build '{}' ({bin}):", build.label);
    let hash = key.hash.to_stored();

    // CPU per call and throughput: the floor and the gateway (security on: key,
    // rate limits, default guardrails).
    let (floor, floor_url) = spawn_bin(bin, &["demo-server", "echo", "--http", "127.0.0.1:0"], dir);
    if std::env::var_os("BULWARK_BENCH_REMOTE_ONLY").is_some() {
        remote(bin, dir, &floor_url, &mut report).await;
        return report;
    }
    let secure = config(dir, 1, Security::On, &hash);
    let (gateway, gw_url) = start(bin, &secure, dir).await;
    let plain = config(dir, 1, Security::Off, &hash);
    let (plain_gw, plain_url) = start(bin, &plain, dir).await;
    for concurrency in [1, 32] {
        let f = measured(floor.0.id(), &floor_url, None, "echo", concurrency).await;
        let g = measured(
            gateway.0.id(),
            &gw_url,
            Some(&key.secret),
            "echo__echo",
            concurrency,
        )
        .await;
        let o = measured(plain_gw.0.id(), &plain_url, None, "echo__echo", concurrency).await;
        report.add(
            format!("c={concurrency} CPU µs/call: floor / gw secure / gw all off"),
            format!(
                "{:.0} / {:.0} / {:.0}",
                f.cpu_us_per_call, g.cpu_us_per_call, o.cpu_us_per_call
            ),
        );
        report.add(
            format!("c={concurrency} CPU µs/call: client (floor, gw) / upstream"),
            beside(&f, &g),
        );
        report.add(
            format!("c={concurrency} calls/s: floor / gw secure (ratio)"),
            format!(
                "{:.0} / {:.0} ({:.2}x)",
                f.figures.calls_per_sec,
                g.figures.calls_per_sec,
                g.figures.calls_per_sec / f.figures.calls_per_sec
            ),
        );
        report.add(
            format!("c={concurrency} p50 µs: floor / gw secure"),
            format!("{:.0} / {:.0}", f.figures.p50_us, g.figures.p50_us),
        );
    }
    // The same with clients that keep their connections: rmcp's default
    // client (above) opens a TCP connection per request, so the figures
    // above include an accept and a connection task per call.
    let secure = (gateway.0.id(), gw_url.as_str(), key.secret.as_str());
    let floor_at = (floor.0.id(), floor_url.as_str());
    let plain_at = (plain_gw.0.id(), plain_url.as_str());
    super::POOLED.store(true, std::sync::atomic::Ordering::Relaxed);
    floor_and_secure(&mut report, "pooled", floor_at, secure, plain_at).await;
    super::POOLED.store(false, std::sync::atomic::Ordering::Relaxed);
    // The same calls stateless (2026-07-28): no session, one POST per call.
    super::STATELESS.store(true, std::sync::atomic::Ordering::Relaxed);
    floor_and_secure(&mut report, "stateless", floor_at, secure, plain_at).await;
    super::STATELESS.store(false, std::sync::atomic::Ordering::Relaxed);
    let run_for = Duration::from_secs(2);
    let ka_floor = keep_alive_p50(&floor_url, None, "echo", run_for).await;
    let ka_gw = keep_alive_p50(&gw_url, Some(&key.secret), "echo__echo", run_for).await;
    report.add(
        "keep-alive c=1 p50 µs: floor / gw secure (added)",
        format!("{ka_floor:.0} / {ka_gw:.0} ({:+.0})", ka_gw - ka_floor),
    );
    drop(gateway);
    drop(plain_gw);

    // Idle sessions: RSS growth per initialized session on a plain gateway
    // whose per-caller session cap (64 by default) lets them all open.
    let sessions = 1000;
    let idle = write_config(
        dir,
        "idle.toml",
        &format!(
            "{}[server.limits]\nmax_sessions_per_caller = {}\n[upstreams.echo]\ncommand = {bin:?}\nargs = [\"demo-server\", \"echo\"]\n",
            head(
                dir,
                "[auth]\nenabled = false\n[guardrails]\nenabled = false\n"
            ),
            sessions + 10
        ),
    );
    let (idle_gw, idle_url) = start(bin, &idle, dir).await;
    let before = rss_kib(idle_gw.0.id());
    for _ in 0..sessions {
        // Dropping the client closes its connection; the session stays.
        drop(KeepAlive::open(&idle_url, None).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = rss_kib(idle_gw.0.id());
    report.add(
        format!("RSS per idle session ({sessions} sessions)"),
        format!("{:.1} KiB", (after - before) as f64 / sessions as f64),
    );
    drop(idle_gw);

    remote(bin, dir, &floor_url, &mut report).await;
    drop(floor);

    payloads(bin, dir, &mut report).await;
    if std::env::var_os("BULWARK_BENCH_SKIP_1000").is_none() {
        thousand_upstreams(bin, dir, &mut report).await;
    }
    report
}

/// 1 MB and 10 MB results through the gateway with guardrails on (no size
/// limit) against the same `huge` server served directly.
async fn payloads(bin: &str, dir: &std::path::Path, report: &mut Report) {
    let (huge, huge_url) = spawn_bin(bin, &["demo-server", "huge", "--http", "127.0.0.1:0"], dir);
    let toml = format!(
        "{}[guardrails.output]\nadditional_config = {{ max_bytes = 0 }}\n[upstreams.huge]\ncommand = {bin:?}\nargs = [\"demo-server\", \"huge\"]\n",
        head(dir, "[auth]\nenabled = false\n")
    );
    let path = write_config(dir, "huge.toml", &toml);
    let (gateway, gw_url) = start(bin, &path, dir).await;
    let pid = gateway.0.id();
    // The first call of any size builds what every later call reuses (the
    // guardrails' compiled patterns, per-thread caches, the session): a
    // fixed cost, reported on its own so that it is not charged to a
    // payload.
    let cold = rss_kib(pid);
    KeepAlive::open(&gw_url, None)
        .await
        .call("huge__big_output", json!({"bytes": 1_000}))
        .await;
    let warm = rss_kib(pid);
    report.add(
        "first call (1 KB result): gateway RSS growth",
        format!("{:+.1} MiB", (warm as f64 - cold as f64) / 1024.0),
    );
    for (label, bytes) in [("1 MB", 1_000_000u64), ("10 MB", 10_000_000)] {
        let sample = |url: String, tool: &'static str| async move {
            let mut client = KeepAlive::open(&url, None).await;
            let mut samples = Vec::new();
            for i in 0..12 {
                let t = Instant::now();
                let body = client.call(tool, json!({"bytes": bytes})).await;
                assert!(body.len() as u64 >= bytes);
                if i >= 2 {
                    samples.push(t.elapsed());
                }
            }
            p50(samples)
        };
        let direct = sample(huge_url.clone(), "big_output").await;
        let idle = rss_kib(pid);
        reset_peak_rss(pid);
        let through = sample(gw_url.clone(), "huge__big_output").await;
        let peak = peak_rss_kib(pid);
        report.add(
            format!("{label} result p50 ms: direct / through (added)"),
            format!(
                "{:.1} / {:.1} ({:+.1})",
                direct / 1e3,
                through / 1e3,
                (through - direct) / 1e3
            ),
        );
        report.add(
            format!(
                "{label} result: gateway peak RSS (warm idle {:.1} MiB)",
                idle as f64 / 1024.0
            ),
            format!(
                "{:.1} MiB ({:.1}x payload above idle)",
                peak as f64 / 1024.0,
                (peak.saturating_sub(idle) * 1024) as f64 / bytes as f64
            ),
        );
    }
    drop(gateway);
    drop(huge);
}

/// 1,000 configured stdio upstreams: spawn to `/ready`, and the gateway's RSS.
async fn thousand_upstreams(bin: &str, dir: &std::path::Path, report: &mut Report) {
    let mut toml = head(dir, "[auth]\nenabled = false\n");
    for i in 0..1000 {
        toml.push_str(&format!(
            "[upstreams.echo{i}]\ncommand = {bin:?}\nargs = [\"demo-server\", \"echo\"]\n"
        ));
    }
    let path = write_config(dir, "thousand.toml", &toml);
    let t = Instant::now();
    let (gateway, url) = spawn_bin(bin, &["serve", "--config", &path], dir);
    let listening = t.elapsed();
    let http = reqwest::Client::new();
    let ready = format!("{}/ready", url.trim_end_matches("/mcp"));
    loop {
        if http
            .get(&ready)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(600),
            "1,000 upstreams never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready_after = t.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    report.add(
        "1,000 upstreams: listening / ready after (s)",
        format!(
            "{:.2} / {:.2}",
            listening.as_secs_f64(),
            ready_after.as_secs_f64()
        ),
    );
    report.add(
        "1,000 upstreams: gateway RSS",
        format!("{:.1} MiB", rss_kib(gateway.0.id()) as f64 / 1024.0),
    );
    drop(gateway);
}

/// Prints the builds' figures next to each other.
pub fn compare(builds: &[Build], reports: &[Report]) {
    println!("\nhot path summary:");
    print!("  {:<58}", "");
    for build in builds {
        print!(" | {:<30}", build.label);
    }
    println!();
    for (i, (what, _)) in reports[0].rows.iter().enumerate() {
        print!("  {what:<58}");
        for report in reports {
            print!(" | {:<30}", report.rows.get(i).map_or("", |r| r.1.as_str()));
        }
        println!();
    }
}
