//! Timeout escalation: deadlines of operations in flight, per operation kind,
//! overridable per upstream and per tool.
//!
//! - [`Escalation`]: the handle; [`Escalation::track`] returns an [`OpGuard`]
//!   (token cancelled at timeout, `progress()`, `timed_out()`, drop = done);
//!   [`Escalation::track_from`] starts the clock when the request arrived.
//! - [`EscalationActor`]: the deadline heap; warn → timeout → fail.
//! - [`InstanceProbe`]: how the actor pings an upstream and reports it hung.
//! - [`TimeoutsConfig`]: the `[timeouts]` section; [`TimeoutPolicy`] resolves it.
//! - [`MetricsSnapshot`]: counts per kind and upstream, latency per upstream and tool.
mod actor;
mod config;
mod handle;
mod kind;
mod metrics;
mod op;
mod probe;
#[cfg(test)]
mod tests;

pub use actor::{DEFAULT_TICK, EscalationActor, EscalationArgs, EscalationMsg, EscalationState};
pub use config::{
    Deadlines, OpLimits, PartialDeadlines, PerKind, Thresholds, TimeoutConfigError, TimeoutPolicy,
    TimeoutsConfig, ToolTimeouts, UpstreamTimeouts,
};
pub use handle::Escalation;
pub use kind::OpKind;
pub use metrics::{
    KindMetrics, LatencyStats, MetricsSnapshot, OpCounts, ToolMetrics, UpstreamMetrics,
};
pub use op::{BACKSTOP, OpGuard, OpState, TimeoutInfo};
pub use probe::{AlwaysResponsive, InstanceProbe};
