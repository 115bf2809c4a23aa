//! Gateway replicas: several `bulwark serve` processes on one PostgreSQL
//! behave as one gateway. Real processes, a fresh database per test.
mod haproxy;
mod limits;
mod manifests;
mod propagation;
mod sessions;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::Gateway;
use crate::control::{PgDatabase, admin_key, send};
use crate::gateway::HEAD;

/// The master key every replica shares (sealed secrets must open anywhere).
const MASTER_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// Replicas of one gateway on a fresh PostgreSQL database.
pub struct Replicas {
    pub nodes: Vec<Gateway>,
    /// The admin key the first replica created (authentication on), else empty.
    pub admin: String,
    /// Dropped last: the database outlives the processes using it.
    _db: PgDatabase,
}

impl Replicas {
    /// Starts `n` replicas with `extra` config, or `None` (after a `SKIP:`
    /// line) without PostgreSQL. With `auth`, the first one creates the admin
    /// key and the others start once it is stored.
    pub async fn start(n: usize, extra: &str, auth: bool) -> Option<Replicas> {
        let db = PgDatabase::create().await?;
        let config = format!("{HEAD}{}{extra}", store_config(&db));
        let start = |config: &str| {
            let mut builder = Gateway::builder(config).env("BULWARK_MASTER_KEY", MASTER_KEY);
            if auth {
                builder = builder.with_auth();
            }
            builder.start()
        };
        let first = start(&config);
        let admin = if auth {
            admin_key(&first)
        } else {
            String::new()
        };
        let mut nodes = vec![first];
        for _ in 1..n {
            nodes.push(start(&config));
        }
        for node in &nodes {
            node.wait_ready(Duration::from_secs(60)).await;
        }
        Some(Replicas {
            nodes,
            admin,
            _db: db,
        })
    }

    /// `METHOD path` on replica `i` as the admin → (status, JSON).
    pub async fn api(
        &self,
        i: usize,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let key = (!self.admin.is_empty()).then_some(self.admin.as_str());
        send(&self.nodes[i], method, path, body, key).await
    }
}

fn store_config(db: &PgDatabase) -> String {
    format!("[store]\nurl = {:?}\n", db.url)
}

/// Polls `check` until it holds or `timeout` passes; true when it held.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The HTTP status of a raw `initialize` on `gw` with `key`.
pub async fn initialize_status(gw: &Gateway, key: &str) -> u16 {
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": { "name": "replica-test", "version": "1" }
        }
    });
    gw.http()
        .post(gw.mcp_url())
        .header("Accept", "application/json, text/event-stream")
        .header("Authorization", format!("Bearer {key}"))
        .json(&body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}
