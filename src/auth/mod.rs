//! Client authentication and authorization for `/mcp`, `/mcp/{server}`,
//! `bulwark stdio` and `/api/v1`.
//!
//! - [`keys`]: `bk_` API keys, their hashes and constant-time checks.
//! - [`store`]: the [`CredentialStore`](store::CredentialStore) seam and the file-backed store.
//! - [`grants`]: what a project may use (upstreams, tools).
//! - [`jwt`]: JWT bearer tokens (HS256, JWKS).
//! - [`identity`]: the authenticated caller carried through a request.
//! - [`rate_limit`]: per-caller budgets.
//! - [`shared_limit`]: the per-key budget in Redis, shared by replicas.
//! - [`middleware`]: the axum layers that authenticate and answer 401/403/429.
//! - [`metadata`]: RFC 9728 protected-resource metadata.
//! - [`verified`]: recently verified credentials, so repeats skip the checks.
//! - [`revocation`]: open streams and stdio sessions end when their credential is refused.
//! - [`bootstrap`]: the admin key of a first start.
//! - [`manage`]: `bulwark key create/revoke/list`.
pub mod bootstrap;
pub mod failures;
pub mod grants;
pub mod identity;
pub mod jwt;
pub mod keys;
pub mod manage;
pub mod metadata;
pub mod middleware;
pub mod rate_limit;
pub mod revocation;
pub mod shared_limit;
pub mod store;
pub mod verified;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::config::auth::OAuthConfig;
use identity::{Identity, IdentityKind};
use jwt::{JwtError, JwtVerifier};
use keys::KeyHash;
use rate_limit::{BadRate, RateLimited, RateLimits};
use store::{CredentialStore, FileStore, StoreError};

/// A request's credential, as presented.
#[derive(Clone, Copy)]
pub enum Credential<'a> {
    /// A `bk_` API key (`X-API-Key`, or a bearer token with the key prefix).
    Key(&'a str),
    /// Any other bearer token: a JWT.
    Bearer(&'a str),
}

impl std::fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Key(_) => "Credential::Key(…)",
            Self::Bearer(_) => "Credential::Bearer(…)",
        })
    }
}

/// Why a request was refused. Messages name the reason, never the credential.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credential at all.
    #[error(
        "authentication required: send `Authorization: Bearer <key or token>` or `X-API-Key: <key>`"
    )]
    Missing,
    /// A key that matches no stored key.
    #[error("invalid API key")]
    InvalidKey,
    /// A revoked key.
    #[error("API key {0} is revoked")]
    Revoked(String),
    /// A bearer token that is not a key, with no JWT verification configured.
    #[error("bearer tokens are not accepted: no [auth.jwt] is configured")]
    JwtOff,
    /// A JWT that failed verification.
    #[error("invalid token: {0}")]
    Jwt(#[from] JwtError),
    /// The credential names a project the gateway does not know.
    #[error("project '{0}' is not configured")]
    UnknownProject(String),
    /// The caller may not use this upstream.
    #[error("project '{project}' may not use server '{server}'")]
    ServerNotGranted {
        /// The caller's project.
        project: String,
        /// The server asked for.
        server: String,
    },
    /// Over a rate limit.
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
}

impl AuthError {
    /// True when the caller is known but not allowed (403), not unknown (401).
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            Self::UnknownProject(_) | Self::ServerNotGranted { .. }
        )
    }
}

/// Why authentication could not be set up from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The keys file or a stored key is unusable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A rate limit entry is invalid.
    #[error(transparent)]
    Rate(#[from] BadRate),
    /// The shared (Redis) rate limit is misconfigured.
    #[error(transparent)]
    SharedRate(#[from] shared_limit::SharedLimitError),
    /// `auth.jwt.jwks_url` is unusable.
    #[error(transparent)]
    Jwks(#[from] jwt::jwks::JwksSetupError),
    /// `auth.jwt.hs256_secret` names an environment variable that is not set.
    #[error("auth.jwt.hs256_secret: environment variable {0} is not set")]
    MissingSecret(String),
    /// A key names a project that is not configured.
    #[error("auth key '{id}': project '{project}' is not configured in [auth.projects]")]
    KeyProject {
        /// The key.
        id: String,
        /// Its project.
        project: String,
    },
}

/// Authentication state shared by every request.
pub struct Auth {
    enabled: bool,
    store: Arc<dyn CredentialStore>,
    jwt: Option<JwtVerifier>,
    limits: RateLimits,
    oauth: Option<OAuthConfig>,
    prune_every: Duration,
    verified: verified::Verified,
    /// Refusals by reason (for the metrics).
    pub failures: failures::AuthFailures,
    /// Where `/mcp` refusals are queued for the audit trail (set once at start).
    pub audit: std::sync::OnceLock<Arc<crate::govern::calls::CallAudit>>,
}

impl Auth {
    /// Authentication as `config` describes it (keys from `[auth]` and the keys file).
    pub fn from_config(config: &Config) -> Result<Arc<Self>, SetupError> {
        let store = FileStore::open(&config.auth, keys_file(config))?;
        Self::with_store(config, Arc::new(store))
    }

    /// Authentication as `config` describes it, with keys and grants from `store`.
    pub fn with_store(
        config: &Config,
        store: Arc<dyn CredentialStore>,
    ) -> Result<Arc<Self>, SetupError> {
        let auth = &config.auth;
        for key in &auth.keys {
            if key.project != crate::config::auth::ADMIN_PROJECT
                && !auth.projects.contains_key(&key.project)
            {
                return Err(SetupError::KeyProject {
                    id: key.id.clone(),
                    project: key.project.clone(),
                });
            }
        }
        for (project, grant) in &auth.projects {
            let named = grant.upstreams.iter().chain(grant.tools.keys());
            for server in named.filter(|s| *s != "*" && !config.upstreams.contains_key(*s)) {
                tracing::warn!(%project, %server, "auth project names an upstream that is not configured");
            }
        }
        let jwt = match &auth.jwt {
            Some(jwt) => {
                let mut jwt = jwt.clone();
                if let Some(secret) = &jwt.hs256_secret {
                    jwt.hs256_secret =
                        Some(crate::config::expand_env(secret).map_err(SetupError::MissingSecret)?);
                }
                Some(JwtVerifier::new(&jwt)?)
            }
            None => None,
        };
        Ok(Arc::new(Self {
            enabled: auth.enabled,
            store,
            jwt,
            limits: rate_limits(config)?,
            oauth: auth.oauth.clone(),
            prune_every: Duration::from_secs(auth.rate_limits.prune_interval_secs.max(1)),
            verified: verified::Verified::default(),
            failures: failures::AuthFailures::default(),
            audit: std::sync::OnceLock::new(),
        }))
    }

    /// False when `auth.enabled = false`: every caller is [`Identity::anonymous`].
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// True when any key or a JWT source is configured.
    pub fn has_credentials(&self) -> bool {
        self.jwt.is_some() || self.store.has_keys()
    }

    /// The rate limiters.
    pub fn limits(&self) -> &RateLimits {
        &self.limits
    }

    /// RFC 9728 settings, when OAuth metadata is on.
    pub fn oauth(&self) -> Option<&OAuthConfig> {
        self.oauth.as_ref()
    }

    /// Who `credential` belongs to; with auth off, the anonymous caller.
    pub async fn authenticate(
        &self,
        credential: Option<Credential<'_>>,
    ) -> Result<Identity, AuthError> {
        if !self.enabled {
            return Ok(Identity::anonymous());
        }
        match credential.ok_or(AuthError::Missing)? {
            Credential::Key(key) => self.identify_key(key),
            Credential::Bearer(token) => {
                let jwt = self.jwt.as_ref().ok_or(AuthError::JwtOff)?;
                let digest = KeyHash::of(token);
                let generation = self.store.generation();
                if let Some(identity) = self.verified.get(&digest, generation) {
                    return Ok(identity);
                }
                let claims = jwt.verify(token).await?;
                let identity = Identity {
                    grant: self.grant(&claims.project)?,
                    subject: format!("jwt:{}", claims.subject).into(),
                    user: claims.user.into(),
                    project: claims.project.into(),
                    kind: IdentityKind::Jwt,
                };
                self.verified.insert(
                    digest,
                    generation,
                    identity.clone(),
                    verified::token_ttl(token),
                );
                Ok(identity)
            }
        }
    }

    /// Who an API key belongs to.
    pub fn identify_key(&self, key: &str) -> Result<Identity, AuthError> {
        if !self.enabled {
            return Ok(Identity::anonymous());
        }
        let hash = KeyHash::of(key);
        let generation = self.store.generation();
        if let Some(identity) = self.verified.get(&hash, generation) {
            return Ok(identity);
        }
        let record = self.store.resolve(&hash).ok_or(AuthError::InvalidKey)?;
        if record.revoked {
            return Err(AuthError::Revoked(record.id));
        }
        let identity = Identity {
            grant: self.grant(&record.project)?,
            subject: format!("key:{}", record.id).into(),
            user: record.user.into(),
            project: record.project.into(),
            kind: IdentityKind::ApiKey,
        };
        self.verified
            .insert(hash, generation, identity.clone(), verified::KEY_TTL);
        Ok(identity)
    }

    fn grant(&self, project: &str) -> Result<Arc<grants::Grant>, AuthError> {
        self.store
            .grant(project)
            .ok_or_else(|| AuthError::UnknownProject(project.to_owned()))
    }

    /// Prunes idle rate-limit buckets until `shutdown`.
    pub fn spawn_pruner(self: &Arc<Self>, shutdown: CancellationToken) {
        let auth = Arc::downgrade(self);
        let every = self.prune_every;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => match auth.upgrade() {
                        Some(auth) => auth.limits.prune(),
                        None => return,
                    },
                }
            }
        });
    }
}

/// The keys file: `auth.keys_file`, or `DATA_DIR/keys.toml`.
pub fn keys_file(config: &Config) -> PathBuf {
    config
        .auth
        .keys_file
        .clone()
        .unwrap_or_else(|| config.server.data_dir().join("keys.toml"))
}

/// The limiters `[auth.rate_limits]` describes, kept in Redis with
/// `backend = "redis"`.
fn rate_limits(config: &Config) -> Result<RateLimits, SetupError> {
    let limits = RateLimits::new(&config.auth.rate_limits)?;
    let settings = &config.auth.rate_limits;
    if settings.backend != crate::config::auth::LimitBackend::Redis {
        return Ok(limits);
    }
    if settings.per_key.is_none() && settings.per_upstream.is_none() && settings.per_tool.is_empty()
    {
        return Ok(limits);
    }
    let url = settings
        .redis_url
        .as_ref()
        .or(config.cache.redis_url.as_ref())
        .ok_or(shared_limit::SharedLimitError::NoUrl)?;
    let url = crate::config::expand_env(url).unwrap_or_else(|_| url.clone());
    let shared = shared_limit::SharedLimit::new(&url, shared_limit::PREFIX)?;
    Ok(limits.with_shared(shared))
}
