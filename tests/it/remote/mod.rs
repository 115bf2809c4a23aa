//! Remote upstreams end to end: the demo servers over streamable HTTP on
//! loopback as upstreams of the real gateway, a loopback OAuth server, and
//! `bulwark connect` under the official conformance suite.
mod calls;
mod conformance;
mod connections;
mod oauth;
mod sse;
mod sse_parser;
mod supervision;

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};

use serde_json::Value;

use crate::common::{Captured, Gateway, drain, pid_of, wait_until};
use crate::gateway::wait_for_upstream;

/// `bulwark demo-server KIND --http 127.0.0.1:PORT`, in its own process
/// group, killed on drop; can be killed and started again on the same port.
pub struct DemoHttp {
    child: Option<Child>,
    kind: String,
    pub port: u16,
    pub stderr: Captured,
}

impl DemoHttp {
    /// Starts the server on a port it picks itself.
    pub fn start(kind: &str) -> DemoHttp {
        let mut demo = DemoHttp {
            child: None,
            kind: kind.to_owned(),
            port: 0,
            stderr: Captured::default(),
        };
        if let Err(err) = demo.spawn() {
            panic!("demo-server {kind} --http did not start: {err}");
        }
        demo
    }

    /// Runs the server on `self.port` (0: any) and learns the bound port.
    fn spawn(&mut self) -> Result<(), String> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bulwark"))
            .args(["demo-server", &self.kind, "--http"])
            .arg(format!("127.0.0.1:{}", self.port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("spawn demo-server: {e}"))?;
        self.stderr = drain(child.stderr.take());
        let listening = || {
            let text = self.stderr.text();
            let at = text.find("listening on http://127.0.0.1:")?;
            let rest = &text[at + "listening on http://127.0.0.1:".len()..];
            rest.split('/').next()?.parse::<u16>().ok()
        };
        wait_until(Duration::from_secs(30), || {
            listening().is_some() || child.try_wait().ok().flatten().is_some()
        });
        match listening() {
            Some(port) => {
                self.port = port;
                self.child = Some(child);
                Ok(())
            }
            None => {
                let _ = killpg(pid_of(&child), Signal::SIGKILL);
                let _ = child.wait();
                Err(self.stderr.text())
            }
        }
    }

    /// `http://127.0.0.1:PORT/mcp`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// Asserts that a call was cancelled here (the `slow` tool logs it)
    /// within 10 s.
    pub fn assert_a_call_was_cancelled(&self) {
        assert!(
            wait_until(Duration::from_secs(10), || self
                .stderr
                .text()
                .contains("call cancelled")),
            "the upstream was told to cancel: {}",
            self.stderr.text()
        );
    }

    /// SIGKILLs the server and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = killpg(pid_of(&child), Signal::SIGKILL);
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port.
    pub fn start_again(&mut self) {
        let port = self.port;
        respawn("demo-server", port, || self.spawn());
    }

    /// Makes the server forget every MCP session (as one that expired them).
    pub async fn drop_sessions(&self) -> usize {
        let url = format!("http://127.0.0.1:{}/demo/drop-sessions", self.port);
        let response = reqwest::Client::new().post(url).send().await.unwrap();
        assert!(response.status().is_success());
        response.text().await.unwrap().parse().unwrap()
    }
}

impl Drop for DemoHttp {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Retries `spawn` (a server starting again on `port`) while the port is
/// still being freed; panics with the last error after 15 s.
pub fn respawn(what: &str, port: u16, mut spawn: impl FnMut() -> Result<(), String>) {
    let mut last = String::new();
    let ok = wait_until(Duration::from_secs(15), || match spawn() {
        Ok(()) => true,
        Err(err) => {
            last = err;
            false
        }
    });
    assert!(ok, "{what} restart on port {port} failed: {last}");
}

/// A `[upstreams.NAME]` table for a remote upstream, plus `extra` lines.
pub fn remote_upstream(name: &str, url: &str, extra: &str) -> String {
    format!("[upstreams.{name}]\nurl = {url:?}\n{extra}\n")
}

/// Waits until `server` is ready again after a restart whose recorded
/// reason mentions `reason`.
pub async fn restarted_because(gw: &Gateway, server: &str, reason: &str) -> Value {
    let node = wait_for_upstream(gw, server, Duration::from_secs(30), |n| {
        n["state"] == "ready" && n["restarts"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    let last_exit = node["last_exit"].as_str().unwrap_or_default();
    assert!(last_exit.contains(reason), "{node}");
    node
}
