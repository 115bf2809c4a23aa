//! The cost of tracing (`BULWARK_BENCH_TRACING_ONLY=1`): the same gateway
//! build with `[telemetry]` off and on (sampling 1.0, exporting every span to
//! a local OTLP/HTTP receiver), security plane on so every span is made.
//! Runs alternate off/on twice per concurrency to even out drift.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::support::spawn;
use super::{Security, config, load_with, wait_ready};

/// A receiver that accepts every export and counts the requests.
async fn sink() -> (String, Arc<AtomicU64>) {
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
    let off_path = config(dir, 1, Security::On, &hash);
    let on_path = dir.join("bench-traced.toml");
    let on_toml = std::fs::read_to_string(&off_path).unwrap()
        + &format!("[telemetry]\notlp_endpoint = {endpoint:?}\nsampling_ratio = 1.0\n");
    std::fs::write(&on_path, on_toml).unwrap();
    // One after the other: both share the data directory, and the first
    // start creates its store and master key.
    let (_off, off_url) = spawn(&["serve", "--config", &off_path], dir);
    wait_ready(off_url.trim_end_matches("/mcp")).await;
    let (_on, on_url) = spawn(&["serve", "--config", &on_path.display().to_string()], dir);
    wait_ready(on_url.trim_end_matches("/mcp")).await;
    println!("tracing off vs on (sampling 1.0, OTLP/HTTP to a local receiver), security plane on:");
    for concurrency in [1, 32] {
        let (mut off, mut on) = ((0, 0.0), (0, 0.0));
        for _ in 0..2 {
            let f = load_with(&off_url, Some(&key.secret), "echo__echo", concurrency, None).await;
            off = (off.0 + f.calls, off.1 + f.calls_per_sec / 2.0);
            let f = load_with(&on_url, Some(&key.secret), "echo__echo", concurrency, None).await;
            on = (on.0 + f.calls, on.1 + f.calls_per_sec / 2.0);
        }
        println!(
            "  c={concurrency}: off {:.0} calls/s, on {:.0} calls/s: {:.3} of off ({:+.1}%)",
            off.1,
            on.1,
            on.1 / off.1,
            (on.1 / off.1 - 1.0) * 100.0
        );
    }
    println!(
        "  OTLP export requests received: {}",
        exports.load(Ordering::Relaxed)
    );
}
