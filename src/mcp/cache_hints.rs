//! The caching hints (SEP-2549 `ttlMs` / `cacheScope`) on the list and read
//! results the gateway sends to 2026-07-28 clients.
//!
//! - `ttlMs` is the shortest freshness of the upstream results merged into
//!   the answer, less the time each spent in the gateway's cache; an upstream
//!   that gave none (every 2025 upstream) counts as `0`, immediately stale.
//! - `cacheScope` is `public` only when every caller gets the same answer
//!   (authentication off) and no upstream result was `private`; with
//!   authentication on, grants and guardrails make each answer the caller's.
//!
//! Legacy (session) clients get neither field, as their protocol has none.
use rmcp::RoleServer;
use rmcp::model::CacheScope;
use rmcp::service::RequestContext;
use serde_json::Value;

use crate::auth::identity::{Identity, IdentityKind};

/// Where a cached upstream result records when it was fetched (wall clock,
/// so a replica reading another's Redis entry ages it the same).
const FETCHED_AT: &str = "bulwarkFetchedAtMs";

/// Marks `value`, about to be cached, with the time it was fetched.
pub(super) fn stamp(value: &mut Value) {
    if let Value::Object(map) = value {
        map.insert(FETCHED_AT.into(), Value::from(crate::store::now_ms()));
    }
}

/// The upstream's `ttlMs` of a cached `value`, less its age in the cache.
pub(super) fn remaining(value: &Value, ttl_ms: Option<u64>) -> Option<u64> {
    let Some(fetched) = value.get(FETCHED_AT).and_then(Value::as_i64) else {
        return ttl_ms;
    };
    let age = u64::try_from(crate::store::now_ms().saturating_sub(fetched)).unwrap_or(0);
    ttl_ms.map(|ttl| ttl.saturating_sub(age))
}

/// The hints of one answer, merged from the upstream results it is made of.
#[derive(Debug, Clone, Copy)]
pub(super) struct Merge {
    ttl_ms: Option<u64>,
    private: bool,
}

impl Merge {
    /// An answer for `identity`: shared only when authentication is off.
    pub(super) fn for_caller(identity: &Identity) -> Self {
        Self {
            ttl_ms: None,
            private: identity.kind != IdentityKind::Anonymous,
        }
    }

    /// Adds one upstream result's hints.
    pub(super) fn add(&mut self, ttl_ms: Option<u64>, scope: Option<CacheScope>) {
        let ttl = ttl_ms.unwrap_or(0);
        self.ttl_ms = Some(self.ttl_ms.map_or(ttl, |shortest| shortest.min(ttl)));
        self.private |= scope == Some(CacheScope::Private);
    }

    /// The answer's `(ttlMs, cacheScope)` for the client of `context`:
    /// nothing for a legacy client, nothing for an answer made of no upstream
    /// result (rmcp then says `0` / `private`).
    pub(super) fn finish(
        self,
        context: &RequestContext<RoleServer>,
    ) -> (Option<u64>, Option<CacheScope>) {
        if !super::mrtr::is_stateless(context) {
            return (None, None);
        }
        let Some(ttl_ms) = self.ttl_ms else {
            return (None, None);
        };
        let scope = if self.private {
            CacheScope::Private
        } else {
            CacheScope::Public
        };
        (Some(ttl_ms), Some(scope))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shortest_ttl_and_any_private_result_win() {
        let mut merge = Merge {
            ttl_ms: None,
            private: false,
        };
        merge.add(Some(60_000), Some(CacheScope::Public));
        merge.add(Some(5_000), None);
        assert_eq!((merge.ttl_ms, merge.private), (Some(5_000), false));
        merge.add(None, Some(CacheScope::Private));
        assert_eq!((merge.ttl_ms, merge.private), (Some(0), true));
    }

    #[test]
    fn a_cached_result_ages() {
        let mut value = serde_json::json!({"tools": []});
        stamp(&mut value);
        assert!(remaining(&value, Some(60_000)).is_some_and(|left| left <= 60_000));
        assert_eq!(remaining(&value, None), None);
        value[FETCHED_AT] = Value::from(crate::store::now_ms() - 120_000);
        assert_eq!(remaining(&value, Some(60_000)), Some(0));
    }
}
