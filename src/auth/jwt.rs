//! JWT bearer tokens: HS256 with a shared secret, and RS256/ES256 (and their
//! 384/512 and PSS siblings) against the provider's JWKS. The JWKS is cached,
//! fetched again when stale or when a token names an unknown `kid` (key
//! rotation), never more often than the configured floor.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::config::auth::JwtConfig;

const JWKS_TIMEOUT: Duration = Duration::from_secs(5);
const ASYMMETRIC: [Algorithm; 7] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// Why a token was refused. Never carries the token or a claim value.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// Not a JWT, or an algorithm this gateway does not accept.
    #[error("malformed token or unsupported algorithm")]
    Malformed,
    /// No key for the token's `kid` (or no key source for its algorithm).
    #[error("no verification key for this token")]
    UnknownKey,
    /// The JWKS could not be fetched and no cached keys remain.
    #[error("the identity provider's keys are unavailable")]
    KeysUnavailable,
    /// Signature or claim checks failed.
    #[error("token rejected: {0}")]
    Rejected(&'static str),
    /// A required claim is missing or not a string.
    #[error("token lacks the '{0}' claim")]
    MissingClaim(String),
}

/// What a valid token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `sub`.
    pub subject: String,
    /// The user claim (default `sub`; `sub` when the claim is absent).
    pub user: String,
    /// The project claim.
    pub project: String,
}

/// Verifies tokens against the configured secret and JWKS.
pub struct JwtVerifier {
    hs256: Option<DecodingKey>,
    jwks: Option<Jwks>,
    issuer: Option<String>,
    audience: Vec<String>,
    leeway: u64,
    project_claim: String,
    user_claim: String,
}

impl JwtVerifier {
    /// A verifier for `config`; the secret must already be expanded.
    pub fn new(config: &JwtConfig) -> Self {
        Self {
            hs256: config
                .hs256_secret
                .as_deref()
                .map(|s| DecodingKey::from_secret(s.as_bytes())),
            jwks: config.jwks_url.as_ref().map(|url| Jwks {
                url: url.clone(),
                ttl: Duration::from_secs(config.jwks_ttl_secs),
                min_refetch: Duration::from_secs(config.jwks_min_refetch_secs),
                state: tokio::sync::RwLock::new(JwksState::default()),
                fetch: tokio::sync::Mutex::new(()),
            }),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway: config.leeway_secs,
            project_claim: config.project_claim.clone(),
            user_claim: config.user_claim.clone(),
        }
    }

    /// Checks signature, `exp`/`nbf`, `iss` and `aud`, and reads the claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
        let key = match header.alg {
            Algorithm::HS256 => self.hs256.clone().ok_or(JwtError::UnknownKey)?,
            alg if ASYMMETRIC.contains(&alg) => {
                let jwks = self.jwks.as_ref().ok_or(JwtError::UnknownKey)?;
                jwks.key(header.kid.as_deref(), alg).await?
            }
            _ => return Err(JwtError::Malformed),
        };
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &key, &self.validation(header.alg))
                .map_err(|err| JwtError::Rejected(reason(err.kind())))?;
        let claims = data.claims;
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| JwtError::MissingClaim(name.to_owned()))
        };
        Ok(Claims {
            subject: text("sub")?,
            // The user claim is informational: `sub` stands in when it is absent.
            user: text(&self.user_claim).or_else(|_| text("sub"))?,
            project: text(&self.project_claim)?,
        })
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.leeway = self.leeway;
        // jsonwebtoken checks `nbf` only when asked to.
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        if self.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.audience);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        validation
    }
}

fn reason(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => "expired",
        ErrorKind::ImmatureSignature => "not valid yet",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidAlgorithm => "algorithm does not match the key",
        ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
        ErrorKind::InvalidClaimFormat(_) => "a claim has the wrong type",
        _ => "invalid token",
    }
}

/// The provider's keys, cached.
struct Jwks {
    url: String,
    ttl: Duration,
    min_refetch: Duration,
    state: tokio::sync::RwLock<JwksState>,
    /// One fetch at a time; waiters see its result.
    fetch: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct JwksState {
    keys: HashMap<String, (DecodingKey, Option<Algorithm>)>,
    fetched: Option<Instant>,
    attempted: Option<Instant>,
}

impl JwksState {
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

    fn fresh(&self, ttl: Duration) -> bool {
        self.fetched.is_some_and(|at| at.elapsed() < ttl)
    }
}

impl Jwks {
    async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, JwtError> {
        {
            let state = self.state.read().await;
            if state.fresh(self.ttl)
                && let Some(key) = state.find(kid, alg)
            {
                return Ok(key);
            }
        }
        let _fetching = self.fetch.lock().await;
        let due = {
            let state = self.state.read().await;
            if state.fresh(self.ttl)
                && let Some(key) = state.find(kid, alg)
            {
                return Ok(key);
            }
            state
                .attempted
                .is_none_or(|at| at.elapsed() >= self.min_refetch)
        };
        if due {
            self.refetch().await;
        }
        let state = self.state.read().await;
        if state.keys.is_empty() {
            return Err(JwtError::KeysUnavailable);
        }
        state.find(kid, alg).ok_or(JwtError::UnknownKey)
    }

    async fn refetch(&self) {
        let now = Instant::now();
        let fetched = fetch(&self.url).await;
        let mut state = self.state.write().await;
        state.attempted = Some(now);
        match fetched {
            Ok(keys) => {
                tracing::debug!(url = %self.url, keys = keys.len(), "JWKS fetched");
                state.keys = keys;
                state.fetched = Some(now);
            }
            Err(err) => {
                tracing::warn!(url = %self.url, %err, "JWKS fetch failed; keeping cached keys")
            }
        }
    }
}

type KeyMap = HashMap<String, (DecodingKey, Option<Algorithm>)>;

async fn fetch(url: &str) -> Result<KeyMap, String> {
    let client = reqwest::Client::builder()
        .timeout(JWKS_TIMEOUT)
        .build()
        .map_err(|err| err.to_string())?;
    let set: JwkSet = client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|err| err.without_url().to_string())?
        .json()
        .await
        .map_err(|err| err.without_url().to_string())?;
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

#[cfg(test)]
mod tests;
