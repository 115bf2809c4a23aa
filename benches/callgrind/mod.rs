//! Instructions per `tools/call` (`BULWARK_BENCH_CALLGRIND=1`): each server
//! runs under `valgrind --tool=callgrind` with instrumentation off while it
//! starts and warms up, then on for a fixed number of calls at c=1 (the rmcp
//! client, a session as in the load runs). An instruction count does not
//! move with the machine's load, unlike CPU time, so two builds or two
//! configurations compare to the percent on a busy machine.
//!
//! Servers: the floor (the demo echo served directly), the gateway with the
//! security plane on (API key, rate limits, default guardrails), all off,
//! and the security plane on with metrics and tracing (sampling 1.0, OTLP
//! to a local receiver) or with all telemetry off; and `remote`, the
//! gateway with all off in front of a remote (HTTP) upstream (the demo echo
//! served over HTTP, itself not counted). The dumps stay in
//! `BULWARK_BENCH_CALLGRIND_DIR` (default `target/callgrind`) for
//! `callgrind_annotate`. Needs valgrind; `BULWARK_BENCH_CALLGRIND_CALLS`
//! sets the number of calls (default 2000), `_CONCURRENCY=N` makes them N
//! at a time (one session; valgrind runs one thread at a time, so what this
//! shows is how much work per call batching saves), `_POOLED=1` keeps
//! the client's connections, and `_STATELESS=1` calls in stateless mode
//! (2026-07-28, no session).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rmcp::{RoleClient, service::RunningService};

use super::hot_path::Build;
use super::support::{Proc, spawn_bin, wait_ready};
use super::{Security, config, echo, keyed_client};

/// One server to count.
struct Subject {
    label: &'static str,
    /// `bulwark` arguments.
    args: Vec<String>,
    /// Whether it is a gateway (`/ready` to wait for) or the floor.
    gateway: bool,
    tool: &'static str,
    key: bool,
}

fn calls() -> u64 {
    std::env::var("BULWARK_BENCH_CALLGRIND_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

fn concurrency() -> u64 {
    std::env::var("BULWARK_BENCH_CALLGRIND_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&c| c > 0)
        .unwrap_or(1)
}

/// `n` calls, [`concurrency`] at a time.
async fn calls_of(client: &RunningService<RoleClient, ()>, tool: &str, n: u64) {
    let at_once = concurrency();
    let each = n.div_ceil(at_once);
    futures::future::join_all((0..at_once).map(|_| async move {
        for _ in 0..each {
            assert!(echo(client, tool).await);
        }
    }))
    .await;
}

fn out_dir() -> PathBuf {
    let dir = std::env::var_os("BULWARK_BENCH_CALLGRIND_DIR")
        .map_or_else(|| PathBuf::from("target/callgrind"), PathBuf::from);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::canonicalize(dir).unwrap()
}

/// Spawns `bin args` under callgrind, instrumentation off.
fn spawn_valgrind(bin: &str, args: &[String], out: &Path, dir: &Path) -> (Proc, String) {
    let mut full = vec![
        "--tool=callgrind".to_owned(),
        "--instr-atstart=no".to_owned(),
        format!("--callgrind-out-file={}", out.display()),
        bin.to_owned(),
    ];
    full.extend(args.iter().cloned());
    let full: Vec<&str> = full.iter().map(String::as_str).collect();
    spawn_bin("valgrind", &full, dir)
}

fn control(pid: u32, args: &[&str]) {
    let status = Command::new("callgrind_control")
        .args(args)
        .arg(pid.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("callgrind_control (valgrind) installed");
    assert!(status.success(), "callgrind_control {args:?} failed");
}

fn name_of(out: &Path) -> String {
    out.file_name().unwrap().to_string_lossy().into_owned()
}

/// The instructions a dump counted (its `totals:` or `summary:` line).
fn total_instructions(out: &Path) -> u64 {
    // Dumps are numbered `<file>.1`, `<file>.2`, … after the first.
    let dump = PathBuf::from(format!("{}.1", out.display()));
    let dump = if dump.exists() {
        dump
    } else {
        out.to_path_buf()
    };
    let text = std::fs::read_to_string(&dump).unwrap();
    text.lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

async fn count(build: &Build, subject: &Subject, secret: &str, dir: &Path, out_dir: &Path) -> f64 {
    let name = format!("callgrind.{}-{}", build.label, subject.label);
    let out = out_dir.join(&name);
    for stale in std::fs::read_dir(out_dir).unwrap().flatten() {
        let name = stale.file_name().to_string_lossy().into_owned();
        if name.starts_with(&name_of(&out)) {
            let _ = std::fs::remove_file(stale.path());
        }
    }
    let (proc, url) = spawn_valgrind(&build.bin, &subject.args, &out, dir);
    if subject.gateway {
        wait_ready(url.trim_end_matches("/mcp")).await;
    }
    let client = keyed_client(&url, subject.key.then_some(secret)).await;
    for _ in 0..200 {
        assert!(echo(&client, subject.tool).await, "warm-up call failed");
    }
    let pid = proc.0.id();
    control(pid, &["-i", "on"]);
    // Instrumenting retranslates the code: a few calls settle it.
    for _ in 0..50 {
        assert!(echo(&client, subject.tool).await);
    }
    control(pid, &["-z"]);
    let n = calls().div_ceil(concurrency()) * concurrency();
    calls_of(&client, subject.tool, n).await;
    control(pid, &["-d"]);
    // The dump is written by the server's own threads: wait for the file.
    let dump = PathBuf::from(format!("{}.1", out.display()));
    for _ in 0..200 {
        if dump.exists() && std::fs::metadata(&dump).unwrap().len() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(client);
    drop(proc);
    total_instructions(&out) as f64 / n as f64
}

pub async fn run(dir: &Path) {
    let key = bulwark::auth::keys::generate().unwrap();
    let hash = key.hash.to_stored();
    let out_dir = out_dir();
    let (endpoint, exports) = super::tracing_cost::sink().await;
    let secure = std::fs::read_to_string(config(dir, 1, Security::On, &hash)).unwrap();
    let write = |name: &str, toml: String| {
        let path = dir.join(name);
        std::fs::write(&path, toml).unwrap();
        path.display().to_string()
    };
    let quiet = write(
        "callgrind-untraced.toml",
        secure.clone() + "\n[telemetry]\nmetrics = false\n",
    );
    let traced = write(
        "callgrind-traced.toml",
        secure.clone()
            + &format!("\n[telemetry]\notlp_endpoint = {endpoint:?}\nsampling_ratio = 1.0\n"),
    );
    let secure = config(dir, 1, Security::On, &hash);
    let plain = config(dir, 1, Security::Off, &hash);
    let only = std::env::var("BULWARK_BENCH_CALLGRIND_ONLY").ok();
    let counted_here = |label: &str| {
        only.as_deref()
            .is_none_or(|only| only.split(',').any(|l| l == label))
    };
    // The remote upstream runs outside valgrind, for every build alike, and
    // only when `remote` is counted.
    let upstream = counted_here("remote").then(|| {
        spawn_bin(
            super::support::BIN,
            &["demo-server", "echo", "--http", "127.0.0.1:0"],
            dir,
        )
    });
    let serve = |path: &str| vec!["serve".to_owned(), "--config".to_owned(), path.to_owned()];
    let mut subjects = vec![
        Subject {
            label: "floor",
            args: ["demo-server", "echo", "--http", "127.0.0.1:0"]
                .map(str::to_owned)
                .to_vec(),
            gateway: false,
            tool: "echo",
            key: false,
        },
        Subject {
            label: "secure",
            args: serve(&secure),
            gateway: true,
            tool: "echo__echo",
            key: true,
        },
        Subject {
            label: "plain",
            args: serve(&plain),
            gateway: true,
            tool: "echo__echo",
            key: false,
        },
        Subject {
            label: "untraced",
            args: serve(&quiet),
            gateway: true,
            tool: "echo__echo",
            key: true,
        },
        Subject {
            label: "traced",
            args: serve(&traced),
            gateway: true,
            tool: "echo__echo",
            key: true,
        },
    ];
    if let Some((_, url)) = &upstream {
        let remote = write(
            "callgrind-remote.toml",
            super::hot_path::remote_config(dir, url),
        );
        subjects.push(Subject {
            label: "remote",
            args: serve(&remote),
            gateway: true,
            tool: "echo__echo",
            key: false,
        });
    }
    let pooled = std::env::var_os("BULWARK_BENCH_CALLGRIND_POOLED").is_some();
    super::POOLED.store(pooled, std::sync::atomic::Ordering::Relaxed);
    let stateless = std::env::var_os("BULWARK_BENCH_CALLGRIND_STATELESS").is_some();
    super::STATELESS.store(stateless, std::sync::atomic::Ordering::Relaxed);
    println!(
        "instructions per tools/call (callgrind, {}{}c={}, {} calls; dumps in {}):",
        if stateless { "stateless " } else { "" },
        if pooled { "pooled " } else { "" },
        concurrency(),
        calls(),
        out_dir.display()
    );
    let builds = super::hot_path::builds();
    let mut counted = Vec::new();
    for build in &builds {
        for subject in &subjects {
            if !counted_here(subject.label) {
                continue;
            }
            let per_call = count(build, subject, &key.secret, dir, &out_dir).await;
            println!(
                "  {:<8} {:<10} {:>12.0}",
                build.label, subject.label, per_call
            );
            counted.push((build.label, subject.label, per_call));
        }
    }
    for build in &builds {
        let get = |label: &str| {
            counted
                .iter()
                .find(|(b, l, _)| *b == build.label && *l == label)
                .map(|(_, _, v)| *v)
        };
        if let (Some(on), Some(off)) = (get("traced"), get("untraced")) {
            println!(
                "  {}: telemetry on vs off: {:+.1}% instructions per call",
                build.label,
                (on / off - 1.0) * 100.0
            );
        }
        if let (Some(gw), Some(floor)) = (get("secure"), get("floor")) {
            println!(
                "  {}: gateway secure / floor: {:.2}x",
                build.label,
                gw / floor
            );
        }
    }
    println!(
        "  OTLP export requests received: {}",
        exports.load(std::sync::atomic::Ordering::Relaxed)
    );
}
