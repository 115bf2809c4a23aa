//! The restart policy: one-for-one, at most N restarts in a window, and
//! exponential backoff with jitter between restarts. Deciding is kept apart
//! from doing: [`RestartTracker`] only answers "restart after how long, or
//! give up"; the supervisor acts on the answer.
use std::collections::VecDeque;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Restart settings of one upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestartPolicy {
    /// Restarts allowed within `window_secs` before the server is `failed`.
    pub max_restarts: u32,
    /// The sliding window restarts are counted in, in seconds.
    pub window_secs: u64,
    /// First backoff delay, in milliseconds.
    pub backoff_min_ms: u64,
    /// Largest backoff delay, in milliseconds.
    pub backoff_max_ms: u64,
    /// How often a `failed` server is probed (half-open), in seconds.
    pub probe_interval_secs: u64,
    /// How long an instance may take to finish the MCP handshake before it
    /// counts as failed, in seconds.
    pub handshake_timeout_secs: u64,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            window_secs: 60,
            backoff_min_ms: 100,
            backoff_max_ms: 30_000,
            probe_interval_secs: 30,
            handshake_timeout_secs: 30,
        }
    }
}

impl RestartPolicy {
    /// The window restarts are counted in.
    pub fn window(&self) -> Duration {
        Duration::from_secs(self.window_secs)
    }

    /// Time between probes of a failed server.
    pub fn probe_interval(&self) -> Duration {
        Duration::from_secs(self.probe_interval_secs)
    }

    /// How long the MCP handshake may take.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs)
    }

    fn backoff(&self) -> ExponentialBackoff {
        ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(self.backoff_min_ms))
            .with_max_delay(Duration::from_millis(self.backoff_max_ms))
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
    }
}

/// What to do about a failed instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start a new instance after this delay.
    Restart(Duration),
    /// The restart limit is reached: open the circuit.
    GiveUp,
}

/// Counts failures of one upstream and turns them into decisions.
#[derive(Debug)]
pub struct RestartTracker {
    policy: RestartPolicy,
    recent: VecDeque<Instant>,
    delays: ExponentialBackoff,
}

impl RestartTracker {
    /// A tracker with no failures recorded.
    pub fn new(policy: RestartPolicy) -> Self {
        let delays = policy.backoff();
        Self {
            policy,
            recent: VecDeque::new(),
            delays,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &RestartPolicy {
        &self.policy
    }

    /// Records a failure at `now` and decides.
    ///
    /// The first failure after a quiet window restarts at once: a lone crash
    /// should cost clients only the upstream's start time. Failures that
    /// follow it back off exponentially from `backoff_min_ms`.
    pub fn on_failure(&mut self, now: Instant) -> Decision {
        let window = self.policy.window();
        while self
            .recent
            .front()
            .is_some_and(|at| now.duration_since(*at) >= window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.policy.max_restarts as usize {
            return Decision::GiveUp;
        }
        let delay = if self.recent.is_empty() {
            self.delays = self.policy.backoff();
            Duration::ZERO
        } else {
            self.delays
                .next()
                .unwrap_or(Duration::from_millis(self.policy.backoff_max_ms))
        };
        self.recent.push_back(now);
        Decision::Restart(delay)
    }

    /// Forgets past failures, after a probe brought a failed server back.
    pub fn reset(&mut self) {
        self.recent.clear();
        self.delays = self.policy.backoff();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy {
            max_restarts: 3,
            window_secs: 10,
            backoff_min_ms: 100,
            backoff_max_ms: 1_000,
            probe_interval_secs: 5,
            handshake_timeout_secs: 30,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn first_failure_restarts_at_once_then_backs_off() {
        let mut tracker = RestartTracker::new(policy());
        let now = Instant::now();
        assert_eq!(tracker.on_failure(now), Decision::Restart(Duration::ZERO));
        let Decision::Restart(second) = tracker.on_failure(now) else {
            panic!("expected a restart");
        };
        // Jitter adds up to one more base delay.
        assert!(second >= Duration::from_millis(100) && second < Duration::from_millis(200));
        let Decision::Restart(third) = tracker.on_failure(now) else {
            panic!("expected a restart");
        };
        assert!(third >= Duration::from_millis(200) && third < Duration::from_millis(400));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_past_the_limit_within_the_window() {
        let mut tracker = RestartTracker::new(policy());
        let now = Instant::now();
        for _ in 0..3 {
            assert!(matches!(tracker.on_failure(now), Decision::Restart(_)));
        }
        assert_eq!(tracker.on_failure(now), Decision::GiveUp);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_older_than_the_window_are_forgotten() {
        let mut tracker = RestartTracker::new(policy());
        let start = Instant::now();
        for _ in 0..3 {
            tracker.on_failure(start);
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(
            tracker.on_failure(Instant::now()),
            Decision::Restart(Duration::ZERO)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_is_capped() {
        let mut tracker = RestartTracker::new(RestartPolicy {
            max_restarts: 100,
            ..policy()
        });
        let now = Instant::now();
        let mut last = Duration::ZERO;
        for _ in 0..20 {
            if let Decision::Restart(delay) = tracker.on_failure(now) {
                last = delay;
            }
        }
        assert!(last <= Duration::from_millis(2_000), "{last:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn reset_forgets_everything() {
        let mut tracker = RestartTracker::new(policy());
        let now = Instant::now();
        for _ in 0..3 {
            tracker.on_failure(now);
        }
        tracker.reset();
        assert_eq!(tracker.on_failure(now), Decision::Restart(Duration::ZERO));
    }
}
