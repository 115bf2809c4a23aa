//! The live control plane: the management API, the store on SQLite and
//! PostgreSQL, the reconcile path, the config file watch and the CLI.
mod admin;
mod api;
mod cli;
mod durability;
mod enkrypt;
mod live;
mod openapi;
mod pins;
mod routing;
mod secrets;
mod startup_errors;
mod stored_remote;
mod system;
mod watch;

pub(crate) use system::admin_key;

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{self, Gateway};

/// Which store a test runs on.
pub enum StoreUnderTest {
    /// The embedded default (a file in the gateway's data dir).
    Sqlite,
    /// A fresh PostgreSQL database, dropped at the end.
    Postgres(PgDatabase),
}

impl StoreUnderTest {
    /// `[store]` config lines for this backend.
    pub fn config(&self) -> String {
        match self {
            Self::Sqlite => String::new(),
            Self::Postgres(db) => format!("[store]\nurl = {:?}\n", db.url),
        }
    }
}

impl StoreUnderTest {
    /// What the database holds, as text: the SQLite files, or on PostgreSQL
    /// every stored definition (to check what is and is not in clear).
    pub async fn raw_text(&self, data_dir: &std::path::Path) -> String {
        match self {
            Self::Sqlite => common::store_text(data_dir),
            Self::Postgres(db) => {
                use sqlx::Row;
                let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
                let rows = sqlx::query(
                    "SELECT definition FROM upstreams UNION ALL SELECT definition FROM projects",
                )
                .fetch_all(&pool)
                .await
                .unwrap();
                pool.close().await;
                rows.iter()
                    .map(|r| r.get::<String, _>("definition"))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
    }

    /// Runs one statement straight on the database (what an earlier version
    /// or another tool wrote).
    pub async fn raw_execute(&self, data_dir: &std::path::Path, sql: &str, value: &str) {
        match self {
            Self::Sqlite => {
                let url = format!("sqlite://{}", data_dir.join("bulwark.db").display());
                let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(sql.replace("$1", "?")))
                    .bind(value.to_owned())
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            }
            Self::Postgres(db) => {
                let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                    .bind(value.to_owned())
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            }
        }
    }
}

/// A throwaway database on the local PostgreSQL.
pub struct PgDatabase {
    pub url: String,
    name: String,
}

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";

impl PgDatabase {
    /// Creates one, or `None` (after a `SKIP:` line) when PostgreSQL is absent.
    pub async fn create() -> Option<PgDatabase> {
        common::require_postgres()?;
        use sqlx::Executor;
        let name = format!("bulwark_it_{}_{}", std::process::id(), rand_suffix());
        let pool = sqlx::PgPool::connect(PG_ADMIN)
            .await
            .expect("connect to postgres");
        pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create database");
        pool.close().await;
        Some(PgDatabase {
            url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
            name,
        })
    }
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    u64::from(nanos) ^ (u64::from(std::process::id()) << 32)
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Executor;
                if let Ok(pool) = sqlx::PgPool::connect(PG_ADMIN).await {
                    let _ = pool
                        .execute(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}

/// The `[upstreams.NAME]`-equivalent JSON body of a demo server.
pub fn demo_body(name: &str, kind: &str) -> Value {
    json!({
        "name": name,
        "command": env!("CARGO_BIN_EXE_bulwark"),
        "args": ["demo-server", kind],
    })
}

/// `METHOD path` with a JSON body (and an optional key) → (status, JSON or Null).
pub async fn send(
    gw: &Gateway,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
    key: Option<&str>,
) -> (u16, Value) {
    let mut request = gw.http().request(method.clone(), gw.url(path));
    if let Some(body) = body {
        request = request.json(body);
    }
    if let Some(key) = key {
        request = request.header("Authorization", format!("Bearer {key}"));
    }
    let response = request
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// True once a `list_changed` for tools reached `session`.
pub fn saw_tools_changed(session: &mut common::PythonSession) -> bool {
    session.wait_event(Duration::from_secs(30), |e| {
        e["event"] == "notification" && e["method"] == "notifications/tools/list_changed"
    })
}
