//! Escalation metrics: counts per kind and per upstream, latency per upstream
//! and per tool. Written only by the escalation actor, read as a snapshot.
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;

use super::kind::OpKind;

/// Most upstream series kept; beyond it, new names share [`OVERFLOW`].
/// Upstream names come from configuration, so this only bites after many
/// upstreams were added and removed.
pub const MAX_UPSTREAM_SERIES: usize = 1_024;
/// Most (upstream, tool) series kept; beyond it, new pairs share
/// [`OVERFLOW`]. Tool names reach here from clients (a call to a tool the
/// upstream then refuses), so without a cap they would grow without bound.
pub const MAX_TOOL_SERIES: usize = 4_096;
/// The name under which series past a cap are counted together.
pub const OVERFLOW: &str = "(other)";

/// Upper bounds of the latency buckets, in milliseconds (the last is open).
const BUCKETS_MS: [u64; 13] = [
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000,
];

/// Operation counts of one kind or one upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OpCounts {
    /// Tracked and not yet finished.
    pub active: u64,
    /// Finished before their deadline.
    pub completed: u64,
    /// Passed the warn threshold.
    pub warned: u64,
    /// Cancelled at the deadline.
    pub timed_out: u64,
    /// Their instance was declared hung.
    pub escalated: u64,
}

/// A latency histogram.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Histogram {
    count: u64,
    sum_us: u64,
    max_us: u64,
    buckets: [u64; BUCKETS_MS.len() + 1],
}

impl Histogram {
    fn record(&mut self, latency: Duration) {
        let us = latency.as_micros().min(u64::MAX as u128) as u64;
        self.count += 1;
        self.sum_us = self.sum_us.saturating_add(us);
        self.max_us = self.max_us.max(us);
        let bucket = BUCKETS_MS
            .iter()
            .position(|&le_ms| us <= le_ms * 1000)
            .unwrap_or(BUCKETS_MS.len());
        self.buckets[bucket] += 1;
    }

    /// The upper bound of the bucket holding quantile `q` (`None`: the open bucket).
    fn quantile_ms(&self, q: f64) -> Option<u64> {
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return BUCKETS_MS.get(i).copied();
            }
        }
        None
    }

    fn snapshot(&self) -> LatencyStats {
        LatencyStats {
            count: self.count,
            mean_ms: if self.count == 0 {
                0.0
            } else {
                self.sum_us as f64 / self.count as f64 / 1000.0
            },
            max_ms: self.max_us as f64 / 1000.0,
            p50_le_ms: self.quantile_ms(0.5),
            p90_le_ms: self.quantile_ms(0.9),
            p99_le_ms: self.quantile_ms(0.99),
        }
    }
}

/// Latency of finished operations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyStats {
    /// Operations measured.
    pub count: u64,
    /// Mean latency.
    pub mean_ms: f64,
    /// Slowest operation.
    pub max_ms: f64,
    /// Bucket bound (5, 10, 25 … 60 000 ms) at or under which half finished;
    /// `None` when beyond the last bucket (and before any sample).
    pub p50_le_ms: Option<u64>,
    /// The same for 90 %.
    pub p90_le_ms: Option<u64>,
    /// The same for 99 %.
    pub p99_le_ms: Option<u64>,
}

/// Counts of one kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindMetrics {
    /// The kind.
    pub kind: OpKind,
    /// Its counts.
    #[serde(flatten)]
    pub counts: OpCounts,
}

/// Counts and latency of one upstream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpstreamMetrics {
    /// The upstream.
    pub upstream: Arc<str>,
    /// Its counts.
    #[serde(flatten)]
    pub counts: OpCounts,
    /// Latency of all its operations.
    pub latency: LatencyStats,
}

/// Latency of one tool.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolMetrics {
    /// The tool's upstream.
    pub upstream: Arc<str>,
    /// The tool (upstream name, not federated).
    pub tool: Arc<str>,
    /// Its latency.
    pub latency: LatencyStats,
}

/// Every escalation metric at one moment (`timeout_metrics`, `/api/v1`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsSnapshot {
    /// Per kind, in [`OpKind::ALL`] order.
    pub kinds: Vec<KindMetrics>,
    /// Per upstream, by name.
    pub upstreams: Vec<UpstreamMetrics>,
    /// Per tool, by upstream then tool.
    pub tools: Vec<ToolMetrics>,
}

impl MetricsSnapshot {
    /// The counts of `kind`.
    pub fn kind(&self, kind: OpKind) -> OpCounts {
        self.kinds[kind.index()].counts
    }

    /// The metrics of `upstream`, if it had any operation.
    pub fn upstream(&self, upstream: &str) -> Option<&UpstreamMetrics> {
        self.upstreams.iter().find(|u| &*u.upstream == upstream)
    }

    /// The latency of `tool` on `upstream`, if it ran.
    pub fn tool(&self, upstream: &str, tool: &str) -> Option<&LatencyStats> {
        self.tools
            .iter()
            .find(|t| &*t.upstream == upstream && &*t.tool == tool)
            .map(|t| &t.latency)
    }
}

/// Which counter an event bumps.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Event {
    Tracked,
    Warned,
    TimedOut,
    Escalated,
    /// Finished; `completed` when before its timeout.
    Finished {
        completed: bool,
    },
}

impl OpCounts {
    fn apply(&mut self, event: Event) {
        match event {
            Event::Tracked => self.active += 1,
            Event::Warned => self.warned += 1,
            Event::TimedOut => self.timed_out += 1,
            Event::Escalated => self.escalated += 1,
            Event::Finished { completed } => {
                self.active = self.active.saturating_sub(1);
                if completed {
                    self.completed += 1;
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    kinds: [OpCounts; OpKind::ALL.len()],
    upstreams: foldhash::HashMap<Arc<str>, (OpCounts, Histogram)>,
    tools: foldhash::HashMap<(Arc<str>, Arc<str>), Histogram>,
}

impl Inner {
    /// The series of `upstream`, or the shared overflow series once
    /// [`MAX_UPSTREAM_SERIES`] names are kept.
    fn upstream(&mut self, upstream: &Arc<str>) -> &mut (OpCounts, Histogram) {
        let key = if self.upstreams.contains_key(upstream)
            || self.upstreams.len() < MAX_UPSTREAM_SERIES
        {
            upstream.clone()
        } else {
            Arc::from(OVERFLOW)
        };
        self.upstreams.entry(key).or_default()
    }

    /// The latency of `tool` on `upstream`, or the shared overflow series
    /// once [`MAX_TOOL_SERIES`] pairs are kept.
    fn tool(&mut self, upstream: &Arc<str>, tool: &Arc<str>) -> &mut Histogram {
        let key = (upstream.clone(), tool.clone());
        let key = if self.tools.contains_key(&key) || self.tools.len() < MAX_TOOL_SERIES {
            key
        } else {
            (Arc::from(OVERFLOW), Arc::from(OVERFLOW))
        };
        self.tools.entry(key).or_default()
    }
}

/// The metrics store shared by the actor (writer) and the handle (reader).
#[derive(Debug, Default)]
pub(crate) struct EscalationMetrics {
    inner: Mutex<Inner>,
}

impl EscalationMetrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn record(&self, kind: OpKind, upstream: &Arc<str>, event: Event) {
        let mut inner = self.lock();
        inner.kinds[kind.index()].apply(event);
        inner.upstream(upstream).0.apply(event);
    }

    pub(crate) fn finished(
        &self,
        kind: OpKind,
        upstream: &Arc<str>,
        tool: Option<&Arc<str>>,
        latency: Duration,
        completed: bool,
    ) {
        let mut inner = self.lock();
        let event = Event::Finished { completed };
        inner.kinds[kind.index()].apply(event);
        let entry = inner.upstream(upstream);
        entry.0.apply(event);
        entry.1.record(latency);
        if let Some(tool) = tool {
            inner.tool(upstream, tool).record(latency);
        }
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let inner = self.lock();
        let kinds = OpKind::ALL
            .iter()
            .map(|&kind| KindMetrics {
                kind,
                counts: inner.kinds[kind.index()],
            })
            .collect();
        let mut upstreams: Vec<_> = inner
            .upstreams
            .iter()
            .map(|(upstream, (counts, latency))| UpstreamMetrics {
                upstream: upstream.clone(),
                counts: *counts,
                latency: latency.snapshot(),
            })
            .collect();
        upstreams.sort_by(|a, b| a.upstream.cmp(&b.upstream));
        let mut tools: Vec<_> = inner
            .tools
            .iter()
            .map(|((upstream, tool), latency)| ToolMetrics {
                upstream: upstream.clone(),
                tool: tool.clone(),
                latency: latency.snapshot(),
            })
            .collect();
        tools.sort_by(|a, b| (&a.upstream, &a.tool).cmp(&(&b.upstream, &b.tool)));
        MetricsSnapshot {
            kinds,
            upstreams,
            tools,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_reports_count_mean_max_and_bucket_quantiles() {
        let mut h = Histogram::default();
        for ms in [1, 2, 3, 4, 7, 20, 40, 90, 400, 70_000] {
            h.record(Duration::from_millis(ms));
        }
        let s = h.snapshot();
        assert_eq!(s.count, 10);
        assert_eq!(s.max_ms, 70_000.0);
        assert!((s.mean_ms - 7056.7).abs() < 0.01, "{s:?}");
        assert_eq!(s.p50_le_ms, Some(10));
        assert_eq!(s.p90_le_ms, Some(500));
        assert_eq!(s.p99_le_ms, None, "beyond the last bucket");
    }

    #[test]
    fn bucket_bounds_are_inclusive() {
        let mut h = Histogram::default();
        h.record(Duration::from_millis(5));
        assert_eq!(h.snapshot().p50_le_ms, Some(5));
        let mut h = Histogram::default();
        h.record(Duration::from_micros(5_001));
        assert_eq!(h.snapshot().p50_le_ms, Some(10));
    }

    #[test]
    fn client_chosen_tool_names_cannot_grow_the_series_without_bound() {
        let metrics = EscalationMetrics::default();
        let upstream: Arc<str> = Arc::from("echo");
        for n in 0..MAX_TOOL_SERIES + 500 {
            let tool: Arc<str> = Arc::from(format!("invented-{n}"));
            metrics.finished(
                OpKind::ToolExecution,
                &upstream,
                Some(&tool),
                Duration::from_millis(1),
                true,
            );
        }
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.tools.len(), MAX_TOOL_SERIES + 1);
        let other = snapshot
            .tools
            .iter()
            .find(|t| &*t.tool == OVERFLOW)
            .unwrap();
        assert_eq!(other.latency.count, 500);
        // A series kept before the cap still counts on its own.
        let first: Arc<str> = Arc::from("invented-0");
        metrics.finished(
            OpKind::ToolExecution,
            &upstream,
            Some(&first),
            Duration::ZERO,
            true,
        );
        let snapshot = metrics.snapshot();
        let first = snapshot
            .tools
            .iter()
            .find(|t| &*t.tool == "invented-0")
            .unwrap();
        assert_eq!(first.latency.count, 2);
    }

    #[test]
    fn upstream_series_are_capped_too() {
        let metrics = EscalationMetrics::default();
        for n in 0..MAX_UPSTREAM_SERIES + 10 {
            let upstream: Arc<str> = Arc::from(format!("u{n}"));
            metrics.record(OpKind::ToolExecution, &upstream, Event::Tracked);
        }
        assert_eq!(metrics.snapshot().upstreams.len(), MAX_UPSTREAM_SERIES + 1);
    }

    #[test]
    fn empty_histogram_has_no_quantiles() {
        let s = Histogram::default().snapshot();
        assert_eq!((s.count, s.mean_ms, s.p50_le_ms), (0, 0.0, None));
    }
}
