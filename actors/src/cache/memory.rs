//! The in-process backend: a bounded moka cache with a TTL per entry.
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use moka::notification::RemovalCause;
use serde_json::Value;

use super::key::CacheKey;
use super::scope::Scope;
use super::stats::CacheStats;

/// One stored value and how long it lives.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) value: Arc<Value>,
    pub(crate) ttl: Duration,
}

/// Reads each entry's own TTL, so kinds (and tools) can live differently long
/// in one cache.
struct EntryTtl;

impl Expiry<CacheKey, Entry> for EntryTtl {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        entry: &Entry,
        _at: Instant,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &CacheKey,
        entry: &Entry,
        _at: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// Roughly the heap bytes a JSON value holds (strings, keys, and a small
/// per-node overhead): enough to keep the cache within a byte budget.
pub(crate) fn approx_size(value: &Value) -> usize {
    const NODE: usize = 16;
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => NODE,
        Value::String(text) => NODE + text.len(),
        Value::Array(items) => NODE + items.iter().map(approx_size).sum::<usize>(),
        Value::Object(map) => {
            NODE + map
                .iter()
                .map(|(key, item)| NODE + key.len() + approx_size(item))
                .sum::<usize>()
        }
    }
}

/// The memory backend. Clones share the cache.
#[derive(Clone)]
pub(crate) struct MemoryBackend {
    cache: Cache<CacheKey, Entry>,
    stats: Arc<CacheStats>,
}

impl MemoryBackend {
    /// A cache holding at most `max_entries` and about `max_bytes` of values,
    /// reporting into `stats`. One weight serves both bounds: an entry weighs
    /// its approximate size, but never less than `max_bytes / max_entries`.
    pub(crate) fn new(max_entries: u64, max_bytes: u64, stats: Arc<CacheStats>) -> Self {
        let listener_stats = stats.clone();
        let floor = u32::try_from(max_bytes / max_entries.max(1))
            .unwrap_or(u32::MAX)
            .max(1);
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(move |_key: &CacheKey, entry: &Entry| {
                u32::try_from(approx_size(&entry.value))
                    .unwrap_or(u32::MAX)
                    .max(floor)
            })
            .expire_after(EntryTtl)
            // For `hide`: an invalidation cast to the actor must hold for
            // reads at once (e.g. a restarted upstream's old results).
            .support_invalidation_closures()
            .eviction_listener(move |key: Arc<CacheKey>, _entry, cause| {
                let kind = key.kind();
                listener_stats.removed(kind);
                match cause {
                    RemovalCause::Size => listener_stats.evicted(kind),
                    RemovalCause::Expired => listener_stats.expired(kind),
                    RemovalCause::Explicit | RemovalCause::Replaced => {}
                }
            })
            .build();
        Self { cache, stats }
    }

    pub(crate) async fn get(&self, key: &CacheKey) -> Option<Arc<Value>> {
        self.cache.get(key).await.map(|entry| entry.value)
    }

    pub(crate) async fn put(&self, key: CacheKey, entry: Entry) {
        let kind = key.kind();
        self.cache.insert(key, entry).await;
        self.stats.inserted(kind);
    }

    /// Single flight: concurrent callers for one missing key share one `fetch`.
    /// `Ok((value, fresh))`, `fresh` when this call's fetch produced it. The
    /// entry lives `ttl(&value)`; zero means it is never read back.
    pub(crate) async fn get_or_fetch<F, E>(
        &self,
        key: CacheKey,
        ttl: impl FnOnce(&Value) -> Duration,
        fetch: F,
    ) -> Result<(Arc<Value>, bool), Arc<E>>
    where
        F: Future<Output = Result<Value, E>>,
        E: Send + Sync + 'static,
    {
        let kind = key.kind();
        let entry = self
            .cache
            .entry(key)
            .or_try_insert_with(async move {
                fetch.await.map(|value| Entry {
                    ttl: ttl(&value),
                    value: Arc::new(value),
                })
            })
            .await?;
        let fresh = entry.is_fresh();
        if fresh {
            self.stats.inserted(kind);
        }
        Ok((entry.into_value().value, fresh))
    }

    /// Makes every entry in `scope` invisible to reads at once; removing them
    /// is left to [`invalidate`](Self::invalidate) and the housekeeping.
    pub(crate) fn hide(&self, scope: &Scope) {
        let scope = scope.clone();
        if let Err(err) = self
            .cache
            .invalidate_entries_if(move |key, _| scope.matches(key))
        {
            tracing::warn!(%err, "cache entries could not be hidden");
        }
    }

    pub(crate) async fn invalidate(&self, scope: &Scope) {
        if *scope == Scope::All {
            self.cache.invalidate_all();
        } else if let Scope::Key(key) = scope {
            self.cache.invalidate(key).await;
        } else {
            let doomed: Vec<Arc<CacheKey>> = self
                .cache
                .iter()
                .filter(|(key, _)| scope.matches(key))
                .map(|(key, _)| key)
                .collect();
            for key in doomed {
                self.cache.invalidate(&*key).await;
            }
        }
        // Removal notifications (and so the entry counts) follow the housekeeping.
        self.cache.run_pending_tasks().await;
    }

    /// Runs moka's housekeeping: expiry, eviction and removal notifications.
    pub(crate) async fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks().await;
    }
}
