//! The request budgets shared by every gateway replica (per key, per key and
//! upstream, per key and tool): the same GCRA as the local governor
//! limiters, one number per bucket (the theoretical arrival time) kept in
//! Redis and updated by one Lua script, so a check is one round trip and
//! atomic whichever replica asks. Redis's clock is the only clock, so
//! replicas' clocks need not agree. One connection and one outage state
//! serve every budget.
//!
//! Redis unreachable (an error, or no answer within [`OP_TIMEOUT`]) must not
//! stop traffic nor leave it unlimited: the caller falls back to its local
//! limiter, and for [`OUTAGE_BACKOFF`] after a failure Redis is not asked at
//! all, so an outage adds no latency. Each fallback is counted (metric
//! `bulwark.ratelimit.fallbacks`) and a warning is logged at most every
//! [`WARN_EVERY`].
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::time::Instant;

use crate::config::auth::Rate;

/// Where the buckets live in Redis (followed by the limit's name and the
/// bucket's key, see [`super::rate_limit`]).
pub const PREFIX: &str = "bulwark:ratelimit:";

/// Longest wait for Redis on the request path.
const OP_TIMEOUT: Duration = Duration::from_millis(250);
/// How long Redis is skipped after it failed.
const OUTAGE_BACKOFF: Duration = Duration::from_secs(2);
/// Least time between two "falling back" warnings.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// GCRA over a theoretical arrival time (TAT) in microseconds of Redis time.
/// KEYS[1]: the caller's bucket; ARGV[1]: emission interval (µs);
/// ARGV[2]: burst capacity (interval × burst, µs). Returns 0 when admitted,
/// else the microseconds until one more request fits.
const GCRA: &str = r"
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now_us then tat = now_us end
local next_tat = tat + interval
local over = next_tat - now_us - capacity
if over > 0 then return over end
redis.call('SET', KEYS[1], next_tat, 'PX', math.ceil((next_tat - now_us) / 1000))
return 0
";

/// Why the shared limiter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SharedLimitError {
    /// `backend = "redis"` without a URL here or in `[cache]`.
    #[error(
        "auth.rate_limits.backend = \"redis\" needs auth.rate_limits.redis_url or cache.redis_url"
    )]
    NoUrl,
    /// The URL does not parse (not shown: it may hold a password).
    #[error("auth.rate_limits: invalid Redis URL: {0}")]
    BadUrl(String),
}

/// One budget's GCRA parameters, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Time one request uses up: a minute over `per_minute`.
    interval_us: u64,
    /// How far ahead of now the budget may run: `interval_us` × burst.
    capacity_us: u64,
}

impl Budget {
    /// The budget of `rate` (burst defaults to `per_minute`).
    pub fn new(rate: &Rate) -> Self {
        let per_minute = u64::from(rate.per_minute.max(1));
        let burst = u64::from(rate.burst.unwrap_or(rate.per_minute).max(1));
        let interval_us = 60_000_000 / per_minute;
        Self {
            interval_us,
            capacity_us: interval_us * burst,
        }
    }
}

/// The budgets in Redis.
pub struct SharedLimit {
    client: redis::Client,
    /// Made on first use (it needs the runtime), reconnects on its own.
    conn: tokio::sync::OnceCell<ConnectionManager>,
    /// Put before every bucket's key.
    prefix: String,
    /// Redis is skipped until then after a failure.
    down_until: Mutex<Option<Instant>>,
    /// Checks answered by the local limiter because Redis was unreachable.
    fallbacks: AtomicU64,
    /// Seconds since `epoch` of the last warning, plus one (0: never).
    last_warn: AtomicU64,
    epoch: Instant,
}

/// What Redis said about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedVerdict {
    /// Within budget.
    Admit,
    /// Over budget: one more fits after this long.
    Refuse(Duration),
    /// Redis did not answer: decide locally.
    Unavailable,
}

impl SharedLimit {
    /// Budgets in Redis at `url`, their keys under `prefix`; connects on
    /// first use.
    pub fn new(url: &str, prefix: &str) -> Result<Self, SharedLimitError> {
        let client = redis::Client::open(url)
            .map_err(|err| SharedLimitError::BadUrl(crate::mask::mask(&err.to_string(), [url])))?;
        Ok(Self {
            client,
            conn: tokio::sync::OnceCell::new(),
            prefix: prefix.to_owned(),
            down_until: Mutex::new(None),
            fallbacks: AtomicU64::new(0),
            last_warn: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    /// Takes one request from the bucket `key` (under the prefix) of
    /// `budget`.
    pub async fn check(&self, key: &str, budget: Budget) -> SharedVerdict {
        let down = *self
            .down_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if down.is_some_and(|until| Instant::now() < until) {
            return self.fell_back(None);
        }
        let answer = tokio::time::timeout(OP_TIMEOUT, async {
            let mut conn = self.connection().await?.clone();
            // EVAL, not EVALSHA: the script is a few hundred bytes, and a
            // Redis restarted empty needs no reload.
            redis::cmd("EVAL")
                .arg(GCRA)
                .arg(1)
                .arg(format!("{}{key}", self.prefix))
                .arg(budget.interval_us)
                .arg(budget.capacity_us)
                .query_async::<u64>(&mut conn)
                .await
        })
        .await;
        match answer {
            Ok(Ok(0)) => SharedVerdict::Admit,
            Ok(Ok(wait_us)) => SharedVerdict::Refuse(Duration::from_micros(wait_us)),
            Ok(Err(err)) => self.fell_back(Some(err.to_string())),
            Err(_) => self.fell_back(Some(format!("no answer within {OP_TIMEOUT:?}"))),
        }
    }

    /// Checks answered locally because Redis was unreachable.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    async fn connection(&self) -> redis::RedisResult<&ConnectionManager> {
        self.conn
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(OP_TIMEOUT))
                    .set_response_timeout(Some(OP_TIMEOUT))
                    .set_number_of_retries(1)
                    .set_max_delay(OUTAGE_BACKOFF);
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            })
            .await
    }

    /// Counts a fallback; on a fresh failure backs off and maybe warns.
    fn fell_back(&self, failure: Option<String>) -> SharedVerdict {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        if let Some(err) = failure {
            *self
                .down_until
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some(Instant::now() + OUTAGE_BACKOFF);
            let now = self.epoch.elapsed().as_secs() + 1;
            let last = self.last_warn.load(Ordering::Relaxed);
            if (last == 0 || now.saturating_sub(last) >= WARN_EVERY.as_secs())
                && self
                    .last_warn
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                tracing::warn!(%err, "shared rate limit unavailable (Redis): falling back to this replica's local limiter");
            }
        }
        SharedVerdict::Unavailable
    }
}
