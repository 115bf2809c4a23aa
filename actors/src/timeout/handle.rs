//! `Escalation`: the handle the request path tracks operations with. No
//! await and no actor round trip: `track` allocates the shared op state and
//! queues it for the actor; dropping the guard queues its end. The actor
//! drains the queue on every tick (a lock-free channel send costs the caller
//! far less than a ractor cast, and the first stage is seconds away).
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender};
use tokio::time::Instant;

use super::config::{OpLimits, TimeoutConfigError, TimeoutPolicy, TimeoutsConfig};
use super::kind::OpKind;
use super::metrics::{EscalationMetrics, MetricsSnapshot};
use super::op::{OpEvent, OpGuard, OpState};

struct Shared {
    policy: TimeoutPolicy,
    metrics: EscalationMetrics,
    events: Sender<OpEvent>,
    /// Shared rather than owned by one actor, so a restarted actor picks up
    /// where the last one stopped.
    inbox: Receiver<OpEvent>,
    /// Whether an actor drains `inbox`; without one nothing is queued.
    watched: AtomicBool,
    /// Operations an actor has taken in and not seen end: a restarted actor
    /// adopts them, so none loses its deadline when the actor dies.
    taken: Mutex<foldhash::HashMap<u64, Arc<OpState>>>,
    /// Whether the actor holds operations in flight; while it holds none its
    /// ticker sleeps until `wake` (no 10 ms ticks on an idle gateway).
    busy: AtomicBool,
    /// Rung when an operation starts.
    wake: tokio::sync::Notify,
    next_id: AtomicU64,
}

/// Tracks operations' deadlines. Cheap to clone.
#[derive(Clone)]
pub struct Escalation {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Escalation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Escalation").finish_non_exhaustive()
    }
}

impl Escalation {
    /// A handle for `config`; `separator` splits `server__tool` keys. Operations
    /// tracked before an `EscalationActor` runs with this handle are never
    /// escalated.
    pub fn new(config: &TimeoutsConfig, separator: &str) -> Result<Self, TimeoutConfigError> {
        let (events, inbox) = crossbeam_channel::unbounded();
        Ok(Self {
            shared: Arc::new(Shared {
                policy: TimeoutPolicy::new(config, separator)?,
                metrics: EscalationMetrics::default(),
                events,
                inbox,
                watched: AtomicBool::new(false),
                taken: Mutex::default(),
                busy: AtomicBool::new(false),
                wake: tokio::sync::Notify::new(),
                next_id: AtomicU64::new(1),
            }),
        })
    }

    /// Starts watching an operation of `kind` on `upstream` (and `tool`, the
    /// upstream's own tool name, for `tool_execution`). Drop the guard when
    /// the operation ends.
    pub fn track(&self, kind: OpKind, upstream: Arc<str>, tool: Option<Arc<str>>) -> OpGuard {
        self.track_from(kind, upstream, tool, Instant::now())
    }

    /// [`Self::track`] for an operation whose clock started at `started`
    /// (e.g. when its request reached the gateway's HTTP front): the time it
    /// spent queued before this call counts toward its deadline. One whose
    /// deadline has already passed is timed out at once (see
    /// [`OpGuard::expire_if_due`]).
    pub fn track_from(
        &self,
        kind: OpKind,
        upstream: Arc<str>,
        tool: Option<Arc<str>>,
        started: Instant,
    ) -> OpGuard {
        let limits = self.limits(kind, &upstream, tool.as_deref());
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let started = started.min(Instant::now());
        let op = Arc::new(OpState::new(id, kind, upstream, tool, limits, started));
        let events = self.shared.watched.load(Ordering::Acquire).then(|| {
            // Cannot fail: the handle holds the receiving end.
            let _ = self.shared.events.send(OpEvent::Started(op.clone()));
            if !self.shared.busy.load(Ordering::Acquire) {
                self.shared.wake.notify_one();
            }
            self.shared.events.clone()
        });
        OpGuard { op, events }
    }

    /// The limits an operation would run under.
    pub fn limits(&self, kind: OpKind, upstream: &str, tool: Option<&str>) -> OpLimits {
        self.shared.policy.limits(kind, upstream, tool)
    }

    /// Counts per kind and upstream, latency per upstream and tool.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics.snapshot()
    }

    pub(crate) fn metrics_store(&self) -> &EscalationMetrics {
        &self.shared.metrics
    }

    /// Marks the queue as drained (or no longer) by a running actor.
    pub(crate) fn set_watched(&self, watched: bool) {
        self.shared.watched.store(watched, Ordering::Release);
    }

    /// Records that the running actor has taken `op` in (`Some`) or seen it
    /// end (`None` for `id`).
    pub(crate) fn set_taken(&self, id: u64, op: Option<Arc<OpState>>) {
        let mut taken = self.shared.taken.lock().unwrap_or_else(|e| e.into_inner());
        match op {
            Some(op) => taken.insert(id, op),
            None => taken.remove(&id),
        };
    }

    /// The operations a previous actor had taken in and not seen end.
    pub(crate) fn taken(&self) -> Vec<Arc<OpState>> {
        let taken = self.shared.taken.lock().unwrap_or_else(|e| e.into_inner());
        taken.values().cloned().collect()
    }

    /// Records whether the actor holds operations in flight.
    pub(crate) fn set_busy(&self, busy: bool) {
        self.shared.busy.store(busy, Ordering::Release);
    }

    /// Waits, while the actor holds no operation and none is queued, until
    /// one starts.
    pub(crate) async fn idle_until_work(&self) {
        let woken = self.shared.wake.notified();
        if self.shared.busy.load(Ordering::Acquire) || !self.shared.inbox.is_empty() {
            return;
        }
        woken.await;
    }

    /// Events queued since the last drain.
    pub(crate) fn inbox(&self) -> &Receiver<OpEvent> {
        &self.shared.inbox
    }
}
