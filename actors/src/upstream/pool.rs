//! A pool: the instances of one upstream and how a call picks one.
//!
//! Each instance has its own [`UpstreamStatus`] (lifecycle, link, calls in
//! flight, health), written by its own `UpstreamActor`. The pool reads them
//! on the request path without a lock of its own: a round-robin ticket is one
//! atomic add, a random pick one thread-local draw. A pool of one is today's
//! single upstream: [`Pool::link`] reads its one status and nothing else.
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use super::exit::ExitReason;
use super::health::HealthSpec;
use super::link::UpstreamLink;
use super::status::{RESTART_REASONS, UpstreamState, UpstreamStatus};

/// The most instances one upstream may have.
pub const MAX_INSTANCES: usize = 64;

/// How a call picks an instance among the ready ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Each instance in turn.
    #[default]
    RoundRobin,
    /// The instance with the fewest calls in flight.
    LeastConnections,
    /// In turn, each instance as often as its weight says.
    Weighted,
    /// Any instance, uniformly.
    Random,
    /// Two instances at random; the one with fewer calls in flight.
    PowerOfTwoChoices,
}

/// Whether a client session keeps to one instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Affinity {
    /// Every call is balanced on its own.
    #[default]
    None,
    /// A client session's calls go to the instance its first call went to,
    /// as long as that instance lives (for stateful servers).
    Session,
}

/// How an upstream is spread over instances (a pool of one by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpec {
    /// How many instances run (at least one).
    pub instances: usize,
    /// Remote upstreams: one URL per instance (empty: every instance uses
    /// the transport's URL).
    pub urls: Vec<String>,
    /// How calls pick an instance.
    pub strategy: Strategy,
    /// `weighted`: one weight per instance.
    pub weights: Vec<u32>,
    /// Whether client sessions keep to one instance.
    pub affinity: Affinity,
    /// Active health checks, when configured.
    pub health: Option<HealthSpec>,
}

impl Default for PoolSpec {
    fn default() -> Self {
        Self {
            instances: 1,
            urls: Vec::new(),
            strategy: Strategy::default(),
            weights: Vec::new(),
            affinity: Affinity::default(),
            health: None,
        }
    }
}

/// The running instances of one upstream.
#[derive(Debug)]
pub struct Pool {
    instances: Box<[Arc<UpstreamStatus>]>,
    strategy: Strategy,
    affinity: Affinity,
    /// `weighted`: running totals of the weights, one per instance.
    cumulative: Box<[u64]>,
    /// The round-robin (and weighted) ticket counter.
    next: AtomicUsize,
}

impl Pool {
    /// A pool for `name` as `spec` says, every instance `starting`.
    pub fn new(name: &str, spec: &PoolSpec) -> Self {
        let instances = UpstreamStatus::pool(name, spec.instances.clamp(1, MAX_INSTANCES));
        let mut total = 0;
        let cumulative = (0..instances.len())
            .map(|i| {
                total += u64::from(spec.weights.get(i).copied().unwrap_or(1).max(1));
                total
            })
            .collect();
        Self {
            instances: instances.into(),
            strategy: spec.strategy,
            affinity: spec.affinity,
            cumulative,
            next: AtomicUsize::new(0),
        }
    }

    /// The instances, in configuration order.
    pub fn instances(&self) -> &[Arc<UpstreamStatus>] {
        &self.instances
    }

    /// The instance at `index`.
    pub fn instance(&self, index: usize) -> Option<&Arc<UpstreamStatus>> {
        self.instances.get(index)
    }

    /// The first instance: a pool always has one.
    fn first(&self) -> &Arc<UpstreamStatus> {
        &self.instances[0]
    }

    /// The server's configured name.
    pub fn name(&self) -> &str {
        self.first().name()
    }

    /// The name as a shared string (no allocation per call).
    pub fn name_arc(&self) -> Arc<str> {
        self.first().name_arc()
    }

    /// Whether client sessions keep to one instance.
    pub fn affinity(&self) -> Affinity {
        self.affinity
    }

    /// A ready, admitted instance's session as the strategy picks it, or
    /// `None` when no instance may take calls.
    pub fn link(&self) -> Option<UpstreamLink> {
        let count = self.instances.len();
        if count == 1 {
            return self.first().routable_link();
        }
        match self.strategy {
            Strategy::RoundRobin => self.scan_from(self.ticket() % count),
            Strategy::Random => self.scan_from(rand::random_range(0..count)),
            Strategy::Weighted => {
                let total = self.cumulative[count - 1];
                let ticket = (self.ticket() as u64) % total;
                let start = self.cumulative.partition_point(|&upto| upto <= ticket);
                self.scan_from(start)
            }
            Strategy::LeastConnections => self.least_loaded(self.ticket() % count),
            Strategy::PowerOfTwoChoices => {
                let first = rand::random_range(0..count);
                let second = (first + rand::random_range(1..count)) % count;
                let pick = |i: usize| self.instances[i].routable_link();
                match (pick(first), pick(second)) {
                    (Some(a), Some(b)) => Some(
                        if self.instances[second].in_flight() < self.instances[first].in_flight() {
                            b
                        } else {
                            a
                        },
                    ),
                    (Some(one), None) | (None, Some(one)) => Some(one),
                    (None, None) => self.scan_from(first),
                }
            }
        }
    }

    /// Some instance that may take calls, without advancing the strategy
    /// (for reading what the upstream said about itself).
    pub fn any_link(&self) -> Option<UpstreamLink> {
        self.scan_from(0)
    }

    /// The session `session` if its instance still lives and may take
    /// calls (session affinity).
    pub fn bound_link(&self, session: u64) -> Option<UpstreamLink> {
        self.instances
            .iter()
            .filter_map(|status| status.routable_link())
            .find(|link| link.session() == session)
    }

    /// The instance whose current session is `session`.
    pub fn instance_of_session(&self, session: u64) -> Option<usize> {
        self.instances
            .iter()
            .position(|status| status.link().is_some_and(|link| link.session() == session))
    }

    fn ticket(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// The first instance that may take calls, from `start` on.
    fn scan_from(&self, start: usize) -> Option<UpstreamLink> {
        let count = self.instances.len();
        (0..count).find_map(|i| self.instances[(start + i) % count].routable_link())
    }

    /// The instance with the fewest calls in flight; ties go to the first
    /// from `start`, so equal instances still take turns.
    fn least_loaded(&self, start: usize) -> Option<UpstreamLink> {
        let count = self.instances.len();
        let mut best: Option<(usize, UpstreamLink)> = None;
        for i in 0..count {
            let status = &self.instances[(start + i) % count];
            let load = status.in_flight();
            if best.as_ref().is_some_and(|(least, _)| *least <= load) {
                continue;
            }
            if let Some(link) = status.routable_link() {
                best = Some((load, link));
            }
        }
        best.map(|(_, link)| link)
    }

    /// The upstream's state as clients see it: `ready` while any instance
    /// is; `failed` or `stopped` only when every instance is; otherwise
    /// `restarting` if any instance restarts, else `starting`.
    pub fn state(&self) -> UpstreamState {
        if self.instances.len() == 1 {
            return self.first().state();
        }
        let states: Vec<UpstreamState> = self.instances.iter().map(|s| s.state()).collect();
        let all = |state| states.iter().all(|s| *s == state);
        let any = |state| states.contains(&state);
        if any(UpstreamState::Ready) {
            UpstreamState::Ready
        } else if all(UpstreamState::Failed) {
            UpstreamState::Failed
        } else if all(UpstreamState::Stopped) {
            UpstreamState::Stopped
        } else if any(UpstreamState::Restarting) {
            UpstreamState::Restarting
        } else {
            UpstreamState::Starting
        }
    }

    /// Whether some instance may take calls now.
    pub fn has_routable(&self) -> bool {
        self.instances.iter().any(|s| s.routable_link().is_some())
    }

    /// Whether some instance has been ready since the gateway started.
    pub fn has_served(&self) -> bool {
        self.first().has_served()
    }

    /// Puts every instance in `state`.
    pub fn set_state(&self, state: UpstreamState) {
        for status in self.instances.iter() {
            status.set_state(state);
        }
    }

    /// Calls in flight on every instance.
    pub fn in_flight(&self) -> usize {
        self.instances.iter().map(|s| s.in_flight()).sum()
    }

    /// Restarts of every instance.
    pub fn restarts(&self) -> u32 {
        self.instances.iter().map(|s| s.restarts()).sum()
    }

    /// Restarts of every instance by reason, in [`RESTART_REASONS`] order.
    pub fn restarts_by_reason(&self) -> Vec<(&'static str, u32)> {
        if self.instances.len() == 1 {
            return self.first().restarts_by_reason();
        }
        let mut sums = [0u32; RESTART_REASONS.len()];
        for status in self.instances.iter() {
            for (kind, count) in status.restarts_by_reason() {
                if let Some(slot) = RESTART_REASONS.iter().position(|k| *k == kind) {
                    sums[slot] += count;
                }
            }
        }
        RESTART_REASONS
            .iter()
            .zip(sums)
            .filter(|(_, count)| *count > 0)
            .map(|(kind, count)| (*kind, count))
            .collect()
    }

    /// Why an instance last ended: one that is down first.
    pub fn last_exit(&self) -> Option<ExitReason> {
        let down = self
            .instances
            .iter()
            .filter(|s| s.state() != UpstreamState::Ready)
            .find_map(|s| s.last_exit());
        down.or_else(|| self.instances.iter().find_map(|s| s.last_exit()))
    }

    /// Counts one restart an operator asked for (on the pool as a whole).
    pub fn count_requested_restart(&self) {
        self.first().count_requested_restart();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_tickets_map_to_instances_by_running_totals() {
        let spec = PoolSpec {
            instances: 3,
            strategy: Strategy::Weighted,
            weights: vec![3, 1, 2],
            ..PoolSpec::default()
        };
        let pool = Pool::new("w", &spec);
        assert_eq!(&*pool.cumulative, &[3, 4, 6]);
        let start = |ticket: u64| pool.cumulative.partition_point(|&upto| upto <= ticket);
        let picks: Vec<usize> = (0..6).map(start).collect();
        assert_eq!(picks, vec![0, 0, 0, 1, 2, 2]);
    }

    #[test]
    fn a_pool_is_ready_while_any_instance_is_and_failed_only_when_all_are() {
        let pool = Pool::new(
            "p",
            &PoolSpec {
                instances: 2,
                ..PoolSpec::default()
            },
        );
        assert_eq!(pool.state(), UpstreamState::Starting);
        pool.instances[0].set_state(UpstreamState::Failed);
        pool.instances[1].set_state(UpstreamState::Restarting);
        assert_eq!(pool.state(), UpstreamState::Restarting);
        pool.instances[1].set_state(UpstreamState::Failed);
        assert_eq!(pool.state(), UpstreamState::Failed);
        assert!(pool.link().is_none());
        assert_eq!(pool.instances().len(), 2);
        assert_eq!(pool.instances[1].index(), 1);
    }
}
