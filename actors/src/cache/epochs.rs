//! Invalidation epochs, one per upstream (hashed into a fixed set of
//! buckets, so memory is bounded whatever names arrive). A fill remembers
//! the epoch of its upstream when it starts and is dropped if that epoch
//! moved: a list fetched before `list_changed` is never stored after it,
//! while invalidating one upstream leaves the others' fills alone.
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use super::scope::Scope;

/// Buckets; two upstreams sharing one only cost each other a dropped fill.
const BUCKETS: usize = 64;

/// The epoch of every upstream bucket.
pub(crate) struct Epochs {
    buckets: [AtomicU64; BUCKETS],
}

impl Default for Epochs {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
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

    /// Moves the epoch of every upstream `scope` can touch.
    pub(crate) fn bump(&self, scope: &Scope) {
        let upstream = match scope {
            Scope::All | Scope::Kind(_) => None,
            Scope::Upstream(upstream) | Scope::KindOf(_, upstream) => Some(&**upstream),
            Scope::Key(key) => Some(key.upstream()),
        };
        match upstream {
            Some(upstream) => {
                self.buckets[Self::bucket(upstream)].fetch_add(1, Ordering::AcqRel);
            }
            None => {
                for bucket in &self.buckets {
                    bucket.fetch_add(1, Ordering::AcqRel);
                }
            }
        }
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
}
