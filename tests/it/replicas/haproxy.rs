//! The `deploy/local/replicas.sh` topology: three replicas on the script's
//! own throwaway PostgreSQL and Redis behind HAProxy. A Python SDK session
//! opened through HAProxy keeps calling while two replicas, the one that
//! opened it first, are killed in turn; the script's PostgreSQL and Redis
//! are gone, and their data deleted, once it stops.
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::json;

use crate::common::{self, peers};
use crate::gateway::demo_upstream;

/// The script's process group; everything it started dies with it.
struct Topology {
    child: Child,
    lines: Receiver<String>,
    /// HAProxy's `/mcp`.
    url: String,
    /// Replica pids, in HAProxy's server order.
    replicas: Vec<i32>,
    /// The pids of the PostgreSQL and Redis the script started.
    services: Vec<i32>,
    /// Where the script keeps their data.
    services_dir: Option<PathBuf>,
    dir: tempfile::TempDir,
}

impl Topology {
    /// Runs the script with `extra` config, on its own PostgreSQL and Redis.
    fn start(extra: &str) -> Topology {
        let dir = tempfile::tempdir().unwrap();
        let extra_path = dir.path().join("extra.toml");
        std::fs::write(&extra_path, extra).unwrap();
        let mut child = Command::new(common::repo_root().join("deploy/local/replicas.sh"))
            .args([
                "--replicas",
                "3",
                "--port",
                &common::free_port().to_string(),
            ])
            .arg("--bin")
            .arg(env!("CARGO_BIN_EXE_bulwark"))
            .arg("--dir")
            .arg(dir.path().join("run"))
            .arg("--config")
            .arg(&extra_path)
            .env_remove("BULWARK_PG_URL")
            .env_remove("BULWARK_REDIS_URL")
            .env("BULWARK__AUTH__ENABLED", "false")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .expect("deploy/local/replicas.sh");
        let (tx, lines) = channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (mut url, mut replicas, mut services, mut services_dir) =
            (None, Vec::new(), Vec::new(), None);
        let deadline = Instant::now() + Duration::from_secs(120);
        while url.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines
                .recv_timeout(left)
                .expect("the script never said HAProxy was up");
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["replica", _, "pid", pid, ..] => replicas.push(pid.parse().unwrap()),
                ["postgres" | "redis", "pid", pid, ..] => services.push(pid.parse().unwrap()),
                ["services", "dir", path] => services_dir = Some(PathBuf::from(path)),
                _ => {}
            }
            if line.starts_with("Bulwark replicas behind HAProxy on ") {
                url = words.last().map(|u| (*u).to_owned());
            }
        }
        Topology {
            child,
            lines,
            url: url.unwrap(),
            replicas,
            services,
            services_dir,
            dir,
        }
    }

    /// HAProxy's log (one line per request, server state changes).
    fn haproxy_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("run/haproxy.log")).unwrap_or_default()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let group = Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        // The script stops what it started; then nothing may be left.
        let _ = kill(group, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
        while self.lines.try_recv().is_ok() {}
    }
}

/// Whether `program` is on PATH (where the script looks for it).
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Whether the PostgreSQL server programs the script runs are installed.
fn postgres_server_installed() -> bool {
    std::fs::read_dir("/usr/lib/postgresql").is_ok_and(|versions| {
        versions
            .filter_map(Result::ok)
            .any(|v| v.path().join("bin/initdb").is_file())
    })
}

#[test]
fn a_session_through_haproxy_keeps_calling_while_two_replicas_are_killed_in_turn() {
    let Some(peers) = peers() else { return };
    for (installed, what) in [
        (
            on_path("haproxy"),
            "haproxy is not installed (Debian package haproxy; .ci/run installs it)",
        ),
        (
            on_path("redis-server"),
            "redis-server is not installed (Debian package redis-server)",
        ),
        (
            postgres_server_installed(),
            "no PostgreSQL server in /usr/lib/postgresql/*/bin (Debian package postgresql)",
        ),
    ] {
        if !installed {
            common::skip(what);
            return;
        }
    }
    let topology = Topology::start(&demo_upstream("echo", "\"echo\""));
    assert_eq!(topology.replicas.len(), 3);
    assert_eq!(
        topology.services.len(),
        2,
        "the script started no PostgreSQL and Redis"
    );
    let mut session = peers.session(&[&topology.url]);
    let mut call = |message: String| {
        let answer = session.call("echo__echo", json!({ "message": message }));
        assert!(
            answer["result"]["text"] == message,
            "{answer}\n--- haproxy.log\n{}",
            topology.haproxy_log()
        );
    };
    // Round robin: successive requests of the session land on every replica.
    for i in 0..6 {
        call(format!("before {i}"));
    }
    // The replica that opened the session dies, then a second one, before
    // HAProxy's health check has seen either. The calls start at once, while
    // the kernel still completes connections for the killed process: each
    // one that lands there is replayed by HAProxy under its attempt id, which
    // no live replica has seen, so it runs on the replica left, which
    // restores the session.
    for (killed, &pid) in topology.replicas[..2].iter().enumerate() {
        kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
        for i in 0..6 {
            call(format!("after kill {killed}, call {i}"));
        }
        assert!(common::wait_until(Duration::from_secs(10), || {
            !common::alive(pid)
        }));
    }
    assert!(!session.is_dead(), "the client session ended");
    drop(session);
    let (services, services_dir) = (topology.services.clone(), topology.services_dir.clone());
    drop(topology);
    for pid in services {
        assert!(
            !common::alive(pid),
            "the script left its PostgreSQL or Redis ({pid}) running"
        );
    }
    let services_dir = services_dir.expect("the script named its services' directory");
    assert!(
        !services_dir.exists(),
        "{} was not deleted",
        services_dir.display()
    );
}
