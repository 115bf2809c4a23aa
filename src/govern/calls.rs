//! The audit trail's queue for the MCP side: refusals of `/mcp` requests
//! (always), and the per-call audit (`[audit] mcp_calls = true`): who called
//! which tool of which server for which project, the outcome and latency;
//! arguments and results only with `include_payloads = true`, and then as
//! the guardrails left them (redacted), masked once more.
//!
//! Off the request path: a call hands its record to a bounded queue and
//! never waits. When the queue is full the record is dropped and counted;
//! the writer reports new drops as an `audit.dropped` entry and a warning.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::audit;
use crate::store::Store;
use crate::store::audit::AuditEntry;

/// Records taken from the queue per write.
const BATCH: usize = 256;
/// How long the writer waits between two batches.
const LINGER: std::time::Duration = std::time::Duration::from_millis(20);

/// One MCP call, as audited.
#[derive(Debug, Clone, Default)]
pub struct CallRecord {
    /// Unix milliseconds when it ended.
    pub at: i64,
    /// The user of the credential.
    pub actor: String,
    /// `key:ID`, `jwt:SUB` or `anonymous`.
    pub credential: String,
    /// The project whose grant applied.
    pub project: String,
    /// The upstream.
    pub server: String,
    /// The tool (upstream name).
    pub tool: String,
    /// How long the call took, in milliseconds.
    pub latency_ms: u64,
    /// The error, when it failed.
    pub error: Option<String>,
    /// Arguments after the guardrails (payloads on only).
    pub arguments: Option<Value>,
    /// The result after the guardrails (payloads on only).
    pub result: Option<Value>,
}

/// A refused `/mcp` request, as audited.
#[derive(Debug, Clone, Default)]
pub struct Refusal {
    /// The caller's user, when the credential was valid.
    pub actor: Option<String>,
    /// Their credential id, when valid.
    pub credential: Option<String>,
    /// `METHOD /path`.
    pub target: String,
    /// 401, 403 or 429.
    pub status: u16,
    /// The peer address.
    pub client: String,
    /// Why (never the credential).
    pub detail: String,
}

/// What the queue carries.
#[derive(Debug)]
enum Record {
    Call(CallRecord),
    Refusal(Refusal),
}

/// Where records end up: the store, or a test's slow stand-in.
pub trait CallSink: Send + Sync + 'static {
    /// Writes one entry.
    fn write(&self, entry: AuditEntry) -> impl std::future::Future<Output = ()> + Send;

    /// Writes what the queue held at once; the store does it in one
    /// transaction (one sync to disk per batch, not per call).
    fn write_batch(
        &self,
        entries: Vec<AuditEntry>,
    ) -> impl std::future::Future<Output = ()> + Send {
        async move {
            for entry in entries {
                self.write(entry).await;
            }
        }
    }
}

impl CallSink for Store {
    async fn write(&self, entry: AuditEntry) {
        audit::append(self, entry).await;
    }

    async fn write_batch(&self, entries: Vec<AuditEntry>) {
        audit::append_batch(self, entries).await;
    }
}

/// The hand-off point of the request path.
pub struct CallAudit {
    queue: mpsc::Sender<Record>,
    dropped: Arc<AtomicU64>,
    include_payloads: bool,
}

impl CallAudit {
    /// Starts the writer into `sink` with a queue of `capacity` records;
    /// it ends once the handle is dropped and the queue is drained.
    pub fn start(sink: impl CallSink, capacity: usize, include_payloads: bool) -> Arc<Self> {
        let (queue, records) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(write_all(sink, records, dropped.clone()));
        Arc::new(Self {
            queue,
            dropped,
            include_payloads,
        })
    }

    /// True when arguments and results are recorded.
    pub fn include_payloads(&self) -> bool {
        self.include_payloads
    }

    /// Queues `record`, or counts it dropped when the queue is full. Never waits.
    pub fn record(&self, record: CallRecord) {
        self.offer(Record::Call(record));
    }

    /// Queues a refused `/mcp` request, like [`record`](Self::record).
    pub fn refusal(&self, refusal: Refusal) {
        self.offer(Record::Refusal(refusal));
    }

    fn offer(&self, record: Record) {
        if self.queue.try_send(record).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn write_all(
    sink: impl CallSink,
    mut records: mpsc::Receiver<Record>,
    dropped: Arc<AtomicU64>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut reported = 0;
    while records.recv_many(&mut batch, BATCH).await > 0 {
        let entries = batch
            .drain(..)
            .map(|record| match record {
                Record::Call(call) => entry(call),
                Record::Refusal(refusal) => refusal_entry(refusal),
            })
            .collect();
        sink.write_batch(entries).await;
        // Let the next batch gather: at a high call rate this turns one
        // transaction per call into one per LINGER.
        tokio::time::sleep(LINGER).await;
        let now = dropped.load(Ordering::Relaxed);
        if now > reported {
            tracing::warn!(
                dropped = now - reported,
                total = now,
                "MCP call audit queue full: records dropped"
            );
            sink.write(AuditEntry {
                actor: "bulwark".into(),
                action: "audit.dropped".into(),
                target: "mcp.calls".into(),
                outcome: "failure".into(),
                detail: format!(
                    "{} MCP call records dropped (queue full); {now} since start",
                    now - reported
                ),
                after: Some(json!({ "dropped": now - reported, "total": now })),
                ..AuditEntry::default()
            })
            .await;
            reported = now;
        }
    }
}

fn refusal_entry(refusal: Refusal) -> AuditEntry {
    let (action, outcome) = match refusal.status {
        401 => ("auth.failed", "failure"),
        429 => ("auth.rate_limited", "rate_limited"),
        _ => ("auth.refused", "refused"),
    };
    AuditEntry {
        at: crate::store::now_ms(),
        actor: refusal.actor.unwrap_or_else(|| "unknown".into()),
        credential: refusal.credential.unwrap_or_default(),
        action: action.into(),
        target: refusal.target,
        outcome: outcome.into(),
        status: i64::from(refusal.status),
        client: refusal.client,
        detail: crate::mask::mask(&refusal.detail, []),
        ..AuditEntry::default()
    }
}

fn entry(record: CallRecord) -> AuditEntry {
    let mut after = json!({
        "project": record.project,
        "server": record.server,
        "tool": record.tool,
        "latency_ms": record.latency_ms,
    });
    if let Some(error) = &record.error {
        after["error"] = json!(crate::mask::mask(error, []));
    }
    if let Some(arguments) = &record.arguments {
        after["arguments"] = audit::masked(arguments);
    }
    if let Some(result) = &record.result {
        after["result"] = audit::masked(result);
    }
    AuditEntry {
        at: record.at,
        actor: record.actor,
        credential: record.credential,
        action: "mcp.call".into(),
        target: format!("{}/{}", record.server, record.tool),
        outcome: if record.error.is_some() {
            "failure"
        } else {
            "success"
        }
        .into(),
        after: Some(after),
        ..AuditEntry::default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A sink that takes 50 ms per entry and keeps what it got.
    struct Slow(Arc<std::sync::Mutex<Vec<AuditEntry>>>);

    impl CallSink for Slow {
        async fn write(&self, entry: AuditEntry) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.0.lock().unwrap().push(entry);
        }
    }

    #[tokio::test]
    async fn a_slow_sink_drops_and_counts_but_never_blocks_the_caller() {
        let written = Arc::new(std::sync::Mutex::new(Vec::new()));
        let audit = CallAudit::start(Slow(written.clone()), 4, false);
        let started = std::time::Instant::now();
        for n in 0..200 {
            audit.record(CallRecord {
                server: "s".into(),
                tool: format!("t{n}"),
                ..CallRecord::default()
            });
        }
        // 200 hand-offs to a sink of 50 ms each: done long before one write.
        assert!(
            started.elapsed() < Duration::from_millis(50),
            "{:?}",
            started.elapsed()
        );
        assert!(audit.dropped() >= 190, "{}", audit.dropped());
        let dropped = audit.dropped();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let entries = written.lock().unwrap().clone();
            if let Some(report) = entries.iter().find(|e| e.action == "audit.dropped") {
                assert_eq!(report.after.as_ref().unwrap()["total"], dropped);
                let calls = entries.iter().filter(|e| e.action == "mcp.call").count();
                assert_eq!(u64::try_from(calls).unwrap() + dropped, 200);
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no drop report");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn payloads_are_masked_and_failures_marked() {
        let entry = entry(CallRecord {
            server: "gh".into(),
            tool: "search".into(),
            error: Some("upstream said token=abcdef123456".into()),
            arguments: Some(json!({"query": "x", "api_key": "sk-0123456789abcdefghijkl"})),
            ..CallRecord::default()
        });
        let text = serde_json::to_string(&entry).unwrap();
        assert!(
            !text.contains("abcdef123456") && !text.contains("sk-0123"),
            "{text}"
        );
        assert_eq!(
            (entry.outcome.as_str(), entry.target.as_str()),
            ("failure", "gh/search")
        );
    }
}
