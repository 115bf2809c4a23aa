//! Harness for Bulwark's integration tests (one test binary: `tests/it`).
//!
//! * [`peers()`] — the pinned real MCP peers installed by `tests/peers/install.sh`.
//!   Missing peers SKIP the test (a visible `SKIP:` line on stderr) unless
//!   `BULWARK_REQUIRE_SERVICES=1`, in which case the test panics. Same rule for
//!   [`require_postgres()`] / [`require_redis()`].
//! * [`Gateway`] — the `bulwark serve` binary in its own process group, with
//!   stdout/stderr drained into buffers; SIGKILLed (whole group) on drop.
//! * [`EverythingHttp`] — `mcp-server-everything streamableHttp` as an upstream.
//! * [`Peers::run_python`] / [`PythonSession`] — the Python clients in
//!   `tests/peers/clients/` (official `mcp` SDK).
//! * `/proc` helpers: [`descendants`], [`pids_with_cmdline_containing`],
//!   [`wait_until`], [`eventually`], [`kill9`], [`alive`].
//!
//! The blocking helpers (process, Python) are fine in sync tests and in
//! `#[tokio::test(flavor = "multi_thread")]` tests.

#![allow(dead_code)] // each test uses a different part of the harness

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// Env var: when `1`, a missing peer/service fails the test instead of skipping it.
pub const REQUIRE_ENV: &str = "BULWARK_REQUIRE_SERVICES";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn services_required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Reports a missing prerequisite: prints `SKIP: …` to stderr (the caller then
/// returns), or panics when `BULWARK_REQUIRE_SERVICES=1`.
pub fn skip(reason: &str) {
    if services_required() {
        panic!("{REQUIRE_ENV}=1 but {reason}");
    }
    let test = thread::current().name().unwrap_or("?").to_owned();
    eprintln!("SKIP: {test}: {reason}");
}

// ---------------------------------------------------------------------------
// Peers

/// Paths of the installed test peers (see `tests/peers/install.sh`).
#[derive(Clone, Debug)]
pub struct Peers {
    /// `target/peers` (or `$BULWARK_PEERS_DIR`).
    pub dir: PathBuf,
    /// The venv's python, with the `mcp` SDK and `mcp-server-time`.
    pub python: PathBuf,
    /// The venv's `bin/` (holds `mcp-server-time`).
    pub venv_bin: PathBuf,
    /// `node_modules/.bin` (holds `mcp-server-everything`).
    pub node_bin: PathBuf,
    /// `tests/peers/clients`.
    pub clients: PathBuf,
}

/// The installed peers, or `None` after a `SKIP:` line (panics instead when
/// `BULWARK_REQUIRE_SERVICES=1`). Use: `let Some(peers) = common::peers() else { return };`
pub fn peers() -> Option<Peers> {
    let dir = std::env::var_os("BULWARK_PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/peers"));
    let peers = Peers {
        python: dir.join("venv/bin/python"),
        venv_bin: dir.join("venv/bin"),
        node_bin: dir.join("node/node_modules/.bin"),
        clients: repo_root().join("tests/peers/clients"),
        dir,
    };
    let needed = [
        peers.python.clone(),
        peers.dir.join("venv/.bulwark-pins.sha256"),
        peers.mcp_server_time(),
        peers.dir.join("node/.bulwark-pins.sha256"),
        peers.server_everything(),
    ];
    if let Some(missing) = needed.iter().find(|p| !p.exists()) {
        skip(&format!(
            "test peers not installed ({} missing); run tests/peers/install.sh",
            missing.display()
        ));
        return None;
    }
    Some(peers)
}

impl Peers {
    pub fn mcp_server_time(&self) -> PathBuf {
        self.venv_bin.join("mcp-server-time")
    }

    pub fn server_everything(&self) -> PathBuf {
        self.node_bin.join("mcp-server-everything")
    }

    /// A script in `tests/peers/clients/`.
    pub fn client(&self, script: &str) -> PathBuf {
        self.clients.join(script)
    }

    /// Runs a one-shot client script (`probe_http.py`, `probe_stdio.py`, …) and
    /// returns its single JSON object, with `"exitCode"` added. Panics (with the
    /// script's stderr) when stdout is not one JSON object or after 120 s.
    pub fn run_python(&self, script: &str, args: &[&str]) -> Value {
        self.run_python_timeout(script, args, Duration::from_secs(120))
    }

    pub fn run_python_timeout(&self, script: &str, args: &[&str], timeout: Duration) -> Value {
        let mut cmd = Command::new(&self.python);
        cmd.arg(self.client(script)).args(args);
        let out = run_with_timeout(cmd, timeout);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut value: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "{script} {args:?}: stdout is not one JSON object ({e}); status {:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
                out.status
            )
        });
        if let Some(obj) = value.as_object_mut() {
            obj.insert("exitCode".into(), json!(out.status.code()));
        }
        value
    }

    /// Starts `session.py` with `target_args` (a URL plus options, or `-- CMD ARGS…`).
    pub fn session(&self, target_args: &[&str]) -> PythonSession {
        PythonSession::start(self, target_args)
    }

    /// A session on `url` that sends `headers` (e.g. `{"X-API-Key": …}`) with every request.
    pub fn session_with_headers(&self, url: &str, headers: &Value) -> PythonSession {
        PythonSession::start(self, &[url, "--headers", &headers.to_string()])
    }

    /// Like [`session_with_headers`](Self::session_with_headers), returning a failed start.
    pub fn try_session_with_headers(
        &self,
        url: &str,
        headers: &Value,
    ) -> Result<PythonSession, String> {
        PythonSession::try_start(self, &[url, "--headers", &headers.to_string()])
    }
}

/// Output of a finished child: like `std::process::Output`.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs `cmd` to completion in its own process group; SIGKILLs the group and
/// panics after `timeout`.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Finished {
    let shown = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {shown}: {e}"));
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = killpg(pid_of(&child), Signal::SIGKILL);
            let _ = child.wait();
            panic!(
                "{shown} did not finish within {timeout:?}\n--- stdout\n{}\n--- stderr\n{}",
                out.text(),
                err.text()
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    // The pipes close when the process (group) is gone; give the drains a moment.
    out.wait_closed(Duration::from_secs(5));
    err.wait_closed(Duration::from_secs(5));
    Finished {
        status,
        stdout: out.bytes(),
        stderr: err.bytes(),
    }
}

// ---------------------------------------------------------------------------
// Output capture

/// A pipe drained by a background thread into a shared buffer, so the child
/// never blocks on a full pipe.
#[derive(Clone, Default)]
pub struct Captured {
    buf: Arc<Mutex<Vec<u8>>>,
    closed: Arc<Mutex<bool>>,
}

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.buf.lock().map(|b| b.clone()).unwrap_or_default()
    }

    pub fn contains(&self, needle: &str) -> bool {
        self.text().contains(needle)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.lock().is_ok_and(|c| *c)
    }

    pub fn wait_closed(&self, timeout: Duration) -> bool {
        wait_until(timeout, || self.is_closed())
    }
}

/// Drains `pipe` into a [`Captured`]; every complete line is also sent to `lines`.
fn drain_lines<R: Read + Send + 'static>(
    pipe: Option<R>,
    lines: Option<Sender<String>>,
) -> Captured {
    let captured = Captured::default();
    let Some(pipe) = pipe else {
        if let Ok(mut c) = captured.closed.lock() {
            *c = true;
        }
        return captured;
    };
    let sink = captured.clone();
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if let Ok(mut b) = sink.buf.lock() {
                        b.extend_from_slice(&line);
                    }
                    if let Some(tx) = &lines {
                        let _ = tx.send(String::from_utf8_lossy(&line).trim_end().to_owned());
                    }
                }
            }
        }
        if let Ok(mut c) = sink.closed.lock() {
            *c = true;
        }
    });
    captured
}

pub fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> Captured {
    drain_lines(pipe, None)
}

pub fn pid_of(child: &Child) -> Pid {
    Pid::from_raw(i32::try_from(child.id()).expect("pid fits i32"))
}

/// A free loopback TCP port (bound and released; fine for test upstreams).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Everything the SQLite store in `data_dir` holds, as lossy text (the
/// database and its WAL), to check what is and is not stored.
pub fn store_text(data_dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(data_dir).into_iter().flatten().flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("bulwark.db")
        {
            let bytes = std::fs::read(entry.path()).unwrap_or_default();
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    text
}

// ---------------------------------------------------------------------------
// Gateway

/// A running `bulwark serve` (or any program that prints its MCP URL).
pub struct Gateway {
    child: Child,
    /// e.g. `http://127.0.0.1:41234` (no trailing slash).
    base: String,
    /// The URL the process printed, e.g. `http://127.0.0.1:41234/mcp`.
    mcp_url: String,
    pub stdout: Captured,
    pub stderr: Captured,
    dir: tempfile::TempDir,
    config_path: PathBuf,
    http: reqwest::Client,
}

/// How to start a [`Gateway`]; `Gateway::start` covers the common case.
pub struct GatewayBuilder {
    program: PathBuf,
    config: String,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    startup_timeout: Duration,
    /// Off by default (`BULWARK__AUTH__ENABLED=false`): most tests are about
    /// something else. [`with_auth`](Self::with_auth) keeps the config's `[auth]`.
    auth: bool,
}

impl GatewayBuilder {
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Another executable in place of `bulwark` (used to test the harness itself).
    pub fn program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = program.into();
        self
    }

    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Leaves authentication as the config says (on unless it says otherwise).
    pub fn with_auth(mut self) -> Self {
        self.auth = true;
        self
    }

    /// Spawns `PROGRAM serve --config DIR/bulwark.toml ARGS…` and waits for the
    /// `http://…/mcp` line on stdout. Panics with the captured output on failure.
    pub fn start(self) -> Gateway {
        match self.try_start() {
            Ok(gw) => gw,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`start`](Self::start), but returns the failure (with captured
    /// output) instead of panicking — for tests of startup errors.
    pub fn try_start(self) -> Result<Gateway, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let config_path = dir.path().join("bulwark.toml");
        std::fs::write(&config_path, &self.config).map_err(|e| format!("write config: {e}"))?;
        let mut cmd = Command::new(&self.program);
        cmd.arg("serve")
            .arg("--config")
            .arg(&config_path)
            .args(&self.args)
            .current_dir(dir.path())
            // A fresh data dir: the keys file never touches the user's home.
            .env("BULWARK__SERVER__DATA_DIR", dir.path().join("data"));
        if !self.auth {
            cmd.env("BULWARK__AUTH__ENABLED", "false");
        }
        cmd.envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let shown = format!("{cmd:?}");
        let mut child = cmd.spawn().map_err(|e| format!("spawn {shown}: {e}"))?;
        let (tx, rx) = channel();
        let stdout = drain_lines(child.stdout.take(), Some(tx));
        let stderr = drain(child.stderr.take());
        let deadline = Instant::now() + self.startup_timeout;
        let failure = |what: String, child: &mut Child| {
            let _ = killpg(pid_of(child), Signal::SIGKILL);
            let _ = child.wait();
            format!(
                "{shown}: {what}\n--- config\n{}\n--- stdout\n{}\n--- stderr\n{}",
                self.config,
                stdout.text(),
                stderr.text()
            )
        };
        let mcp_url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(line) => {
                    if let Some(url) = find_mcp_url(&line) {
                        break url;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // stdout closed: the process is exiting.
                    let status = child.wait().ok();
                    return Err(failure(
                        format!("exited ({status:?}) before printing its URL"),
                        &mut child,
                    ));
                }
                Err(RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        return Err(failure(
                            format!("exited ({status}) before printing its URL"),
                            &mut child,
                        ));
                    }
                    if Instant::now() >= deadline {
                        return Err(failure(
                            format!(
                                "no `http://…/mcp` line on stdout within {:?}",
                                self.startup_timeout
                            ),
                            &mut child,
                        ));
                    }
                }
            }
        };
        let base = mcp_url
            .find("/mcp")
            .map(|i| mcp_url[..i].to_owned())
            .unwrap_or_else(|| mcp_url.clone());
        // Idle pooled connections are dropped before the gateway's 10 s
        // keep-alive limit closes them, so a request never races that close.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("reqwest client: {e}"))?;
        Ok(Gateway {
            child,
            base,
            mcp_url,
            stdout,
            stderr,
            dir,
            config_path,
            http,
        })
    }
}

/// The first `http://…` token of `line` that contains `/mcp`.
fn find_mcp_url(line: &str) -> Option<String> {
    let start = line.find("http://")?;
    let token: String = line[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | '>' | ')' | ','))
        .collect();
    let token = token.trim_end_matches(['.', ';']).to_owned();
    token.contains("/mcp").then_some(token)
}

impl Gateway {
    /// Starts `bulwark serve --config <tempdir>/bulwark.toml EXTRA_ARGS…`.
    pub fn start(config_toml: &str, extra_args: &[&str]) -> Gateway {
        let mut b = Gateway::builder(config_toml);
        for a in extra_args {
            b = b.arg(*a);
        }
        b.start()
    }

    pub fn builder(config_toml: &str) -> GatewayBuilder {
        GatewayBuilder {
            program: PathBuf::from(env!("CARGO_BIN_EXE_bulwark")),
            config: config_toml.to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            startup_timeout: Duration::from_secs(30),
            auth: false,
        }
    }

    /// `base + path`, e.g. `url("/ready")`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The MCP endpoint the gateway printed.
    pub fn mcp_url(&self) -> &str {
        &self.mcp_url
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn pid(&self) -> i32 {
        pid_of(&self.child).as_raw()
    }

    /// The gateway's data dir (`<dir>/data`, holds the keys file).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The temp dir holding the config (write extra files here); removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Polls `GET /ready` until it answers 200; panics with the logs after `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) {
        let url = self.url("/ready");
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            match self
                .http
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                Ok(r) if r.status() == reqwest::StatusCode::OK => return,
                Ok(r) => last = format!("status {}", r.status()),
                Err(e) => last = format!("error {e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{url} not 200 within {timeout:?} (last: {last}){}",
            self.logs()
        );
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        let url = self.url(path);
        self.http
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }

    /// `GET path` → (status, JSON body). Panics if the body is not JSON.
    pub async fn get_json(&self, path: &str) -> (reqwest::StatusCode, Value) {
        let r = self.get(path).await;
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!("GET {path}: status {status}, body is not JSON ({e}): {text}")
        });
        (status, body)
    }

    pub fn sigterm(&self) {
        let _ = kill(pid_of(&self.child), Signal::SIGTERM);
    }

    /// Waits for the gateway process to exit; `None` on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the gateway's stdout or stderr contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || {
            self.stdout.contains(needle) || self.stderr.contains(needle)
        })
    }

    /// Captured stdout + stderr, formatted for panic messages.
    pub fn logs(&self) -> String {
        format!(
            "\n--- gateway stdout\n{}\n--- gateway stderr\n{}",
            self.stdout.text(),
            self.stderr.text()
        )
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = killpg(pid_of(&self.child), Signal::SIGKILL);
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

// ---------------------------------------------------------------------------
// Upstream: mcp-server-everything over streamable HTTP

/// `mcp-server-everything streamableHttp` on a free loopback port, in its own
/// process group (killed on drop).
pub struct EverythingHttp {
    child: Option<Child>,
    program: PathBuf,
    pub port: u16,
    pub stdout: Captured,
    pub stderr: Captured,
}

impl EverythingHttp {
    pub fn start(peers: &Peers) -> EverythingHttp {
        let mut last = String::new();
        for _ in 0..5 {
            let mut up = EverythingHttp {
                child: None,
                program: peers.server_everything(),
                port: free_port(),
                stdout: Captured::default(),
                stderr: Captured::default(),
            };
            match up.spawn() {
                Ok(()) => return up,
                Err(e) => last = e, // port raced away: try another
            }
        }
        panic!("mcp-server-everything did not start: {last}");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Command::new(&self.program);
        cmd.arg("streamableHttp")
            .env("PORT", self.port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().map_err(|e| format!("spawn {cmd:?}: {e}"))?;
        self.stdout = drain(child.stdout.take());
        self.stderr = drain(child.stderr.take());
        let needle = format!("listening on port {}", self.port);
        let up = wait_until(Duration::from_secs(30), || {
            self.stderr.contains(&needle) || child.try_wait().ok().flatten().is_some()
        });
        if up && self.stderr.contains(&needle) {
            self.child = Some(child);
            return Ok(());
        }
        let _ = killpg(pid_of(&child), Signal::SIGKILL);
        let _ = child.wait();
        Err(format!("port {}: {}", self.port, self.stderr.text()))
    }

    /// `http://127.0.0.1:PORT/mcp`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| pid_of(c).as_raw())
    }

    /// SIGKILLs the server's process group and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = killpg(pid_of(&child), Signal::SIGKILL);
            let _ = child.wait();
        }
    }

    /// Kills (if running) and starts again on the same port.
    pub fn restart(&mut self) {
        self.kill9();
        let mut last = String::new();
        let ok = wait_until(Duration::from_secs(10), || match self.spawn() {
            Ok(()) => true,
            Err(e) => {
                last = e;
                false
            }
        });
        assert!(
            ok,
            "mcp-server-everything restart on port {} failed: {last}",
            self.port
        );
    }
}

impl Drop for EverythingHttp {
    fn drop(&mut self) {
        self.kill9();
    }
}

// ---------------------------------------------------------------------------
// Python session (tests/peers/clients/session.py)

/// One long-lived MCP client session in `session.py`, driven over stdin.
/// Every command gets exactly one answer line, matched by `"id"`.
pub struct PythonSession {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Answers read while waiting for another id, keyed by id (as JSON text).
    stash: HashMap<String, Value>,
    /// `{"event": …}` lines seen so far (ready, fatal, bye).
    pub events: Vec<Value>,
    /// The `initialize` object from the ready line.
    pub initialize: Value,
    pub stderr: Captured,
    next_id: u64,
}

/// Default per-answer wait of [`PythonSession::call`] and friends.
pub const SESSION_ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

impl PythonSession {
    /// Starts `session.py TARGET_ARGS…` and waits (30 s) for its ready line;
    /// panics with its stderr on a fatal line or timeout.
    pub fn start(peers: &Peers, target_args: &[&str]) -> PythonSession {
        match Self::try_start(peers, target_args) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`start`](Self::start) but returns the fatal line / failure as `Err`.
    pub fn try_start(peers: &Peers, target_args: &[&str]) -> Result<PythonSession, String> {
        let mut cmd = Command::new(&peers.python);
        cmd.arg("-u")
            .arg(peers.client("session.py"))
            .args(target_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let shown = format!("{cmd:?}");
        let mut child = cmd.spawn().map_err(|e| format!("spawn {shown}: {e}"))?;
        let (tx, rx) = channel();
        drain_lines(child.stdout.take(), Some(tx));
        let stderr = drain(child.stderr.take());
        let stdin = child.stdin.take();
        let mut s = PythonSession {
            child,
            stdin,
            lines: rx,
            stash: HashMap::new(),
            events: Vec::new(),
            initialize: Value::Null,
            stderr,
            next_id: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match s.lines.recv_timeout(left) {
                Ok(line) => {
                    let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                    match v.get("event").and_then(Value::as_str) {
                        Some("ready") => {
                            s.initialize = v["initialize"].clone();
                            s.events.push(v);
                            return Ok(s);
                        }
                        Some(_) => {
                            return Err(format!(
                                "{shown}: {line}\n--- stderr\n{}",
                                s.stderr.text()
                            ));
                        }
                        None => {}
                    }
                }
                Err(_) => {
                    return Err(format!(
                        "{shown}: no ready line within 30s\n--- stderr\n{}",
                        s.stderr.text()
                    ));
                }
            }
        }
    }

    pub fn pid(&self) -> i32 {
        pid_of(&self.child).as_raw()
    }

    /// Sends one command object; adds an `"id"` if it has none and returns it.
    pub fn send(&mut self, mut cmd: Value) -> Value {
        let id = match cmd.get("id") {
            Some(id) => id.clone(),
            None => {
                self.next_id += 1;
                let id = json!(format!("r{}", self.next_id));
                cmd["id"] = id.clone();
                id
            }
        };
        self.write_line(&cmd.to_string());
        id
    }

    fn write_line(&mut self, line: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            // A dead session shows up as a fatal event / closed stdout on recv.
            let _ = writeln!(stdin, "{line}").and_then(|()| stdin.flush());
        }
    }

    /// Waits for the answer to `id`. A session that died or closed stdout yields
    /// `{"ok": false, "error": {"type": "SessionClosed", …}}`; no answer within
    /// `timeout` yields `{"ok": false, "error": {"type": "HarnessTimeout", …}}`.
    pub fn recv(&mut self, id: &Value, timeout: Duration) -> Value {
        let key = id.to_string();
        if let Some(v) = self.stash.remove(&key) {
            return v;
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let Ok(v) = serde_json::from_str::<Value>(&line) else {
                        continue;
                    };
                    if v.get("event").is_some() {
                        self.events.push(v);
                        continue;
                    }
                    let got = v.get("id").map(Value::to_string).unwrap_or_default();
                    if got == key {
                        return v;
                    }
                    self.stash.insert(got, v);
                }
                Err(RecvTimeoutError::Timeout) => {
                    return json!({"id": id, "ok": false, "error": {
                        "code": null, "type": "HarnessTimeout",
                        "message": format!("no answer within {timeout:?}")}});
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return json!({"id": id, "ok": false, "error": {
                        "code": null, "type": "SessionClosed",
                        "message": format!("session.py closed stdout; events {:?}; stderr: {}",
                                           self.events, self.stderr.text())}});
                }
            }
        }
    }

    /// Sends `cmd` and waits for its answer.
    pub fn command(&mut self, cmd: Value, timeout: Duration) -> Value {
        let id = self.send(cmd);
        self.recv(&id, timeout)
    }

    /// `tools/call`; the answer has `ok`, `result.{isError,text,content}` or `error`.
    pub fn call(&mut self, tool: &str, args: Value) -> Value {
        self.command(json!({"call": tool, "args": args}), SESSION_ANSWER_TIMEOUT)
    }

    /// `tools/call` with a request timeout (seconds) applied inside the client
    /// and the harness wait a little longer.
    pub fn call_timeout(&mut self, tool: &str, args: Value, timeout: Duration) -> Value {
        self.command(
            json!({"call": tool, "args": args, "timeout": timeout.as_secs_f64()}),
            timeout + Duration::from_secs(10),
        )
    }

    /// Fires `n` identical calls at once; the answer has `okCount` and `results`.
    pub fn concurrent(&mut self, n: usize, tool: &str, args: Value) -> Value {
        self.command(
            json!({"call": tool, "args": args, "concurrent": n}),
            SESSION_ANSWER_TIMEOUT,
        )
    }

    /// `"tools" | "resources" | "prompts" | "all"`.
    pub fn list(&mut self, what: &str) -> Value {
        self.command(json!({"list": what}), SESSION_ANSWER_TIMEOUT)
    }

    pub fn read(&mut self, uri: &str) -> Value {
        self.command(json!({"read": uri}), SESSION_ANSWER_TIMEOUT)
    }

    pub fn prompt(&mut self, name: &str, args: Value) -> Value {
        self.command(
            json!({"prompt": name, "args": args}),
            SESSION_ANSWER_TIMEOUT,
        )
    }

    pub fn ping(&mut self) -> Value {
        self.command(json!({"ping": true}), SESSION_ANSWER_TIMEOUT)
    }

    /// `resources/subscribe` to `uri`.
    pub fn subscribe(&mut self, uri: &str) -> Value {
        self.command(json!({"subscribe": uri}), SESSION_ANSWER_TIMEOUT)
    }

    /// `resources/unsubscribe` from `uri`.
    pub fn unsubscribe(&mut self, uri: &str) -> Value {
        self.command(json!({"unsubscribe": uri}), SESSION_ANSWER_TIMEOUT)
    }

    /// Waits until an event line satisfying `pred` arrives (events already
    /// seen count); false after `timeout`. Answers read meanwhile are kept.
    pub fn wait_event(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.events.iter().any(&pred) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let Ok(v) = serde_json::from_str::<Value>(&line) else {
                        continue;
                    };
                    if v.get("event").is_some() {
                        self.events.push(v);
                    } else {
                        let id = v.get("id").map(Value::to_string).unwrap_or_default();
                        self.stash.insert(id, v);
                    }
                }
                Err(_) => return false,
            }
        }
    }

    /// Forgets the events seen so far (to wait for the next one).
    pub fn clear_events(&mut self) {
        self.events.retain(|e| e["event"] != "notification");
    }

    /// True once the session printed a `fatal` event.
    pub fn is_dead(&self) -> bool {
        self.events.iter().any(|e| e["event"] == "fatal")
    }

    /// Sends `quit` and waits for the process to exit; returns its status.
    pub fn quit(mut self) -> Option<ExitStatus> {
        self.write_line("quit");
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for PythonSession {
    fn drop(&mut self) {
        self.stdin = None;
        let _ = killpg(pid_of(&self.child), Signal::SIGKILL);
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("--- session.py stderr\n{}", self.stderr.text());
        }
    }
}

// ---------------------------------------------------------------------------
// Services

fn require_tcp(name: &str, addr: &str) -> Option<SocketAddr> {
    let sock: SocketAddr = addr.parse().expect("valid socket address");
    if TcpStream::connect_timeout(&sock, Duration::from_secs(1)).is_ok() {
        return Some(sock);
    }
    skip(&format!("{name} is not reachable on {addr}"));
    None
}

/// Postgres on 127.0.0.1:5432, or `None` after a `SKIP:` line (panics when required).
pub fn require_postgres() -> Option<SocketAddr> {
    require_tcp("postgres", "127.0.0.1:5432")
}

/// Redis on 127.0.0.1:6379, or `None` after a `SKIP:` line (panics when required).
pub fn require_redis() -> Option<SocketAddr> {
    require_tcp("redis", "127.0.0.1:6379")
}

// ---------------------------------------------------------------------------
// Processes (Linux /proc)

fn proc_pids() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// (ppid, state) from /proc/PID/stat; the comm field may contain spaces.
fn proc_stat(pid: i32) -> Option<(i32, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((ppid, state))
}

/// All live descendants of `pid` (children, grandchildren, …), zombies excluded.
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for p in proc_pids() {
        if let Some((ppid, state)) = proc_stat(p)
            && state != 'Z'
        {
            children.entry(ppid).or_default().push(p);
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or_default() {
            out.push(c);
            todo.push(c);
        }
    }
    out.sort_unstable();
    out
}

/// The command line of `pid`, arguments joined by spaces.
pub fn cmdline(pid: i32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let parts: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    Some(parts.join(" "))
}

/// Live (non-zombie) processes whose command line contains `needle`, this
/// test process excluded.
pub fn pids_with_cmdline_containing(needle: &str) -> Vec<i32> {
    let me = i32::try_from(std::process::id()).unwrap_or(-1);
    let mut out: Vec<i32> = proc_pids()
        .into_iter()
        .filter(|&p| p != me && alive(p))
        .filter(|&p| cmdline(p).is_some_and(|c| c.contains(needle)))
        .collect();
    out.sort_unstable();
    out
}

/// True while `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    proc_stat(pid).is_some_and(|(_, state)| state != 'Z')
}

/// SIGKILL one process (errors ignored: it may be gone already).
pub fn kill9(pid: i32) {
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
}

/// Polls `cond` every 20 ms until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Async [`wait_until`] for tokio tests (does not block the runtime).
pub async fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Exit status as text, including the signal for killed processes.
pub fn describe_status(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(sig)) => format!("signal {sig}"),
        _ => format!("{status:?}"),
    }
}
