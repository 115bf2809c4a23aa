//! The live status of one configured upstream, shared by its actor (writes),
//! its supervisor (writes lifecycle) and the front doors (read).
//!
//! It outlives every instance: restarts, the stderr tail and counters carry
//! over, so operators see the history of the server, not of one process.
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use serde::Serialize;
use tokio::time::Instant;

use super::exit::ExitReason;
use super::link::UpstreamLink;
use super::stderr_tail::StderrTail;
use crate::mailbox::MailboxStats;

/// Why upstreams restart: [`ExitReason::kind`] of the instance before, or
/// `requested` (an operator's restart); the last is the catch-all.
pub const RESTART_REASONS: [&str; 10] = [
    "exit",
    "signal",
    "hung",
    "token_rotation",
    "session_failed",
    "connection_lost",
    "spawn_failed",
    "stopped",
    "requested",
    "unknown",
];

/// Lifecycle states an operator sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamState {
    /// Process launched, MCP handshake not finished.
    Starting,
    /// Serving calls.
    Ready,
    /// Died; the supervisor will start it again after a backoff.
    Restarting,
    /// Restart limit reached: the circuit is open until a probe succeeds.
    Failed,
    /// Stopped on purpose (shutdown or disabled).
    Stopped,
}

impl UpstreamState {
    /// Every state, for reporting one series per state.
    pub const ALL: [Self; 5] = [
        Self::Starting,
        Self::Ready,
        Self::Restarting,
        Self::Failed,
        Self::Stopped,
    ];

    /// The name operators see (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Restarting => "restarting",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }
}

#[derive(Debug)]
struct Lifecycle {
    state: UpstreamState,
    since: Instant,
    last_exit: Option<ExitReason>,
    link: Option<UpstreamLink>,
}

/// What the instances of one pool share: they are one server to clients.
#[derive(Debug, Default)]
struct PoolShared {
    /// Hash of the last tool list seen, to tell clients when a restart changed it.
    tools_fingerprint: AtomicU64,
    /// Sessions published so far; numbers each instance's link, unique in
    /// the pool so a hung verdict finds its instance.
    sessions: AtomicU64,
    /// Some instance has been ready once: a later restart is flapping, not
    /// starting (`/ready` tells the two apart).
    served: AtomicBool,
}

/// Shared, restart-surviving status of one upstream instance (the only one
/// unless the upstream is a pool, see [`super::pool::Pool`]).
#[derive(Debug)]
pub struct UpstreamStatus {
    name: Arc<str>,
    /// This instance's place in its pool (0 for a single instance).
    index: usize,
    lifecycle: RwLock<Lifecycle>,
    restarts: AtomicU32,
    /// Restarts by why the instance before ended, in [`RESTART_REASONS`] order.
    restart_reasons: [AtomicU32; RESTART_REASONS.len()],
    shared: Arc<PoolShared>,
    in_flight: AtomicUsize,
    /// Taken out of rotation by failed health checks (still running).
    ejected: AtomicBool,
    /// Times health checks ejected this instance.
    ejections: AtomicU32,
    /// The stderr of every instance, newest last.
    pub stderr: StderrTail,
    /// Counters of the upstream actor's mailbox.
    pub mailbox: MailboxStats,
}

impl UpstreamStatus {
    /// A new status in state `starting`.
    pub fn new(name: &str) -> Arc<Self> {
        Self::instance(name.into(), 0, Arc::default())
    }

    /// The statuses of a pool of `count` instances (at least one).
    pub fn pool(name: &str, count: usize) -> Vec<Arc<Self>> {
        let (name, shared): (Arc<str>, Arc<PoolShared>) = (name.into(), Arc::default());
        (0..count.max(1))
            .map(|index| Self::instance(name.clone(), index, shared.clone()))
            .collect()
    }

    fn instance(name: Arc<str>, index: usize, shared: Arc<PoolShared>) -> Arc<Self> {
        Arc::new(Self {
            name,
            index,
            lifecycle: RwLock::new(Lifecycle {
                state: UpstreamState::Starting,
                since: Instant::now(),
                last_exit: None,
                link: None,
            }),
            restarts: AtomicU32::new(0),
            restart_reasons: Default::default(),
            shared,
            in_flight: AtomicUsize::new(0),
            ejected: AtomicBool::new(false),
            ejections: AtomicU32::new(0),
            stderr: StderrTail::default(),
            mailbox: MailboxStats::default(),
        })
    }

    /// The server's configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This instance's place in its pool (0 for a single instance).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The name as a shared string: the request path reuses it instead of
    /// allocating one per call.
    pub fn name_arc(&self) -> Arc<str> {
        self.name.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Lifecycle> {
        self.lifecycle.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Lifecycle> {
        self.lifecycle.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Current state.
    pub fn state(&self) -> UpstreamState {
        self.read().state
    }

    /// Moves to `state`; entering anything but `ready` withdraws the link so
    /// new calls fail fast instead of queueing on a dead session.
    pub fn set_state(&self, state: UpstreamState) {
        let mut lifecycle = self.write();
        if lifecycle.state != state {
            lifecycle.state = state;
            lifecycle.since = Instant::now();
        }
        if state != UpstreamState::Ready {
            lifecycle.link = None;
        }
    }

    /// Publishes a ready session: calls route to it from now on.
    pub(crate) fn set_ready(&self, link: UpstreamLink) {
        let mut lifecycle = self.write();
        lifecycle.state = UpstreamState::Ready;
        lifecycle.since = Instant::now();
        lifecycle.link = Some(link);
        // A new session starts with a clean health record.
        self.ejected.store(false, Ordering::Relaxed);
        self.shared.served.store(true, Ordering::Relaxed);
    }

    /// Whether some instance of this pool has been ready since the gateway
    /// started.
    pub fn has_served(&self) -> bool {
        self.shared.served.load(Ordering::Relaxed)
    }

    /// The ready session, if calls may go to it: published and not ejected
    /// by health checks.
    pub fn routable_link(&self) -> Option<UpstreamLink> {
        if self.is_ejected() {
            return None;
        }
        self.link()
    }

    /// Whether health checks took this instance out of rotation.
    pub fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Relaxed)
    }

    /// Times health checks ejected this instance.
    pub fn ejections(&self) -> u32 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// Takes the instance out of rotation (true) or puts it back (false);
    /// true when that changed anything.
    pub(crate) fn set_ejected(&self, ejected: bool) -> bool {
        let changed = self.ejected.swap(ejected, Ordering::Relaxed) != ejected;
        if changed && ejected {
            self.ejections.fetch_add(1, Ordering::Relaxed);
        }
        changed
    }

    /// Withdraws the link: calls fail fast from now on.
    pub(crate) fn withdraw_link(&self) {
        self.write().link = None;
    }

    /// Records why the current instance ended and withdraws its link, so no
    /// new call is sent to a dead session.
    pub fn set_exit(&self, reason: ExitReason) {
        let mut lifecycle = self.write();
        lifecycle.last_exit = Some(reason);
        lifecycle.link = None;
    }

    /// Why the last instance ended, if one did.
    pub fn last_exit(&self) -> Option<ExitReason> {
        self.read().last_exit.clone()
    }

    /// The ready session, or `None` when calls must fail fast.
    pub fn link(&self) -> Option<UpstreamLink> {
        self.read().link.clone()
    }

    /// Seconds in the current state.
    pub fn state_age(&self) -> std::time::Duration {
        self.read().since.elapsed()
    }

    /// Counts one restart, by why the last instance ended.
    pub fn count_restart(&self) {
        let kind = self.last_exit().map_or("unknown", |reason| reason.kind());
        self.count_restart_as(kind);
    }

    /// Counts one restart an operator asked for.
    pub fn count_requested_restart(&self) {
        self.count_restart_as("requested");
    }

    fn count_restart_as(&self, kind: &str) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
        let slot = RESTART_REASONS
            .iter()
            .position(|known| *known == kind)
            .unwrap_or(RESTART_REASONS.len() - 1);
        self.restart_reasons[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Restarts by reason (only reasons that happened), in [`RESTART_REASONS`] order.
    pub fn restarts_by_reason(&self) -> Vec<(&'static str, u32)> {
        RESTART_REASONS
            .iter()
            .zip(&self.restart_reasons)
            .map(|(kind, count)| (*kind, count.load(Ordering::Relaxed)))
            .filter(|(_, count)| *count > 0)
            .collect()
    }

    /// Restarts since the gateway started.
    pub fn restarts(&self) -> u32 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// A number for a new instance's session, unique for this upstream.
    pub(crate) fn next_session(&self) -> u64 {
        self.shared.sessions.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Calls currently waiting on this upstream.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn in_flight_counter(&self) -> &AtomicUsize {
        &self.in_flight
    }

    /// Stores the new tool-list fingerprint; true when it differs from the
    /// last one seen, including the first time: sessions that listed while
    /// the upstream was still starting then learn of its tools.
    pub(crate) fn replace_tools_fingerprint(&self, fingerprint: u64) -> bool {
        self.shared
            .tools_fingerprint
            .swap(fingerprint, Ordering::Relaxed)
            != fingerprint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_are_counted_by_the_reason_the_instance_before_ended() {
        let status = UpstreamStatus::new("s");
        status.set_exit(ExitReason::Signaled("SIGKILL".into()));
        status.count_restart();
        status.set_exit(ExitReason::Hung("no pong".into()));
        status.count_restart();
        status.count_restart();
        status.count_requested_restart();
        status.set_exit(ExitReason::TokenRotated);
        status.count_restart();
        assert_eq!(status.restarts(), 5);
        assert_eq!(
            status.restarts_by_reason(),
            vec![
                ("signal", 1),
                ("hung", 2),
                ("token_rotation", 1),
                ("requested", 1)
            ]
        );
    }
}
