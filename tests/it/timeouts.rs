//! Deadlines on the request path with the `slow` demo upstream: warn, then
//! timeout (client error, upstream cancelled), then fail (a hung process is
//! killed and restarted), visible in metrics and in `/api/v1/actors`.
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Gateway, PythonSession, peers};
use crate::gateway::{HEAD, demo_upstream, upstream_node, wait_for_upstream};

/// The JSON-RPC error code of a call past its deadline.
pub(crate) const DEADLINE_EXCEEDED: i64 = -32007;

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

/// One POST on its own connection (`Connection: close`), its body sent
/// `body_after` after its headers; the whole response as text.
async fn post_raw(
    url: &str,
    session: Option<&str>,
    message: &Value,
    body_after: Duration,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let body = message.to_string();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(session) = session {
        head.push_str(&format!(
            "Mcp-Session-Id: {session}\r\nMcp-Protocol-Version: 2025-06-18\r\n"
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    if !body_after.is_zero() {
        tokio::time::sleep(body_after).await;
    }
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut response))
        .await
        .expect("no answer within 60 s")
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

/// `tools/call` count the `echo` upstream reports through `request_count`.
async fn upstream_tool_calls(url: &str, session: &str, id: u64) -> u64 {
    let message = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                         "params": {"name": "echo__request_count", "arguments": {}}});
    let response = post_raw(url, Some(session), &message, Duration::ZERO).await;
    // The count is JSON inside the result's text: `{\"tools/call\":N,…}`.
    let at = response
        .find(r#"tools/call\":"#)
        .unwrap_or_else(|| panic!("no count in {response}"));
    response[at + r#"tools/call\":"#.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deadline_counts_from_when_the_request_arrived() {
    // A request that waits in the gateway (here: its body comes late, as
    // under load it waits for CPU in the HTTP layers and rmcp's session
    // queue) spends its deadline there: past it, the client gets the
    // timeout error and the upstream is never asked.
    let config = format!(
        "{HEAD}[timeouts.deadlines]\ntool_execution = 1\n{}",
        demo_upstream("echo", "\"echo\"")
    );
    let gw = Gateway::start(&config, &[]);
    gw.wait_ready(Duration::from_secs(30)).await;
    let url = gw.mcp_url();
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                      "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                 "clientInfo": {"name": "arrival-test", "version": "1"}}});
    let response = post_raw(url, None, &init, Duration::ZERO).await;
    let session = response
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case("mcp-session-id")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no session id: {response}"));
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    post_raw(url, Some(&session), &initialized, Duration::ZERO).await;

    let call = |id: u64, message: &str| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": "echo__echo", "arguments": {"message": message}}})
    };
    // Sent at once: answered by the upstream.
    let prompt = post_raw(url, Some(&session), &call(1, "prompt"), Duration::ZERO).await;
    assert!(
        prompt.contains("prompt") && !prompt.contains("-32007"),
        "{prompt}"
    );

    let before = upstream_tool_calls(url, &session, 2).await;
    // Its body 2 s after its headers, past the 1 s deadline.
    let queued = post_raw(
        url,
        Some(&session),
        &call(3, "queued"),
        Duration::from_secs(2),
    )
    .await;
    assert!(queued.contains(r#""code":-32007"#), "{queued}");
    assert!(queued.contains("timed out after 1s"), "{queued}");
    // Only the second count reached the upstream, not the late call.
    let after = upstream_tool_calls(url, &session, 4).await;
    assert_eq!(after, before + 1, "the late call reached the upstream");
}
