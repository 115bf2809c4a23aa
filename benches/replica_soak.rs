//! Replica soak: sessions calling through HAProxy over three replicas
//! (`deploy/local/replicas.sh`, on its own throwaway PostgreSQL and Redis)
//! while one replica is `kill -9`ed and restarted every 10 s. 5 minutes by
//! default, `-- --short` 30 s, `BULWARK_SOAK_SECS` any other duration.
//!
//! Prints lost sessions (target 0), failed calls split by when they failed
//! relative to the kills (only those in flight at a kill should fail), why
//! they failed, failed session opens, latency percentiles of the calls that
//! succeeded, how long restarts took, and what HAProxy logged for the errors
//! it answered (`BULWARK_SOAK_HAPROXY_LOG=FILE` keeps its whole log).
//! Asserts nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

const SESSIONS: usize = 16;
const KILL_EVERY: Duration = Duration::from_secs(10);
/// A failed call that started at most this long after a killed replica
/// refused connections counts as "just after": HAProxy sends it requests
/// until it marks it down (a refused connection is retried elsewhere, so
/// none should fail).
const KILL_GRACE: Duration = Duration::from_millis(250);

/// How one call ended.
#[derive(Debug)]
enum Outcome {
    Ok,
    /// The session was unknown (404): the failure this setup must prevent.
    Lost,
    Failed(String),
}

/// One call, timed.
struct Call {
    start: Instant,
    end: Instant,
    outcome: Outcome,
}

/// What one client saw.
#[derive(Default)]
struct Seen {
    calls: Vec<Call>,
    /// Why each failed `initialize` (+ `initialized`) failed.
    open_failures: Vec<String>,
    /// Sessions opened (the first one and those after a loss).
    opened: u64,
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    body: &Value,
) -> Result<(u16, Option<String>, String), String> {
    let mut request = http
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2025-06-18")
        .json(body);
    if let Some(session) = session {
        request = request.header("Mcp-Session-Id", session);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("transport: {}", chain(&e)))?;
    let status = response.status().as_u16();
    let id = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response
        .text()
        .await
        .map_err(|e| format!("reading the body: {}", chain(&e)))?;
    Ok((status, id, text))
}

/// `err` and its sources, innermost last.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// `initialize` then `notifications/initialized` → the session id, or why not.
async fn open(http: &reqwest::Client, url: &str) -> Result<String, String> {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "replica-soak", "version": "1"}}});
    let (status, id, body) = post(http, url, None, &init)
        .await
        .map_err(|e| format!("initialize: {e}"))?;
    let id =
        id.ok_or_else(|| format!("initialize: HTTP {status} without a session: {body:.120}"))?;
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    match post(http, url, Some(&id), &initialized).await {
        Ok((202 | 200, _, _)) => Ok(id),
        Ok((status, _, body)) => Err(format!("initialized: HTTP {status}: {body:.120}")),
        Err(e) => Err(format!("initialized: {e}")),
    }
}

/// One client: one session, calls back to back until `end`; a lost session
/// is replaced by a new one.
async fn client(url: String, end: Instant) -> Seen {
    let http = reqwest::Client::new();
    let mut seen = Seen::default();
    let mut session = None;
    let mut n = 0u64;
    while Instant::now() < end {
        let Some(id) = session.as_deref() else {
            match open(&http, &url).await {
                Ok(id) => {
                    seen.opened += 1;
                    session = Some(id);
                }
                Err(why) => {
                    seen.open_failures.push(why);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            continue;
        };
        n += 1;
        let call = json!({"jsonrpc": "2.0", "id": n, "method": "tools/call",
            "params": {"name": "echo__echo", "arguments": {"message": "soak"}}});
        let start = Instant::now();
        let answer = post(&http, &url, Some(id), &call).await;
        let outcome = match answer {
            Ok((200, _, body)) if body.contains("\"soak\"") && !body.contains("\"error\"") => {
                Outcome::Ok
            }
            Ok((404, _, _)) => Outcome::Lost,
            Ok((status, _, body)) => Outcome::Failed(format!("HTTP {status}: {body:.100}")),
            Err(e) => Outcome::Failed(e),
        };
        if matches!(outcome, Outcome::Lost) {
            session = None;
        }
        seen.calls.push(Call {
            start,
            end: Instant::now(),
            outcome,
        });
    }
    seen
}

/// One replica's `kill -9`.
struct Kill {
    at: Instant,
    /// When its listening socket refused connections (the process is gone).
    gone: Instant,
    /// How long until it was ready again.
    restart: Option<Duration>,
}

/// `deploy/local/replicas.sh` in its own process group.
struct Topology {
    script: Child,
    lines: Receiver<String>,
    /// HAProxy's `/mcp`.
    url: String,
    /// Replica pids, in HAProxy's server order.
    pids: Vec<i32>,
    /// Their listening ports, in the same order.
    ports: Vec<u16>,
    dir: tempfile::TempDir,
}

impl Topology {
    fn start() -> Topology {
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
        .args(["--replicas", "3", "--port", &port.to_string()])
        .args(["--bin", env!("CARGO_BIN_EXE_bulwark")])
        .arg("--dir")
        .arg(dir.path().join("run"))
        .arg("--config")
        .arg(&extra)
        // Its own PostgreSQL and Redis: nothing else's load in the figures.
        .env_remove("BULWARK_PG_URL")
        .env_remove("BULWARK_REDIS_URL")
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
        let mut topology = Topology {
            script,
            lines,
            url: String::new(),
            pids: Vec::new(),
            ports: Vec::new(),
            dir,
        };
        while topology.url.is_empty() {
            let line = topology
                .lines
                .recv_timeout(Duration::from_secs(180))
                .expect("the script never said HAProxy was up");
            topology.note(&line);
            if let Some(url) = line.strip_prefix("Bulwark replicas behind HAProxy on ") {
                topology.url = url.to_owned();
            }
        }
        topology
    }

    /// Records a replica's pid and port from a "replica I pid P url U"
    /// line → I.
    fn note(&mut self, line: &str) -> Option<usize> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let ["replica", i, "pid", pid, "url", url, ..] = words.as_slice() else {
            return None;
        };
        let i: usize = i.parse().ok()?;
        let port = url
            .trim_end_matches("/mcp")
            .rsplit(':')
            .next()?
            .parse()
            .ok()?;
        self.pids.resize(self.pids.len().max(i), 0);
        self.ports.resize(self.ports.len().max(i), 0);
        self.pids[i - 1] = pid.parse().ok()?;
        self.ports[i - 1] = port;
        Some(i - 1)
    }

    /// Kills replica `victim` with SIGKILL, waits until it is gone, asks the
    /// script to start it again and waits (up to `limit`) until it is ready.
    fn kill_and_restart(&mut self, victim: usize, limit: Duration) -> Kill {
        let pid = self.pids[victim];
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.ports[victim]));
        let killed = Instant::now();
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        // Its listening socket stays open until the last of its threads has
        // exited (its main thread is a zombie well before): until then the
        // kernel accepts connections for it that nobody will answer.
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
            && killed.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        let gone = Instant::now();
        // Until the kernel has torn it down (a zombie counts as gone), the
        // script would take it for alive and not restart it.
        while alive(pid) && killed.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let script = Pid::from_raw(i32::try_from(self.script.id()).unwrap());
        let _ = kill(script, Signal::SIGUSR1);
        while killed.elapsed() < limit {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100))
                && self.note(&line) == Some(victim)
            {
                return Kill {
                    at: killed,
                    gone,
                    restart: Some(killed.elapsed()),
                };
            }
        }
        Kill {
            at: killed,
            gone,
            restart: None,
        }
    }

    fn haproxy_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("run/haproxy.log")).unwrap_or_default()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let group = Pid::from_raw(i32::try_from(self.script.id()).unwrap());
        let _ = kill(group, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && matches!(self.script.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.script.wait();
    }
}

/// Whether `pid` runs (a zombie does not).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// The requests HAProxy logged without a 2xx answer, by status and
/// termination state (e.g. "502 SH--": the server closed before its
/// response headers; "-1 CD--": the client went away).
fn haproxy_errors(log: &str) -> BTreeMap<String, u64> {
    let mut errors = BTreeMap::new();
    for line in log.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        // client [date] frontend backend/server timers status bytes - - state …
        if words.len() > 9 && words[3].contains('/') && !words[5].starts_with('2') {
            *errors
                .entry(format!("{} {}", words[5], words[9]))
                .or_default() += 1;
        }
    }
    errors
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[tokio::main]
async fn main() {
    let short = std::env::args().any(|a| a == "--short");
    let secs = std::env::var("BULWARK_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if short { 30 } else { 300 });
    let duration = Duration::from_secs(secs);
    let mut topology = tokio::task::spawn_blocking(Topology::start).await.unwrap();
    println!(
        "replica soak for {duration:?}: {SESSIONS} sessions through {}, a replica killed and restarted every {KILL_EVERY:?}",
        topology.url
    );
    let end = Instant::now() + duration;
    let clients: Vec<_> = (0..SESSIONS)
        .map(|_| tokio::spawn(client(topology.url.clone(), end)))
        .collect();
    // The killer runs on a blocking thread: it sleeps and reads the
    // script's lines, never holding up the clients.
    let killer = tokio::task::spawn_blocking(move || {
        let mut kills = Vec::new();
        let mut next = Instant::now() + KILL_EVERY;
        while next + KILL_EVERY / 2 < end {
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            let victim = kills.len() % topology.pids.len();
            kills.push(topology.kill_and_restart(victim, KILL_EVERY - Duration::from_secs(1)));
            next += KILL_EVERY;
        }
        (topology, kills)
    });
    let mut seen = Vec::new();
    for client in clients {
        seen.push(client.await.unwrap());
    }
    let (topology, kills) = killer.await.unwrap();

    let (mut ok, mut lost, mut in_flight, mut dying, mut just_after, mut other) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut causes: BTreeMap<String, u64> = BTreeMap::new();
    let mut others = Vec::new();
    let mut latencies = Vec::new();
    for call in seen.iter().flat_map(|s| &s.calls) {
        match &call.outcome {
            Outcome::Ok => {
                ok += 1;
                latencies.push(call.end - call.start);
            }
            Outcome::Lost => lost += 1,
            Outcome::Failed(why) => {
                let cause: String = why.chars().take(200).collect();
                *causes.entry(cause).or_default() += 1;
                if kills.iter().any(|k| call.start <= k.at && k.at <= call.end) {
                    in_flight += 1;
                } else if kills
                    .iter()
                    .any(|k| k.at < call.start && call.start <= k.gone)
                {
                    dying += 1;
                } else if kills
                    .iter()
                    .any(|k| k.gone <= call.start && call.start - k.gone <= KILL_GRACE)
                {
                    just_after += 1;
                } else {
                    other += 1;
                    let since = kills
                        .iter()
                        .filter(|k| k.at <= call.start)
                        .map(|k| call.start - k.at)
                        .min();
                    others.push(format!("{since:?} after the last kill: {why:.160}"));
                }
            }
        }
    }
    latencies.sort();
    let opened: u64 = seen.iter().map(|s| s.opened).sum();
    let open_failures: Vec<&String> = seen.iter().flat_map(|s| &s.open_failures).collect();
    let restarted: Vec<Duration> = kills.iter().filter_map(|k| k.restart).collect();
    let mut teardowns: Vec<Duration> = kills.iter().map(|k| k.gone - k.at).collect();
    teardowns.sort();
    println!(
        "replica soak ({duration:?}, {} kills, {} restarted, restart max {:?}): calls {}, ok {ok}, \
         failed {} (in flight at a kill {in_flight}, sent while the killed replica still accepted \
         connections {dying}, within {KILL_GRACE:?} after it refused them {just_after}, \
         other {other}), lost sessions {lost}, sessions opened {opened}, failed opens {}",
        kills.len(),
        restarted.len(),
        restarted.iter().max().copied().unwrap_or_default(),
        ok + lost + in_flight + dying + just_after + other,
        in_flight + dying + just_after + other,
        open_failures.len(),
    );
    println!(
        "kill -9 until its port refused connections: p50 {:?}, max {:?}",
        percentile(&teardowns, 0.5),
        teardowns.last().copied().unwrap_or_default(),
    );
    println!(
        "latency of the calls that succeeded: p50 {:?}, p90 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.90),
        percentile(&latencies, 0.99),
        percentile(&latencies, 0.999),
        latencies.last().copied().unwrap_or_default(),
    );
    for (cause, n) in &causes {
        println!("  failed {n}: {cause}");
    }
    for why in others.iter().take(10) {
        println!("  not at a kill: {why}");
    }
    for why in open_failures.iter().take(10) {
        println!("  open failed: {why}");
    }
    for (what, n) in haproxy_errors(&topology.haproxy_log()) {
        println!("  haproxy answered {what}: {n}");
    }
    if let Some(keep) = std::env::var_os("BULWARK_SOAK_HAPROXY_LOG") {
        let _ = std::fs::write(keep, topology.haproxy_log());
    }
    drop(topology);
}
