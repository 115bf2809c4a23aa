//! Stored API keys: id, SHA-256 hash, user, project, revoked. Never the key.
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Page, Store, StoreError, is_unique_violation, now_ms};
use crate::config::auth::KeyEntry;

const COLUMNS: &str = "id, hash, user_name, project, revoked, created_at";

fn entry(row: &AnyRow) -> Result<KeyEntry, StoreError> {
    let created: i64 = row.try_get("created_at")?;
    Ok(KeyEntry {
        id: row.try_get("id")?,
        hash: row.try_get("hash")?,
        user: row.try_get("user_name")?,
        project: row.try_get("project")?,
        revoked: row.try_get::<i64, _>("revoked")? != 0,
        created_at: u64::try_from(created / 1000).ok(),
    })
}

/// Every key, hashes included (for the credential index only).
pub async fn all(store: &Store) -> Result<Vec<KeyEntry>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(entry).collect()
}

/// One page of keys, optionally of one project, and the total; hashes cleared.
pub async fn page(
    store: &Store,
    project: Option<&str>,
    page: Page,
) -> Result<(Vec<KeyEntry>, i64), StoreError> {
    let filter = if project.is_some() {
        "WHERE project = $3"
    } else {
        "WHERE $3 = $3"
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM api_keys {filter} ORDER BY created_at, id LIMIT $1 OFFSET $2"
    );
    let project = project.unwrap_or_default().to_owned();
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(page.limit)
        .bind(page.offset)
        .bind(project.clone())
        .fetch_all(store.pool())
        .await?;
    let count = format!(
        "SELECT COUNT(*) AS n FROM api_keys {}",
        filter.replace("$3", "$1")
    );
    let total: i64 = sqlx::query(sqlx::AssertSqlSafe(count))
        .bind(project)
        .fetch_one(store.pool())
        .await?
        .try_get("n")?;
    let mut keys: Vec<KeyEntry> = rows.iter().map(entry).collect::<Result<_, _>>()?;
    for key in &mut keys {
        key.hash.clear();
    }
    Ok((keys, total))
}

/// The key `id`, hash cleared.
pub async fn get(store: &Store, id: &str) -> Result<Option<KeyEntry>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_owned())
        .fetch_optional(store.pool())
        .await?;
    let mut key = row.as_ref().map(entry).transpose()?;
    if let Some(key) = &mut key {
        key.hash.clear();
    }
    Ok(key)
}

/// Stores a key; a taken id or hash is a [`StoreError::Conflict`].
pub async fn insert(store: &Store, key: &KeyEntry) -> Result<(), StoreError> {
    let created = key
        .created_at
        .and_then(|s| i64::try_from(s.saturating_mul(1000)).ok())
        .unwrap_or_else(now_ms);
    sqlx::query(
        "INSERT INTO api_keys (id, hash, user_name, project, revoked, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(key.id.clone())
    .bind(key.hash.clone())
    .bind(key.user.clone())
    .bind(key.project.clone())
    .bind(i64::from(key.revoked))
    .bind(created)
    .execute(store.pool())
    .await
    .map_err(|err| {
        if is_unique_violation(&err) {
            StoreError::Conflict(format!("key '{}'", key.id))
        } else {
            err.into()
        }
    })?;
    Ok(())
}

/// Marks a key revoked; false when there is no such key.
pub async fn revoke(store: &Store, id: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE api_keys SET revoked = 1 WHERE id = $1")
        .bind(id.to_owned())
        .execute(store.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Deletes a key; false when there is no such key.
pub async fn delete(store: &Store, id: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM api_keys WHERE id = $1")
        .bind(id.to_owned())
        .execute(store.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Number of keys in `project`.
pub async fn count_in_project(store: &Store, project: &str) -> Result<i64, StoreError> {
    Ok(
        sqlx::query("SELECT COUNT(*) AS n FROM api_keys WHERE project = $1")
            .bind(project.to_owned())
            .fetch_one(store.pool())
            .await?
            .try_get("n")?,
    )
}
