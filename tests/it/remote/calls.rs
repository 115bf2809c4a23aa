//! Calls through a remote upstream once its session is established: they
//! are posted from the calling task, beside rmcp's transport worker, so a
//! withdrawn call must still reach the upstream as a cancellation and leave
//! the session working.
use std::time::Duration;

use serde_json::json;

use super::{DemoHttp, remote_upstream};
use crate::common::{Gateway, PythonSession, peers};
use crate::gateway::{HEAD, upstream_node};
use crate::timeouts::DEADLINE_EXCEEDED;

#[tokio::test]
async fn a_remote_call_past_its_deadline_is_cancelled_upstream_and_the_session_goes_on() {
    let Some(peers) = peers() else { return };
    let upstream = DemoHttp::start("slow");
    let gw = Gateway::start(
        &format!(
            "{HEAD}[timeouts.tools.\"remote__slow\"]\ndeadline_secs = 1\n{}",
            remote_upstream("remote", &upstream.url(), "")
        ),
        &[],
    );
    gw.wait_ready(Duration::from_secs(60)).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);

    let answer = session.call("remote__slow", json!({"ms": 10000}));
    assert_eq!(answer["error"]["code"], DEADLINE_EXCEEDED, "{answer}");
    upstream.assert_a_call_was_cancelled();

    // The same session, and the upstream's, go on.
    let after = session.call("remote__echo", json!({"message": "after"}));
    assert_eq!(after["result"]["text"], "after", "{after}");
    assert_eq!(upstream_node(&gw, "remote").await["restarts"], 0);
    session.quit();
}

#[tokio::test]
async fn more_concurrent_remote_calls_than_direct_slots_all_complete() {
    let Some(peers) = peers() else { return };
    let upstream = DemoHttp::start("slow");
    let gw = Gateway::start(
        &format!("{HEAD}{}", remote_upstream("remote", &upstream.url(), "")),
        &[],
    );
    gw.wait_ready(Duration::from_secs(60)).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    // 16 calls at a time are posted directly; the rest go through rmcp's
    // worker (16 more, then queued there).
    let burst = session.send(json!({
        "call": "remote__slow", "args": {"ms": 300}, "concurrent": 40
    }));
    let answer = session.recv(&burst, Duration::from_secs(60));
    assert_eq!(answer["okCount"], 40, "{answer}");
    session.quit();
}
