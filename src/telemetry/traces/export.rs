//! The export queue: bounded, drained by a tokio task.
//!
//! Ending a span only appends it to the queue: when the queue is full (the
//! collector is slow, hung or down) the span is dropped and counted, and the
//! call that ended it goes on. Ending a span never wakes the export task,
//! except for the one span that fills a batch: a wake per span (a channel
//! send) unparks a worker thread per span, most of tracing's cost at low
//! load. The task sends batches when one is full or every
//! [`SCHEDULED_DELAY`], each export bounded by the exporter's timeout, on
//! the gateway's runtime (the async OTLP client needs one).
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};

use super::otlp::OtlpHttp;
use bulwark_actors::trace_context::{self, encode as otlp};

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

/// Up to [`MAX_BATCH`] spans, encoded (see [`otlp::push_span`]).
#[derive(Debug, Default)]
pub struct Batch {
    /// The spans' `ScopeSpans.spans` fields.
    pub bytes: Vec<u8>,
    /// How many spans it holds.
    pub spans: usize,
}

/// Room for a new batch: most export about this much, so it grows rarely.
const BATCH_BYTES: usize = 64 * 1024;

#[derive(Debug, Default)]
struct Pending {
    batches: Vec<Batch>,
    spans: usize,
}

/// The spans waiting for export, shared by the trace layer and the task.
#[derive(Debug)]
pub struct Queue {
    pending: Mutex<Pending>,
    capacity: usize,
    /// Woken when a batch is full.
    full: Notify,
}

impl Queue {
    /// An empty queue holding `capacity` spans at most.
    pub fn new(capacity: usize) -> Self {
        Self {
            pending: Mutex::new(Pending::default()),
            capacity: capacity.max(1),
            full: Notify::new(),
        }
    }

    /// Appends `span` (an encoded `Span` message) unless the queue is full
    /// (then it is counted as dropped); wakes the task when this span
    /// completes a batch. No logging here: this runs inside the subscriber,
    /// closing a span.
    pub fn push(&self, span: &[u8]) {
        let filled = match self.pending.lock() {
            Ok(mut pending) if pending.spans < self.capacity => {
                pending.spans += 1;
                let batch = match pending.batches.last_mut() {
                    Some(batch) if batch.spans < MAX_BATCH => batch,
                    _ => {
                        pending.batches.push(Batch {
                            bytes: Vec::with_capacity(BATCH_BYTES),
                            spans: 0,
                        });
                        let last = pending.batches.len() - 1;
                        &mut pending.batches[last]
                    }
                };
                otlp::push_span(&mut batch.bytes, span);
                batch.spans += 1;
                batch.spans == MAX_BATCH
            }
            _ => {
                DROPPED.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        if filled {
            self.full.notify_one();
        }
    }

    /// Everything queued, leaving the queue empty.
    pub fn take(&self) -> Vec<Batch> {
        self.pending
            .lock()
            .map(|mut pending| std::mem::take(&mut *pending).batches)
            .unwrap_or_default()
    }
}

impl trace_context::SpanSink for Queue {
    fn push(&self, span: &[u8]) {
        Queue::push(self, span);
    }
}

/// Stops the export task after a last flush.
pub struct Handle {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Handle {
    /// Starts exporting through `exporter` what is pushed into `queue`.
    pub fn start(exporter: OtlpHttp, queue: Arc<Queue>) -> Self {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(exporter, queue, stopped));
        Self { stop, task }
    }

    /// Sends what is queued, waiting `wait` at most.
    pub async fn shutdown(self, wait: Duration) {
        let _ = self.stop.send(());
        if tokio::time::timeout(wait, self.task).await.is_err() {
            tracing::warn!("trace export did not finish in time; queued spans are lost");
        }
    }
}

async fn run(exporter: OtlpHttp, queue: Arc<Queue>, mut stopped: oneshot::Receiver<()>) {
    let mut warned = false;
    let mut tick = tokio::time::interval(SCHEDULED_DELAY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = queue.full.notified() => {}
            _ = tick.tick() => {
                if !warned && dropped_spans() > 0 {
                    // Once: a dead collector must not flood the log either.
                    warned = true;
                    tracing::warn!(
                        "trace spans are being lost (queue full or collector unreachable); \
                         see telemetry.trace_queue_size and telemetry.otlp_endpoint"
                    );
                }
            }
            _ = &mut stopped => break,
        }
        send_all(&exporter, queue.take()).await;
    }
    // Last flush: what is queued now.
    send_all(&exporter, queue.take()).await;
}

/// Sends each batch in turn.
async fn send_all(exporter: &OtlpHttp, batches: Vec<Batch>) {
    for batch in batches {
        send(exporter, batch).await;
    }
}

async fn send(exporter: &OtlpHttp, batch: Batch) {
    let count = batch.spans as u64;
    match exporter.export(&batch.bytes).await {
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
