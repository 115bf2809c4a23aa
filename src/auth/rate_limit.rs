//! Per-caller request budgets (governor GCRA buckets), keyed on the identity
//! subject, never on the MCP session: a new session does not get a new
//! bucket. Three layers: per key (every request), per key and upstream, and
//! per key and tool for tools named in the config. With
//! `backend = "redis"` every budget is kept in Redis and shared by every
//! replica ([`super::shared_limit`]); the local buckets then only answer
//! while Redis is unreachable. Bucket keys in Redis: `per_key:SUBJECT`,
//! `per_upstream:LEN:SERVER:SUBJECT`, `per_tool:LEN:TOOL:SUBJECT` (the
//! length keeps a name holding `:` from posing as another).
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::shared_limit::{Budget, SharedLimit, SharedVerdict};
use crate::config::auth::{Rate, RateLimitsConfig};

/// Which budget ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// All requests of one caller.
    PerKey,
    /// One caller's calls to one upstream.
    PerUpstream,
    /// One caller's calls to one tool.
    PerTool,
}

impl Limit {
    /// Every limit, in the order [`RateLimits::refusals`] reports them.
    pub const ALL: [Self; 3] = [Self::PerKey, Self::PerUpstream, Self::PerTool];

    /// The name clients see (`limit` in error data).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PerKey => "per_key",
            Self::PerUpstream => "per_upstream",
            Self::PerTool => "per_tool",
        }
    }
}

/// A request over budget: which limit, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limit {} exceeded; retry in {} ms", limit.as_str(), retry_after.as_millis())]
pub struct RateLimited {
    /// The exhausted budget.
    pub limit: Limit,
    /// How long until one more request fits.
    pub retry_after: Duration,
}

/// A `[auth.rate_limits]` entry that cannot be a bucket.
#[derive(Debug, thiserror::Error)]
#[error("auth.rate_limits.{at}: per_minute and burst must be at least 1")]
pub struct BadRate {
    at: String,
}

/// Hashed with foldhash, seeded per process, as the in-flight ids are: keys
/// are authenticated callers, configured upstreams and listed tools, and
/// SipHash cost ~850 instructions of each `tools/call` (callgrind).
type Keyed<K, C> = RateLimiter<
    K,
    DefaultKeyedStateStore<K, foldhash::fast::RandomState>,
    C,
    NoOpMiddleware<<C as Clock>::Instant>,
>;

/// A caller and an upstream.
type CallerServer = (Arc<str>, Arc<str>);

/// The configured limiters.
pub struct RateLimits<C: Clock = DefaultClock> {
    clock: C,
    per_key: Option<Keyed<Arc<str>, C>>,
    per_upstream: Option<Keyed<CallerServer, C>>,
    /// By federated tool name.
    per_tool: HashMap<String, Keyed<Arc<str>, C>>,
    /// Refusals by [`Limit`], in [`Limit::ALL`] order (read by the metrics).
    refused: [AtomicU64; 3],
    /// The same budgets for Redis (one per local limiter).
    budgets: Budgets,
    /// Where the budgets are shared with the other replicas, when configured.
    shared: Option<SharedLimit>,
}

/// The configured rates as GCRA parameters for the shared limiter.
#[derive(Default)]
struct Budgets {
    per_key: Option<Budget>,
    per_upstream: Option<Budget>,
    /// By federated tool name.
    per_tool: HashMap<String, Budget>,
}

impl RateLimits {
    /// Limiters on the real clock.
    pub fn new(config: &RateLimitsConfig) -> Result<Self, BadRate> {
        Self::with_clock(config, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimits<C> {
    /// Limiters on `clock` (tests use a fake one).
    pub fn with_clock(config: &RateLimitsConfig, clock: C) -> Result<Self, BadRate> {
        Ok(Self {
            per_key: config
                .per_key
                .as_ref()
                .map(|r| limiter(r, "per_key", &clock))
                .transpose()?,
            per_upstream: config
                .per_upstream
                .as_ref()
                .map(|r| limiter(r, "per_upstream", &clock))
                .transpose()?,
            per_tool: config
                .per_tool
                .iter()
                .map(|(tool, rate)| {
                    Ok((
                        tool.clone(),
                        limiter(rate, &format!("per_tool.{tool}"), &clock)?,
                    ))
                })
                .collect::<Result<_, BadRate>>()?,
            budgets: Budgets {
                per_key: config.per_key.as_ref().map(Budget::new),
                per_upstream: config.per_upstream.as_ref().map(Budget::new),
                per_tool: config
                    .per_tool
                    .iter()
                    .map(|(tool, rate)| (tool.clone(), Budget::new(rate)))
                    .collect(),
            },
            clock,
            refused: Default::default(),
            shared: None,
        })
    }

    /// Keeps every budget in Redis (shared by every replica); the local
    /// buckets are the fallback while Redis is unreachable.
    pub fn with_shared(mut self, shared: SharedLimit) -> Self {
        self.shared = Some(shared);
        self
    }

    /// Takes one request from `subject`'s own budget: the shared one when
    /// configured and reachable, else this process's.
    pub async fn admit_key(&self, subject: &Arc<str>) -> Result<(), RateLimited> {
        let key = || format!("per_key:{subject}");
        self.admit(self.budgets.per_key, key, Limit::PerKey, || {
            self.check_key(subject)
        })
        .await
    }

    /// Takes one call to `server` (and to `tool`, its federated name, when
    /// that tool has its own limit) from `subject`'s budgets: the shared
    /// ones when configured and reachable, else this process's.
    pub async fn admit_call(
        &self,
        subject: &Arc<str>,
        server: &str,
        tool: Option<&str>,
    ) -> Result<(), RateLimited> {
        let key = || format!("per_upstream:{}:{server}:{subject}", server.len());
        self.admit(self.budgets.per_upstream, key, Limit::PerUpstream, || {
            self.check_upstream(subject, server)
        })
        .await?;
        let Some(tool) = tool else {
            return Ok(());
        };
        let key = || format!("per_tool:{}:{tool}:{subject}", tool.len());
        let budget = self.budgets.per_tool.get(tool).copied();
        self.admit(budget, key, Limit::PerTool, || {
            self.check_tool(subject, tool)
        })
        .await
    }

    /// Takes one request from the shared bucket `key` of `budget` when both
    /// the budget and Redis are there; `local` answers otherwise.
    async fn admit(
        &self,
        budget: Option<Budget>,
        key: impl FnOnce() -> String,
        limit: Limit,
        local: impl FnOnce() -> Result<(), RateLimited>,
    ) -> Result<(), RateLimited> {
        let (Some(shared), Some(budget)) = (&self.shared, budget) else {
            return local();
        };
        // Boxed: a Redis round trip is a large future, and without Redis
        // every call would still carry its room in its own future.
        match Box::pin(shared.check(&key(), budget)).await {
            SharedVerdict::Admit => Ok(()),
            SharedVerdict::Refuse(retry_after) => {
                self.refused[limit as usize].fetch_add(1, Ordering::Relaxed);
                Err(RateLimited { limit, retry_after })
            }
            SharedVerdict::Unavailable => local(),
        }
    }

    /// Checks the local limiters answered because Redis was unreachable.
    pub fn shared_fallbacks(&self) -> Option<u64> {
        self.shared.as_ref().map(SharedLimit::fallbacks)
    }

    /// Takes one request from `subject`'s own budget in this process.
    pub fn check_key(&self, subject: &Arc<str>) -> Result<(), RateLimited> {
        self.take(self.per_key.as_ref(), subject, Limit::PerKey)
    }

    /// Takes one call to `server` (and to `tool`, its federated name, when
    /// that tool has its own limit) from `subject`'s budgets in this process.
    pub fn check_call(
        &self,
        subject: &Arc<str>,
        server: &str,
        tool: Option<&str>,
    ) -> Result<(), RateLimited> {
        self.check_upstream(subject, server)?;
        tool.map_or(Ok(()), |tool| self.check_tool(subject, tool))
    }

    fn check_upstream(&self, subject: &Arc<str>, server: &str) -> Result<(), RateLimited> {
        let Some(limiter) = &self.per_upstream else {
            return Ok(());
        };
        let key = (subject.clone(), Arc::from(server));
        self.take(Some(limiter), &key, Limit::PerUpstream)
    }

    fn check_tool(&self, subject: &Arc<str>, tool: &str) -> Result<(), RateLimited> {
        self.take(self.per_tool.get(tool), subject, Limit::PerTool)
    }

    fn take<K: Clone + std::hash::Hash + Eq>(
        &self,
        limiter: Option<&Keyed<K, C>>,
        key: &K,
        limit: Limit,
    ) -> Result<(), RateLimited> {
        match limiter.map(|l| l.check_key(key)) {
            Some(Err(not_until)) => {
                self.refused[limit as usize].fetch_add(1, Ordering::Relaxed);
                Err(RateLimited {
                    limit,
                    retry_after: not_until.wait_time_from(self.clock.now()),
                })
            }
            _ => Ok(()),
        }
    }

    /// Requests refused since start, per limit.
    pub fn refusals(&self) -> [(Limit, u64); 3] {
        Limit::ALL.map(|limit| (limit, self.refused[limit as usize].load(Ordering::Relaxed)))
    }

    /// Drops buckets that are full again (idle callers), so keys do not pile up.
    pub fn prune(&self) {
        if let Some(l) = &self.per_key {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.per_upstream {
            l.retain_recent();
            l.shrink_to_fit();
        }
        for l in self.per_tool.values() {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// Buckets held (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.per_key.as_ref().map_or(0, |l| l.len())
            + self.per_upstream.as_ref().map_or(0, |l| l.len())
            + self.per_tool.values().map(|l| l.len()).sum::<usize>()
    }
}

fn limiter<K: Clone + std::hash::Hash + Eq, C: Clock + Clone>(
    rate: &Rate,
    at: &str,
    clock: &C,
) -> Result<Keyed<K, C>, BadRate> {
    quota(rate)
        .map(|q| RateLimiter::new(q, DefaultKeyedStateStore::default(), clock.clone()))
        .ok_or_else(|| BadRate { at: at.to_owned() })
}

fn quota(rate: &Rate) -> Option<Quota> {
    let per_minute = NonZeroU32::new(rate.per_minute)?;
    let burst = NonZeroU32::new(rate.burst.unwrap_or(rate.per_minute))?;
    Some(Quota::per_minute(per_minute).allow_burst(burst))
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn config(per_key: Option<(u32, u32)>, per_upstream: Option<(u32, u32)>) -> RateLimitsConfig {
        let rate = |(per_minute, burst)| Rate {
            per_minute,
            burst: Some(burst),
        };
        RateLimitsConfig {
            per_key: per_key.map(rate),
            per_upstream: per_upstream.map(rate),
            per_tool: [("echo__slow".to_owned(), rate((60, 1)))].into(),
            ..RateLimitsConfig::default()
        }
    }

    #[test]
    fn burst_then_refusal_with_retry_after_then_recovery() {
        let clock = FakeRelativeClock::default();
        let limits = RateLimits::with_clock(&config(Some((60, 2)), None), clock.clone()).unwrap();
        let alice: Arc<str> = "key:alice".into();
        assert!(limits.check_key(&alice).is_ok());
        assert!(limits.check_key(&alice).is_ok());
        let refused = limits.check_key(&alice).unwrap_err();
        assert_eq!(refused.limit, Limit::PerKey);
        assert_eq!(refused.retry_after, Duration::from_secs(1));
        assert!(refused.to_string().contains("per_key"), "{refused}");
        // Another caller has its own bucket.
        assert!(limits.check_key(&"key:bob".into()).is_ok());
        clock.advance(Duration::from_secs(1));
        assert!(limits.check_key(&alice).is_ok());
        assert!(limits.check_key(&alice).is_err());
    }

    #[test]
    fn upstream_and_tool_budgets_are_separate() {
        let clock = FakeRelativeClock::default();
        let limits = RateLimits::with_clock(&config(None, Some((60, 2))), clock.clone()).unwrap();
        let alice: Arc<str> = "key:alice".into();
        assert!(
            limits
                .check_call(&alice, "echo", Some("echo__slow"))
                .is_ok()
        );
        let refused = limits
            .check_call(&alice, "echo", Some("echo__slow"))
            .unwrap_err();
        assert_eq!(refused.limit, Limit::PerTool);
        // The refused tool call still took from the upstream budget: 2 of 2 used.
        assert_eq!(
            limits
                .check_call(&alice, "echo", Some("echo__echo"))
                .unwrap_err()
                .limit,
            Limit::PerUpstream
        );
        assert!(limits.check_call(&alice, "time", None).is_ok());
        // No per-key limit configured: never refused.
        for _ in 0..100 {
            assert!(limits.check_key(&alice).is_ok());
        }
    }

    #[test]
    fn idle_buckets_are_pruned() {
        let clock = FakeRelativeClock::default();
        let limits = RateLimits::with_clock(&config(Some((60, 5)), None), clock.clone()).unwrap();
        for caller in ["a", "b", "c"] {
            limits.check_key(&caller.into()).unwrap();
        }
        assert_eq!(limits.tracked(), 3);
        clock.advance(Duration::from_secs(10));
        limits.prune();
        assert_eq!(limits.tracked(), 0);
    }

    #[test]
    fn zero_rates_are_refused_naming_the_entry() {
        let mut bad = config(None, None);
        bad.per_upstream = Some(Rate {
            per_minute: 0,
            burst: None,
        });
        let err = RateLimits::new(&bad).err().unwrap().to_string();
        assert!(err.contains("per_upstream"), "{err}");
    }
}
