//! The per-call audit's cost on the gateway load scenario: the same keyed
//! calls with `[audit] mcp_calls` on and off (same build, same security
//! plane), interleaved runs; and the drop counter under a deliberately slow
//! sink (in-process, 1 ms per record), with the hand-off time of a call.
//! Prints figures; asserts nothing about speed.
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulwark::govern::calls::{CallAudit, CallRecord, CallSink};
use bulwark::store::audit::AuditEntry;

/// A sink that takes 1 ms per record.
struct SlowSink(Arc<std::sync::atomic::AtomicU64>);

impl CallSink for SlowSink {
    async fn write(&self, _entry: AuditEntry) {
        tokio::time::sleep(Duration::from_millis(1)).await;
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Offers records as fast as one task can for `run`, into a queue of
/// `capacity` drained by a 1 ms sink: offered, written, dropped, hand-off p99.
pub async fn slow_sink(capacity: usize, run: Duration) {
    let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let audit = CallAudit::start(SlowSink(written.clone()), capacity, false);
    let started = Instant::now();
    let mut offered = 0u64;
    let mut handoffs = Vec::new();
    while started.elapsed() < run {
        for _ in 0..100 {
            let t = Instant::now();
            audit.record(CallRecord {
                server: "echo".into(),
                tool: "echo".into(),
                ..CallRecord::default()
            });
            handoffs.push(t.elapsed());
            offered += 1;
        }
        // Yield so the writer runs, as request tasks would.
        tokio::task::yield_now().await;
    }
    handoffs.sort();
    let p99 = handoffs[handoffs.len() * 99 / 100];
    println!(
        "per-call audit, slow sink (1 ms/record, queue {capacity}, {:.0} s): offered {offered}, written {}, dropped {} (counter), hand-off p99 {:.2} µs",
        run.as_secs_f64(),
        written.load(std::sync::atomic::Ordering::Relaxed),
        audit.dropped(),
        p99.as_secs_f64() * 1e6
    );
}
