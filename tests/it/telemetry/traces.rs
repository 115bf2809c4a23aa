//! Traces: the span tree of a `tools/call` reaches a real OTLP receiver, the
//! client's trace context (header and `_meta`) is the parent, and the
//! gateway's own context reaches a stdio upstream (`_meta.traceparent`) and
//! a remote one (`traceparent` header). A dead collector costs no call; JSON
//! log lines and client errors carry the ids.
use std::time::Duration;

use serde_json::{Value, json};

use super::trace_collector::{Collector, Span};
use crate::common::{Gateway, PythonSession, eventually, peers};
use crate::gateway::{HEAD, demo_upstream};
use crate::remote::{DemoHttp, remote_upstream};

/// The client's trace for the HTTP requests of the session (header).
const HEADER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const HEADER_PARENT: &str = "00f067aa0ba902b7";
/// The trace one call names in its `_meta`.
const META_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const META_PARENT: &str = "b7ad6b7169203331";

fn traceparent(trace: &str, parent: &str) -> String {
    format!("00-{trace}-{parent}-01")
}

/// (trace id, parent span id) of a `traceparent` value.
fn ids(traceparent: &str) -> (String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "not a traceparent: {traceparent}");
    (parts[1].to_owned(), parts[2].to_owned())
}

/// What the traced demo tool reported: `{"meta": …, "header": …}`.
fn reported(answer: &Value) -> Value {
    assert_eq!(answer["ok"], true, "{answer}");
    let text = answer["result"]["text"].as_str().expect("text result");
    serde_json::from_str(text).expect("JSON report")
}

fn one<'a>(spans: &'a [Span], what: &str, pred: impl Fn(&Span) -> bool) -> &'a Span {
    let found: Vec<&Span> = spans.iter().filter(|s| pred(s)).collect();
    assert_eq!(found.len(), 1, "exactly one {what} in {spans:#?}");
    found[0]
}

fn children<'a>(spans: &'a [Span], parent: &Span, name: &str) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|s| s.parent_id == parent.span_id && s.name.starts_with(name))
        .collect()
}

#[tokio::test]
async fn a_tools_call_trace_reaches_the_collector_and_both_upstreams() {
    let Some(peers) = peers() else { return };
    let collector = Collector::start();
    let remote = DemoHttp::start("traced");
    let config = format!(
        "{HEAD}[telemetry]\notlp_endpoint = {endpoint:?}\nsampling_ratio = 1.0\n\
         service_name = \"bulwark-under-test\"\n\
         [cache.tools.\"local__trace_context\"]\ncacheable = true\nttl_secs = 60\n{local}{remote}",
        endpoint = collector.endpoint,
        local = demo_upstream("local", "\"traced\""),
        remote = remote_upstream("remote", &remote.url(), ""),
    );
    let gw = Gateway::start(&config, &[]);
    gw.wait_ready(Duration::from_secs(60)).await;
    let headers = json!({"traceparent": traceparent(HEADER_TRACE, HEADER_PARENT)});
    let mut session =
        PythonSession::start(&peers, &[gw.mcp_url(), "--headers", &headers.to_string()]);

    // 1. A stdio upstream, the client's context in `_meta`.
    let local = reported(&session.command(
        json!({"call": "local__trace_context", "args": {},
               "meta": {"traceparent": traceparent(META_TRACE, META_PARENT)}}),
        Duration::from_secs(60),
    ));
    assert_eq!(
        local["header"],
        Value::Null,
        "stdio has no headers: {local}"
    );
    let (local_trace, local_parent) =
        ids(local["meta"].as_str().expect("stdio got _meta.traceparent"));
    assert_eq!(
        local_trace, META_TRACE,
        "the client's _meta trace continues upstream"
    );

    // 2. A remote upstream, the client's context in the HTTP header only.
    let remote_seen = reported(&session.call("remote__trace_context", json!({})));
    let (header_trace, header_parent) = ids(remote_seen["header"]
        .as_str()
        .expect("remote got a traceparent header"));
    assert_eq!(
        header_trace, HEADER_TRACE,
        "the client's header trace continues upstream"
    );
    let (meta_trace, meta_parent) = ids(remote_seen["meta"].as_str().expect("remote _meta too"));
    assert_eq!(meta_trace, HEADER_TRACE);
    session.quit();

    // The collector gets both trees (batches leave every half second).
    let complete =
        |trace: &str, span_id: &str| collector.trace(trace).iter().any(|s| s.span_id == span_id);
    assert!(
        eventually(Duration::from_secs(20), || complete(
            META_TRACE,
            &local_parent
        ) && complete(
            HEADER_TRACE,
            &header_parent
        ))
        .await,
        "spans never arrived; got {:#?}",
        collector.spans()
    );
    // The request span ends after its children: let the last batch land.
    let mcp_call = |trace: &str, tool: &str| {
        collector
            .trace(trace)
            .into_iter()
            .any(|s| s.name == format!("tools/call {tool}"))
    };
    assert!(
        eventually(Duration::from_secs(20), || mcp_call(
            META_TRACE,
            "local__trace_context"
        ) && mcp_call(
            HEADER_TRACE,
            "remote__trace_context"
        ))
        .await,
        "request spans never arrived; got {:#?}",
        collector.spans()
    );

    // Trace 1: mcp.request (parent: the client's _meta span) → guardrail
    // checks, cache lookup, upstream.call (the parent the stdio upstream saw).
    let spans = collector.trace(META_TRACE);
    let request = one(&spans, "local tools/call span", |s| {
        s.name == "tools/call local__trace_context"
    });
    assert_eq!(request.parent_id, META_PARENT, "{request:?}");
    assert_eq!(request.service, "bulwark-under-test");
    assert_eq!(request.attr("mcp.method.name"), Some("tools/call"));
    assert_eq!(request.attr("gen_ai.tool.name"), Some("trace_context"));
    assert_eq!(request.attr("bulwark.upstream"), Some("local"));
    assert_eq!(request.attr("bulwark.outcome"), Some("ok"));
    assert_eq!(request.attr("request.id").map(str::len), Some(16));
    assert!(request.attr("mcp.session.id").is_some(), "{request:?}");
    let checks = children(&spans, request, "guardrail.check");
    let directions: Vec<_> = checks
        .iter()
        .filter_map(|s| s.attr("guardrail.direction"))
        .collect();
    assert!(
        directions.contains(&"input") && directions.contains(&"output"),
        "input and output checks under the request: {checks:#?}"
    );
    let cache = children(&spans, request, "cache.lookup");
    assert_eq!(cache.len(), 1, "{spans:#?}");
    assert_eq!(cache[0].attr("cache.hit"), Some("false"));
    let upstream = one(&spans, "upstream.call", |s| s.name == "tools/call local");
    assert_eq!(upstream.parent_id, request.span_id);
    assert_eq!(
        upstream.span_id, local_parent,
        "the stdio upstream's parent is upstream.call"
    );

    // Trace 2: http.request (parent: the header) → authenticate and
    // mcp.request → upstream.call → upstream.http (the header's parent).
    let spans = collector.trace(HEADER_TRACE);
    let request = one(&spans, "remote tools/call span", |s| {
        s.name == "tools/call remote__trace_context"
    });
    let http = spans
        .iter()
        .find(|s| s.span_id == request.parent_id)
        .unwrap_or_else(|| panic!("the MCP span's parent is the HTTP span: {spans:#?}"));
    assert_eq!(http.name, "POST /mcp");
    assert_eq!(http.parent_id, HEADER_PARENT, "{http:?}");
    assert_eq!(http.attr("request.id"), request.attr("request.id"));
    assert_eq!(
        children(&spans, http, "authenticate").len(),
        1,
        "{spans:#?}"
    );
    let upstream = spans
        .iter()
        .find(|s| s.span_id == meta_parent)
        .unwrap_or_else(|| panic!("the remote's _meta parent is a span of the trace: {spans:#?}"));
    assert_eq!(upstream.parent_id, request.span_id);
    assert_eq!(upstream.attr("bulwark.upstream"), Some("remote"));
    let posted = spans
        .iter()
        .find(|s| s.span_id == header_parent)
        .unwrap_or_else(|| panic!("the remote's header parent is a span of the trace: {spans:#?}"));
    assert_eq!(posted.name, "upstream.http");
    assert_eq!(posted.parent_id, upstream.span_id);
}

/// A collector that accepts connections and never answers: exports time
/// out, spans are counted as lost (one warning), calls go on.
#[tokio::test]
async fn a_dead_collector_never_fails_a_call() {
    let Some(peers) = peers() else { return };
    let blackhole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", blackhole.local_addr().unwrap());
    let config = format!(
        "{HEAD}[telemetry]\notlp_endpoint = {endpoint:?}\ntrace_queue_size = 16\n{}",
        demo_upstream("echo", "\"echo\""),
    );
    let gw = Gateway::start(&config, &[]);
    gw.wait_ready(Duration::from_secs(60)).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    for i in 0..40 {
        let message = format!("call {i}");
        let answer = session.call("echo__echo", json!({ "message": message }));
        assert_eq!(answer["result"]["text"], message, "{answer}");
    }
    let burst = session.command(
        json!({"call": "echo__echo", "args": {"message": "burst"}, "concurrent": 20}),
        Duration::from_secs(60),
    );
    assert_eq!(burst["okCount"], 20, "{burst}");
    session.quit();
    assert!(
        gw.wait_for_log("trace spans are being lost", Duration::from_secs(30)),
        "the lost spans are reported: {}",
        gw.logs()
    );
}

/// `--log-format json`: lines inside a request carry the trace and span ids
/// and the request id; the client's error carries the same request id, and
/// every HTTP answer the `x-request-id` header.
#[tokio::test]
async fn json_logs_and_errors_carry_request_and_trace_ids() {
    let Some(peers) = peers() else { return };
    let config = format!("{HEAD}{}", demo_upstream("echo", "\"echo\""));
    let gw = Gateway::builder(&config)
        .arg("--log-format")
        .arg("json")
        .start();
    gw.wait_ready(Duration::from_secs(60)).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    let refused = session.call("nowhere__nothing", json!({}));
    session.quit();
    assert_eq!(refused["ok"], false, "{refused}");
    let request_id = refused["error"]["data"]["requestId"]
        .as_str()
        .unwrap_or_else(|| panic!("the error names its request id: {refused}"))
        .to_owned();
    assert!(
        gw.wait_for_log(&request_id, Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    let line: Value = gw
        .logs()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| {
            line["fields"]["message"] == "request failed"
                && line["fields"]["request_id"] == request_id
        })
        .unwrap_or_else(|| panic!("a JSON line for the failure: {}", gw.logs()));
    assert_eq!(line["trace_id"].as_str().map(str::len), Some(32), "{line}");
    assert_eq!(line["span_id"].as_str().map(str::len), Some(16), "{line}");
    assert_eq!(line["span"]["request.id"], request_id, "{line}");
    // Nothing exports here: the HTTP request's span carries the MCP fields.
    assert_eq!(line["span"]["mcp.method.name"], "tools/call", "{line}");
    assert!(line["span"]["jsonrpc.request.id"].is_string(), "{line}");
    assert_eq!(
        line["span"]["mcp.session.id"].as_str().map(str::len),
        Some(16),
        "{line}"
    );

    // A refusal of the front door itself: the id is in the header.
    let response = gw
        .http()
        .post(gw.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert!(!response.status().is_success(), "{response:?}");
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 16, "{id}");
    assert_ne!(id, request_id);
}
