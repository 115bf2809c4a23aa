//! Load scenario for the control plane. Prints its figures; asserts nothing
//! about speed.
//! - p50/p99 of `tools/call` to a busy upstream alone, then while up to 100
//!   other upstreams are added and removed through the API (one live at a
//!   time): stdio ones (a process each), remote ones (no process) and ones
//!   whose command is missing, to tell the gateway's work from the CPU the
//!   spawned processes take on a small machine, and stdio ones run under
//!   `nice -n 19`: the same gateway work, the children's CPU yielded to
//!   everything else. Each phase prints the CPU the gateway used and the
//!   CPU its reaped children used (`/proc/PID/stat`). A control phase
//!   starts the same processes from the bench, without the gateway, to show
//!   what the children cost by themselves. Phases run interleaved,
//!   `BULWARK_CHURN_REPEAT=N` rounds of `BULWARK_CHURN_SECS` each, and a
//!   summary sets each phase's median p99 against the spread of the runs
//!   alone; `BULWARK_CHURN_ONLY=1` runs this part alone;
//! - reconcile of a config file saved with 500 upstreams: time until all
//!   500 server supervisors run (their command is missing, so this is the
//!   control plane's cost, not 500 process starts);
//! - API create and list throughput on SQLite and PostgreSQL (when reachable).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::{Value, json};

mod support;

use support::{BIN, median, spawn_bin};

/// The binary under test: this build, or `BULWARK_BENCH_BIN` (e.g. a
/// baseline build to compare with) for the gateway and every upstream.
fn bin() -> String {
    std::env::var("BULWARK_BENCH_BIN").unwrap_or_else(|_| BIN.to_owned())
}

fn spawn(args: &[&str], dir: &std::path::Path) -> (support::Proc, String) {
    spawn_bin(&bin(), args, dir)
}

const RUN_FOR: Duration = Duration::from_secs(3);
const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";

fn head(dir: &std::path::Path, store: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n[auth]\nenabled = false\n{store}\
         [upstreams.echo]\ncommand = {:?}\nargs = [\"demo-server\", \"echo\"]\n",
        dir.join("data"),
        bin()
    )
}

fn start(dir: &std::path::Path, config: &str) -> (support::Proc, String) {
    let path = dir.join("bulwark.toml");
    std::fs::write(&path, config).unwrap();
    let (proc, url) = spawn(&["serve", "--config", path.to_str().unwrap()], dir);
    (proc, url.trim_end_matches("/mcp").to_owned())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1e6
}

/// How long each churn phase measures: `BULWARK_CHURN_SECS`, else RUN_FOR.
fn churn_for() -> Duration {
    std::env::var("BULWARK_CHURN_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(RUN_FOR, Duration::from_secs_f64)
}

/// Echo calls for `run_for`: (calls, p50 µs, p99 µs).
async fn calls(base: &str, run_for: Duration) -> (usize, f64, f64) {
    let client = ()
        .serve(StreamableHttpClientTransport::from_uri(format!(
            "{base}/mcp"
        )))
        .await
        .unwrap();
    let mut latencies = Vec::new();
    let start = Instant::now();
    while start.elapsed() < run_for {
        let mut params = CallToolRequestParams::new("echo__echo".to_owned());
        params.arguments = json!({"message": "bench"}).as_object().cloned();
        let t = Instant::now();
        let ok = client.peer().call_tool(params).await.is_ok();
        assert!(ok, "echo call failed");
        latencies.push(t.elapsed());
    }
    latencies.sort();
    (
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
    )
}

/// What happens beside the measured calls. The spawned processes' CPU
/// competes with the busy upstream on a small machine, so the stdio churn
/// is shown next to a control that starts the same processes without the
/// gateway: what the two share is the children's, not the gateway's.
#[derive(Clone, Copy, PartialEq)]
enum Churn {
    /// Nothing: the noise floor.
    Alone,
    /// A demo server process each (spawned on add, stopped on remove).
    Processes,
    /// The control: the bench itself starts the same demo server, speaks
    /// initialize and tools/list to it over stdio and closes it, as the
    /// gateway does; the gateway only serves the measured calls.
    ProcessesWithoutGateway,
    /// The same under `nice -n 19`: the gateway does the same work, the
    /// children take CPU only when nothing else wants it.
    NicedProcesses,
    /// Remote upstreams, no process per upstream: all point at one demo
    /// server over HTTP, so each connects, initializes and lists for real.
    Remote,
    /// Upstreams whose command does not exist: only the control plane runs.
    Failing,
}

impl Churn {
    const ALL: [Self; 6] = [
        Self::Alone,
        Self::Processes,
        Self::ProcessesWithoutGateway,
        Self::NicedProcesses,
        Self::Remote,
        Self::Failing,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Alone => "alone",
            Self::Processes => "stdio processes",
            Self::ProcessesWithoutGateway => "same processes, no gateway",
            Self::NicedProcesses => "stdio, nice 19",
            Self::Remote => "remote, no process",
            Self::Failing => "missing command",
        }
    }

    fn body(self, name: &str, remote: &str) -> Value {
        match self {
            Self::Processes => {
                json!({"name": name, "command": bin(), "args": ["demo-server", "echo"]})
            }
            Self::NicedProcesses => json!({"name": name, "command": "nice",
                "args": ["-n", "19", bin(), "demo-server", "echo"]}),
            Self::Remote => json!({"name": name, "url": remote}),
            Self::Failing => json!({"name": name, "command": "/nonexistent/bulwark-bench"}),
            Self::Alone | Self::ProcessesWithoutGateway => Value::Null,
        }
    }
}

/// CPU time (ms) of `pid` itself and of its reaped children, from
/// `/proc/PID/stat` (utime + stime, cutime + cstime; USER_HZ is 100).
fn cpu_ms(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<u64> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = |i: usize| fields.get(i).copied().unwrap_or(0);
    ((ticks(11) + ticks(12)) * 10, (ticks(13) + ticks(14)) * 10)
}

/// The p99 of every phase, interleaved round by round (`BULWARK_CHURN_REPEAT`
/// rounds, each phase `BULWARK_CHURN_SECS` long) so a drift of the machine
/// spreads over all phases instead of landing on one; the summary sets each
/// phase's p99 against the spread of the runs alone.
async fn p99_under_churn() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, base) = start(dir.path(), &head(dir.path(), ""));
    let pid = gw.0.id();
    let (_remote, remote) = spawn(
        &["demo-server", "echo", "--http", "127.0.0.1:0"],
        dir.path(),
    );
    let run_for = churn_for();
    let _ = calls(&base, run_for).await; // warm-up
    let repeat: usize = std::env::var("BULWARK_CHURN_REPEAT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    let mut p99s: Vec<(Churn, Vec<f64>)> = Churn::ALL.iter().map(|c| (*c, Vec::new())).collect();
    for round in 1..=repeat {
        for (churn, seen) in &mut p99s {
            let (own, children) = cpu_ms(pid);
            let (n, p50, p99, rounds) = calls_during(&base, &remote, *churn, run_for).await;
            let (own_after, children_after) = cpu_ms(pid);
            println!(
                "round {round} {:<27}: {n} calls, p50 {p50:.0} µs, p99 {p99:.0} µs ({rounds} upstreams added and removed; \
                 CPU: gateway {} ms, its reaped children {} ms)",
                churn.label(),
                own_after - own,
                children_after - children,
            );
            seen.push(p99);
        }
    }
    let alone = p99s[0].1.clone();
    let (lo, hi) = range(&alone);
    println!(
        "p99 of tools/call over {repeat} rounds of {:.0} s per phase (noise: the runs alone span {lo:.0}–{hi:.0} µs):",
        run_for.as_secs_f64()
    );
    for (churn, seen) in &p99s {
        let (min, max) = range(seen);
        let mid = median(seen);
        let verdict = if mid <= hi {
            "within noise"
        } else {
            "above noise"
        };
        println!(
            "  {:<27} median {mid:>6.0} µs, runs {min:.0}–{max:.0} µs: {verdict}",
            churn.label()
        );
    }
}

fn range(values: &[f64]) -> (f64, f64) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

/// Echo calls while `churn` runs beside them, one upstream live at a time:
/// (calls, p50 µs, p99 µs, rounds).
async fn calls_during(
    base: &str,
    remote: &str,
    churn: Churn,
    run_for: Duration,
) -> (usize, f64, f64, usize) {
    if churn == Churn::Alone {
        let (n, p50, p99) = calls(base, run_for).await;
        return (n, p50, p99, 0);
    }
    // The churn is driven from a thread and runtime of its own, so its
    // requests never wait in the measuring client's queue (a p99 shift
    // there would be the bench's, not the gateway's).
    let worker = {
        let (base, remote) = (base.to_owned(), remote.to_owned());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        std::thread::spawn(move || {
            runtime.block_on(async move {
                let http = reqwest::Client::new();
                let mut rounds = 0;
                let start = Instant::now();
                while start.elapsed() < run_for && rounds < 100 {
                    if churn == Churn::ProcessesWithoutGateway {
                        start_and_close_a_demo_server().await;
                        rounds += 1;
                        continue;
                    }
                    let name = format!("churn{rounds}");
                    let created = http
                        .post(format!("{base}/api/v1/upstreams"))
                        .json(&churn.body(&name, &remote))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(created.status(), 201);
                    let removed = http
                        .delete(format!("{base}/api/v1/upstreams/{name}"))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(removed.status(), 204);
                    rounds += 1;
                }
                rounds
            })
        })
    };
    let (n, p50, p99) = calls(base, run_for).await;
    (n, p50, p99, worker.join().unwrap())
}

/// What the gateway does with a stdio upstream it adds and removes, done
/// by the bench: start the demo server, initialize, list its tools, close.
async fn start_and_close_a_demo_server() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut child = tokio::process::Command::new(bin())
        .args(["demo-server", "echo"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "bench", "version": "0"}}});
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    for (sent, answered) in [
        (format!("{initialize}\n"), "initialize"),
        (format!("{initialized}\n{list}\n"), "tools/list"),
    ] {
        stdin.write_all(sent.as_bytes()).await.unwrap();
        let line = lines.next_line().await.unwrap();
        assert!(line.is_some(), "{answered} not answered");
    }
    drop(stdin);
    child.wait().await.unwrap();
}

async fn reconcile_500() {
    let dir = tempfile::tempdir().unwrap();
    let base_config = head(dir.path(), "");
    let (_gw, base) = start(dir.path(), &base_config);
    let http = reqwest::Client::new();
    let mut big = base_config.clone();
    for i in 0..500 {
        big.push_str(&format!(
            "[upstreams.u{i}]\ncommand = \"/nonexistent/bulwark-bench\"\n"
        ));
    }
    let started = Instant::now();
    std::fs::write(dir.path().join("bulwark.toml"), &big).unwrap();
    loop {
        let tree: Value = http
            .get(format!("{base}/api/v1/actors"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let servers = tree["children"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter(|n| n["kind"] == "server_supervisor")
                    .count()
            })
            .unwrap_or(0);
        if servers >= 501 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "reconcile did not finish"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "reconcile of 500 upstreams (file save → 500 supervisors running): {:.0} ms (includes the 250 ms file poll)",
        started.elapsed().as_secs_f64() * 1e3
    );
}

async fn api_throughput(label: &str, store: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (_gw, base) = start(dir.path(), &head(dir.path(), store));
    let http = reqwest::Client::new();
    let created = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (http, base, created) = (http.clone(), base.clone(), created.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while start.elapsed() < RUN_FOR {
                    let body = json!({"name": format!("p{w}x{n}"), "upstreams": ["echo"]});
                    let r = http
                        .post(format!("{base}/api/v1/projects"))
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 201);
                    n += 1;
                    created.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let creates =
        created.load(std::sync::atomic::Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut lists = 0;
    while start.elapsed() < RUN_FOR {
        let r = http
            .get(format!("{base}/api/v1/projects?limit=50"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        lists += 1;
    }
    let lists = lists as f64 / start.elapsed().as_secs_f64();
    println!("API on {label:<10} create {creates:>7.0}/s (4 writers), list of 50 {lists:>7.0}/s");
}

async fn postgres_database() -> Option<(String, String)> {
    use sqlx::Executor;
    let pool = sqlx::PgPool::connect(PG_ADMIN).await.ok()?;
    let name = format!("bulwark_bench_{}", std::process::id());
    pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .ok()?;
    pool.close().await;
    Some((
        name.clone(),
        format!("postgres://postgres@127.0.0.1:5432/{name}"),
    ))
}

async fn drop_database(name: &str) {
    use sqlx::Executor;
    if let Ok(pool) = sqlx::PgPool::connect(PG_ADMIN).await {
        let _ = pool
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await;
        pool.close().await;
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        p99_under_churn().await;
        if std::env::var_os("BULWARK_CHURN_ONLY").is_some() {
            return;
        }
        reconcile_500().await;
        api_throughput("SQLite", "").await;
        match postgres_database().await {
            Some((name, url)) => {
                api_throughput("PostgreSQL", &format!("[store]\nurl = {url:?}\n")).await;
                drop_database(&name).await;
            }
            None => println!("SKIP: PostgreSQL not reachable at 127.0.0.1:5432"),
        }
    });
}
