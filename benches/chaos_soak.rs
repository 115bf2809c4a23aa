//! Chaos soak: 32 clients for 10 minutes (`-- --short`: 2 minutes, what CI
//! runs as an integration test) against healthy and hostile upstreams, one
//! upstream `kill -9`ed every 2 s; then SIGTERM, then `kill -9` of a second
//! gateway. `BULWARK_SOAK_SECS` sets any other duration. Prints its figures
//! (see `tests/soak/mod.rs`); asserts nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

#[path = "../tests/soak/mod.rs"]
mod soak;

#[tokio::main]
async fn main() {
    let short = std::env::args().any(|a| a == "--short");
    let secs = std::env::var("BULWARK_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if short { 120 } else { 600 });
    let duration = Duration::from_secs(secs);
    println!("chaos soak for {duration:?}…");
    let figures = soak::run(duration).await;
    println!("chaos soak ({duration:?}): {figures}");
}
