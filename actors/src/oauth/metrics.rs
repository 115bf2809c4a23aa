//! Counters of the token actor, read by operators; they never hold a token.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// Live counters shared by the token actor and its callers.
#[derive(Debug, Default)]
pub struct TokenMetrics {
    acquisitions: AtomicU64,
    failures: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    refreshes: AtomicU64,
    latency_us_total: AtomicU64,
    latency_us_max: AtomicU64,
}

/// A point-in-time copy of [`TokenMetrics`].
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct TokenMetricsSnapshot {
    /// Tokens obtained from a token endpoint (first fetches and refreshes).
    pub acquisitions: u64,
    /// Token requests that failed after their retries.
    pub failures: u64,
    /// Calls served from the cache.
    pub hits: u64,
    /// Calls that had to wait for a token request.
    pub misses: u64,
    /// Proactive refreshes that succeeded.
    pub refreshes: u64,
    /// Mean time of a token request, retries included, in microseconds.
    pub latency_us_mean: u64,
    /// Longest token request, in microseconds.
    pub latency_us_max: u64,
}

impl TokenMetrics {
    pub(crate) fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn finished(&self, ok: bool, refresh: bool, took: Duration) {
        if ok {
            self.acquisitions.fetch_add(1, Ordering::Relaxed);
            if refresh {
                self.refreshes.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.latency_us_total.fetch_add(us, Ordering::Relaxed);
        self.latency_us_max.fetch_max(us, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> TokenMetricsSnapshot {
        let acquisitions = self.acquisitions.load(Ordering::Relaxed);
        let failures = self.failures.load(Ordering::Relaxed);
        let requests = acquisitions + failures;
        TokenMetricsSnapshot {
            acquisitions,
            failures,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            refreshes: self.refreshes.load(Ordering::Relaxed),
            latency_us_mean: self
                .latency_us_total
                .load(Ordering::Relaxed)
                .checked_div(requests)
                .unwrap_or(0),
            latency_us_max: self.latency_us_max.load(Ordering::Relaxed),
        }
    }
}
