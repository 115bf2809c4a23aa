//! How the escalation actor checks an upstream whose operation timed out,
//! and how it reports one that is hung. The gateway implements it on top of
//! its supervisors; tests use a fake.
use std::sync::Arc;

use futures::future::BoxFuture;

/// Pings upstream instances and reports hung ones.
pub trait InstanceProbe: Send + Sync + 'static {
    /// Whether `upstream` still answers (e.g. an MCP `ping`). The actor gives
    /// it until the fail threshold; an unanswered or `false` probe means hung.
    fn responsive(&self, upstream: Arc<str>) -> BoxFuture<'static, bool>;

    /// `upstream` is hung: kill and restart it. Must return at once (cast to
    /// the supervisor); it runs on the escalation actor.
    fn declare_hung(&self, upstream: &str, reason: &str);
}

/// A probe for when nothing can be pinged: every upstream counts as responsive.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysResponsive;

impl InstanceProbe for AlwaysResponsive {
    fn responsive(&self, _upstream: Arc<str>) -> BoxFuture<'static, bool> {
        Box::pin(async { true })
    }

    fn declare_hung(&self, _upstream: &str, _reason: &str) {}
}
