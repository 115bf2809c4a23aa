//! Hostile bodies: the amplification body (many tiny JSON objects), bodies
//! that are not JSON or not JSON-RPC, wrong `tools/call` params, a huge
//! method name, and one id sent many times at once on a session.
use serde_json::json;

use super::{echo_gateway, message, normal_call_served, open_session, post_raw, rss_kib};

/// Peak RSS growth allowed while 16 amplification bodies are answered (KiB).
const AMPLIFICATION_PEAK_KIB: u64 = 96 * 1024;

/// A `ping` whose `_meta` pads ~2.8 MB with tiny objects: ~380 MB of
/// `serde_json::Value` each before the front door bounded it.
fn amplification_body() -> Vec<u8> {
    let pad = "{},".repeat(930_000);
    format!(
        r#"{{"jsonrpc":"2.0","id":9,"method":"ping","params":{{"_meta":{{"pad":[{pad}{{}}]}}}}}}"#
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amplification_bodies_are_refused_within_a_memory_bound() {
    let gw = echo_gateway("").await;
    let session = open_session(&gw, "/mcp", &[]).await;
    let (before, _) = rss_kib(gw.pid());
    let body = amplification_body();
    assert!(body.len() > 2_700_000);
    let sends = (0..16).map(|_| post_raw(&gw, "/mcp", Some(&session), &[], body.clone()));
    for (status, text) in futures::future::join_all(sends).await {
        assert_eq!(status, 413, "{text}");
        assert_eq!(message(&text)["error"]["code"], -32600, "{text}");
    }
    let (after, peak) = rss_kib(gw.pid());
    eprintln!("amplification: RSS {before} KiB before, {after} KiB after, peak {peak} KiB");
    assert!(
        peak < before + AMPLIFICATION_PEAK_KIB,
        "peak RSS {peak} KiB over {before} + {AMPLIFICATION_PEAK_KIB} KiB"
    );
    // A tool call may still carry a large (but bounded) argument.
    let big = "x".repeat(1_000_000);
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "echo__echo", "arguments": {"message": big}}});
    let (status, text) = post_raw(
        &gw,
        "/mcp",
        Some(&session),
        &[],
        serde_json::to_vec(&call).unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        message(&text)["result"]["content"][0]["text"]
            .as_str()
            .map(str::len),
        Some(1_000_000)
    );
    normal_call_served(&gw, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_get_json_rpc_errors_and_input_stays_out_of_logs() {
    let gw = echo_gateway("").await;
    let session = open_session(&gw, "/mcp", &[]).await;
    let (status, text) =
        post_raw(&gw, "/mcp", Some(&session), &[], b"{\"jsonrpc\":".to_vec()).await;
    assert_eq!(
        (status, message(&text)["error"]["code"].as_i64()),
        (400, Some(-32700)),
        "{text}"
    );
    let (status, text) = post_raw(&gw, "/mcp", Some(&session), &[], b"[1,2]".to_vec()).await;
    assert_eq!(
        (status, message(&text)["error"]["code"].as_i64()),
        (400, Some(-32600)),
        "{text}"
    );
    for params in [
        json!(null),
        json!({"name": "echo__echo", "arguments": [1]}),
        json!({"name": "echo__echo", "arguments": "x"}),
    ] {
        let call = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": params});
        let (status, text) = post_raw(
            &gw,
            "/mcp",
            Some(&session),
            &[],
            serde_json::to_vec(&call).unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(message(&text)["error"]["code"], -32602, "{params}: {text}");
        assert_eq!(message(&text)["id"], 4);
    }
    let method = "m".repeat(100_000);
    let call = json!({"jsonrpc": "2.0", "id": 5, "method": method});
    let (_, text) = post_raw(
        &gw,
        "/mcp",
        Some(&session),
        &[],
        serde_json::to_vec(&call).unwrap(),
    )
    .await;
    assert_eq!(message(&text)["error"]["code"], -32601, "{text}");
    normal_call_served(&gw, &[]).await;
    assert!(
        !gw.logs().contains(&"m".repeat(1000)),
        "a log line carried the whole method name"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_id_sent_sixteen_times_at_once_gets_sixteen_answers() {
    let gw = echo_gateway(&crate::gateway::demo_upstream("slow", "\"slow\"")).await;
    let session = open_session(&gw, "/mcp", &[]).await;
    let call = json!({"jsonrpc": "2.0", "id": 77, "method": "tools/call",
        "params": {"name": "slow__slow", "arguments": {"ms": 500}}});
    let body = serde_json::to_vec(&call).unwrap();
    let sends = (0..16).map(|_| post_raw(&gw, "/mcp", Some(&session), &[], body.clone()));
    let answers = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        futures::future::join_all(sends),
    )
    .await
    .expect("every duplicate is answered");
    let (mut served, mut refused) = (0, 0);
    for (status, text) in answers {
        let answer = message(&text);
        assert_eq!(answer["id"], 77, "{text}");
        if answer.get("result").is_some() {
            served += 1;
        } else {
            assert_eq!(
                (status, answer["error"]["code"].as_i64()),
                (409, Some(-32600)),
                "{text}"
            );
            refused += 1;
        }
    }
    assert!(
        served >= 1 && served + refused == 16,
        "{served} served, {refused} refused"
    );
    normal_call_served(&gw, &[]).await;
}
