//! What the load scenarios share: the `bulwark` binary as a child process in
//! its own process group, killed with its group on drop.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_bulwark");

/// The middle of `values` (the upper one of an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// A `kB` field of `/proc/PID/status` (`VmRSS:`, `VmHWM:`).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Resets the process's peak RSS (`VmHWM`) to its current RSS
/// (`/proc/PID/clear_refs`, Linux 4.0+), so a later peak belongs to what
/// ran after the reset.
pub fn reset_peak_rss(pid: u32) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
}

/// A child process group, SIGKILLed on drop.
pub struct Proc(pub Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.0.wait();
    }
}

/// Spawns the binary and returns the first `http://…` it prints (the
/// gateway on stdout, a demo server on stderr).
pub fn spawn(args: &[&str], dir: &std::path::Path) -> (Proc, String) {
    spawn_bin(BIN, args, dir)
}

/// Like [`spawn`], for another build of the binary (a baseline to compare with).
pub fn spawn_bin(bin: &str, args: &[&str], dir: &std::path::Path) -> (Proc, String) {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(bin);
    // Worker threads of every server the bench starts (gateway, floor,
    // upstreams), to compare scheduling on this machine's cores.
    if let Ok(threads) = std::env::var("BULWARK_BENCH_SERVER_THREADS") {
        command.env("TOKIO_WORKER_THREADS", threads);
    }
    let mut child = command
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    // The gateway prints its URL on stdout, the demo server on stderr,
    // both as `listening on http://…`.
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                // Only the "listening on" line: log lines name other URLs
                // (an OTLP endpoint, say) before it.
                if let Some(at) = line.find("listening on http://") {
                    let url = &line[at + "listening on ".len()..];
                    let _ = tx.send(url.split_whitespace().next().unwrap().to_owned());
                }
            }
        });
    }
    let url = rx.recv_timeout(Duration::from_secs(60)).expect("url line");
    (Proc(child), url)
}

/// Polls `{base}/ready` until it answers 2xx (at most two minutes).
pub async fn wait_ready(base: &str) {
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        if http
            .get(format!("{base}/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("gateway never became ready");
}
