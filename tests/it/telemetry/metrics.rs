//! The counters behind `/metrics` move as calls, crashes, guardrail blocks
//! and timeouts happen; names a client invents never become series; who
//! may scrape is as `[telemetry]` says.
use std::time::Duration;

use serde_json::json;

use super::{parse, scrape, scrape_with, value, wait_for_metric};
use crate::common::{Gateway, PythonSession, kill9, peers};
use crate::gateway::{HEAD, demo_pid, demo_upstream};

const DURATION_COUNT: &str = "mcp_server_operation_duration_seconds_count";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_with_calls_crashes_blocks_and_timeouts() {
    let Some(peers) = peers() else { return };
    let toml = format!(
        "{HEAD}[timeouts.tools.\"slow__slow\"]\ndeadline_secs = 1\n{}\n{}\n{}",
        demo_upstream("echo", "\"echo\""),
        demo_upstream("slow", "\"slow\""),
        demo_upstream("leaky", "\"leaky\""),
    );
    let gw = Gateway::start(&toml, &[]);
    gw.wait_ready(Duration::from_secs(60)).await;

    let samples = scrape(&gw).await;
    for server in ["echo", "slow", "leaky"] {
        let ready = [("bulwark_upstream", server), ("state", "ready")];
        assert_eq!(value(&samples, "bulwark_upstream_state", &ready), 1.0);
    }
    assert!(
        samples
            .iter()
            .any(|s| s.name == "bulwark_actor_messages_handled_total"
                && s.matches(&[("kind", "root_supervisor")])),
        "per-actor counters are exported"
    );

    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    // As clients do, it lists before it calls: the gateway learns the names.
    assert_eq!(session.list("tools")["ok"], true);
    for i in 0..3 {
        let answer = session.call("echo__echo", json!({"message": format!("m{i}")}));
        assert_eq!(answer["ok"], true, "{answer}");
    }
    let echo_calls = [
        ("mcp_method_name", "tools/call"),
        ("bulwark_upstream", "echo"),
        ("gen_ai_tool_name", "echo"),
    ];
    let samples = scrape(&gw).await;
    assert_eq!(value(&samples, DURATION_COUNT, &echo_calls), 3.0);
    let lists = [("mcp_method_name", "tools/list")];
    assert_eq!(value(&samples, DURATION_COUNT, &lists), 1.0);
    assert!(
        samples
            .iter()
            .any(|s| s.name == "bulwark_sessions_open" && s.value >= 1.0),
        "the client's session is counted"
    );

    // Names a client invents are refused and never become label values.
    let invented = session.call("echo__no_such_tool_zq9", json!({}));
    assert_eq!(invented["ok"], false, "{invented}");
    let invented = session.call("nosuchserver_zq9__tool", json!({}));
    assert_eq!(invented["ok"], false, "{invented}");
    let (_, text) = scrape_with(&gw, None).await;
    assert!(
        !text.contains("zq9"),
        "an invented name became a series:\n{text}"
    );
    let failed = value(
        &parse(&text),
        DURATION_COUNT,
        &[("mcp_method_name", "tools/call")],
    ) - value(&parse(&text), DURATION_COUNT, &echo_calls);
    assert!(
        failed >= 2.0,
        "the refused calls are still counted: {failed}"
    );

    // A guardrail block, by policy, direction and detector.
    let leak = session.call("leaky__leak_secret", json!({"kind": "aws"}));
    assert_eq!(leak["ok"], false, "{leak}");
    let block = [
        ("policy", "default-output"),
        ("direction", "output"),
        ("detector", "secrets"),
    ];
    wait_for_metric(
        &gw,
        "bulwark_guardrail_blocks_total",
        &block,
        Duration::from_secs(5),
        |v| v == 1.0,
    )
    .await;
    let blocked_call = [
        ("bulwark_upstream", "leaky"),
        ("gen_ai_tool_name", "leak_secret"),
        ("error_type", "-32006"),
    ];
    assert_eq!(
        value(&scrape(&gw).await, DURATION_COUNT, &blocked_call),
        1.0
    );

    // A call past its deadline: a timeout, seen per upstream and in the histogram.
    let late = session.call("slow__slow", json!({"ms": 10000}));
    assert_eq!(late["ok"], false, "{late}");
    let slow = [("bulwark_upstream", "slow")];
    wait_for_metric(
        &gw,
        "bulwark_deadline_timeouts_total",
        &slow,
        Duration::from_secs(5),
        |v| v >= 1.0,
    )
    .await;
    let timed_out = [("bulwark_upstream", "slow"), ("error_type", "-32007")];
    assert_eq!(value(&scrape(&gw).await, DURATION_COUNT, &timed_out), 1.0);

    // kill -9: a restart by signal, and the state gauge follows it back to ready.
    let pid = demo_pid(&gw, "echo").await;
    kill9(pid);
    let restarted = [("bulwark_upstream", "echo"), ("reason", "signal")];
    wait_for_metric(
        &gw,
        "bulwark_upstream_restarts_total",
        &restarted,
        Duration::from_secs(30),
        |v| v == 1.0,
    )
    .await;
    let ready = [("bulwark_upstream", "echo"), ("state", "ready")];
    wait_for_metric(
        &gw,
        "bulwark_upstream_state",
        &ready,
        Duration::from_secs(30),
        |v| v == 1.0,
    )
    .await;

    // /api/v1/actors reads the same counters.
    let (_, tree) = gw.get_json("/api/v1/actors").await;
    let echo = tree["children"]
        .as_array()
        .and_then(|c| c.iter().find(|n| n["name"] == "echo"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(echo["restarts_by_reason"]["signal"], 1, "{echo}");
    session.quit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scraping_needs_an_admin_key_or_the_metrics_token_unless_open() {
    let Some(_peers) = peers() else { return };
    let toml = format!(
        "{HEAD}[telemetry]\nmetrics_token = \"${{SCRAPE_TOKEN}}\"\n{}",
        demo_upstream("echo", "\"echo\""),
    );
    let gw = Gateway::builder(&toml)
        .with_auth()
        .env("SCRAPE_TOKEN", "scrape-secret-1234")
        .start();
    gw.wait_ready(Duration::from_secs(60)).await;
    let admin = gw
        .stdout
        .text()
        .lines()
        .find(|l| l.starts_with("bk_"))
        .map(|l| l.trim().to_owned())
        .expect("the first start prints an admin key");

    assert_eq!(scrape_with(&gw, None).await.0, 401);
    assert_eq!(scrape_with(&gw, Some("wrong-token")).await.0, 401);
    let (status, text) = scrape_with(&gw, Some("scrape-secret-1234")).await;
    assert_eq!(status, 200, "{text}");
    let (status, text) = scrape_with(&gw, Some(&admin)).await;
    assert_eq!(status, 200, "{text}");
    let samples = parse(&text);
    assert!(
        value(
            &samples,
            "bulwark_auth_failures_total",
            &[("reason", "missing")]
        ) >= 1.0
    );
    assert!(
        value(
            &samples,
            "bulwark_auth_failures_total",
            &[("reason", "jwt_off")]
        ) >= 1.0
    );
    assert!(
        !text.contains("scrape-secret-1234"),
        "the token is never shown"
    );
    assert!(
        !gw.logs().contains("scrape-secret-1234"),
        "the token is never logged"
    );
    drop(gw);

    // Open: no credential needed (with authentication on for everything else).
    let toml = format!(
        "{HEAD}[telemetry]\nmetrics_access = \"open\"\n{}",
        demo_upstream("echo", "\"echo\""),
    );
    let gw = Gateway::builder(&toml).with_auth().start();
    gw.wait_ready(Duration::from_secs(60)).await;
    assert_eq!(scrape_with(&gw, None).await.0, 200);
    assert_eq!(gw.get("/api/v1/actors").await.status(), 401);
    drop(gw);

    // Off: no route at all.
    let toml = format!(
        "{HEAD}[telemetry]\nmetrics = false\n{}",
        demo_upstream("echo", "\"echo\""),
    );
    let gw = Gateway::start(&toml, &[]);
    gw.wait_ready(Duration::from_secs(60)).await;
    assert_eq!(scrape_with(&gw, None).await.0, 404);
}
