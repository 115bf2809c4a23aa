//! A session's `tools/call` runs in the HTTP task that read it (rmcp patch:
//! direct calls), not through rmcp's session worker and serve loop. What the
//! call sends on its way must still ride its own response, and the client's
//! `notifications/cancelled` must still reach it.
use std::time::Duration;

use serde_json::{Value, json};

use super::HEAD;
use crate::common::Gateway;
use crate::remote::{DemoHttp, remote_upstream};

/// Opens a session with raw JSON-RPC posts; its id.
async fn open_session(gw: &Gateway) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                      "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                 "clientInfo": {"name": "direct-calls-test", "version": "1"}}});
    let response = post(gw, None, &init).await;
    assert!(response.status().is_success(), "{response:?}");
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let answer = post(gw, Some(&session), &initialized).await;
    assert_eq!(answer.status(), 202);
    session
}

async fn post(gw: &Gateway, session: Option<&str>, message: &Value) -> reqwest::Response {
    let mut request = gw
        .http()
        .post(gw.mcp_url())
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(message);
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    request.send().await.unwrap()
}

/// The next `data:` payloads of an SSE body, until one for which `stop`
/// holds or the body ends.
async fn read_events(
    response: &mut reqwest::Response,
    pending: &mut String,
    stop: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        while let Some(end) = pending.find("\n\n") {
            let frame: String = pending.drain(..end + 2).collect();
            for line in frame.lines() {
                if let Some(data) = line.strip_prefix("data:")
                    && !data.trim().is_empty()
                {
                    let event: Value = serde_json::from_str(data.trim()).unwrap();
                    let done = stop(&event);
                    events.push(event);
                    if done {
                        return events;
                    }
                }
            }
        }
        let chunk = tokio::time::timeout(Duration::from_secs(30), response.chunk())
            .await
            .expect("no event within 30 s")
            .unwrap();
        match chunk {
            Some(bytes) => pending.push_str(&String::from_utf8_lossy(&bytes)),
            None => return events,
        }
    }
}

#[tokio::test]
async fn progress_rides_the_calls_stream_and_the_clients_cancellation_reaches_the_upstream() {
    let upstream = DemoHttp::start("slow");
    let gw = Gateway::start(
        &format!("{HEAD}{}", remote_upstream("remote", &upstream.url(), "")),
        &[],
    );
    gw.wait_ready(Duration::from_secs(60)).await;
    let session = open_session(&gw).await;

    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                      "params": {"name": "remote__slow", "arguments": {"ms": 30000},
                                 "_meta": {"progressToken": "p-7"}}});
    let mut response = post(&gw, Some(&session), &call).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    // The upstream's progress reaches the call's own stream: the call is in
    // flight upstream.
    let mut pending = String::new();
    let first = read_events(&mut response, &mut pending, |event| {
        event["method"] == "notifications/progress"
    })
    .await;
    let progress = first.last().unwrap();
    assert_eq!(progress["params"]["progressToken"], "p-7", "{first:?}");

    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                        "params": {"requestId": 7, "reason": "changed my mind"}});
    assert_eq!(post(&gw, Some(&session), &cancel).await.status(), 202);
    upstream.assert_a_call_was_cancelled();
    // A cancelled request is not answered: its stream ends without a result.
    let rest = read_events(&mut response, &mut pending, |_| false).await;
    assert!(
        rest.iter().all(|event| event.get("result").is_none()),
        "{rest:?}"
    );

    // The session goes on. A quick call is answered as plain JSON; on a
    // loaded machine it may outlast the head's wait and get its stream.
    let echo = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
                      "params": {"name": "remote__echo", "arguments": {"message": "after"}}});
    let answer = post(&gw, Some(&session), &echo).await;
    let streamed = answer.headers()["content-type"] == "text/event-stream";
    let text = answer.text().await.unwrap();
    let answer: Value = if streamed {
        text.lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
            .find(|message| message["id"] == 8)
            .unwrap_or_else(|| panic!("no answer to call 8 in {text}"))
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    assert_eq!(answer["id"], 8, "{answer}");
    assert!(answer["result"].to_string().contains("after"), "{answer}");
}
