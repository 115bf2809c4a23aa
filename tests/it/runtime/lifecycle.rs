//! Stopping: fast when upstreams cooperate, forceful when they do not, and
//! complete even when the gateway itself is killed with `kill -9`.
use std::time::{Duration, Instant};

use super::chaos_upstream;
use crate::common::{Gateway, alive, descendants, kill9, peers, wait_until};
use crate::gateway::{HEAD, demo_pid, demo_upstream};

/// Grandchild pids the `fork-grandchildren` chaos server reported.
async fn grandchildren(gw: &Gateway, server: &str) -> Vec<i32> {
    let node = crate::gateway::upstream_node(gw, server).await;
    node["stderr_tail"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|line| {
            line.as_str()?
                .split("grandchild pid=")
                .nth(1)?
                .trim()
                .parse()
                .ok()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_the_gateway_leaves_no_upstream_process() {
    let Some(_peers) = peers() else { return };
    let toml = format!(
        "{HEAD}{}{}{}",
        demo_upstream("echo", "\"echo\""),
        chaos_upstream("stubborn", "ignore-sigterm"),
        chaos_upstream("forker", "fork-grandchildren"),
    );
    let gw = Gateway::start(&toml, &[]);
    gw.wait_ready(Duration::from_secs(30)).await;
    let mut upstreams = vec![
        demo_pid(&gw, "echo").await,
        demo_pid(&gw, "stubborn").await,
        demo_pid(&gw, "forker").await,
    ];
    assert!(
        wait_until(Duration::from_secs(10), || {
            descendants(gw.pid()).len() >= upstreams.len() + 2
        }),
        "grandchildren did not start"
    );
    let forked = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let pids = grandchildren(&gw, "forker").await;
            if pids.len() == 2 {
                return pids;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the forker reports its grandchildren");
    upstreams.extend(forked);
    assert!(upstreams.iter().all(|pid| alive(*pid)));

    // Only the gateway: its upstreams are not told anything.
    kill9(gw.pid());
    for pid in upstreams {
        assert!(
            wait_until(Duration::from_secs(10), || !alive(pid)),
            "pid {pid} outlived the gateway{}",
            gw.logs()
        );
    }
}

/// Whether `pid` runs `sh -c …` (the group watchdog).
fn is_watchdog(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| cmdline.starts_with(b"/bin/sh\0-c\0"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_parent_death_signal_alone_ends_an_upstream_when_the_gateway_is_killed() {
    // Upstreams are started through the launcher (posix_spawn, no fork of
    // the gateway), which must still give them the parent-death signal:
    // with the group watchdog frozen, only that signal can end the upstream.
    let Some(_peers) = peers() else { return };
    let gw = Gateway::start(&format!("{HEAD}{}", demo_upstream("echo", "\"echo\"")), &[]);
    gw.wait_ready(Duration::from_secs(30)).await;
    let upstream = demo_pid(&gw, "echo").await;
    let watchdog = descendants(gw.pid())
        .into_iter()
        .find(|pid| is_watchdog(*pid))
        .expect("the group watchdog runs");
    let stop = |signal| {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(watchdog), signal);
    };
    stop(nix::sys::signal::Signal::SIGSTOP);
    kill9(gw.pid());
    let gone = wait_until(Duration::from_secs(10), || !alive(upstream));
    kill9(watchdog);
    assert!(gone, "the upstream {upstream} outlived the gateway");
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_with_idle_upstreams_does_not_wait_out_the_grace() {
    let Some(_peers) = peers() else { return };
    let toml = format!(
        "{HEAD}{}{}",
        demo_upstream("echo", "\"echo\""),
        demo_upstream("slow", "\"slow\""),
    );
    let mut gw = Gateway::start(&toml, &[]);
    gw.wait_ready(Duration::from_secs(30)).await;
    let pids = [demo_pid(&gw, "echo").await, demo_pid(&gw, "slow").await];
    let started = Instant::now();
    gw.sigterm();
    let status = gw
        .wait_exit(Duration::from_secs(20))
        .expect("gateway exits");
    eprintln!("shutdown took {:?}", started.elapsed());
    assert!(status.success(), "{status:?}{}", gw.logs());
    // Every upstream exited on its own once its session closed: no SIGKILL
    // after a 2 s grace, which is what "ignored SIGTERM" reports.
    assert!(
        !gw.logs().contains("ignored SIGTERM"),
        "an idle upstream waited out the grace:{}",
        gw.logs()
    );
    for pid in pids {
        assert!(!alive(pid), "pid {pid} survived");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_ignoring_sigterm_is_killed_after_the_grace() {
    let Some(_peers) = peers() else { return };
    let toml = format!(
        "{HEAD}{}{}",
        chaos_upstream("stubborn", "ignore-sigterm"),
        demo_upstream("echo", "\"echo\""),
    );
    let mut gw = Gateway::start(&toml, &[]);
    gw.wait_ready(Duration::from_secs(30)).await;
    let pid = demo_pid(&gw, "stubborn").await;
    gw.sigterm();
    let status = gw
        .wait_exit(Duration::from_secs(20))
        .expect("gateway exits");
    assert!(status.success(), "{status:?}{}", gw.logs());
    assert!(gw.logs().contains("ignored SIGTERM"), "{}", gw.logs());
    assert!(!alive(pid), "the stubborn upstream survived");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_a_call_in_flight_finish() {
    let Some(peers) = crate::common::peers() else {
        return;
    };
    let toml = format!(
        "{HEAD}shutdown_grace_secs = 20\n{}",
        demo_upstream("slow", "\"slow\", \"--delay-ms\", \"2000\""),
    );
    let mut gw = Gateway::start(&toml, &[]);
    gw.wait_ready(Duration::from_secs(30)).await;
    let mut session = crate::common::PythonSession::start(&peers, &[gw.mcp_url()]);
    let call = session.send(serde_json::json!({"call": "slow__slow", "args": {}}));
    crate::gateway::wait_for_upstream(&gw, "slow", Duration::from_secs(10), |n| {
        n["calls_in_flight"] == 1
    })
    .await;
    gw.sigterm();
    let answer = session.recv(&call, Duration::from_secs(20));
    assert_eq!(
        answer["ok"],
        true,
        "the call in flight was cut:{answer}{}",
        gw.logs()
    );
    let status = gw
        .wait_exit(Duration::from_secs(20))
        .expect("gateway exits");
    assert!(status.success(), "{status:?}{}", gw.logs());
    assert!(
        gw.logs().contains("calls in flight drained"),
        "{}",
        gw.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_verdict_never_kills_the_instance_that_replaced_the_hung_one() {
    let Some(peers) = crate::common::peers() else {
        return;
    };
    // Timeout at 4 s, hung verdict at 8 s: room to replace the instance between.
    let toml = format!(
        "{HEAD}[timeouts.thresholds]\nfail = 2.0\n[timeouts.tools.\"slow__hang\"]\ndeadline_secs = 4\n{}",
        demo_upstream("slow", "\"slow\""),
    );
    let gw = Gateway::start(&toml, &[]);
    gw.wait_ready(Duration::from_secs(30)).await;
    let mut session = crate::common::PythonSession::start(&peers, &[gw.mcp_url()]);
    let hung = demo_pid(&gw, "slow").await;
    let call = session.send(serde_json::json!({"call": "slow__hang", "args": {}}));
    assert!(
        gw.wait_for_log("timed out; cancelled", Duration::from_secs(20)),
        "{}",
        gw.logs()
    );
    // The probe is pinging the hung instance; it dies and a new one starts.
    kill9(hung);
    let answer = session.recv(&call, Duration::from_secs(20));
    assert_eq!(answer["ok"], false, "{answer}");
    crate::gateway::wait_for_upstream(&gw, "slow", Duration::from_secs(20), |n| {
        n["state"] == "ready" && n["restarts"] == 1
    })
    .await;
    assert!(
        gw.wait_for_log(
            "hung verdict about a previous instance",
            Duration::from_secs(20)
        ),
        "{}",
        gw.logs()
    );
    let node = crate::gateway::upstream_node(&gw, "slow").await;
    assert_eq!(node["restarts"], 1, "the new instance was killed: {node}");
    assert_eq!(node["state"], "ready", "{node}");
    let again = session.call("slow__echo", serde_json::json!({"message": "alive"}));
    assert_eq!(again["result"]["text"], "alive", "{again}");
    session.quit();
}
