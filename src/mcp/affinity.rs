//! Session affinity: a client session's calls to a pooled upstream with
//! `affinity = "session"` go to one instance, the one its first call went
//! to. When that instance dies (or is ejected) the next call re-binds the
//! session to another; the call that was in flight on it got the usual
//! "lost" error. One table per client session, touched only for such pools.
use std::sync::{Arc, Mutex};

use bulwark_actors::upstream::{Affinity, Pool, UpstreamLink};

/// The instance session each affine pool serves this client session on.
#[derive(Debug, Default)]
pub struct Bindings(Mutex<Vec<(Arc<str>, u64)>>);

impl Bindings {
    /// The link a call of this client session to `pool` goes over.
    pub fn link(&self, pool: &Pool) -> Option<UpstreamLink> {
        if pool.affinity() != Affinity::Session || pool.instances().len() == 1 {
            return pool.link();
        }
        let mut bound = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let slot = bound
            .iter()
            .position(|(server, _)| **server == *pool.name());
        if let Some(link) = slot.and_then(|i| pool.bound_link(bound[i].1)) {
            return Some(link);
        }
        let link = pool.link()?;
        match slot {
            Some(i) => {
                tracing::info!(
                    server = pool.name(),
                    from = bound[i].1,
                    to = link.session(),
                    "client session re-bound to another instance"
                );
                bound[i].1 = link.session();
            }
            None => bound.push((pool.name_arc(), link.session())),
        }
        Some(link)
    }
}
