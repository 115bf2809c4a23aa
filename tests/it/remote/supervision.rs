//! A remote upstream under supervision: killed and started again on the same
//! port, and a server that forgets its sessions.
use std::time::{Duration, Instant};

use serde_json::json;

use super::{DemoHttp, remote_upstream, restarted_because};
use crate::common::{Gateway, PythonSession, peers};
use crate::gateway::{HEAD, upstream_node, wait_for_upstream};

/// Restarts quickly and often enough to ride out a server restart.
const PATIENT: &str = "[upstreams.remote.restart]\nmax_restarts = 100\nwindow_secs = 60\nbackoff_min_ms = 50\nbackoff_max_ms = 300\n";

#[tokio::test]
async fn a_restarted_server_is_reconnected_and_only_in_flight_calls_fail() {
    let Some(peers) = peers() else { return };
    let mut upstream = DemoHttp::start("slow");
    let gw = Gateway::start(
        &format!(
            "{HEAD}{}",
            remote_upstream("remote", &upstream.url(), PATIENT)
        ),
        &[],
    );
    gw.wait_ready(Duration::from_secs(60)).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    let before = session.call("remote__echo", json!({"message": "before"}));
    assert_eq!(before["result"]["text"], "before", "{before}");

    // Two calls that would take 30 s are in flight when the server dies.
    let in_flight = session.send(json!({
        "call": "remote__slow", "args": {"ms": 30000}, "concurrent": 2
    }));
    wait_for_upstream(&gw, "remote", Duration::from_secs(10), |n| {
        n["calls_in_flight"] == 2
    })
    .await;
    let killed_at = Instant::now();
    upstream.kill9();
    let answer = session.recv(&in_flight, Duration::from_secs(20));
    assert!(
        killed_at.elapsed() < Duration::from_secs(10),
        "in-flight calls took {:?} to fail",
        killed_at.elapsed()
    );
    assert_eq!(answer["okCount"], 0, "{answer}");
    for result in answer["results"].as_array().expect("results") {
        let message = result["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("'remote'"),
            "error names the server: {result}"
        );
    }

    upstream.start_again();
    restarted_because(&gw, "remote", "connection").await;
    // The same client session goes on as if nothing happened.
    let after = session.call("remote__echo", json!({"message": "after"}));
    assert_eq!(after["result"]["text"], "after", "{after}");
    session.quit();
}

#[tokio::test]
async fn an_expired_session_is_re_initialised_transparently() {
    let Some(peers) = peers() else { return };
    let upstream = DemoHttp::start("echo");
    let gw = Gateway::start(
        &format!("{HEAD}{}", remote_upstream("remote", &upstream.url(), "")),
        &[],
    );
    gw.wait_ready(Duration::from_secs(60)).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    let first = session.call("remote__echo", json!({"message": "one"}));
    assert_eq!(first["result"]["text"], "one", "{first}");

    assert!(upstream.drop_sessions().await >= 1);
    let second = session.call("remote__echo", json!({"message": "two"}));
    assert_eq!(
        second["ok"], true,
        "the client never sees the stale session: {second}"
    );
    assert_eq!(second["result"]["text"], "two");

    // No reconnect by the supervisor: the same instance re-initialised.
    let node = upstream_node(&gw, "remote").await;
    assert_eq!(node["state"], "ready", "{node}");
    assert_eq!(node["restarts"], 0, "{node}");
    session.quit();
}
