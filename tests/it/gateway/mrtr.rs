//! Multi round-trip requests bridged for stateless (2026-07-28) clients: the
//! demo conformance server is a 2025-11-25 stdio upstream that asks for
//! sampling, elicitation and roots with server→client requests; the gateway
//! turns them into `input_required` rounds under a sealed `requestState`.
use std::time::Duration;

use serde_json::{Value, json};

use super::{HEAD, demo_upstream};
use crate::common::{Gateway, peers};

async fn start() -> Gateway {
    let gw = Gateway::start(
        &format!("{HEAD}{}", demo_upstream("conformance", "\"conformance\"")),
        &[],
    );
    gw.wait_ready(Duration::from_secs(60)).await;
    gw
}

/// One stateless JSON-RPC request to `/mcp/conformance`: its response body.
async fn stateless(gw: &Gateway, method: &str, mut params: Value, capabilities: Value) -> Value {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": capabilities,
        "io.modelcontextprotocol/clientInfo": { "name": "bulwark-it", "version": "0" },
    });
    let name = params["name"].as_str().unwrap_or_default().to_owned();
    let response = gw
        .http()
        .post(gw.url("/mcp/conformance"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method)
        .header("mcp-name", name)
        .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }))
        .send()
        .await
        .expect("gateway answers");
    let text = response.text().await.expect("body");
    // A JSON body, or an SSE stream whose last data line is the response.
    let json_text = text
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .next_back()
        .unwrap_or(&text);
    serde_json::from_str(json_text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn all_capabilities() -> Value {
    json!({ "sampling": {}, "elicitation": {}, "roots": {} })
}

/// The first round of `test_input_required_result_elicitation`: its result.
async fn ask_name(gw: &Gateway) -> Value {
    let first = stateless(
        gw,
        "tools/call",
        json!({ "name": ELICIT, "arguments": {} }),
        all_capabilities(),
    )
    .await;
    assert_eq!(first["result"]["resultType"], "input_required", "{first}");
    first["result"].clone()
}

const ELICIT: &str = "test_input_required_result_elicitation";

#[tokio::test]
async fn the_python_sdk_2026_client_completes_upstream_input_requests_through_the_gateway() {
    let Some(peers) = peers() else { return };
    let gw = start().await;
    let url = gw.url("/mcp/conformance");
    let report = peers.run_python(
        "mrtr.py",
        &[
            &url,
            "test_input_required_result_multi_round",
            "test_input_required_result_multiple_inputs",
            "test_input_required_result_sampling",
        ],
    );
    let text = |tool: &str| {
        report["results"][tool]["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("{report}"))
            .to_owned()
    };
    // Two elicitation rounds, each answered upstream before the next is asked.
    assert_eq!(
        text("test_input_required_result_multi_round"),
        "Alice's favorite color is blue"
    );
    // Three requests sent together arrive in one round.
    assert_eq!(
        text("test_input_required_result_multiple_inputs"),
        "name=Alice, greeting=Paris, roots=file:///work"
    );
    assert_eq!(
        text("test_input_required_result_sampling"),
        "LLM response: Paris"
    );
    let asked = report["asked"].as_array().expect("asked");
    assert_eq!(asked.len(), 6, "{report}");
}

#[tokio::test]
async fn a_request_state_is_single_use_bound_to_its_request_and_tamper_proof() {
    let gw = start().await;
    let tool = "test_input_required_result_elicitation";
    let first = stateless(
        &gw,
        "tools/call",
        json!({ "name": tool, "arguments": {} }),
        all_capabilities(),
    )
    .await;
    let result = &first["result"];
    assert_eq!(result["resultType"], "input_required", "{first}");
    // The key the upstream named its request with survives the bridge.
    assert_eq!(
        result["inputRequests"]["user_name"]["method"], "elicitation/create",
        "{first}"
    );
    let state = result["requestState"].as_str().expect("a requestState");
    let answers = json!({ "user_name": { "action": "accept", "content": { "name": "Bob" } } });
    let retry = |name: &str, state: String| json!({ "name": name, "arguments": {}, "inputResponses": answers, "requestState": state });

    let tampered = stateless(
        &gw,
        "tools/call",
        retry(tool, format!("{state}-TAMPERED")),
        all_capabilities(),
    )
    .await;
    assert_eq!(tampered["error"]["code"], -32602, "{tampered}");
    // Sealed for another tool: refused, and the call stays parked.
    let elsewhere = stateless(
        &gw,
        "tools/call",
        retry("test_input_required_result_sampling", state.to_owned()),
        all_capabilities(),
    )
    .await;
    assert_eq!(elsewhere["error"]["code"], -32602, "{elsewhere}");

    let done = stateless(
        &gw,
        "tools/call",
        retry(tool, state.to_owned()),
        all_capabilities(),
    )
    .await;
    assert_eq!(
        done["result"]["content"][0]["text"], "Hello, Bob!",
        "{done}"
    );
    let replayed = stateless(
        &gw,
        "tools/call",
        retry(tool, state.to_owned()),
        all_capabilities(),
    )
    .await;
    assert_eq!(replayed["error"]["code"], -32602, "{replayed}");
}

#[tokio::test]
async fn only_requests_the_client_declared_are_bridged_and_answers_pass_the_guardrails() {
    let gw = start().await;
    // Declares sampling only: the upstream's elicitation and roots requests
    // are refused (-32021 to the upstream) instead of shown to the client.
    let first = stateless(
        &gw,
        "tools/call",
        json!({ "name": "test_input_required_result_capabilities", "arguments": {} }),
        json!({ "sampling": {} }),
    )
    .await;
    let requests = first["result"]["inputRequests"]
        .as_object()
        .unwrap_or_else(|| panic!("{first}"));
    assert_eq!(
        requests.keys().collect::<Vec<_>>(),
        ["capital_question"],
        "{first}"
    );

    // An e-mail address in the client's answer reaches the upstream as a
    // placeholder: the upstream echoes what it got.
    let tool = ELICIT;
    let first = ask_name(&gw).await;
    let state = first["requestState"].as_str().expect("state");
    let done = stateless(
        &gw,
        "tools/call",
        json!({
            "name": tool,
            "arguments": {},
            "inputResponses": { "user_name": { "action": "accept", "content": { "name": "bob@example.com" } } },
            "requestState": state,
        }),
        all_capabilities(),
    )
    .await;
    let text = done["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{done}"));
    assert!(
        text.starts_with("Hello, ") && !text.contains("bob@example.com"),
        "the answer reached the upstream unmasked: {text}"
    );
}

/// A stateless client that goes away while its call runs: the upstream is
/// told to cancel. (A bridged call runs in its request's task until it first
/// asks for input; dropped there with the request, it must still withdraw
/// upstream, as it did from a task of its own. A stdio upstream: nothing
/// but the withdrawal can tell it, no connection of its own closes.)
#[tokio::test]
async fn a_stateless_client_that_goes_away_mid_call_cancels_it_upstream() {
    let gw = Gateway::start(&format!("{HEAD}{}", demo_upstream("slow", "\"slow\"")), &[]);
    gw.wait_ready(Duration::from_secs(60)).await;
    let call = super::stateless_post(
        &gw,
        "/mcp",
        "tools/call",
        json!({ "name": "slow__slow", "arguments": { "ms": 30000 } }),
        json!({}),
        &[],
    );
    let in_flight = super::wait_for_upstream(&gw, "slow", Duration::from_secs(30), |n| {
        n["calls_in_flight"] == 1
    });
    tokio::select! {
        answer = call => panic!("a 30 s call answered at once: {answer:?}"),
        _ = in_flight => {}
    }
    // Leaving the select dropped the client's request: its connection is
    // closed mid-call.
    super::wait_for_upstream(&gw, "slow", Duration::from_secs(10), |n| {
        n["stderr_tail"].to_string().contains("call cancelled")
    })
    .await;
}
