//! JSON-RPC ids in flight per session: a second request with the id of one
//! still running is answered with an error, since its answer could never be
//! told apart (rmcp would leave one of them waiting for ever).
use std::sync::Arc;

use dashmap::DashSet;

/// `(session, id)` pairs of requests in flight.
///
/// Hashed with foldhash: request ids are the client's choice, but only an
/// authenticated one's, on its own session, and foldhash is seeded per
/// process; SipHash cost ~500 instructions per claim and release.
#[derive(Default)]
pub struct InFlight {
    ids: DashSet<Key, foldhash::fast::RandomState>,
}

/// A session id and a request id joined by NUL (neither holds one: session
/// ids are visible ASCII, and an id is its canonical JSON text), in one
/// allocation that the set and the claim share.
type Key = Arc<[u8]>;

/// Held while a request is in flight; frees its id when dropped.
pub struct Claim {
    owner: Arc<InFlight>,
    key: Key,
}

impl InFlight {
    /// Claims `id` on `session`, or `None` when it is already in flight.
    pub fn claim(self: &Arc<Self>, session: &str, id: &str) -> Option<Claim> {
        // Joined in a buffer of the right size: collecting the bytes one by
        // one grew a `Vec` several times before the `Arc` copy.
        let mut joined = Vec::with_capacity(session.len() + 1 + id.len());
        joined.extend_from_slice(session.as_bytes());
        joined.push(0);
        joined.extend_from_slice(id.as_bytes());
        let key: Key = Arc::from(joined);
        self.ids.insert(key.clone()).then(|| Claim {
            owner: self.clone(),
            key,
        })
    }

    /// Requests in flight.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.owner.ids.remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_claimed_once_per_session_until_released() {
        let inflight = Arc::new(InFlight::default());
        let first = inflight.claim("s1", "1").unwrap();
        assert!(inflight.claim("s1", "1").is_none());
        let other = inflight.claim("s2", "1").unwrap();
        drop(first);
        assert!(inflight.claim("s1", "1").is_some());
        drop(other);
        assert!(inflight.is_empty());
        // The join cannot make two pairs one.
        let _ab = inflight.claim("a", "b1").unwrap();
        assert!(inflight.claim("ab", "1").is_some());
    }
}
