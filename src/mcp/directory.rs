//! The session directory: where a streamable-HTTP session can be found by
//! any replica. With `[sessions] backend = "redis"` every session's
//! `initialize` parameters and its owner are kept in Redis; a replica that
//! gets a request for a session it does not hold (the load balancer moved
//! the client, or the replica that held it died) restores it from there:
//! rmcp replays the handshake into a fresh handler under the same id
//! (`StreamableHttpServerConfig::session_store`), and the owners layer
//! checks the caller against the stored owner first. See ARCHITECTURE.md
//! ("Gateway replicas") for why a directory and not a sealed id.
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use rmcp::transport::streamable_http_server::session::{
    SessionState, SessionStore, SessionStoreError,
};
use serde::Deserialize;

/// Longest wait for Redis.
const OP_TIMEOUT: Duration = Duration::from_millis(500);
/// Key prefix of session states; owners live under `…owner:`.
const PREFIX: &str = "bulwark:session:";
/// Key prefix of claimed call attempts (see [`Directory::claim_attempt`]).
const ATTEMPT_PREFIX: &str = "bulwark:attempt:";

/// `[sessions]`: where client sessions live.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// `local` (this process only) or `redis` (any replica can continue a session).
    pub backend: SessionsBackend,
    /// Redis for `backend = "redis"`; default: `cache.redis_url`.
    pub redis_url: Option<String>,
    /// How long an entry outlives the session's last start or move, seconds.
    pub ttl_secs: u64,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            backend: SessionsBackend::Local,
            redis_url: None,
            ttl_secs: 24 * 60 * 60,
        }
    }
}

/// Where sessions are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionsBackend {
    /// In this process: a session ends with it.
    #[default]
    Local,
    /// In a Redis directory shared by every replica.
    Redis,
}

/// Why the directory could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// `backend = "redis"` without a URL here or in `[cache]`.
    #[error("sessions.backend = \"redis\" needs sessions.redis_url or cache.redis_url")]
    NoUrl,
    /// The URL does not parse (not shown: it may hold a password).
    #[error("sessions: invalid Redis URL: {0}")]
    BadUrl(String),
}

/// The session directory in Redis.
#[derive(Debug)]
pub struct Directory {
    client: redis::Client,
    conn: tokio::sync::OnceCell<ConnectionManager>,
    ttl: Duration,
}

impl Directory {
    /// The directory `config` asks for (`None`: sessions stay local).
    pub fn from_config(
        config: &SessionsConfig,
        cache_url: Option<&str>,
    ) -> Result<Option<std::sync::Arc<Self>>, DirectoryError> {
        if config.backend != SessionsBackend::Redis {
            return Ok(None);
        }
        let url = config
            .redis_url
            .as_deref()
            .or(cache_url)
            .ok_or(DirectoryError::NoUrl)?;
        let url = crate::config::expand_env(url).unwrap_or_else(|_| url.to_owned());
        let client = redis::Client::open(url.as_str())
            .map_err(|err| DirectoryError::BadUrl(crate::mask::mask(&err.to_string(), [&*url])))?;
        Ok(Some(std::sync::Arc::new(Self {
            client,
            conn: tokio::sync::OnceCell::new(),
            ttl: Duration::from_secs(config.ttl_secs.max(1)),
        })))
    }

    async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        self.conn
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(OP_TIMEOUT))
                    .set_response_timeout(Some(OP_TIMEOUT))
                    .set_number_of_retries(1);
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            })
            .await
            .cloned()
    }

    /// Runs one command within [`OP_TIMEOUT`].
    async fn run<T: redis::FromRedisValue>(
        &self,
        command: &redis::Cmd,
    ) -> Result<T, SessionStoreError> {
        let mut conn = self.connection().await?;
        match tokio::time::timeout(OP_TIMEOUT, command.query_async::<T>(&mut conn)).await {
            Ok(answer) => Ok(answer?),
            Err(_) => Err(format!("session directory: no answer within {OP_TIMEOUT:?}").into()),
        }
    }

    /// Records who opened `session` (written once, when it is created).
    pub async fn set_owner(&self, session: &str, subject: &str) {
        let mut command = redis::cmd("SET");
        command
            .arg(format!("{PREFIX}owner:{session}"))
            .arg(subject)
            .arg("EX")
            .arg(self.ttl.as_secs());
        if let Err(err) = self.run::<()>(&command).await {
            tracing::warn!(%err, "session owner not recorded: the session cannot move to another replica");
        }
    }

    /// Claims `attempt`, a load balancer's id for one client request (the
    /// same on each replay of it), for this replica, for `ttl`: `true` the
    /// first time any replica claims it, `false` once one has. A replica
    /// that saw a request may have run it, so a replay of it must not run
    /// again.
    pub async fn claim_attempt(
        &self,
        attempt: &str,
        ttl: Duration,
    ) -> Result<bool, SessionStoreError> {
        let mut command = redis::cmd("SET");
        command
            .arg(format!("{ATTEMPT_PREFIX}{attempt}"))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl));
        let set: Option<String> = self.run(&command).await?;
        Ok(set.is_some())
    }

    /// Keeps a claimed `attempt` for `ttl` from now (its call still runs).
    pub async fn extend_attempt(
        &self,
        attempt: &str,
        ttl: Duration,
    ) -> Result<(), SessionStoreError> {
        let mut command = redis::cmd("PEXPIRE");
        command
            .arg(format!("{ATTEMPT_PREFIX}{attempt}"))
            .arg(millis(ttl));
        self.run::<i64>(&command).await.map(drop)
    }

    /// Who opened `session`, if the directory knows it.
    pub async fn owner(&self, session: &str) -> Result<Option<String>, SessionStoreError> {
        let mut command = redis::cmd("GET");
        command.arg(format!("{PREFIX}owner:{session}"));
        self.run(&command).await
    }
}

/// `ttl` in whole milliseconds, at least one (Redis refuses 0).
fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait::async_trait]
impl SessionStore for Directory {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        let mut command = redis::cmd("GET");
        command.arg(format!("{PREFIX}{session_id}"));
        let Some(text) = self.run::<Option<Vec<u8>>>(&command).await? else {
            return Ok(None);
        };
        Ok(Some(serde_json::from_slice(&text)?))
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        let mut command = redis::cmd("SET");
        command
            .arg(format!("{PREFIX}{session_id}"))
            .arg(serde_json::to_vec(state)?)
            .arg("EX")
            .arg(self.ttl.as_secs());
        self.run(&command).await
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        let mut command = redis::cmd("DEL");
        command
            .arg(format!("{PREFIX}{session_id}"))
            .arg(format!("{PREFIX}owner:{session_id}"));
        self.run::<()>(&command).await
    }
}
