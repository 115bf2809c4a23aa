//! First start on a store: the keys file of earlier versions is imported
//! once, then left alone (the store is the truth from then on).
use super::{Store, StoreError, keys, now_ms};
use crate::auth::store::KeysFile;

const IMPORTED: &str = "keys_file_imported";

/// Imports `path`'s keys unless a keys file was imported before; returns how
/// many keys were added.
pub async fn keys_file_once(store: &Store, path: &std::path::Path) -> Result<usize, StoreError> {
    let done = sqlx::query("SELECT value FROM store_meta WHERE name = $1")
        .bind(IMPORTED)
        .fetch_optional(store.pool())
        .await?;
    if done.is_some() {
        return Ok(0);
    }
    let file = KeysFile::load(path).map_err(|err| StoreError::Corrupt {
        what: "keys file",
        name: path.display().to_string(),
        message: err.to_string(),
    })?;
    let mut added = 0;
    for key in &file.keys {
        match keys::insert(store, key).await {
            Ok(()) => added += 1,
            // Imported by a replica or an interrupted earlier start.
            Err(StoreError::Conflict(_)) => {}
            Err(err) => return Err(err),
        }
    }
    let marked = sqlx::query("INSERT INTO store_meta (name, value) VALUES ($1, $2)")
        .bind(IMPORTED)
        .bind(now_ms().to_string())
        .execute(store.pool())
        .await;
    if let Err(err) = marked
        && !super::is_unique_violation(&err)
    {
        return Err(err.into());
    }
    if added > 0 {
        tracing::info!(path = %path.display(), keys = added, "imported the keys file into the store");
    }
    Ok(added)
}
