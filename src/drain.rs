//! Draining at shutdown: at SIGTERM new upstream calls are refused, and
//! calls already on their way get up to the configured grace
//! (`server.shutdown_grace_secs`) to finish before sessions are cancelled
//! and the listener closes.
use std::time::Duration;

use bulwark_supervisors::registry::Registry;

/// How often the count of calls in flight is looked at.
const POLL: Duration = Duration::from_millis(20);
/// Time for the answers of the last drained calls to reach their clients.
const FLUSH: Duration = Duration::from_millis(250);

/// Calls in flight on every upstream.
fn in_flight(registry: &Registry) -> usize {
    registry
        .servers()
        .iter()
        .map(|entry| entry.pool.in_flight())
        .sum()
}

/// Refuses new upstream calls, then waits until none is in flight or
/// `grace` has passed. Sessions and their streams stay open meanwhile, so
/// the answers reach their clients.
pub async fn in_flight_calls(registry: &Registry, grace: Duration) {
    registry.begin_closing();
    let waiting = in_flight(registry);
    if waiting == 0 {
        return;
    }
    tracing::info!(calls = waiting, ?grace, "draining calls in flight");
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        let left = in_flight(registry);
        if left == 0 {
            // The last answers leave the upstream side now; give them the
            // moment it takes to be written to their clients' streams
            // before the sessions close.
            tokio::time::sleep(FLUSH).await;
            tracing::info!("calls in flight drained");
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                calls = left,
                "shutdown grace over; cancelling calls in flight"
            );
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}
