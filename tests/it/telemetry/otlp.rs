//! OTLP push: with `[telemetry] otlp_endpoint` set, the same instruments
//! reach a real OTLP/HTTP receiver on loopback, decoded from the real
//! protobuf; a dead collector costs the calls nothing.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;
use serde_json::json;

use crate::common::{Gateway, PythonSession, eventually, free_port, peers};
use crate::gateway::{HEAD, demo_upstream};

/// Metric names received, per export request.
type Received = Arc<Mutex<Vec<Vec<String>>>>;

async fn receive(State(received): State<Received>, body: Bytes) -> &'static str {
    let request = ExportMetricsServiceRequest::decode(body).expect("OTLP protobuf");
    let names = request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| m.name.clone())
        .collect();
    received.lock().unwrap().push(names);
    ""
}

/// An OTLP/HTTP metrics receiver on loopback: its base URL and what it got.
async fn receiver() -> (String, Received) {
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/v1/metrics", post(receive))
        .with_state(received.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, received)
}

fn got(received: &Received, name: &str) -> bool {
    received.lock().unwrap().iter().flatten().any(|n| n == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_pushed_to_an_otlp_receiver() {
    let Some(peers) = peers() else { return };
    let (endpoint, received) = receiver().await;
    let toml = format!(
        "{HEAD}[telemetry]\notlp_endpoint = \"{endpoint}\"\nmetrics_interval_secs = 1\n{}",
        demo_upstream("echo", "\"echo\""),
    );
    let gw = Gateway::start(&toml, &[]);
    gw.wait_ready(Duration::from_secs(60)).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    assert_eq!(
        session.call("echo__echo", json!({"message": "hi"}))["ok"],
        true
    );
    let pushed = eventually(Duration::from_secs(20), || {
        got(&received, "mcp.server.operation.duration") && got(&received, "bulwark.upstream.state")
    })
    .await;
    assert!(
        pushed,
        "received: {:?}{}",
        received.lock().unwrap(),
        gw.logs()
    );
    session.quit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_collector_does_not_fail_calls() {
    let Some(peers) = peers() else { return };
    // Nothing listens there.
    let toml = format!(
        "{HEAD}[telemetry]\notlp_endpoint = \"http://127.0.0.1:{}\"\nmetrics_interval_secs = 1\n{}",
        free_port(),
        demo_upstream("echo", "\"echo\""),
    );
    let gw = Gateway::start(&toml, &[]);
    gw.wait_ready(Duration::from_secs(60)).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    // Across several failed pushes, every call still succeeds.
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let answer = session.call("echo__echo", json!({"message": "still"}));
        assert_eq!(answer["ok"], true, "{answer}");
    }
    assert_eq!(super::scrape_with(&gw, None).await.0, 200);
    session.quit();
}
