//! JWT bearer tokens: HS256 with a shared secret, and RS256/ES256 (and their
//! 384/512 and PSS siblings) against the provider's JWKS ([`jwks`]: cached,
//! refreshed in the background when stale, fetched at once for an unknown
//! `kid` no more often than the configured floor).
pub mod jwks;

use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::config::auth::JwtConfig;
use jwks::{Jwks, JwksSetupError};

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
    pub fn new(config: &JwtConfig) -> Result<Self, JwksSetupError> {
        let jwks = match &config.jwks_url {
            Some(url) => Some(Jwks::new(
                url,
                Duration::from_secs(config.jwks_ttl_secs),
                Duration::from_secs(config.jwks_min_refetch_secs),
            )?),
            None => None,
        };
        Ok(Self {
            hs256: config
                .hs256_secret
                .as_deref()
                .map(|s| DecodingKey::from_secret(s.as_bytes())),
            jwks,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway: config.leeway_secs,
            project_claim: config.project_claim.clone(),
            user_claim: config.user_claim.clone(),
        })
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

#[cfg(test)]
mod tests;
