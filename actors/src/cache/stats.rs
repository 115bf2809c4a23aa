//! Cache statistics per kind: atomics bumped on the hot path, read as a
//! serialisable snapshot by the API and the gateway's `cache_status` tool.
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde::Serialize;

use super::kind::CacheKind;

/// Counters of one kind.
#[derive(Debug, Default)]
struct KindCounters {
    hits: AtomicU64,
    misses: AtomicU64,
    /// Signed: removals of entries counted before a restart of the counters
    /// may briefly outrun inserts.
    entries: AtomicI64,
    evictions: AtomicU64,
    expirations: AtomicU64,
    errors: AtomicU64,
}

/// Counters of every kind.
#[derive(Debug, Default)]
pub struct CacheStats {
    kinds: [KindCounters; CacheKind::ALL.len()],
}

impl CacheStats {
    fn of(&self, kind: CacheKind) -> &KindCounters {
        &self.kinds[kind.index()]
    }

    pub(crate) fn hit(&self, kind: CacheKind) {
        self.of(kind).hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn miss(&self, kind: CacheKind) {
        self.of(kind).misses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn error(&self, kind: CacheKind) {
        self.of(kind).errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn inserted(&self, kind: CacheKind) {
        self.of(kind).entries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn removed(&self, kind: CacheKind) {
        self.of(kind).entries.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn evicted(&self, kind: CacheKind) {
        self.of(kind).evictions.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn expired(&self, kind: CacheKind) {
        self.of(kind).expirations.fetch_add(1, Ordering::Relaxed);
    }

    /// A copy of every counter. `entries` is `None` where the backend cannot
    /// count them cheaply (Redis is shared with other replicas).
    pub fn snapshot(&self, count_entries: bool) -> StatsSnapshot {
        let kinds = CacheKind::ALL
            .iter()
            .map(|&kind| {
                let c = self.of(kind);
                KindStats {
                    kind,
                    hits: c.hits.load(Ordering::Relaxed),
                    misses: c.misses.load(Ordering::Relaxed),
                    entries: count_entries.then(|| c.entries.load(Ordering::Relaxed).max(0) as u64),
                    evictions: c.evictions.load(Ordering::Relaxed),
                    expirations: c.expirations.load(Ordering::Relaxed),
                    errors: c.errors.load(Ordering::Relaxed),
                }
            })
            .collect();
        StatsSnapshot { kinds }
    }
}

/// Statistics of one kind at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KindStats {
    /// The kind.
    pub kind: CacheKind,
    /// Reads answered from the cache.
    pub hits: u64,
    /// Reads that found nothing (including reads skipped during an outage).
    pub misses: u64,
    /// Live entries in this process's memory backend; `None` on Redis.
    pub entries: Option<u64>,
    /// Entries evicted to stay within `max_entries`.
    pub evictions: u64,
    /// Entries dropped because their TTL ran out.
    pub expirations: u64,
    /// Backend operations that failed or timed out.
    pub errors: u64,
}

/// Statistics of every kind, in [`CacheKind::ALL`] order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// One row per kind.
    pub kinds: Vec<KindStats>,
}

impl StatsSnapshot {
    /// The row of `kind`.
    pub fn kind(&self, kind: CacheKind) -> &KindStats {
        &self.kinds[kind.index()]
    }
}
