//! Upstreams that break the transport: the gateway keeps serving, them when
//! they can be served, everyone else always.
use std::time::Duration;

use serde_json::json;

use super::chaos_upstream;
use crate::common::{Gateway, PythonSession, peers};
use crate::gateway::{HEAD, demo_upstream, upstream_node, wait_for_upstream};

#[tokio::test(flavor = "multi_thread")]
async fn invalid_utf8_and_an_endless_line_on_stderr_do_not_break_the_upstream() {
    let Some(peers) = peers() else { return };
    let toml = format!("{HEAD}{}", chaos_upstream("noisy", "stderr-garbage"));
    let gw = Gateway::start(&toml, &[]);
    gw.wait_ready(Duration::from_secs(30)).await;
    // The garbage (64 MiB without a newline, then 10k lines) is through once
    // the liveness line shows up in the tail.
    let node = wait_for_upstream(&gw, "noisy", Duration::from_secs(60), |node| {
        node["stderr_tail"]
            .as_array()
            .is_some_and(|lines| lines.iter().any(|l| l == "chaos: stderr still flowing"))
    })
    .await;
    let tail = node["stderr_tail"].to_string();
    assert!(node["restarts"] == 0, "{node}");
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    for i in 0..5 {
        let answer = session.call("noisy__echo", json!({"message": format!("m{i}")}));
        assert_eq!(answer["result"]["text"], format!("m{i}"), "{answer}");
    }
    let node = upstream_node(&gw, "noisy").await;
    assert_eq!(node["restarts"], 0, "stderr broke the upstream: {node}");
    assert_eq!(node["state"], "ready", "{node}");
    // Lines are capped, and invalid bytes decoded as U+FFFD; nothing of
    // the 64 MiB line is kept past the cap.
    assert!(tail.len() < 64 * 1024, "tail of {} bytes", tail.len());
    session.quit();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_that_never_answers_initialize_is_restarted_and_ready_settles() {
    let Some(peers) = peers() else { return };
    let toml = format!(
        "{HEAD}{}[upstreams.mute.restart]\nmax_restarts = 1\nwindow_secs = 60\nbackoff_min_ms = 10\nbackoff_max_ms = 50\nprobe_interval_secs = 3600\nhandshake_timeout_secs = 1\n\n{}",
        chaos_upstream("mute", "no-initialize"),
        demo_upstream("echo", "\"echo\""),
    );
    let gw = Gateway::start(&toml, &[]);
    // Ready settles once the silent upstream's circuit is open.
    gw.wait_ready(Duration::from_secs(30)).await;
    let node = wait_for_upstream(&gw, "mute", Duration::from_secs(20), |n| {
        n["state"] == "failed"
    })
    .await;
    assert!(node["restarts"].as_u64() >= Some(1), "{node}");
    let last_exit = node["last_exit"].as_str().unwrap_or_default();
    assert!(last_exit.contains("initialize"), "{node}");
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    let answer = session.call("echo__echo", json!({"message": "fine"}));
    assert_eq!(answer["result"]["text"], "fine", "{answer}");
    session.quit();
}

#[tokio::test(flavor = "multi_thread")]
async fn transport_abusers_never_hurt_a_healthy_neighbour() {
    let Some(peers) = peers() else { return };
    let toml = format!(
        "{HEAD}[timeouts.deadlines]\ntool_execution = 3\ndiscovery = 3\n{}{}{}{}{}",
        chaos_upstream("garbage", "stdout-garbage"),
        chaos_upstream("huge", "huge-line"),
        chaos_upstream("flood", "notify-flood"),
        chaos_upstream("liar", "wrong-ids"),
        demo_upstream("echo", "\"echo\""),
    );
    let gw = Gateway::start(&toml, &[]);
    gw.wait_ready(Duration::from_secs(60)).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    // The flood is running; the huge line has been written (and dropped).
    wait_for_upstream(&gw, "huge", Duration::from_secs(30), |n| {
        n["stderr_tail"].to_string().contains("byte line")
    })
    .await;
    for server in ["garbage", "huge", "flood"] {
        let answer = session.call(&format!("{server}__echo"), json!({"message": server}));
        assert_eq!(answer["result"]["text"], server, "{server}: {answer}");
    }
    // Answers under the wrong id never match: the call ends at its deadline.
    let answer = session.call_timeout(
        "liar__echo",
        json!({"message": "x"}),
        Duration::from_secs(30),
    );
    assert_eq!(answer["ok"], false, "{answer}");
    for i in 0..3 {
        let answer = session.call("echo__echo", json!({"message": format!("ok{i}")}));
        assert_eq!(answer["result"]["text"], format!("ok{i}"), "{answer}");
    }
    session.quit();
    assert!(gw.logs().len() < 50 * 1024 * 1024, "logs exploded");
}
