//! Credentials already checked: a request with the same API key or JWT as a
//! recent one skips the store lookup, the signature check and rebuilding its
//! [`Identity`]. Keyed by the credential's SHA-256, never the credential.
//! Keys stay for [`KEY_TTL`], tokens until their `exp` (at most
//! [`TOKEN_TTL`]), and neither outlives the credential store's generation:
//! a revocation or grant change drops them all at once.
use std::time::{Duration, Instant};

use dashmap::DashMap;

use super::identity::Identity;
use super::keys::KeyHash;

/// How long a resolved API key is trusted without asking the store again.
pub const KEY_TTL: Duration = Duration::from_secs(1);
/// The longest a verified token is trusted without checking it again (key
/// rotation at the identity provider lands within it).
pub const TOKEN_TTL: Duration = Duration::from_secs(60);
/// Entries kept before expired ones are dropped (and, if still full, all).
const MAX_ENTRIES: usize = 10_000;

struct Entry {
    /// Milliseconds since `epoch` until which the entry holds.
    until_ms: u64,
    /// The credential store's generation it was resolved under.
    generation: u64,
    identity: Identity,
}

/// Recently verified credentials and who they are.
pub struct Verified {
    epoch: Instant,
    entries: DashMap<KeyHash, Entry, foldhash::fast::RandomState>,
}

impl Default for Verified {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            entries: DashMap::default(),
        }
    }
}

impl Verified {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Who the credential with this digest is, if verified under
    /// `generation` and still fresh.
    pub fn get(&self, digest: &KeyHash, generation: u64) -> Option<Identity> {
        let entry = self.entries.get(digest)?;
        (entry.generation == generation && entry.until_ms > self.now_ms())
            .then(|| entry.identity.clone())
    }

    /// Remembers a credential verified under `generation` for `ttl`.
    pub fn insert(&self, digest: KeyHash, generation: u64, identity: Identity, ttl: Duration) {
        let now = self.now_ms();
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.retain(|_, entry| entry.until_ms > now);
            if self.entries.len() >= MAX_ENTRIES {
                self.entries.clear();
            }
        }
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.entries.insert(
            digest,
            Entry {
                until_ms: now.saturating_add(ttl_ms),
                generation,
                identity,
            },
        );
    }
}

/// How long a verified JWT may be trusted: until its `exp` (read from the
/// already verified payload), at most [`TOKEN_TTL`]; zero when unreadable.
pub fn token_ttl(token: &str) -> Duration {
    use base64::Engine;
    let exp = token
        .split('.')
        .nth(1)
        .and_then(|payload| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .ok()
        })
        .and_then(|json| serde_json::from_slice::<serde_json::Value>(&json).ok())
        .and_then(|claims| claims.get("exp")?.as_u64());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match exp {
        Some(exp) if exp > now => Duration::from_secs(exp - now).min(TOKEN_TTL),
        _ => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire() {
        let verified = Verified::default();
        let key = KeyHash::of("bk_x");
        verified.insert(key, 7, Identity::anonymous(), Duration::from_secs(60));
        assert!(verified.get(&key, 7).is_some());
        assert!(verified.get(&key, 8).is_none(), "a new generation drops it");
        verified.insert(key, 7, Identity::anonymous(), Duration::ZERO);
        assert!(verified.get(&key, 7).is_none());
        assert!(verified.get(&KeyHash::of("bk_y"), 7).is_none());
    }

    #[test]
    fn token_ttl_reads_exp_and_caps_it() {
        use base64::Engine;
        let encode = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let token = |exp: u64| format!("h.{}.s", encode(serde_json::json!({"exp": exp})));
        assert_eq!(token_ttl(&token(now + 3600)), TOKEN_TTL);
        let soon = token_ttl(&token(now + 10));
        assert!(soon <= Duration::from_secs(10) && soon >= Duration::from_secs(8));
        assert_eq!(token_ttl(&token(now - 1)), Duration::ZERO);
        assert_eq!(token_ttl("not-a-jwt"), Duration::ZERO);
    }
}
