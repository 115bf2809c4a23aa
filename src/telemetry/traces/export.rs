//! A span processor with a bounded queue, exporting from a tokio task.
//!
//! Ending a span only tries to put it in the queue: when the queue is full
//! (the collector is slow, hung or down) the span is dropped and counted,
//! and the call that ended it goes on. The task sends batches when they are
//! full or every [`SCHEDULED_DELAY`], each export bounded by the exporter's
//! timeout; it runs on the gateway's runtime, which the SDK's own batch
//! processor (a thread of its own) would not, and that the async OTLP
//! client needs.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use tokio::sync::{mpsc, oneshot};

/// Most spans in one export request.
const MAX_BATCH: usize = 512;
/// How long a span waits at most for its batch to fill.
const SCHEDULED_DELAY: Duration = Duration::from_millis(500);

static DROPPED: AtomicU64 = AtomicU64::new(0);
static EXPORTED: AtomicU64 = AtomicU64::new(0);

/// Spans lost since start: dropped because the export queue was full, or
/// in an export the collector did not accept.
pub fn dropped_spans() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Spans the collector accepted since start.
pub fn exported_spans() -> u64 {
    EXPORTED.load(Ordering::Relaxed)
}

/// The processor the tracer provider calls.
#[derive(Debug)]
pub struct Bounded {
    queue: mpsc::Sender<SpanData>,
}

/// Stops the export task after a last flush.
pub struct Handle {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Handle {
    /// Sends what is queued, waiting `wait` at most.
    pub async fn shutdown(self, wait: Duration) {
        let _ = self.stop.send(());
        if tokio::time::timeout(wait, self.task).await.is_err() {
            tracing::warn!("trace export did not finish in time; queued spans are lost");
        }
    }
}

impl Bounded {
    /// Starts exporting through `exporter`, queueing `capacity` spans at most.
    pub fn start<E: SpanExporter + 'static>(exporter: E, capacity: usize) -> (Self, Handle) {
        let (queue, spans) = mpsc::channel(capacity.max(1));
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(exporter, spans, stopped));
        (Self { queue }, Handle { stop, task })
    }
}

impl SpanProcessor for Bounded {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        // No logging here: this runs inside the subscriber, closing a span.
        // The export task reports drops.
        if self.queue.try_send(span).is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

async fn run<E: SpanExporter>(
    exporter: E,
    mut spans: mpsc::Receiver<SpanData>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut warned = false;
    let mut tick = tokio::time::interval(SCHEDULED_DELAY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let room = MAX_BATCH - batch.len();
        tokio::select! {
            received = spans.recv_many(&mut batch, room) => {
                if received == 0 {
                    break;
                }
                if batch.len() >= MAX_BATCH {
                    send(&exporter, &mut batch).await;
                }
            }
            _ = tick.tick() => {
                if !warned && dropped_spans() > 0 {
                    // Once: a dead collector must not flood the log either.
                    warned = true;
                    tracing::warn!(
                        "trace spans are being lost (queue full or collector unreachable); \
                         see telemetry.trace_queue_size and telemetry.otlp_endpoint"
                    );
                }
                if !batch.is_empty() {
                    send(&exporter, &mut batch).await;
                }
            }
            _ = &mut stopped => break,
        }
    }
    // Last flush: what is queued now, in batches.
    while let Ok(span) = spans.try_recv() {
        batch.push(span);
        if batch.len() >= MAX_BATCH {
            send(&exporter, &mut batch).await;
        }
    }
    if !batch.is_empty() {
        send(&exporter, &mut batch).await;
    }
}

async fn send<E: SpanExporter>(exporter: &E, batch: &mut Vec<SpanData>) {
    let spans = std::mem::replace(batch, Vec::with_capacity(MAX_BATCH));
    let count = spans.len() as u64;
    match exporter.export(spans).await {
        Ok(()) => {
            EXPORTED.fetch_add(count, Ordering::Relaxed);
        }
        // Debug only: a collector that is down would otherwise log every
        // half second; the drop counter and its one warning tell the story.
        Err(err) => {
            DROPPED.fetch_add(count, Ordering::Relaxed);
            tracing::debug!(%err, spans = count, "trace export failed");
        }
    }
}
