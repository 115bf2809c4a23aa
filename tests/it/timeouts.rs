//! Deadlines on the request path with the `slow` demo upstream: warn, then
//! timeout (client error, upstream cancelled), then fail (a hung process is
//! killed and restarted), visible in metrics and in `/api/v1/actors`.
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Gateway, PythonSession, peers};
use crate::gateway::{HEAD, demo_upstream, upstream_node, wait_for_upstream};

const DEADLINE_EXCEEDED: i64 = -32007;

fn upstream_metrics(metrics: &Value, server: &str) -> Value {
    metrics["upstreams"]
        .as_array()
        .unwrap_or_else(|| panic!("no upstreams in {metrics}"))
        .iter()
        .find(|m| m["upstream"] == server)
        .cloned()
        .unwrap_or_else(|| panic!("no metrics for {server} in {metrics}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_call_times_out_and_a_hung_upstream_is_restarted() {
    let Some(peers) = peers() else { return };
    let config = format!(
        "{HEAD}[timeouts.tools.\"slow__slow\"]\ndeadline_secs = 1\n\
         [timeouts.tools.\"slow__hang\"]\ndeadline_secs = 1\n{}",
        demo_upstream("slow", "\"slow\""),
    );
    let gw = Gateway::start(&config, &[]);
    gw.wait_ready(Duration::from_secs(30)).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);

    // Timeout: the client gets an error naming server, tool and deadline, and
    // the upstream is told to cancel (it logs that it stopped).
    let answer = session.call("slow__slow", json!({"ms": 10000}));
    assert_eq!(answer["ok"], false, "{answer}");
    assert_eq!(answer["error"]["code"], DEADLINE_EXCEEDED, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`slow`") && message.contains("1s"),
        "{message}"
    );
    wait_for_upstream(&gw, "slow", Duration::from_secs(10), |n| {
        n["stderr_tail"].to_string().contains("call cancelled")
    })
    .await;
    // A responsive upstream is not restarted for one slow call.
    assert_eq!(upstream_node(&gw, "slow").await["restarts"], 0);

    // Fail: a hung server does not answer the probe and is killed and restarted.
    let answer = session.call("slow__hang", json!({}));
    assert_eq!(answer["error"]["code"], DEADLINE_EXCEEDED, "{answer}");
    let node = wait_for_upstream(&gw, "slow", Duration::from_secs(20), |n| {
        n["restarts"] == 1 && n["state"] == "ready"
    })
    .await;
    assert!(
        node["last_exit"]
            .as_str()
            .unwrap_or_default()
            .contains("hung"),
        "{node}"
    );
    let echoed = session.call("slow__echo", json!({"message": "back"}));
    assert_eq!(echoed["result"]["text"], "back", "{echoed}");

    let metrics = session.call("bulwark__timeout_metrics", json!({}));
    assert_eq!(metrics["ok"], true, "{metrics}");
    let metrics = &metrics["result"]["structuredContent"];
    let slow = upstream_metrics(metrics, "slow");
    assert!(slow["warned"].as_u64().unwrap() >= 2, "{slow}");
    assert!(slow["timed_out"].as_u64().unwrap() >= 2, "{slow}");
    assert!(slow["escalated"].as_u64().unwrap() >= 1, "{slow}");
    assert!(gw.logs().contains("hung"), "the escalation is logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_upstream_operation_has_a_deadline() {
    let Some(peers) = peers() else { return };
    // `liar` never answers anything but `initialize` under the right id; the
    // fail threshold is far off so the probe does not restart it meanwhile.
    let config = format!(
        "{HEAD}[timeouts.deadlines]\ndefault = 1\ndiscovery = 1\ntool_execution = 1\n\
         [timeouts.thresholds]\nfail = 60.0\n{}",
        crate::runtime::chaos_upstream("liar", "wrong-ids"),
    );
    let gw = Gateway::start(&config, &[]);
    gw.wait_ready(Duration::from_secs(30)).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    let answers = [
        (
            "tools/call",
            session.call("liar__echo", json!({"message": "x"})),
        ),
        ("prompts/get", session.prompt("liar__greet", json!({}))),
        (
            "resources/read",
            session.read("bulwark://liar/demo://greeting"),
        ),
        (
            "resources/subscribe",
            session.subscribe("bulwark://liar/demo://greeting"),
        ),
        (
            "completion/complete",
            session.command(
                json!({"complete": "liar__greet", "argument": {"name": "name", "value": "A"}}),
                Duration::from_secs(60),
            ),
        ),
    ];
    for (method, answer) in answers {
        assert_eq!(answer["ok"], false, "{method}: {answer}");
        assert_eq!(
            answer["error"]["code"], DEADLINE_EXCEEDED,
            "{method}: {answer}"
        );
        // Answered by the deadline (1 s) plus slack for a loaded machine, far
        // below the client's own 30 s.
        let elapsed = answer["elapsedMs"].as_f64().unwrap_or(f64::MAX);
        assert!(elapsed < 10_000.0, "{method} took {elapsed} ms: {answer}");
    }
    // The subscribe that timed out left no subscription behind: asked again, the
    // upstream is asked again (and times out again).
    let again = session.subscribe("bulwark://liar/demo://greeting");
    assert_eq!(again["error"]["code"], DEADLINE_EXCEEDED, "{again}");
}
