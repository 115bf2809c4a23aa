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

use super::layer::FinishedSpan;
use super::otlp::OtlpHttp;

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

/// The spans waiting for export, shared by the trace layer and the task.
#[derive(Debug)]
pub struct Queue {
    spans: Mutex<Vec<FinishedSpan>>,
    capacity: usize,
    /// Woken when a batch is full.
    full: Notify,
}

impl Queue {
    /// An empty queue holding `capacity` spans at most.
    pub fn new(capacity: usize) -> Self {
        Self {
            spans: Mutex::new(Vec::with_capacity(MAX_BATCH)),
            capacity: capacity.max(1),
            full: Notify::new(),
        }
    }

    /// Appends `span` unless the queue is full (then it is counted as
    /// dropped); wakes the task when this span completes a batch. No
    /// logging here: this runs inside the subscriber, closing a span.
    pub fn push(&self, span: FinishedSpan) {
        let queued = match self.spans.lock() {
            Ok(mut spans) if spans.len() < self.capacity => {
                spans.push(span);
                spans.len()
            }
            _ => {
                DROPPED.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        if queued == MAX_BATCH {
            self.full.notify_one();
        }
    }

    /// Everything queued, leaving the queue empty.
    pub fn take(&self) -> Vec<FinishedSpan> {
        self.spans
            .lock()
            .map(|mut spans| std::mem::replace(&mut *spans, Vec::with_capacity(MAX_BATCH)))
            .unwrap_or_default()
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

/// Sends `spans` in batches of at most [`MAX_BATCH`].
async fn send_all(exporter: &OtlpHttp, mut spans: Vec<FinishedSpan>) {
    while !spans.is_empty() {
        let rest = spans.split_off(spans.len().min(MAX_BATCH));
        send(exporter, spans).await;
        spans = rest;
    }
}

async fn send(exporter: &OtlpHttp, batch: Vec<FinishedSpan>) {
    let count = batch.len() as u64;
    match exporter.export(&batch).await {
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
