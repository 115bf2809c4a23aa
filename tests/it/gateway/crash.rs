//! Crash isolation: an upstream killed mid-call, and one that cannot start.
use std::time::{Duration, Instant};

use serde_json::json;

use super::{HEAD, demo_pid, demo_upstream, upstream_node, wait_for_upstream};
use crate::common::{Gateway, PythonSession, kill9, peers};

#[tokio::test]
async fn kill_9_mid_call_fails_those_calls_fast_and_the_session_recovers() {
    let Some(peers) = peers() else { return };
    let toml = format!(
        "{HEAD}{}\n{}",
        demo_upstream("slow", "\"slow\", \"--delay-ms\", \"30000\""),
        demo_upstream("echo", "\"echo\""),
    );
    let gw = Gateway::start(&toml, &[]);
    gw.wait_ready(Duration::from_secs(60)).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    assert_eq!(
        session.call("echo__echo", json!({"message": "before"}))["ok"],
        true
    );

    // Four calls that would take 30 s each are in flight when the process dies.
    let in_flight = session.send(json!({"call": "slow__slow", "args": {}, "concurrent": 4}));
    wait_for_upstream(&gw, "slow", Duration::from_secs(10), |n| {
        n["calls_in_flight"] == 4
    })
    .await;
    let pid = demo_pid(&gw, "slow").await;
    let killed_at = Instant::now();
    kill9(pid);

    let answer = session.recv(&in_flight, Duration::from_secs(10));
    let waited = killed_at.elapsed();
    assert!(
        waited < Duration::from_secs(5),
        "in-flight calls took {waited:?} to fail"
    );
    assert_eq!(answer["okCount"], 0, "{answer}");
    for result in answer["results"].as_array().expect("results") {
        let message = result["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("'slow'"),
            "error must name the server: {result}"
        );
        assert!(message.contains("SIGKILL"), "error must say why: {result}");
    }

    // The other upstream never noticed.
    assert_eq!(
        session.call("echo__echo", json!({"message": "during"}))["result"]["text"],
        "during"
    );

    // Restarted; the same client session succeeds again.
    let node = wait_for_upstream(&gw, "slow", Duration::from_secs(30), |n| {
        n["state"] == "ready" && n["restarts"] == 1
    })
    .await;
    assert!(
        node["last_exit"]
            .as_str()
            .unwrap_or_default()
            .contains("SIGKILL"),
        "{node}"
    );
    assert_ne!(demo_pid(&gw, "slow").await, pid);
    let again = session.call("slow__echo", json!({"message": "after"}));
    assert_eq!(again["ok"], true, "{again}");
    assert_eq!(again["result"]["text"], "after");
    session.quit();
}

#[tokio::test]
async fn crash_loop_opens_the_circuit_without_hurting_others() {
    let Some(peers) = peers() else { return };
    let toml = format!(
        "{HEAD}{}\n[upstreams.doomed.restart]\nmax_restarts = 3\nwindow_secs = 60\nbackoff_min_ms = 20\nbackoff_max_ms = 100\nprobe_interval_secs = 3600\n\n{}",
        demo_upstream("doomed", "\"crash\", \"--die-at-start\""),
        demo_upstream("echo", "\"echo\""),
    );
    let gw = Gateway::start(&toml, &[]);
    gw.wait_ready(Duration::from_secs(60)).await;
    let node = wait_for_upstream(&gw, "doomed", Duration::from_secs(30), |n| {
        n["state"] == "failed"
    })
    .await;
    assert_eq!(node["restarts"], 3, "{node}");
    assert!(
        node["last_exit"]
            .as_str()
            .unwrap_or_default()
            .contains("status 2"),
        "{node}"
    );
    assert!(
        node["stderr_tail"]
            .to_string()
            .contains("demo-server crash"),
        "stderr tail kept for operators: {node}"
    );

    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    let started = Instant::now();
    let refused = session.call("doomed__echo", json!({"message": "x"}));
    assert!(started.elapsed() < Duration::from_secs(2), "must fail fast");
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("'doomed'") && message.contains("circuit open"),
        "{refused}"
    );

    assert_eq!(
        session.call("echo__echo", json!({"message": "fine"}))["result"]["text"],
        "fine"
    );
    let echo = upstream_node(&gw, "echo").await;
    assert_eq!(echo["state"], "ready");
    assert_eq!(echo["restarts"], 0);
    let (status, health) = gw.get_json("/health").await;
    assert!(status.is_success(), "{health}");
    session.quit();
}
