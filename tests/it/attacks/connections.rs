//! Slowloris under a low file-descriptor limit: 300 connections that never
//! finish their headers must not exhaust descriptors; `/health` and a
//! normal call are served again within the header-read timeout.
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use super::{normal_call_served, rss_kib};
use crate::common::Gateway;
use crate::gateway::{HEAD, demo_upstream};

/// RSS growth allowed after the attack (KiB).
const SLOWLORIS_RSS_KIB: u64 = 32 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_under_a_low_fd_limit_leaves_the_gateway_serving() {
    let toml = format!(
        "{HEAD}[server.limits]\nheader_read_timeout_secs = 2\n{}",
        demo_upstream("echo", "\"echo\"")
    );
    // `ulimit -n 128` for the gateway alone, through a wrapper that execs it.
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("bulwark-lowfd");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nulimit -n 128\nexec {:?} \"$@\"\n",
            env!("CARGO_BIN_EXE_bulwark")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let gw = Gateway::builder(&toml).program(&wrapper).start();
    gw.wait_ready(Duration::from_secs(60)).await;
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", gw.pid())).unwrap();
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.contains(" 128 ")),
        "{limits}"
    );
    let (before, _) = rss_kib(gw.pid());

    let addr = gw.base_url().trim_start_matches("http://").to_owned();
    let half_sent: Vec<TcpStream> = (0..300)
        .filter_map(|_| {
            let mut stream = TcpStream::connect(&addr).ok()?;
            stream
                .write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .ok()?;
            Some(stream)
        })
        .collect();
    assert!(
        half_sent.len() >= 250,
        "only {} connections opened",
        half_sent.len()
    );

    let started = Instant::now();
    let mut served = false;
    while started.elapsed() < Duration::from_secs(60) {
        let health = gw
            .http()
            .get(gw.url("/health"))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        if health.is_ok_and(|r| r.status().is_success()) {
            served = true;
            break;
        }
    }
    assert!(
        served,
        "/health never answered during the attack{}",
        gw.logs()
    );
    eprintln!("slowloris: /health answered after {:?}", started.elapsed());
    normal_call_served(&gw, &[]).await;
    drop(half_sent);
    let logs = gw.logs();
    assert!(!logs.contains("Too many open files"), "{logs}");
    let (after, peak) = rss_kib(gw.pid());
    eprintln!("slowloris: RSS {before} KiB before, {after} KiB after, peak {peak} KiB");
    assert!(
        after < before + SLOWLORIS_RSS_KIB,
        "RSS {after} KiB over {before} + {SLOWLORIS_RSS_KIB}"
    );
}
