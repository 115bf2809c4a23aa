//! Stored guardrail pins: the approved definition hash of each upstream
//! tool, so an approved or withheld rug pull survives a restart.
use sqlx::Row;

use super::{Store, StoreError, now_ms};

/// Every stored pin: (server, tool, pinned hash).
pub async fn all(store: &Store) -> Result<Vec<(String, String, String)>, StoreError> {
    let rows = sqlx::query("SELECT server, tool, pinned FROM guardrail_pins")
        .fetch_all(store.pool())
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("server")?,
                row.try_get("tool")?,
                row.try_get("pinned")?,
            ))
        })
        .collect()
}

/// Stores (or replaces) the pin of one tool.
pub async fn save(store: &Store, server: &str, tool: &str, pinned: &str) -> Result<(), StoreError> {
    // The same upsert on both backends.
    sqlx::query(
        "INSERT INTO guardrail_pins (server, tool, pinned, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (server, tool) DO UPDATE SET pinned = excluded.pinned, updated_at = excluded.updated_at",
    )
    .bind(server.to_owned())
    .bind(tool.to_owned())
    .bind(pinned.to_owned())
    .bind(now_ms())
    .execute(store.pool())
    .await?;
    Ok(())
}
