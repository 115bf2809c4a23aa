//! The identity provider's keys (JWKS), cached. Fetched over HTTPS only
//! (plain http on loopback, for tests), never following a redirect, with one
//! HTTP client and a bounded body. Past the TTL the cached keys keep serving
//! while one background refresh runs (stale-while-revalidate); only a token
//! naming an unknown `kid` waits for a fetch, at most once per `min_refetch`.
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};

use super::JwtError;

const TIMEOUT: Duration = Duration::from_secs(5);
/// A JWKS is a few keys; a provider sending more is broken or hostile.
const MAX_BODY: usize = 256 * 1024;

/// Why a JWKS source cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum JwksSetupError {
    /// `auth.jwt.jwks_url` does not parse.
    #[error("auth.jwt.jwks_url {0:?} is not a URL")]
    NotAUrl(String),
    /// `auth.jwt.jwks_url` is plain http beyond loopback (or another scheme).
    #[error("auth.jwt.jwks_url must use https (plain http only on loopback)")]
    Insecure,
    /// The HTTP client could not be built.
    #[error("cannot build the JWKS HTTP client: {0}")]
    Client(String),
}

/// Checks that `url` may serve keys: https, or http on loopback.
pub fn check_url(url: &str) -> Result<url::Url, JwksSetupError> {
    let parsed = url::Url::parse(url).map_err(|_| JwksSetupError::NotAUrl(url.to_owned()))?;
    if !bulwark_actors::oauth::is_allowed_endpoint(&parsed) {
        return Err(JwksSetupError::Insecure);
    }
    Ok(parsed)
}

type KeyMap = HashMap<String, (DecodingKey, Option<Algorithm>)>;

/// One fetched key set.
struct KeySet {
    keys: KeyMap,
    fetched: Instant,
}

impl KeySet {
    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
        let (key, key_alg) = match kid {
            Some(kid) => self.keys.get(kid)?,
            // Without a kid only a single-key set is unambiguous.
            None if self.keys.len() == 1 => self.keys.values().next()?,
            None => return None,
        };
        let fits = key.family() == alg.family() && key_alg.is_none_or(|a| a == alg);
        fits.then(|| key.clone())
    }
}

/// The provider's keys, cached; cheap to clone (one shared cache).
#[derive(Clone)]
pub struct Jwks {
    inner: Arc<Inner>,
}

struct Inner {
    url: url::Url,
    client: reqwest::Client,
    ttl: Duration,
    min_refetch: Duration,
    /// The last key set fetched; read without a lock on every token.
    keys: ArcSwapOption<KeySet>,
    /// One fetch at a time; holds when the last one was attempted.
    fetch: tokio::sync::Mutex<Option<Instant>>,
    /// A background refresh is under way (no second one is spawned).
    refreshing: AtomicBool,
}

impl Jwks {
    /// A key source for `url` (checked here), kept `ttl`, refetched for an
    /// unknown `kid` at most every `min_refetch`.
    pub fn new(url: &str, ttl: Duration, min_refetch: Duration) -> Result<Self, JwksSetupError> {
        let url = check_url(url)?;
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| JwksSetupError::Client(err.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                url,
                client,
                ttl,
                min_refetch,
                keys: ArcSwapOption::empty(),
                fetch: tokio::sync::Mutex::new(None),
                refreshing: AtomicBool::new(false),
            }),
        })
    }

    /// The key for `kid` and `alg`: cached (refreshed in the background once
    /// stale), or fetched now when the cache does not know it.
    pub async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, JwtError> {
        if let Some(set) = self.inner.keys.load_full()
            && let Some(key) = set.find(kid, alg)
        {
            if set.fetched.elapsed() >= self.inner.ttl {
                self.refresh_in_background();
            }
            return Ok(key);
        }
        let mut attempted = self.inner.fetch.lock().await;
        // Another caller may have fetched while this one waited.
        if let Some(set) = self.inner.keys.load_full()
            && let Some(key) = set.find(kid, alg)
        {
            return Ok(key);
        }
        if attempted.is_none_or(|at| at.elapsed() >= self.inner.min_refetch) {
            *attempted = Some(Instant::now());
            self.inner.refetch().await;
        }
        drop(attempted);
        match self.inner.keys.load_full() {
            None => Err(JwtError::KeysUnavailable),
            Some(set) if set.keys.is_empty() => Err(JwtError::KeysUnavailable),
            Some(set) => set.find(kid, alg).ok_or(JwtError::UnknownKey),
        }
    }

    fn refresh_in_background(&self) {
        if self.inner.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.inner.clone();
        tokio::spawn(async move {
            {
                let mut attempted = inner.fetch.lock().await;
                // A failing provider is asked again no more often than the floor.
                let stale = match &*inner.keys.load() {
                    Some(set) => set.fetched.elapsed() >= inner.ttl,
                    None => true,
                };
                if stale && attempted.is_none_or(|at| at.elapsed() >= inner.min_refetch) {
                    *attempted = Some(Instant::now());
                    inner.refetch().await;
                }
            }
            inner.refreshing.store(false, Ordering::Release);
        });
    }
}

impl Inner {
    /// The URL without user info or query, which may carry credentials.
    fn shown_url(&self) -> String {
        format!(
            "{}{}",
            self.url.origin().ascii_serialization(),
            self.url.path()
        )
    }

    /// Fetches the key set; a failure keeps the cached keys.
    async fn refetch(&self) {
        let started = Instant::now();
        match self.fetch().await {
            Ok(keys) => {
                tracing::debug!(url = %self.shown_url(), keys = keys.len(), "JWKS fetched");
                self.keys.store(Some(Arc::new(KeySet {
                    keys,
                    fetched: started,
                })));
            }
            Err(err) => {
                tracing::warn!(url = %self.shown_url(), %err, "JWKS fetch failed; keeping cached keys")
            }
        }
    }

    async fn fetch(&self) -> Result<KeyMap, String> {
        let response = self
            .client
            .get(self.url.clone())
            .send()
            .await
            .map_err(|err| err.without_url().to_string())?;
        // Redirects are not followed, so a 3xx lands here too.
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        let body = bulwark_actors::http_body::read_capped(response, MAX_BODY)
            .await
            .map_err(|err| err.to_string())?;
        let set: JwkSet = serde_json::from_slice(&body).map_err(|err| err.to_string())?;
        let mut keys = KeyMap::new();
        for (index, jwk) in set.keys.iter().enumerate() {
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue; // a key type we cannot use (e.g. an encryption key)
            };
            let alg = jwk
                .common
                .key_algorithm
                .and_then(|ka| Algorithm::try_from(ka).ok());
            let kid = jwk
                .common
                .key_id
                .clone()
                .unwrap_or_else(|| format!("#{index}"));
            keys.insert(kid, (key, alg));
        }
        Ok(keys)
    }
}
