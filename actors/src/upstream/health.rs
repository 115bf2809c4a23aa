//! Active health checks of one instance: an MCP `ping` every interval; after
//! `failures` failed pings in a row the instance is ejected (it keeps
//! running, calls go to its siblings), after `successes` good ones in a row
//! it is admitted again. The checker is a task tied to one session: it ends
//! with the instance, and a restarted instance starts with a clean record.
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{ClientRequest, PingRequest};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::link::UpstreamLink;
use super::status::UpstreamStatus;

/// `[upstreams.NAME.health]`: when to ping, and when to eject and re-admit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthSpec {
    /// Time between two pings of one instance.
    pub interval_ms: u64,
    /// How long a ping may take before it counts as failed; the interval
    /// when unset.
    pub timeout_ms: Option<u64>,
    /// Failed pings in a row that eject an instance.
    pub failures: u32,
    /// Good pings in a row that admit an ejected instance again.
    pub successes: u32,
}

impl Default for HealthSpec {
    fn default() -> Self {
        Self {
            interval_ms: 5_000,
            timeout_ms: None,
            failures: 3,
            successes: 2,
        }
    }
}

impl HealthSpec {
    fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.unwrap_or(self.interval_ms))
    }
}

/// Counts pings in a row and says when the verdict changes.
#[derive(Debug, Default)]
struct Record {
    failed: u32,
    passed: u32,
}

/// What one ping's result does to the instance.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Eject,
    Admit,
    Unchanged,
}

impl Record {
    fn observe(&mut self, spec: &HealthSpec, ok: bool, ejected: bool) -> Verdict {
        if ok {
            self.failed = 0;
            self.passed = self.passed.saturating_add(1);
            if ejected && self.passed >= spec.successes {
                return Verdict::Admit;
            }
        } else {
            self.passed = 0;
            self.failed = self.failed.saturating_add(1);
            if !ejected && self.failed >= spec.failures {
                return Verdict::Eject;
            }
        }
        Verdict::Unchanged
    }
}

/// Pings `link`'s instance until it ends, ejecting and admitting it.
pub(crate) fn spawn(spec: HealthSpec, link: UpstreamLink, status: Arc<UpstreamStatus>) {
    tokio::spawn(async move {
        let ended = link.ended();
        tokio::pin!(ended);
        let mut ticks = tokio::time::interval(spec.interval());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate: the instance just answered initialize.
        ticks.tick().await;
        let mut record = Record::default();
        loop {
            tokio::select! {
                biased;
                () = &mut ended => return,
                _ = ticks.tick() => {}
            }
            let ok = tokio::select! {
                biased;
                () = &mut ended => return,
                ok = ping(&link, spec.timeout()) => ok,
            };
            let (server, instance) = (status.name(), status.index());
            match record.observe(&spec, ok, status.is_ejected()) {
                Verdict::Eject if status.set_ejected(true) => tracing::warn!(
                    server,
                    instance,
                    failures = record.failed,
                    "upstream instance failed its health checks; ejected"
                ),
                Verdict::Admit if status.set_ejected(false) => tracing::info!(
                    server,
                    instance,
                    successes = record.passed,
                    "upstream instance passed its health checks; admitted again"
                ),
                _ => {}
            }
        }
    });
}

/// One MCP ping; false when it fails or takes longer than `timeout`.
async fn ping(link: &UpstreamLink, timeout: Duration) -> bool {
    // Cancelled rather than dropped, so the upstream hears of it.
    let cancel = CancellationToken::new();
    let timer = cancel.clone();
    let deadline = tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        timer.cancel();
    });
    let request = ClientRequest::PingRequest(PingRequest::default());
    let answer = link.request(request, None, &cancel).await;
    deadline.abort();
    answer.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ejects_after_failures_in_a_row_and_admits_after_successes_in_a_row() {
        let spec = HealthSpec {
            failures: 2,
            successes: 2,
            ..HealthSpec::default()
        };
        let mut record = Record::default();
        assert_eq!(record.observe(&spec, false, false), Verdict::Unchanged);
        assert_eq!(record.observe(&spec, true, false), Verdict::Unchanged);
        assert_eq!(record.observe(&spec, false, false), Verdict::Unchanged);
        assert_eq!(record.observe(&spec, false, false), Verdict::Eject);
        assert_eq!(record.observe(&spec, true, true), Verdict::Unchanged);
        assert_eq!(record.observe(&spec, false, true), Verdict::Unchanged);
        assert_eq!(record.observe(&spec, true, true), Verdict::Unchanged);
        assert_eq!(record.observe(&spec, true, true), Verdict::Admit);
    }
}
