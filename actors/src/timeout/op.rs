//! One tracked operation: the state shared between the caller's [`OpGuard`]
//! and the escalation actor, all atomics so neither waits for the other.
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::Sender;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::OpLimits;
use super::kind::OpKind;

const ACTIVE: u8 = 0;
const DONE: u8 = 1;
const TIMED_OUT: u8 = 2;

/// How long after an operation's deadline its caller waits for the
/// escalation actor before timing the operation out itself.
pub const BACKSTOP: Duration = Duration::from_millis(100);

/// What the client is told when its operation timed out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} on upstream `{upstream}`{} timed out after {deadline:?}", tool_suffix(.tool))]
pub struct TimeoutInfo {
    /// The operation's kind.
    pub kind: OpKind,
    /// The upstream it ran on.
    pub upstream: Arc<str>,
    /// The tool, for `tool_execution`.
    pub tool: Option<Arc<str>>,
    /// The deadline that passed.
    pub deadline: Duration,
}

fn tool_suffix(tool: &Option<Arc<str>>) -> String {
    tool.as_ref()
        .map(|t| format!(" (tool `{t}`)"))
        .unwrap_or_default()
}

/// What a caller's handle tells the escalation actor.
#[derive(Debug)]
pub(crate) enum OpEvent {
    /// An operation started.
    Started(Arc<OpState>),
    /// The caller timed an operation out itself (its deadline had passed
    /// before the actor did): the actor counts it, and probes the upstream
    /// when the operation had been sent there.
    Expired {
        op: Arc<OpState>,
        /// Whether the upstream had the operation (and so may be hung).
        sent: bool,
    },
    /// An operation ended (its guard was dropped).
    Finished {
        op: Arc<OpState>,
        elapsed: Duration,
        /// Ended before timing out.
        completed: bool,
    },
}

/// State of one operation in flight.
#[derive(Debug)]
pub struct OpState {
    pub(crate) id: u64,
    pub(crate) kind: OpKind,
    pub(crate) upstream: Arc<str>,
    pub(crate) tool: Option<Arc<str>>,
    pub(crate) started: Instant,
    pub(crate) limits: OpLimits,
    /// Nanoseconds from `started` to the last progress; 0: none yet.
    last_progress: AtomicU64,
    status: AtomicU8,
    token: CancellationToken,
}

/// When each escalation stage is due, given the progress so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Due {
    pub(crate) warn: Instant,
    pub(crate) timeout: Instant,
    pub(crate) fail: Instant,
}

impl OpState {
    pub(crate) fn new(
        id: u64,
        kind: OpKind,
        upstream: Arc<str>,
        tool: Option<Arc<str>>,
        limits: OpLimits,
        started: Instant,
    ) -> Self {
        Self {
            id,
            kind,
            upstream,
            tool,
            started,
            limits,
            last_progress: AtomicU64::new(0),
            status: AtomicU8::new(ACTIVE),
            token: CancellationToken::new(),
        }
    }

    /// The stages' due times: from the start, or from the last progress when
    /// `reset_on_progress`, the timeout never later than `max_total`.
    pub(crate) fn due(&self) -> Due {
        let l = &self.limits;
        let timeout = if l.reset_on_progress {
            let since = Duration::from_nanos(self.last_progress.load(Ordering::Relaxed));
            (self.started + since + l.timeout_after)
                .min(self.started + l.max_total.max(l.timeout_after))
        } else {
            self.started + l.timeout_after
        };
        Due {
            warn: timeout - (l.timeout_after - l.warn_after),
            timeout,
            fail: timeout + (l.fail_after - l.timeout_after),
        }
    }

    pub(crate) fn is_active(&self) -> bool {
        self.status.load(Ordering::Acquire) == ACTIVE
    }

    /// Marks the operation timed out and cancels its token; false when it
    /// finished first.
    pub(crate) fn time_out(&self) -> bool {
        let won = self
            .status
            .compare_exchange(ACTIVE, TIMED_OUT, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if won {
            self.token.cancel();
        }
        won
    }

    pub(crate) fn info(&self) -> TimeoutInfo {
        TimeoutInfo {
            kind: self.kind,
            upstream: self.upstream.clone(),
            tool: self.tool.clone(),
            deadline: self.limits.deadline,
        }
    }

    fn finish(&self) -> bool {
        self.status
            .compare_exchange(ACTIVE, DONE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// The caller's side of a tracked operation. Dropping it marks the
/// operation done and records its latency.
#[derive(Debug)]
pub struct OpGuard {
    pub(crate) op: Arc<OpState>,
    /// Where the end of the operation is reported; `None` when no actor ran
    /// at its start.
    pub(crate) events: Option<Sender<OpEvent>>,
}

impl OpGuard {
    /// Cancelled by the escalation actor when the operation times out: select
    /// on it next to the call (or hand it to `UpstreamLink::request`).
    pub fn token(&self) -> &CancellationToken {
        &self.op.token
    }

    /// Records progress (e.g. a `notifications/progress` from the upstream);
    /// with `reset_on_progress` it pushes the deadline back, up to `max_total`.
    pub fn progress(&self) {
        let nanos = self.op.started.elapsed().as_nanos().max(1) as u64;
        self.op.last_progress.fetch_max(nanos, Ordering::Relaxed);
    }

    /// Times the operation out now if its deadline has passed and it is
    /// still active; true when it is (or already was) timed out. Callers
    /// check this before sending an operation upstream, so one whose
    /// deadline passed while it queued is not started at all. Operations
    /// tracked without a running actor never time out.
    pub fn expire_if_due(&self) -> bool {
        if self.events.is_some() && self.op.is_active() && self.op.due().timeout <= Instant::now() {
            // Never sent: the upstream is not to blame, and is not probed.
            self.expire(false);
        }
        self.timed_out().is_some()
    }

    /// Resolves once the operation has timed out: when the escalation actor
    /// cancels its token, or, should the actor not have done so within
    /// [`BACKSTOP`] after the deadline (it waits for CPU, or is being
    /// restarted), when the caller times it out itself. Pending for ever for
    /// an operation that finished, or that no actor watches.
    pub async fn expired(&self) {
        if self.events.is_none() {
            return self.op.token.cancelled().await;
        }
        loop {
            let backstop = tokio::time::sleep_until(self.op.due().timeout + BACKSTOP);
            tokio::select! {
                () = self.op.token.cancelled() => return,
                () = backstop => {}
            }
            // Progress may have pushed the deadline back meanwhile.
            if self.op.due().timeout + BACKSTOP <= Instant::now() {
                if !self.op.is_active() && self.timed_out().is_none() {
                    return std::future::pending().await;
                }
                self.expire(true);
                return;
            }
        }
    }

    /// Marks the operation timed out (cancelling its token) and tells the
    /// actor, which counts it (and probes the upstream when `sent`).
    fn expire(&self, sent: bool) {
        if self.op.time_out()
            && let Some(events) = &self.events
        {
            // Cannot fail: the handle holds the receiving end.
            let _ = events.send(OpEvent::Expired {
                op: self.op.clone(),
                sent,
            });
        }
    }

    /// Why the operation was cancelled, once it timed out.
    pub fn timed_out(&self) -> Option<TimeoutInfo> {
        (self.op.status.load(Ordering::Acquire) == TIMED_OUT).then(|| self.op.info())
    }

    /// The limits this operation runs under (e.g. to pass the deadline on).
    pub fn limits(&self) -> &OpLimits {
        &self.op.limits
    }
}

impl Drop for OpGuard {
    fn drop(&mut self) {
        let completed = self.op.finish();
        if let Some(events) = &self.events {
            let elapsed = self.op.started.elapsed();
            // Cannot fail: the handle holds the receiving end.
            let _ = events.send(OpEvent::Finished {
                op: self.op.clone(),
                elapsed,
                completed,
            });
        }
    }
}
