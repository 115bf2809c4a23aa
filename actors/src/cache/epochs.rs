//! Invalidation epochs, one per upstream (hashed into a fixed set of
//! buckets, so memory is bounded whatever names arrive). A fill remembers
//! the epoch of its upstream when it starts and is dropped if that epoch
//! moved: a list fetched before `list_changed` is never stored after it,
//! while invalidating one upstream leaves the others' fills alone.
//!
//! A bucket is also *held* while an invalidation sent to the actor is not
//! applied yet: Redis keeps the entries until the actor deletes them, and a
//! read in between (a call right after an upstream restarted) must not see
//! the previous instance's results.
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::scope::Scope;

/// Buckets; two upstreams sharing one only cost each other a dropped fill.
const BUCKETS: usize = 64;

/// The epoch of every upstream bucket.
pub(crate) struct Epochs {
    buckets: [AtomicU64; BUCKETS],
    /// Invalidations sent and not applied yet, per bucket.
    held: [AtomicU64; BUCKETS],
}

impl Default for Epochs {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            held: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// A pending invalidation's hold on its buckets, released when dropped
/// (applied, or lost with an actor that stopped).
pub struct Hold {
    epochs: Arc<Epochs>,
    bucket: Option<usize>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.epochs.each(self.bucket, |held| {
            held.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

impl Epochs {
    fn bucket(upstream: &str) -> usize {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        upstream.hash(&mut hasher);
        // The modulo keeps the value below BUCKETS, so the cast cannot truncate.
        (hasher.finish() % BUCKETS as u64) as usize
    }

    /// The current epoch of `upstream`.
    pub(crate) fn of(&self, upstream: &str) -> u64 {
        self.buckets[Self::bucket(upstream)].load(Ordering::Acquire)
    }

    /// The one bucket `scope` touches, or `None` for all of them.
    fn bucket_of(scope: &Scope) -> Option<usize> {
        match scope {
            Scope::All | Scope::Kind(_) => None,
            Scope::Upstream(upstream) | Scope::KindOf(_, upstream) => Some(Self::bucket(upstream)),
            Scope::Key(key) => Some(Self::bucket(key.upstream())),
        }
    }

    /// Applies `f` to `bucket`'s hold counter, or to every one.
    fn each(&self, bucket: Option<usize>, f: impl Fn(&AtomicU64)) {
        match bucket {
            Some(bucket) => f(&self.held[bucket]),
            None => self.held.iter().for_each(f),
        }
    }

    /// Moves the epoch of every upstream `scope` can touch.
    pub(crate) fn bump(&self, scope: &Scope) {
        match Self::bucket_of(scope) {
            Some(bucket) => {
                self.buckets[bucket].fetch_add(1, Ordering::AcqRel);
            }
            None => {
                for bucket in &self.buckets {
                    bucket.fetch_add(1, Ordering::AcqRel);
                }
            }
        }
    }

    /// Holds every upstream `scope` can touch until the returned guard drops.
    pub(crate) fn hold(self: &Arc<Self>, scope: &Scope) -> Hold {
        let bucket = Self::bucket_of(scope);
        self.each(bucket, |held| {
            held.fetch_add(1, Ordering::AcqRel);
        });
        Hold {
            epochs: self.clone(),
            bucket,
        }
    }

    /// Whether an invalidation that may touch `upstream` is not applied yet.
    pub(crate) fn held(&self, upstream: &str) -> bool {
        self.held[Self::bucket(upstream)].load(Ordering::Acquire) > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::CacheKind;

    #[test]
    fn invalidating_one_upstream_leaves_another_alone() {
        let epochs = Epochs::default();
        // Two names in different buckets.
        let (a, b) = (0..)
            .map(|i| format!("server-{i}"))
            .map(|name| (Epochs::bucket("a"), name))
            .find(|(bucket, name)| *bucket != Epochs::bucket(name))
            .map(|(_, name)| ("a".to_owned(), name))
            .unwrap();
        let before = (epochs.of(&a), epochs.of(&b));
        epochs.bump(&Scope::KindOf(CacheKind::Tools, a.as_str().into()));
        assert_ne!(epochs.of(&a), before.0);
        assert_eq!(epochs.of(&b), before.1);
        epochs.bump(&Scope::All);
        assert_ne!(epochs.of(&b), before.1);
    }

    #[test]
    fn a_scope_is_held_until_every_hold_on_it_is_dropped() {
        let epochs = Arc::new(Epochs::default());
        assert!(!epochs.held("a"));
        let one = epochs.hold(&Scope::Upstream("a".into()));
        assert!(epochs.held("a"));
        let all = epochs.hold(&Scope::All);
        drop(one);
        assert!(epochs.held("a"), "still held by the invalidation of all");
        drop(all);
        assert!(!epochs.held("a"));
    }
}
