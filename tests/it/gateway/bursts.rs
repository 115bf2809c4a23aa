//! A burst of calls on one stdio upstream. The gateway's client loop feeds
//! the requests it has ready into the pipe's write buffer and writes them
//! together, and the upstream's loop does the same with its answers (rmcp
//! patch: batched writes): every call must still get its own answer, whole,
//! also when a long message crosses the write buffer's 8 KiB boundary in
//! the middle of a burst.
use std::time::Duration;

use serde_json::json;

use super::{HEAD, demo_upstream, stateless_request};
use crate::common::Gateway;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_calls_on_one_stdio_upstream_gets_every_answer_to_its_own_call() {
    let gw = Gateway::start(
        &format!("{HEAD}{}", demo_upstream("echo", r#""echo""#)),
        &[],
    );
    gw.wait_ready(Duration::from_secs(60)).await;

    // Every tenth message is longer than the write buffer.
    let messages: Vec<String> = (0..200)
        .map(|i| match i % 10 {
            0 => format!("{i}:{}", "x".repeat(20_000)),
            _ => format!("call {i}"),
        })
        .collect();
    let calls = messages.iter().map(|message| {
        let params = json!({ "name": "echo__echo", "arguments": { "message": message } });
        stateless_request(&gw, "/mcp", None, "tools/call", params, json!({}))
    });
    let answers = futures::future::join_all(calls).await;
    for (i, (message, answer)) in messages.iter().zip(&answers).enumerate() {
        let text = answer["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("call {i}: {answer}"));
        assert!(text == message, "call {i} got another answer: {:.80}", text);
    }
}
