//! The chaos soak, shared by `benches/chaos_soak.rs` (10 minutes, or
//! `--short`: 2) and the integration test that runs its short form in CI.
//!
//! 32 clients call through `/mcp` against a mix of healthy and hostile
//! upstreams (`demo-server chaos`) while one upstream process is `kill -9`ed
//! every 2 s. Then the gateway is stopped with SIGTERM, and a second one is
//! started and `kill -9`ed itself. Figures: gateway crashes, calls without
//! an answer by their deadline + 1 s, orphan processes after each stop, and
//! the gateway's RSS at start, peak and end.
//!
//! To find what grows the gateway's memory: `BULWARK_SOAK_UPSTREAMS=echo,flood`
//! runs only the upstreams named, `BULWARK_SOAK_KILL_EVERY_MS` changes the
//! kill period (0: no kills), `BULWARK_SOAK_GATEWAY_ENV="K=V K2=V2"` adds to
//! the measured gateway's environment (heaptrack's `LD_PRELOAD` and
//! `DUMP_HEAPTRACK_OUTPUT`, glibc's `MALLOC_*`), and `BULWARK_SOAK_BIN` runs
//! another build of `bulwark` (e.g. the one before a fix, side by side).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;

const BIN: &str = env!("CARGO_BIN_EXE_bulwark");

/// The binary run as gateway and upstreams: this build's, or
/// `BULWARK_SOAK_BIN` (another build, to compare the two).
fn bin() -> String {
    std::env::var("BULWARK_SOAK_BIN").unwrap_or_else(|_| BIN.to_owned())
}
const CLIENTS: usize = 32;
const KILL_EVERY: Duration = Duration::from_secs(2);
/// The deadline every upstream operation runs under in the soak.
const DEADLINE: Duration = Duration::from_secs(3);

/// What one soak measured.
#[derive(Debug, Default)]
pub struct Figures {
    pub calls: u64,
    pub ok: u64,
    pub errors: u64,
    /// Calls without an answer by their deadline + 1 s.
    pub unanswered: u64,
    /// When those calls were answered after all (ms from their start;
    /// `u64::MAX`: not within 30 s more).
    pub late_answers_ms: Vec<u64>,
    /// The same, per upstream.
    pub unanswered_by_server: std::collections::BTreeMap<&'static str, u64>,
    pub upstream_kills: u64,
    /// Client tasks that had not ended well after the run (a call or a
    /// session close that never returned): each is a lost call.
    pub stuck_clients: usize,
    /// 1 if the gateway died during the run.
    pub gateway_crashes: u64,
    /// Upstream processes (grandchildren included) alive after SIGTERM.
    pub orphans_after_sigterm: usize,
    /// Upstream processes alive after `kill -9` of a second gateway.
    pub orphans_after_kill9: usize,
    pub rss_start_kib: u64,
    pub rss_peak_kib: u64,
    pub rss_end_kib: u64,
    /// RSS every [`RSS_EVERY`] of the run: whether it plateaus or climbs.
    pub rss_samples_kib: Vec<u64>,
    /// Client sessions the gateway holds open, sampled with the RSS: the
    /// soak's clients start a new session when theirs breaks, and one that
    /// was never closed is held until it idles out.
    pub sessions_samples: Vec<u64>,
    /// The machine's highest 1-minute load average per CPU seen during the
    /// run: above 1 the gateway was competing for CPU with other work.
    pub load_per_cpu: f64,
}

impl Figures {
    /// Calls not answered at all, even 30 s after their deadline + 1 s.
    pub fn lost(&self) -> usize {
        self.late_answers_ms
            .iter()
            .filter(|ms| **ms == u64::MAX)
            .count()
            + self.stuck_clients
    }
}

/// The 1-minute load average divided by the CPUs available.
fn load_per_cpu() -> f64 {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |load| load / cpus)
}

/// How often the run samples the gateway's RSS.
const RSS_EVERY: Duration = Duration::from_secs(15);

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "calls {} (ok {}, error answers {}), unanswered by deadline+1s {}, upstream kill -9s {}, \
             lost {}, gateway crashes {}, orphans after SIGTERM {}, orphans after kill -9 of the gateway {}, \
             RSS start {} KiB / peak {} KiB / end {} KiB (every {}s: {:?}; sessions open {:?}); unanswered per upstream {:?}, answered after all at (ms) {:?}; load per CPU up to {:.1}",
            self.calls,
            self.ok,
            self.errors,
            self.unanswered,
            self.upstream_kills,
            self.lost(),
            self.gateway_crashes,
            self.orphans_after_sigterm,
            self.orphans_after_kill9,
            self.rss_start_kib,
            self.rss_peak_kib,
            self.rss_end_kib,
            RSS_EVERY.as_secs(),
            self.rss_samples_kib,
            self.sessions_samples,
            self.unanswered_by_server,
            self.late_answers_ms,
            self.load_per_cpu
        )
    }
}

/// The upstreams of the soak: `(name, demo-server arguments)`.
const UPSTREAMS: [(&str, &str); 10] = [
    ("echo", r#""echo""#),
    ("echo2", r#""echo""#),
    ("slow", r#""slow", "--delay-ms", "200""#),
    ("noisy", r#""chaos", "--chaos", "stderr-garbage""#),
    ("stubborn", r#""chaos", "--chaos", "ignore-sigterm""#),
    ("forker", r#""chaos", "--chaos", "fork-grandchildren""#),
    ("garbage", r#""chaos", "--chaos", "stdout-garbage""#),
    ("huge", r#""chaos", "--chaos", "huge-line""#),
    ("flood", r#""chaos", "--chaos", "notify-flood""#),
    ("liar", r#""chaos", "--chaos", "wrong-ids""#),
];

/// The upstreams this run uses: all of [`UPSTREAMS`] (and `mute`), or those
/// `BULWARK_SOAK_UPSTREAMS` names (comma-separated), to tell which one grows
/// the gateway's memory.
fn chosen() -> Vec<(&'static str, &'static str)> {
    let only = std::env::var("BULWARK_SOAK_UPSTREAMS").ok();
    let wanted = |name: &str| {
        only.as_deref()
            .is_none_or(|only| only.split(',').any(|n| n.trim() == name))
    };
    UPSTREAMS
        .into_iter()
        .chain([MUTE])
        .filter(|(name, _)| wanted(name))
        .collect()
}

/// The chosen upstreams the clients call (all but `mute`; at least `echo`).
fn callable() -> Vec<&'static str> {
    let callable: Vec<&str> = (chosen().into_iter())
        .map(|(name, _)| name)
        .filter(|name| *name != MUTE.0)
        .collect();
    assert!(
        !callable.is_empty(),
        "BULWARK_SOAK_UPSTREAMS names nothing to call"
    );
    callable
}

/// The tool a client calls on `server`.
fn tool_of(server: &str) -> String {
    if server == "slow" {
        "slow__slow".to_owned()
    } else {
        format!("{server}__echo")
    }
}

/// Never answers `initialize`: restarted by its handshake deadline.
const MUTE: (&str, &str) = ("mute", r#""chaos", "--chaos", "no-initialize""#);

/// How often an upstream is `kill -9`ed: [`KILL_EVERY`], or
/// `BULWARK_SOAK_KILL_EVERY_MS` (0: never).
fn kill_every() -> Option<Duration> {
    match std::env::var("BULWARK_SOAK_KILL_EVERY_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
    {
        Some(0) => None,
        Some(ms) => Some(Duration::from_millis(ms)),
        None => Some(KILL_EVERY),
    }
}

fn config(dir: &std::path::Path) -> String {
    let mut toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nshutdown_grace_secs = 5\n\
         [supervision]\nmax_restarts = 100000\nwindow_secs = 1\nbackoff_min_ms = 10\nbackoff_max_ms = 200\n\
         probe_interval_secs = 1\nhandshake_timeout_secs = 2\n\
         [timeouts.deadlines]\ndefault = {s}\ntool_execution = {s}\ndiscovery = {s}\n",
        dir.join("data"),
        s = DEADLINE.as_secs(),
    );
    for (name, args) in chosen() {
        toml.push_str(&format!(
            "[upstreams.{name}]\ncommand = {bin:?}\nargs = [\"demo-server\", {args}]\n",
            bin = bin()
        ));
    }
    toml
}

/// The gateway process, in its own process group.
struct GatewayProc {
    child: Child,
    url: String,
}

impl GatewayProc {
    /// Starts a gateway; `env` goes to its environment (e.g. `LD_PRELOAD`
    /// of a heap profiler, `MALLOC_*` of glibc).
    fn start(dir: &std::path::Path, env: &[(String, String)]) -> Self {
        let path = dir.join("bulwark.toml");
        std::fs::write(&path, config(dir)).unwrap();
        let mut child = Command::new(bin())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(["serve", "--config"])
            .arg(&path)
            .current_dir(dir)
            .env("BULWARK__AUTH__ENABLED", "false")
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(at) = line.find("http://") {
                    let _ = tx.send(line[at..].split_whitespace().next().unwrap().to_owned());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("gateway URL");
        Self { child, url }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for GatewayProc {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
    }
}

/// `(ppid, start time)` of a live, non-zombie process.
fn stat(pid: i32) -> Option<(i32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    Some((fields.get(1)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}

fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Live descendants of `root` with their start times.
fn descendants(root: i32) -> HashMap<i32, u64> {
    let mut children: HashMap<i32, Vec<(i32, u64)>> = HashMap::new();
    for pid in all_pids() {
        if let Some((ppid, start)) = stat(pid) {
            children.entry(ppid).or_default().push((pid, start));
        }
    }
    let mut out = HashMap::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for &(c, start) in children.get(&p).map(Vec::as_slice).unwrap_or_default() {
            out.insert(c, start);
            todo.push(c);
        }
    }
    out
}

/// Of the processes seen, those still alive (the same process: same start time).
fn survivors(seen: &HashMap<i32, u64>) -> usize {
    seen.iter()
        .filter(|(pid, start)| stat(**pid).is_some_and(|(_, s)| s == **start))
        .count()
}

/// Waits up to `timeout` for every seen process to be gone; the survivors.
fn survivors_after(seen: &HashMap<i32, u64>, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let left = survivors(seen);
        if left == 0 || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// `bulwark_sessions_open` from the gateway's `/metrics` (0 if unreadable).
async fn sessions_open(mcp_url: &str) -> u64 {
    let metrics = format!("{}/metrics", mcp_url.trim_end_matches("/mcp"));
    let text = match reqwest::get(metrics).await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => return 0,
    };
    text.lines()
        .find(|line| line.starts_with("bulwark_sessions_open"))
        .and_then(|line| line.split_whitespace().last()?.parse::<f64>().ok())
        .map_or(0, |open| open as u64)
}

async fn connect(url: &str) -> Option<RunningService<RoleClient, ()>> {
    let transport = StreamableHttpClientTransport::from_uri(url.to_owned());
    tokio::time::timeout(Duration::from_secs(10), ().serve(transport))
        .await
        .ok()?
        .ok()
}

/// A small xorshift: the soak needs variety, not quality.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    ok: AtomicU64,
    errors: AtomicU64,
    unanswered: AtomicU64,
    unanswered_by_server: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
    late_answers_ms: std::sync::Mutex<Vec<u64>>,
}

/// How long an unanswered call is still waited for, to tell late from never.
const LATE_WAIT: Duration = Duration::from_secs(30);

async fn client_loop(url: String, until: Instant, seed: u64, counters: Arc<Counters>) {
    let mut seed = seed | 1;
    let mut client = None;
    while Instant::now() < until {
        if client.is_none() {
            client = connect(&url).await;
            if client.is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        }
        let Some(session) = &client else { continue };
        let callable = callable();
        let server = callable[(next(&mut seed) % callable.len() as u64) as usize];
        let mut params = CallToolRequestParams::new(tool_of(server));
        params.arguments = serde_json::json!({"message": "soak", "ms": 100})
            .as_object()
            .cloned();
        counters.calls.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let answer = {
            let call = session.peer().call_tool(params);
            tokio::pin!(call);
            let answer = tokio::time::timeout(DEADLINE + Duration::from_secs(1), &mut call).await;
            if answer.is_err() {
                // Late or never: when (if at all) the answer comes tells which.
                let late = tokio::time::timeout(LATE_WAIT, &mut call).await;
                let at = late.map_or(u64::MAX, |_| started.elapsed().as_millis() as u64);
                counters.late_answers_ms.lock().unwrap().push(at);
            }
            answer
        };
        match answer {
            Ok(Ok(result)) if result.is_error != Some(true) => {
                counters.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Ok(_)) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(rmcp::ServiceError::McpError(_))) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(_)) => {
                // The client's own session broke: an answer, but start afresh.
                counters.errors.fetch_add(1, Ordering::Relaxed);
                client = None;
            }
            Err(_) => {
                counters.unanswered.fetch_add(1, Ordering::Relaxed);
                let mut by = counters.unanswered_by_server.lock().unwrap();
                *by.entry(server).or_default() += 1;
            }
        }
    }
    if let Some(client) = client {
        // Bounded: a close that never finishes must not hang the soak.
        let _ = tokio::time::timeout(Duration::from_secs(5), client.cancel()).await;
    }
}

/// Runs the soak for `duration` and returns its figures.
pub async fn run(duration: Duration) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let mut figures = Figures::default();
    // `BULWARK_SOAK_GATEWAY_ENV="K=V K2=V2"`: the measured gateway's own
    // environment (not the second one's), e.g. to run it under heaptrack.
    let env: Vec<(String, String)> = std::env::var("BULWARK_SOAK_GATEWAY_ENV")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let mut gateway = GatewayProc::start(dir.path(), &env);
    let url = gateway.url.clone();
    // Wait for a healthy upstream before starting the clock.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "the echo upstream never answered"
        );
        if let Some(client) = connect(&url).await {
            let mut params = CallToolRequestParams::new(tool_of(callable()[0]));
            params.arguments = serde_json::json!({"message": "warm"}).as_object().cloned();
            let ok = tokio::time::timeout(Duration::from_secs(10), client.peer().call_tool(params))
                .await
                .is_ok_and(|r| r.is_ok_and(|r| r.is_error != Some(true)));
            // Bounded: a close that never finishes must not hang the soak.
            let _ = tokio::time::timeout(Duration::from_secs(5), client.cancel()).await;
            if ok {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    figures.rss_start_kib = rss_kib(gateway.pid());
    figures.rss_peak_kib = figures.rss_start_kib;

    let counters = Arc::new(Counters::default());
    let until = Instant::now() + duration;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            tokio::spawn(client_loop(
                url.clone(),
                until,
                0x9E37_79B9_7F4A_7C15 ^ i as u64,
                counters.clone(),
            ))
        })
        .collect();
    let mut seen: HashMap<i32, u64> = HashMap::new();
    let mut seed = 0x2545_F491_4F6C_DD1D_u64;
    let kill_every = kill_every();
    let mut next_kill = Instant::now() + kill_every.unwrap_or(KILL_EVERY);
    let mut next_sample = Instant::now() + RSS_EVERY;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if !gateway.alive() {
            figures.gateway_crashes = 1;
            break;
        }
        let live = descendants(gateway.pid());
        let rss = rss_kib(gateway.pid());
        figures.rss_peak_kib = figures.rss_peak_kib.max(rss);
        figures.load_per_cpu = figures.load_per_cpu.max(load_per_cpu());
        if Instant::now() >= next_sample {
            next_sample += RSS_EVERY;
            figures.rss_samples_kib.push(rss);
            figures.sessions_samples.push(sessions_open(&url).await);
        }
        if let Some(every) = kill_every
            && Instant::now() >= next_kill
        {
            next_kill += every;
            // Direct children only: the upstream processes (and the watchdog, spared).
            let upstreams: Vec<i32> = live
                .keys()
                .copied()
                .filter(|pid| stat(*pid).is_some_and(|(ppid, _)| ppid == gateway.pid()))
                .filter(|pid| {
                    std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|c| c.contains("demo-server"))
                })
                .collect();
            if !upstreams.is_empty() {
                let victim = upstreams[(next(&mut seed) % upstreams.len() as u64) as usize];
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(victim),
                    nix::sys::signal::Signal::SIGKILL,
                );
                figures.upstream_kills += 1;
            }
        }
        seen.extend(live);
    }
    // Each client ends within a call's deadline + the late wait after
    // `until`; one that does not is stuck, and counts as lost.
    let ends_by = tokio::time::Instant::now() + DEADLINE + LATE_WAIT + Duration::from_secs(20);
    for client in clients {
        let abort = client.abort_handle();
        if tokio::time::timeout_at(ends_by, client).await.is_err() {
            abort.abort();
            figures.stuck_clients += 1;
        }
    }
    figures.calls = counters.calls.load(Ordering::Relaxed);
    figures.ok = counters.ok.load(Ordering::Relaxed);
    figures.errors = counters.errors.load(Ordering::Relaxed);
    figures.unanswered = counters.unanswered.load(Ordering::Relaxed);
    figures.unanswered_by_server = counters.unanswered_by_server.lock().unwrap().clone();
    figures.late_answers_ms = counters.late_answers_ms.lock().unwrap().clone();
    figures.late_answers_ms.sort_unstable();
    if gateway.alive() {
        figures.rss_end_kib = rss_kib(gateway.pid());
        seen.extend(descendants(gateway.pid()));
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(gateway.pid()),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while gateway.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    } else {
        figures.gateway_crashes = 1;
    }
    figures.orphans_after_sigterm = survivors_after(&seen, Duration::from_secs(5));
    drop(gateway);

    // A second gateway, killed with kill -9 once its upstreams run.
    let mut second = GatewayProc::start(dir.path(), &[]);
    let mut seen = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        seen = descendants(second.pid());
        // Every upstream plus the forker's two grandchildren and the watchdog.
        let chosen = chosen();
        let forks = if chosen.iter().any(|(name, _)| *name == "forker") {
            2
        } else {
            0
        };
        if seen.len() > chosen.len() + forks {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(second.pid()),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = second.child.wait();
    assert!(!second.alive());
    figures.orphans_after_kill9 = survivors_after(&seen, Duration::from_secs(5));
    figures
}
