//! `EscalationActor`: watches the deadlines of operations in flight and
//! escalates: at **warn** a log line and a count; at **timeout** the
//! operation is marked timed out and its token cancelled (the caller cancels
//! upstream and answers the client with [`TimeoutInfo`](super::TimeoutInfo));
//! then the [`InstanceProbe`] pings the instance, and if it does not answer
//! by **fail** the instance is declared hung (its supervisor restarts it).
//!
//! A tick (default 10 ms) drains a min-heap of due stages. Progress moves an
//! operation's deadline without a message: a due stage re-reads the
//! operation's state and reschedules itself when progress pushed it back.
//! Finished operations leave the op table at once and their heap entries
//! lazily (the heap is compacted when they pile up). Probes run in spawned
//! tasks, one per upstream at a time, so the actor never waits on one.
//!
//! The caller does not depend on the actor alone: an operation whose
//! deadline passed before it was sent upstream is timed out by its caller at
//! once, and a caller whose deadline passed [`BACKSTOP`](super::BACKSTOP)
//! ago without the actor acting (starved of CPU, or being restarted) times
//! it out itself; either way the actor is told, counts it and probes.
//!
//! Restarted by the root: the queue lives in the handle, so the new actor
//! takes in what the old one had not, and the handle also lists what the old
//! one had taken in and not seen end: the new actor adopts those, so no
//! operation loses its deadline when the actor dies.
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::handle::Escalation;
use super::kind::OpKind;
use super::metrics::Event;
use super::op::{OpEvent, OpState};
use super::probe::InstanceProbe;

/// Default resolution of the deadline checks.
pub const DEFAULT_TICK: Duration = Duration::from_millis(10);
/// Heap entries of finished operations tolerated per live one before compacting.
const COMPACT_RATIO: usize = 4;
const COMPACT_MIN: usize = 1024;

/// What an `EscalationActor` starts with.
pub struct EscalationArgs {
    /// The handle callers track operations with.
    pub handle: Escalation,
    /// Pings instances and reports hung ones.
    pub probe: Arc<dyn InstanceProbe>,
    /// How often due stages are checked.
    pub tick: Duration,
}

impl EscalationArgs {
    /// Arguments with the default tick.
    pub fn new(handle: Escalation, probe: Arc<dyn InstanceProbe>) -> Self {
        Self {
            handle,
            probe,
            tick: DEFAULT_TICK,
        }
    }
}

/// Messages of the escalation actor. Operations starting and ending arrive
/// through the handle's queue, drained on every tick.
pub enum EscalationMsg {
    /// Take in queued operation events, then check the due stages.
    Tick,
    /// A probe of a timed-out operation's upstream ended.
    ProbeAnswered {
        /// The upstream probed.
        upstream: Arc<str>,
        /// Kind of the operation that timed out.
        kind: OpKind,
        /// Whether it answered before the fail threshold.
        responsive: bool,
        /// Why it was probed, for the hung report.
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Warn,
    Timeout,
}

/// State of the running actor.
pub struct EscalationState {
    handle: Escalation,
    probe: Arc<dyn InstanceProbe>,
    ops: foldhash::HashMap<u64, Arc<OpState>>,
    due: BinaryHeap<Reverse<(Instant, u64, Stage)>>,
    /// Upstreams with a probe in flight.
    probing: HashSet<Arc<str>>,
    ticker: Option<JoinHandle<()>>,
}

/// The escalation actor.
pub struct EscalationActor;

impl Actor for EscalationActor {
    type Msg = EscalationMsg;
    type State = EscalationState;
    type Arguments = EscalationArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: EscalationArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        args.handle.set_watched(true);
        let ticker = spawn_ticker(myself, args.handle.clone(), args.tick);
        let mut state = EscalationState {
            handle: args.handle,
            probe: args.probe,
            ops: foldhash::HashMap::default(),
            due: BinaryHeap::new(),
            probing: HashSet::new(),
            ticker: Some(ticker),
        };
        for op in state.handle.taken() {
            state.due.push(Reverse((op.due().warn, op.id, Stage::Warn)));
            state.ops.insert(op.id, op);
        }
        // Adopted operations keep the ticker awake until they end.
        state.handle.set_busy(!state.ops.is_empty());
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(ticker) = state.ticker.take() {
            ticker.abort();
        }
        state.handle.set_watched(false);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let metrics = state.handle.metrics_store();
        match msg {
            EscalationMsg::Tick => {
                state.take_events(&myself);
                state.run_due(&myself);
                state.handle.set_busy(!state.ops.is_empty());
            }
            EscalationMsg::ProbeAnswered {
                upstream,
                kind,
                responsive,
                reason,
            } => {
                state.probing.remove(&upstream);
                if responsive {
                    tracing::info!(%upstream, "upstream answered its probe after a timeout; not hung");
                } else {
                    tracing::warn!(%upstream, %reason, "upstream declared hung");
                    metrics.record(kind, &upstream, Event::Escalated);
                    state.probe.declare_hung(&upstream, &reason);
                }
            }
        }
        Ok(())
    }
}

/// Sends `Tick` every `tick` while operations are in flight; idle, it waits
/// for one to start instead of waking the actor for nothing.
fn spawn_ticker(
    myself: ActorRef<EscalationMsg>,
    handle: Escalation,
    tick: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            handle.idle_until_work().await;
            if myself.cast(EscalationMsg::Tick).is_err() {
                return;
            }
        }
    })
}

impl EscalationState {
    /// Applies the operations that started and ended since the last tick.
    fn take_events(&mut self, myself: &ActorRef<EscalationMsg>) {
        let metrics = self.handle.metrics_store();
        let mut expired = Vec::new();
        for event in self.handle.inbox().try_iter() {
            match event {
                OpEvent::Started(op) => {
                    metrics.record(op.kind, &op.upstream, Event::Tracked);
                    self.due.push(Reverse((op.due().warn, op.id, Stage::Warn)));
                    self.handle.set_taken(op.id, Some(op.clone()));
                    self.ops.insert(op.id, op);
                }
                OpEvent::Expired { op, sent } => {
                    let info = op.info();
                    tracing::warn!(kind = %op.kind, upstream = %op.upstream, %info, sent, "operation timed out by its caller (its deadline had passed)");
                    metrics.record(op.kind, &op.upstream, Event::TimedOut);
                    if sent {
                        expired.push(op);
                    }
                }
                OpEvent::Finished {
                    op,
                    elapsed,
                    completed,
                } => {
                    metrics.finished(op.kind, &op.upstream, op.tool.as_ref(), elapsed, completed);
                    self.handle.set_taken(op.id, None);
                    self.ops.remove(&op.id);
                }
            }
        }
        for op in expired {
            let due = op.due();
            self.start_probe(myself, &op, op.info().to_string(), due.fail);
        }
        self.compact();
    }

    /// Handles every stage due by now.
    fn run_due(&mut self, myself: &ActorRef<EscalationMsg>) {
        let now = Instant::now();
        while let Some(&Reverse((at, id, stage))) = self.due.peek() {
            if at > now {
                break;
            }
            self.due.pop();
            let Some(op) = self.ops.get(&id).cloned() else {
                continue; // finished: dropped lazily
            };
            if !op.is_active() {
                continue;
            }
            let due = op.due();
            match stage {
                Stage::Warn if due.warn > now => self.due.push(Reverse((due.warn, id, stage))),
                Stage::Warn => {
                    tracing::warn!(
                        kind = %op.kind,
                        upstream = %op.upstream,
                        tool = op.tool.as_deref().unwrap_or(""),
                        elapsed_ms = op.started.elapsed().as_millis() as u64,
                        deadline_ms = op.limits.deadline.as_millis() as u64,
                        "operation nearing its deadline"
                    );
                    let metrics = self.handle.metrics_store();
                    metrics.record(op.kind, &op.upstream, Event::Warned);
                    self.due.push(Reverse((due.timeout, id, Stage::Timeout)));
                }
                Stage::Timeout if due.timeout > now => {
                    self.due.push(Reverse((due.timeout, id, stage)));
                }
                Stage::Timeout => {
                    if op.time_out() {
                        let info = op.info();
                        tracing::warn!(kind = %op.kind, upstream = %op.upstream, %info, "operation timed out; cancelled");
                        let metrics = self.handle.metrics_store();
                        metrics.record(op.kind, &op.upstream, Event::TimedOut);
                        self.start_probe(myself, &op, info.to_string(), due.fail);
                    }
                }
            }
        }
    }

    /// Pings `op`'s upstream until `fail_at`, unless a probe of it already runs.
    fn start_probe(
        &mut self,
        myself: &ActorRef<EscalationMsg>,
        op: &OpState,
        reason: String,
        fail_at: Instant,
    ) {
        if !self.probing.insert(op.upstream.clone()) {
            return;
        }
        // The instance gets its full fail window from now: a stage handled
        // late (the actor waited for CPU) must not cut it short, or a healthy
        // upstream would be declared hung for the gateway's own delay.
        let window = op.limits.fail_after.saturating_sub(op.limits.timeout_after);
        let fail_at = fail_at.max(Instant::now() + window);
        let probe = self.probe.clone();
        let upstream = op.upstream.clone();
        let kind = op.kind;
        let myself = myself.clone();
        tokio::spawn(async move {
            let answer = tokio::time::timeout_at(fail_at, probe.responsive(upstream.clone())).await;
            let responsive = answer == Ok(true);
            let reason = match answer {
                Ok(true) => reason,
                Ok(false) => format!("{reason}; the instance failed its ping"),
                Err(_) => {
                    format!("{reason}; the instance did not answer a ping by the fail threshold")
                }
            };
            // Fails only when the actor is gone, and then nobody escalates.
            let _ = myself.cast(EscalationMsg::ProbeAnswered {
                upstream,
                kind,
                responsive,
                reason,
            });
        });
    }

    /// Drops heap entries of finished operations once they dominate the heap.
    fn compact(&mut self) {
        let len = self.due.len();
        if len > COMPACT_MIN && len > COMPACT_RATIO * self.ops.len() {
            let ops = &self.ops;
            self.due.retain(|Reverse((_, id, _))| ops.contains_key(id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeout::{AlwaysResponsive, TimeoutsConfig};

    #[tokio::test]
    async fn heap_entries_of_finished_operations_are_compacted_away() {
        let handle = Escalation::new(&TimeoutsConfig::default(), "__").unwrap();
        let mut state = EscalationState {
            handle: handle.clone(),
            probe: Arc::new(AlwaysResponsive),
            ops: foldhash::HashMap::default(),
            due: BinaryHeap::new(),
            probing: HashSet::new(),
            ticker: None,
        };
        let live = handle.track(OpKind::ToolExecution, "a".into(), None);
        state.ops.insert(live.op.id, live.op.clone());
        state
            .due
            .push(Reverse((live.op.due().warn, live.op.id, Stage::Warn)));
        for id in 1_000..1_000 + COMPACT_MIN as u64 {
            state.due.push(Reverse((Instant::now(), id, Stage::Warn)));
        }
        state.compact();
        assert_eq!(state.due.len(), 1);
        assert_eq!(
            state.due.peek().map(|Reverse((_, id, _))| *id),
            Some(live.op.id)
        );
    }
}
