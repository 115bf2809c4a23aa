//! Replica soak: sessions calling through HAProxy over three replicas
//! (`deploy/local/replicas.sh`, PostgreSQL + Redis on loopback) while one
//! replica is `kill -9`ed and restarted every 10 s. 5 minutes by default,
//! `-- --short` 30 s, `BULWARK_SOAK_SECS` any other duration. Prints lost
//! sessions (target 0), failed calls (only those in flight at a kill should
//! fail) and latency percentiles; asserts nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Executor;

const SESSIONS: usize = 16;
const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
    lost_sessions: AtomicU64,
    /// Sessions that could not be opened (not lost: never had).
    open_failures: AtomicU64,
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    body: &Value,
) -> Result<(u16, Option<String>, String), reqwest::Error> {
    let mut request = http
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2025-06-18")
        .json(body);
    if let Some(session) = session {
        request = request.header("Mcp-Session-Id", session);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let id = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((status, id, response.text().await?))
}

async fn open(http: &reqwest::Client, url: &str) -> Option<String> {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "replica-soak", "version": "1"}}});
    let (_, id, _) = post(http, url, None, &init).await.ok()?;
    let id = id?;
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    post(http, url, Some(&id), &initialized).await.ok()?;
    Some(id)
}

/// One client: one session, calls back to back until `end`.
async fn client(
    url: String,
    end: Instant,
    counts: Arc<Counts>,
    latencies: Arc<std::sync::Mutex<Vec<Duration>>>,
) {
    let http = reqwest::Client::new();
    let Some(mut session) = open(&http, &url).await else {
        counts.open_failures.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let mut n = 0u64;
    while Instant::now() < end {
        n += 1;
        let call = json!({"jsonrpc": "2.0", "id": n, "method": "tools/call",
            "params": {"name": "echo__echo", "arguments": {"message": "soak"}}});
        let started = Instant::now();
        match post(&http, &url, Some(&session), &call).await {
            Ok((200, _, body)) if body.contains("soak") && !body.contains("\"error\"") => {
                counts.ok.fetch_add(1, Ordering::Relaxed);
                latencies.lock().unwrap().push(started.elapsed());
            }
            Ok((404, _, _)) => {
                // The session is gone: the failure this setup must prevent.
                counts.lost_sessions.fetch_add(1, Ordering::Relaxed);
                match open(&http, &url).await {
                    Some(fresh) => session = fresh,
                    None => {
                        counts.open_failures.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
            _ => {
                counts.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let short = std::env::args().any(|a| a == "--short");
    let secs = std::env::var("BULWARK_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if short { 30 } else { 300 });
    let duration = Duration::from_secs(secs);
    let db = format!("bulwark_soak_{}", std::process::id());
    let admin = sqlx::PgPool::connect(ADMIN_URL)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432");
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("extra.toml");
    std::fs::write(
        &extra,
        format!(
            "[upstreams.echo]\ncommand = {:?}\nargs = [\"demo-server\", \"echo\"]\n",
            env!("CARGO_BIN_EXE_bulwark")
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut script = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/local/replicas.sh"
    ))
    .args([
        "--replicas",
        "3",
        "--port",
        &port.to_string(),
        "--bin",
        env!("CARGO_BIN_EXE_bulwark"),
    ])
    .arg("--dir")
    .arg(dir.path().join("run"))
    .arg("--config")
    .arg(&extra)
    .env(
        "BULWARK_PG_URL",
        format!("postgres://postgres@127.0.0.1:5432/{db}"),
    )
    .env("BULWARK__AUTH__ENABLED", "false")
    .stdout(Stdio::piped())
    .process_group(0)
    .spawn()
    .expect("deploy/local/replicas.sh");
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout = script.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut pids: Vec<i32> = Vec::new();
    let url = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(120))
            .expect("replicas up");
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["replica", i, "pid", pid, ..] = words.as_slice() {
            let i: usize = i.parse().unwrap();
            pids.resize(pids.len().max(i), 0);
            pids[i - 1] = pid.parse().unwrap();
        }
        if line.starts_with("Bulwark replicas behind HAProxy on ") {
            break words.last().unwrap().to_string();
        }
    };
    println!(
        "replica soak for {duration:?}: {SESSIONS} sessions through {url}, a replica killed and restarted every 10 s"
    );
    let counts = Arc::new(Counts::default());
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let end = Instant::now() + duration;
    let clients: Vec<_> = (0..SESSIONS)
        .map(|_| tokio::spawn(client(url.clone(), end, counts.clone(), latencies.clone())))
        .collect();
    let mut kills = 0;
    while Instant::now() + Duration::from_secs(10) < end {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let victim = kills % pids.len();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pids[victim]),
            nix::sys::signal::Signal::SIGKILL,
        );
        kills += 1;
        // Restart it: the script starts missing replicas on SIGUSR1.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(script.id()).unwrap()),
            nix::sys::signal::Signal::SIGUSR1,
        );
        let deadline = Instant::now() + Duration::from_secs(9);
        while Instant::now() < deadline {
            if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
                let words: Vec<&str> = line.split_whitespace().collect();
                if let ["replica", i, "pid", pid, ..] = words.as_slice() {
                    pids[i.parse::<usize>().unwrap() - 1] = pid.parse().unwrap();
                    break;
                }
            }
        }
    }
    for client in clients {
        let _ = client.await;
    }
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "replica soak ({duration:?}, {kills} kills): calls ok {}, failed {}, lost sessions {}, sessions not opened {}, p50 {:?}, p99 {:?}, max {:?}",
        counts.ok.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
        counts.lost_sessions.load(Ordering::Relaxed),
        counts.open_failures.load(Ordering::Relaxed),
        pct(0.50),
        pct(0.99),
        latencies.last().copied().unwrap_or_default(),
    );
    let group = nix::unistd::Pid::from_raw(i32::try_from(script.id()).unwrap());
    let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGTERM);
    let _ = script.wait();
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
        )))
        .await
        .unwrap();
}
