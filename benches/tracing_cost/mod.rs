//! The cost of telemetry (`BULWARK_BENCH_TRACING_ONLY=1`): the same gateway
//! build with `[telemetry]` all off against metrics and tracing on (sampling
//! 1.0, exporting every span to a local OTLP/HTTP receiver), security plane
//! on so every span is made.
//! Runs alternate off/on three times per concurrency to even out drift; the
//! gateway CPU per call is printed beside throughput.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::support::spawn;
use super::{Security, compare_on_off, config, wait_ready};

/// A receiver that accepts every export and counts the requests.
pub(crate) async fn sink() -> (String, Arc<AtomicU64>) {
    let exports = Arc::new(AtomicU64::new(0));
    let counted = exports.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let counted = counted.clone();
            async move {
                assert!(!body.is_empty());
                counted.fetch_add(1, Ordering::Relaxed);
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (endpoint, exports)
}

pub async fn run(dir: &std::path::Path) {
    let key = bulwark::auth::keys::generate().unwrap();
    let hash = key.hash.to_stored();
    let (endpoint, exports) = sink().await;
    // Off: no telemetry at all (metrics off too); on: metrics and every
    // span exported, the "metrics and tracing on vs off".
    let base = std::fs::read_to_string(config(dir, 1, Security::On, &hash)).unwrap();
    let off_path = dir.join("bench-untraced.toml");
    std::fs::write(&off_path, base.clone() + "\n[telemetry]\nmetrics = false\n").unwrap();
    let on_path = dir.join("bench-traced.toml");
    // `BULWARK_BENCH_SAMPLING=0` tells the layers' cost (spans made, none
    // recorded or exported) from the recording and export's.
    let sampling: f64 = std::env::var("BULWARK_BENCH_SAMPLING")
        .ok()
        .and_then(|ratio| ratio.parse().ok())
        .unwrap_or(1.0);
    let on_toml = base
        + &format!("\n[telemetry]\notlp_endpoint = {endpoint:?}\nsampling_ratio = {sampling:?}\n");
    std::fs::write(&on_path, on_toml).unwrap();
    // One after the other: both share the data directory, and the first
    // start creates its store and master key.
    let (off, off_url) = spawn(&["serve", "--config", &off_path.display().to_string()], dir);
    wait_ready(off_url.trim_end_matches("/mcp")).await;
    let (on, on_url) = spawn(&["serve", "--config", &on_path.display().to_string()], dir);
    wait_ready(on_url.trim_end_matches("/mcp")).await;
    compare_on_off(
        &format!("metrics + tracing on (sampling {sampling:?}, OTLP/HTTP to a local receiver) vs all telemetry off, security plane on"),
        (&off_url, off.0.id()),
        (&on_url, on.0.id()),
        &key.secret,
    )
    .await;
    println!(
        "  OTLP export requests received: {}",
        exports.load(Ordering::Relaxed)
    );
}
