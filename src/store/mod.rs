//! The management store: upstreams and projects created through the API,
//! API keys (hashes only) and guardrail pins. SQLite by default (a file in
//! `server.data_dir`, created on first start), PostgreSQL when
//! `[store] url = "postgres://…"`. One schema, one set of versioned
//! migrations (`migrations/`), the same portable SQL on both backends.
//!
//! - [`named`]: upstreams and projects (named JSON definitions).
//! - [`keys`], [`pins`]: API key hashes, guardrail pins.
//! - [`secrets`]: the one place stored definitions (which hold secrets) are
//!   written and read, and how they are masked for the API.
//! - [`users`], [`audit`]: management users (argon2id hashes) and the
//!   append-only audit trail.
//! - [`import`]: the keys file of earlier versions, imported once.
//! - [`backup`]: the whole store as one checked JSON document; restore, reset.
//! - [`changes`]: on PostgreSQL, the feed of writes other replicas made.
pub mod audit;
pub mod backup;
pub mod changes;
pub mod import;
pub mod keys;
pub mod named;
pub mod pins;
pub mod secrets;
pub mod users;

use std::borrow::Cow;
use std::time::Duration;

use serde::Deserialize;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Executor, SqlSafeStr};

/// The schema, oldest first. Never edit a released migration: add one.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/0001_initial.sql"),
    ),
    (
        2,
        "users_audit",
        include_str!("../../migrations/0002_users_audit.sql"),
    ),
];

/// Steps that differ by backend: (version, description, SQLite, PostgreSQL).
const BACKEND_MIGRATIONS: &[(i64, &str, &str, &str)] = &[(
    3,
    "change_notify",
    include_str!("../../migrations/0003_change_notify.sqlite.sql"),
    include_str!("../../migrations/0003_change_notify.postgres.sql"),
)];

/// Connections of a pool; SQLite serialises writes anyway.
const MAX_CONNECTIONS: u32 = 8;
/// Longest wait for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// `[store]`: where the management store lives.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `postgres://…` or `sqlite://…`; default `sqlite://DATA_DIR/bulwark.db`.
    pub url: Option<String>,
}

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("store: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored definition is not valid JSON (or not what it should be).
    #[error("store: stored {what} '{name}' is unreadable: {message}")]
    Corrupt {
        /// The kind of record.
        what: &'static str,
        /// Its name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The data directory could not be created.
    #[error("store: cannot create {path}: {message}")]
    DataDir {
        /// The directory.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The unique name or id is taken.
    #[error("{0} already exists")]
    Conflict(String),
    /// The master key is unusable, or a sealed secret cannot be opened.
    #[error("store secrets: {0}")]
    Secrets(#[from] secrets::SecretsError),
}

/// Which database the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default.
    Sqlite,
    /// A shared server.
    Postgres,
}

/// A connected, migrated store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    key: std::sync::Arc<secrets::MasterKey>,
    /// Where a change listener connects (PostgreSQL only).
    listen_url: Option<changes::ListenUrl>,
}

impl Store {
    /// Opens the store `config` names (creating a SQLite file on first
    /// start), brings its schema up to date, loads the master key
    /// ([`secrets::MasterKey::load`]) and seals any clear-text secrets.
    pub async fn open(
        config: &StoreConfig,
        data_dir: &std::path::Path,
    ) -> Result<Self, StoreError> {
        // The key file lives here whatever the backend.
        std::fs::create_dir_all(data_dir).map_err(|err| StoreError::DataDir {
            path: data_dir.display().to_string(),
            message: err.to_string(),
        })?;
        let url = match &config.url {
            Some(url) => crate::config::expand_env(url).unwrap_or_else(|_| url.clone()),
            None => format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("bulwark.db").display()
            ),
        };
        let key = secrets::MasterKey::load(data_dir)?;
        let mut store = Self::connect(&url, key).await?;
        secrets::prepare(&mut store, data_dir).await?;
        Ok(store)
    }

    /// Connects to `url` and migrates; secrets are sealed under `key`.
    pub async fn connect(url: &str, key: secrets::MasterKey) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let writer = changes::writer_id();
        let set_writer = format!("SET bulwark.writer = '{writer}'");
        let pool = AnyPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _| {
                let set_writer = set_writer.clone();
                Box::pin(async move {
                    if backend == Backend::Postgres {
                        // Names this process in the change feed, so its own
                        // writes (already applied here) are not applied twice.
                        conn.execute(sqlx::AssertSqlSafe(set_writer)).await?;
                    }
                    if backend == Backend::Sqlite {
                        // WAL: readers never block the writer; FULL: a
                        // committed (acknowledged) write survives a crash.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        // Deleted and rewritten content is zeroed, so an
                        // old clear-text secret does not linger in free space.
                        conn.execute("PRAGMA secure_delete = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        migrator(backend).run(&pool).await?;
        Ok(Self {
            pool,
            backend,
            key: std::sync::Arc::new(key),
            listen_url: (backend == Backend::Postgres)
                .then(|| changes::ListenUrl::new(url, &writer)),
        })
    }

    /// The master key secrets are sealed under.
    pub fn master_key(&self) -> &secrets::MasterKey {
        &self.key
    }

    /// The database this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A transaction that writes. On SQLite it takes the write lock when it
    /// begins (`BEGIN IMMEDIATE`), waiting on a busy database as a single
    /// write does: a deferred one that read first fails at once with
    /// "database is locked" when another process (a running gateway, next
    /// to a CLI command on the same file) wrote since its read.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn migrator(backend: Backend) -> Migrator {
    let by_backend = BACKEND_MIGRATIONS
        .iter()
        .map(|&(version, description, sqlite, postgres)| match backend {
            Backend::Sqlite => (version, description, sqlite),
            Backend::Postgres => (version, description, postgres),
        });
    // sqlx takes an advisory lock while it migrates, so replicas starting
    // together on one PostgreSQL apply each step once.
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .copied()
            .chain(by_backend)
            .map(|(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// Now, in Unix milliseconds (the store's time format).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A page of a listing: `limit` rows from `offset`, and the total.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// Most rows to return.
    pub limit: i64,
    /// Rows to skip.
    pub offset: i64,
}

/// True when `err` is a unique-key violation (on either backend).
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::*;

    /// A second process opening the store (a CLI command next to a running
    /// gateway) while the first is in a write: the second's own write
    /// (recording the master key's id) waits for the lock. Begun deferred,
    /// it read first, and failed with "database is locked" once the first
    /// committed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_opens_while_another_connection_writes() {
        let dir = tempfile::tempdir().unwrap();
        let first = Store::open(&StoreConfig::default(), dir.path())
            .await
            .unwrap();
        let mut writing = first.begin_write().await.unwrap();
        sqlx::query("INSERT INTO store_meta (name, value) VALUES ('test', 'written')")
            .execute(&mut *writing)
            .await
            .unwrap();
        let path = dir.path().to_owned();
        let second = tokio::spawn(async move { Store::open(&StoreConfig::default(), &path).await });
        // Gives the second open the time to reach its write while the lock
        // is held; it must succeed whether or not it got that far.
        tokio::time::sleep(Duration::from_millis(300)).await;
        writing.commit().await.unwrap();
        let second = second.await.unwrap().unwrap();
        let written: String = sqlx::query("SELECT value FROM store_meta WHERE name = 'test'")
            .fetch_one(second.pool())
            .await
            .unwrap()
            .try_get("value")
            .unwrap();
        assert_eq!(written, "written");
    }
}
