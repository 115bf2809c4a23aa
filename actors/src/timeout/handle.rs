//! `Escalation`: the handle the request path tracks operations with. No
//! await and no actor round trip: `track` allocates the shared op state and
//! casts it to the actor; dropping the guard casts its end.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ractor::ActorRef;

use crate::actor_slot::ActorSlot;

use super::actor::EscalationMsg;
use super::config::{OpLimits, TimeoutConfigError, TimeoutPolicy, TimeoutsConfig};
use super::kind::OpKind;
use super::metrics::{EscalationMetrics, MetricsSnapshot};
use super::op::{OpGuard, OpState};

struct Shared {
    policy: TimeoutPolicy,
    metrics: EscalationMetrics,
    /// The running actor; replaced when the root restarts it.
    actor: ActorSlot<EscalationMsg>,
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
        Ok(Self {
            shared: Arc::new(Shared {
                policy: TimeoutPolicy::new(config, separator)?,
                metrics: EscalationMetrics::default(),
                actor: ActorSlot::default(),
                next_id: AtomicU64::new(1),
            }),
        })
    }

    /// Starts watching an operation of `kind` on `upstream` (and `tool`, the
    /// upstream's own tool name, for `tool_execution`). Drop the guard when
    /// the operation ends.
    pub fn track(&self, kind: OpKind, upstream: Arc<str>, tool: Option<Arc<str>>) -> OpGuard {
        let limits = self.limits(kind, &upstream, tool.as_deref());
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let op = Arc::new(OpState::new(id, kind, upstream, tool, limits));
        let actor = self.actor();
        if let Some(actor) = &actor {
            // Fails only while the actor is being replaced: this op is not watched.
            let _ = actor.cast(EscalationMsg::Track(op.clone()));
        }
        OpGuard { op, actor }
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

    pub(crate) fn set_actor(&self, actor: Option<ActorRef<EscalationMsg>>) {
        self.shared.actor.set(actor);
    }

    fn actor(&self) -> Option<ActorRef<EscalationMsg>> {
        self.shared.actor.get()
    }
}
