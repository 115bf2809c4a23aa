//! `POST /api/v1/auth/login` support: short-lived HS256 session tokens
//! signed with a key kept in the store (so every replica on one PostgreSQL
//! accepts them), and the failure windows that rate-limit guessing per
//! user name and per client address.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError, users};

/// `iss` and `aud` of session tokens: a login token is accepted by the
/// management API only, never by `/mcp` (which does not know the key).
const ISSUER: &str = "bulwark-login";
const AUDIENCE: &str = "bulwark-management";
/// The `store_meta` row of the signing key.
const KEY_META: &str = "login_signing_key";

/// What a session token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionClaims {
    /// The user name.
    pub sub: String,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Expires at (Unix seconds).
    pub exp: u64,
    iss: String,
    aud: String,
}

/// Why a session could not be set up or a token made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No randomness, or the stored key is unreadable.
    #[error("login signing key: {0}")]
    Key(String),
    /// Signing failed.
    #[error("cannot sign the session token: {0}")]
    Sign(String),
}

/// Signs and checks session tokens.
pub struct Sessions {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
}

impl Sessions {
    /// Loads the signing key from `store`, creating it on first start.
    pub async fn load(store: &Store, ttl: Duration) -> Result<Self, TokenError> {
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh).map_err(|err| TokenError::Key(err.to_string()))?;
        let engine = base64::engine::general_purpose::STANDARD;
        let stored = users::meta_once(store, KEY_META, &engine.encode(fresh)).await?;
        let secret = engine
            .decode(stored)
            .map_err(|err| TokenError::Key(err.to_string()))?;
        Ok(Self {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            ttl,
        })
    }

    /// A token for `user`, and when it expires (Unix seconds).
    pub fn issue(&self, user: &str) -> Result<(String, u64), TokenError> {
        let now = unix_now();
        let claims = SessionClaims {
            sub: user.to_owned(),
            iat: now,
            exp: now + self.ttl.as_secs(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|err| TokenError::Sign(err.to_string()))?;
        Ok((token, claims.exp))
    }

    /// The claims of a valid, unexpired session token; `None` for anything
    /// else (another issuer's JWT included).
    pub fn verify(&self, token: &str) -> Option<SessionClaims> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = 0;
        jsonwebtoken::decode::<SessionClaims>(token, &self.decoding, &validation)
            .ok()
            .map(|data| data.claims)
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Failed logins counted per key (`user:NAME`, `addr:IP`) in a fixed
/// window; over the limit, logins are refused before any password check.
pub struct FailureWindows {
    window: Duration,
    counts: Mutex<HashMap<String, (Instant, u32)>>,
}

impl FailureWindows {
    /// Windows of `window` length.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Failures of `key` in the current window.
    pub fn count(&self, key: &str) -> u32 {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts
            .get(key)
            .filter(|(start, _)| start.elapsed() < self.window)
            .map_or(0, |(_, count)| *count)
    }

    /// Counts one failure of `key`; drops stale windows as it goes, so the
    /// map holds only keys that failed recently.
    pub fn fail(&self, key: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let window = self.window;
        counts.retain(|_, (start, _)| start.elapsed() < window);
        let slot = counts.entry(key.to_owned()).or_insert((Instant::now(), 0));
        slot.1 = slot.1.saturating_add(1);
    }

    /// How long until `key`'s window ends.
    pub fn retry_after(&self, key: &str) -> Duration {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.get(key).map_or(Duration::ZERO, |(start, _)| {
            self.window.saturating_sub(start.elapsed())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_count_per_key() {
        let windows = FailureWindows::new(Duration::from_secs(60));
        windows.fail("user:a");
        windows.fail("user:a");
        windows.fail("addr:1");
        assert_eq!(windows.count("user:a"), 2);
        assert_eq!(windows.count("addr:1"), 1);
        assert_eq!(windows.count("user:b"), 0);
        assert!(windows.retry_after("user:a") > Duration::from_secs(50));
    }
}
