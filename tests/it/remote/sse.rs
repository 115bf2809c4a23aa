//! Legacy HTTP+SSE (2024-11-05) upstreams (`type = "sse"`) through the real
//! gateway, against real SSE servers: the Python SDK's `MCPServer` run with
//! `transport="sse"` (tests/peers/clients/sse_server.py) and
//! `mcp-server-everything sse`.
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use serde_json::{Value, json};

use super::{respawn, restarted_because};
use crate::common::{
    Captured, Gateway, Peers, PythonSession, drain, free_port, peers, pid_of, run_with_timeout,
    wait_until,
};
use crate::gateway::{HEAD, wait_for_upstream};
use crate::runtime::notifications::{listen, next_event};

/// Restarts quickly and often enough to ride out a server restart.
const PATIENT: &str = "[upstreams.legacy.restart]\nmax_restarts = 100\nwindow_secs = 60\nbackoff_min_ms = 50\nbackoff_max_ms = 300\n";

/// An SSE server in its own process group on a fixed port, killed on drop;
/// can be killed and started again on the same port.
struct SseServer {
    command: Vec<String>,
    env: Vec<(String, String)>,
    /// What its stderr says once it listens.
    listening: String,
    port: u16,
    child: Option<Child>,
    stderr: Captured,
}

impl SseServer {
    /// `sse_server.py PORT` (Python SDK).
    fn python(peers: &Peers) -> SseServer {
        let port = free_port();
        Self::start(SseServer {
            command: vec![
                peers.python.display().to_string(),
                peers.client("sse_server.py").display().to_string(),
                port.to_string(),
            ],
            env: Vec::new(),
            listening: "Uvicorn running on".into(),
            port,
            child: None,
            stderr: Captured::default(),
        })
    }

    /// `mcp-server-everything sse` (TypeScript SDK).
    fn everything(peers: &Peers) -> SseServer {
        let port = free_port();
        let program: PathBuf = peers.server_everything();
        Self::start(SseServer {
            command: vec![program.display().to_string(), "sse".into()],
            env: vec![("PORT".into(), port.to_string())],
            listening: format!("running on port {port}"),
            port,
            child: None,
            stderr: Captured::default(),
        })
    }

    fn start(mut server: SseServer) -> SseServer {
        server
            .spawn()
            .unwrap_or_else(|err| panic!("SSE server did not start: {err}"));
        server
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut child = Command::new(&self.command[0])
            .args(&self.command[1..])
            .envs(self.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|err| format!("spawn {:?}: {err}", self.command))?;
        self.stderr = drain(child.stderr.take());
        let up = wait_until(Duration::from_secs(30), || {
            self.stderr.contains(&self.listening) || child.try_wait().ok().flatten().is_some()
        });
        if up && self.stderr.contains(&self.listening) {
            self.child = Some(child);
            return Ok(());
        }
        let _ = killpg(pid_of(&child), Signal::SIGKILL);
        let _ = child.wait();
        Err(self.stderr.text())
    }

    /// The SSE endpoint.
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/sse", self.port)
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = killpg(pid_of(&child), Signal::SIGKILL);
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (retried while the port frees).
    fn start_again(&mut self) {
        let port = self.port;
        respawn("SSE server", port, || self.spawn());
    }
}

impl Drop for SseServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

async fn gateway_for(server: &SseServer) -> Gateway {
    gateway_at(&server.url(), "type = \"sse\"\n").await
}

/// A gateway with the upstream `legacy` at `url`, its table's other lines
/// `typed` (a `type`, or nothing).
async fn gateway_at(url: &str, typed: &str) -> Gateway {
    let toml = format!("{HEAD}[upstreams.legacy]\n{typed}url = {url:?}\n{PATIENT}");
    let gw = Gateway::start(&toml, &[]);
    gw.wait_ready(Duration::from_secs(60)).await;
    gw
}

fn tool_names(listed: &Value) -> Vec<String> {
    listed["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .filter_map(|tool| tool["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_sse_server_serves_calls_and_list_changes_and_is_reconnected() {
    let Some(peers) = peers() else { return };
    let mut upstream = SseServer::python(&peers);
    let gw = gateway_for(&upstream).await;

    // A client that only lists, then waits for the list to change.
    let (mut listener, events) = listen(&peers, gw.mcp_url());
    let listed = tool_names(&next_event(&events, "listed"));
    assert!(listed.contains(&"legacy__echo".to_owned()), "{listed:?}");
    assert!(!listed.contains(&"legacy__grown".to_owned()), "{listed:?}");

    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    let echoed = session.call("legacy__echo", json!({"message": "over SSE"}));
    assert_eq!(echoed["result"]["text"], "over SSE", "{echoed}");

    // The upstream's list_changed (sent on its SSE stream) reaches the
    // listener, and its re-list shows the new tool.
    let grew = session.call("legacy__grow", json!({}));
    assert_eq!(grew["result"]["text"], "grew", "{grew}");
    let relisted = tool_names(&next_event(&events, "relisted"));
    assert!(
        relisted.contains(&"legacy__grown".to_owned()),
        "{relisted:?}"
    );
    let _ = listener.wait();

    // The server restarts: its stream ends, the instance ends with it, and
    // the supervisor connects a fresh session once the server is back.
    upstream.kill9();
    upstream.start_again();
    let node = restarted_because(&gw, "legacy", "connection").await;
    assert_eq!(node["state"], "ready", "{node}");
    let after = session.call("legacy__echo", json!({"message": "after the restart"}));
    assert_eq!(after["result"]["text"], "after the restart", "{after}");
    session.quit();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_everything_server_in_sse_mode_lists_and_calls() {
    let Some(peers) = peers() else { return };
    let upstream = SseServer::everything(&peers);
    let gw = gateway_for(&upstream).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    let listed = session.list("tools");
    assert!(listed.to_string().contains("\"legacy__echo\""), "{listed}");
    let echoed = session.call("legacy__echo", json!({"message": "everything"}));
    assert_eq!(echoed["ok"], true, "{echoed}");
    assert!(
        echoed.to_string().contains("everything"),
        "the echo came back: {echoed}"
    );
    let node = wait_for_upstream(&gw, "legacy", Duration::from_secs(5), |n| {
        n["state"] == "ready"
    })
    .await;
    assert_eq!(node["restarts"], 0, "{node}");
    session.quit();
}

/// An upstream with a `url` and no `type` is tried as streamable HTTP and,
/// when the `initialize` POST is refused (405 from the Python SDK's SSE
/// route, 404 from the TypeScript one), over the legacy transport: in one
/// start, not a restart.
#[tokio::test(flavor = "multi_thread")]
async fn a_legacy_sse_url_without_a_type_is_detected() {
    let Some(peers) = peers() else { return };
    for (upstream, expected) in [
        (SseServer::python(&peers), "detected"),
        (SseServer::everything(&peers), "Echo: detected"),
    ] {
        let gw = gateway_at(&upstream.url(), "").await;
        let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
        let echoed = session.call("legacy__echo", json!({"message": "detected"}));
        assert!(
            echoed.to_string().contains(expected),
            "{:?}: {echoed}",
            upstream.command
        );
        let node = wait_for_upstream(&gw, "legacy", Duration::from_secs(5), |n| {
            n["state"] == "ready"
        })
        .await;
        assert_eq!(node["restarts"], 0, "{node}");
        assert!(
            gw.logs().contains("trying the legacy HTTP+SSE transport"),
            "the detection is logged"
        );
        session.quit();
    }
}

/// A URL that serves neither transport fails with both attempts' reasons.
#[tokio::test(flavor = "multi_thread")]
async fn a_url_serving_neither_transport_names_both_failures() {
    let Some(peers) = peers() else { return };
    let upstream = SseServer::python(&peers);
    let nowhere = format!("http://127.0.0.1:{}/nowhere", upstream.port);
    let toml = format!("{HEAD}[upstreams.legacy]\nurl = {nowhere:?}\n{PATIENT}");
    let gw = Gateway::start(&toml, &[]);
    let node = wait_for_upstream(&gw, "legacy", Duration::from_secs(30), |n| {
        n.to_string().contains("legacy HTTP+SSE")
    })
    .await;
    let text = node.to_string();
    assert!(text.contains("streamable HTTP"), "{node}");
    assert_ne!(node["state"], "ready", "{node}");
}

/// `bulwark connect` with `--sse`, and without it (detected, as the MCP
/// spec asks of clients); `--http` keeps to streamable HTTP and fails.
#[test]
fn bulwark_connect_reaches_a_legacy_sse_server() {
    let Some(peers) = peers() else { return };
    let upstream = SseServer::python(&peers);
    let connect = |flag: Option<&str>| {
        let mut connect = Command::new(env!("CARGO_BIN_EXE_bulwark"));
        connect
            .arg("connect")
            .args(flag)
            .args([upstream.url().as_str(), "--call", "echo"])
            .args(["--args", r#"{"message": "hello over SSE"}"#]);
        run_with_timeout(connect, Duration::from_secs(60))
    };
    for flag in [Some("--sse"), None] {
        let done = connect(flag);
        let stdout = String::from_utf8_lossy(&done.stdout);
        assert!(
            done.status.success(),
            "{flag:?}: {stdout}\n{}",
            String::from_utf8_lossy(&done.stderr)
        );
        assert!(
            stdout.contains("\"grow\""),
            "the tools were listed: {stdout}"
        );
        assert!(
            stdout.contains("hello over SSE"),
            "the call's result: {stdout}"
        );
    }
    let done = connect(Some("--http"));
    assert!(
        !done.status.success(),
        "streamable HTTP only reached an SSE server"
    );
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(
        stderr.contains("cannot connect") && stderr.contains("405"),
        "the POST's refusal: {stderr}"
    );
    assert!(
        !stderr.contains("ProgressRouting<"),
        "no Rust type names: {stderr}"
    );
    assert!(
        !stderr.contains("legacy HTTP+SSE"),
        "no fallback tried: {stderr}"
    );
    // One transport or the other, not both.
    let mut both = Command::new(env!("CARGO_BIN_EXE_bulwark"));
    both.args(["connect", "--sse", "--http", upstream.url().as_str()]);
    let done = run_with_timeout(both, Duration::from_secs(60));
    assert_eq!(done.status.code(), Some(2), "a usage error");
}
