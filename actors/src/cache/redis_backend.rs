//! The shared backend: Redis through a `ConnectionManager` (reconnects on its
//! own), every operation bounded by `op_timeout`.
//!
//! An outage must cost calls nothing: a failed or slow operation counts as a
//! miss (and an error), and for `outage_backoff` afterwards operations skip
//! Redis entirely, so a dead Redis adds no latency. The warning is logged at
//! most once per [`WARN_EVERY`].
//!
//! Invalidation is SCAN MATCH on the scope's key prefix plus UNLINK, batch by
//! batch. A generation counter per scope would make invalidation O(1), but
//! every read would then need a second round trip (or a locally cached
//! generation that other replicas can't bump in time); invalidations are rare
//! (list_changed, restarts, explicit clears) and reads are the hot path.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_json::Value;
use tokio::time::Instant;

use super::key::CacheKey;
use super::kind::CacheKind;
use super::scope::Scope;
use super::stats::CacheStats;

/// Least time between two "Redis unavailable" warnings.
const WARN_EVERY: Duration = Duration::from_secs(30);
/// Keys asked for per SCAN step.
const SCAN_COUNT: usize = 500;
/// An invalidation may scan many keys; it gets this many op timeouts.
const INVALIDATE_TIMEOUT_FACTOR: u32 = 40;

/// The Redis backend.
pub(crate) struct RedisBackend {
    client: redis::Client,
    /// Created and published by the `CacheActor`; `None` until then (reads miss).
    conn: RwLock<Option<ConnectionManager>>,
    prefix: String,
    op_timeout: Duration,
    outage_backoff: Duration,
    /// Redis is skipped until this moment after an error.
    down_until: Mutex<Option<Instant>>,
    /// Seconds since `epoch` of the last warning, plus one (0: never warned).
    last_warn: AtomicU64,
    epoch: Instant,
    stats: Arc<CacheStats>,
}

/// Why a Redis operation produced nothing.
#[derive(Debug, thiserror::Error)]
enum OpError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("stored value is not JSON: {0}")]
    Decode(#[from] serde_json::Error),
}

impl RedisBackend {
    /// Parses the URL; connects nothing yet.
    pub(crate) fn new(
        url: &str,
        prefix: String,
        op_timeout: Duration,
        outage_backoff: Duration,
        stats: Arc<CacheStats>,
    ) -> Result<Self, redis::RedisError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            conn: RwLock::new(None),
            prefix,
            op_timeout,
            outage_backoff,
            down_until: Mutex::new(None),
            last_warn: AtomicU64::new(0),
            epoch: Instant::now(),
            stats,
        })
    }

    /// Creates the connection manager without waiting for a connection, so a
    /// Redis that refuses connections does not hold up startup.
    pub(crate) fn connect(&self) -> Result<(), redis::RedisError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.op_timeout))
            .set_response_timeout(Some(self.op_timeout))
            .set_number_of_retries(1)
            .set_max_delay(self.outage_backoff);
        let manager = ConnectionManager::new_lazy_with_config(self.client.clone(), config)?;
        *self.conn.write().unwrap_or_else(PoisonError::into_inner) = Some(manager);
        Ok(())
    }

    /// Forgets the connection (the actor stopped); reads miss until the next one.
    pub(crate) fn disconnect(&self) {
        *self.conn.write().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The connection to use now, or `None` while disconnected or backing off.
    fn conn(&self) -> Option<ConnectionManager> {
        let down = *self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if down.is_some_and(|until| Instant::now() < until) {
            return None;
        }
        self.conn
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// PING within the op timeout: whether Redis answers now.
    pub(crate) async fn ping(&self) -> Result<(), String> {
        let mut conn = self
            .conn()
            .ok_or("unavailable (not connected, or backing off after an error)")?;
        match tokio::time::timeout(
            self.op_timeout,
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.op_timeout)),
        }
    }

    pub(crate) async fn get(&self, key: &CacheKey) -> Option<Arc<Value>> {
        let mut conn = self.conn()?;
        let redis_key = key.redis_key(&self.prefix);
        let result = self
            .bounded(self.op_timeout, async {
                let bytes: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(&redis_key)
                    .query_async(&mut conn)
                    .await?;
                Ok(match bytes {
                    Some(bytes) => Some(serde_json::from_slice::<Value>(&bytes)?),
                    None => None,
                })
            })
            .await;
        self.settle(key.kind(), "get", result)
            .flatten()
            .map(Arc::new)
    }

    pub(crate) async fn put(&self, key: &CacheKey, value: &Value, ttl: Duration) {
        let Some(mut conn) = self.conn() else { return };
        let ttl_ms = ttl.as_millis().max(1) as u64;
        let result = self
            .bounded(self.op_timeout, async {
                let bytes = serde_json::to_vec(value)?;
                let () = redis::cmd("SET")
                    .arg(key.redis_key(&self.prefix))
                    .arg(bytes)
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async(&mut conn)
                    .await?;
                Ok(())
            })
            .await;
        self.settle(key.kind(), "put", result);
    }

    /// Deletes every key of `scope`; returns how many went.
    pub(crate) async fn invalidate(&self, scope: &Scope) -> Option<u64> {
        let mut conn = self.conn()?;
        let pattern = scope.redis_pattern(&self.prefix);
        let result = self
            .bounded(self.op_timeout * INVALIDATE_TIMEOUT_FACTOR, async {
                let mut cursor: u64 = 0;
                let mut removed = 0u64;
                loop {
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(SCAN_COUNT)
                        .query_async(&mut conn)
                        .await?;
                    if !keys.is_empty() {
                        let n: u64 = redis::cmd("UNLINK")
                            .arg(&keys)
                            .query_async(&mut conn)
                            .await?;
                        removed += n;
                    }
                    if next == 0 {
                        return Ok(removed);
                    }
                    cursor = next;
                }
            })
            .await;
        let kind = match scope {
            Scope::Kind(kind) | Scope::KindOf(kind, _) => *kind,
            Scope::Key(key) => key.kind(),
            // Counted once, under the kind most reads go to.
            Scope::All | Scope::Upstream(_) => CacheKind::Tools,
        };
        self.settle(kind, "invalidate", result)
    }

    async fn bounded<T>(
        &self,
        limit: Duration,
        op: impl Future<Output = Result<T, OpError>>,
    ) -> Result<T, OpError> {
        tokio::time::timeout(limit, op)
            .await
            .unwrap_or(Err(OpError::Timeout(limit)))
    }

    /// Turns an operation's error into a counted error, a backoff and maybe a warning.
    fn settle<T>(&self, kind: CacheKind, op: &str, result: Result<T, OpError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.stats.error(kind);
                if !matches!(error, OpError::Decode(_)) {
                    *self
                        .down_until
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) =
                        Some(Instant::now() + self.outage_backoff);
                }
                self.warn_rate_limited(op, &error);
                None
            }
        }
    }

    fn warn_rate_limited(&self, op: &str, error: &OpError) {
        let now = self.epoch.elapsed().as_secs() + 1;
        let last = self.last_warn.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < WARN_EVERY.as_secs() {
            return;
        }
        if self
            .last_warn
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            // The URL may carry a password: name the operation, not the address.
            tracing::warn!(op, %error, "redis cache unavailable; serving misses");
        }
    }
}
