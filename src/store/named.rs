//! A table of named JSON definitions (upstreams, projects): the same five
//! columns, the same queries. Definitions go through [`super::secrets`].
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Page, Store, StoreError, is_unique_violation, now_ms, secrets};

/// One stored definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Unique name.
    pub name: String,
    /// The definition (secrets in clear: mask before showing it).
    pub definition: Value,
    /// Disabled records are kept but not applied.
    pub enabled: bool,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// One of the named-definition tables.
#[derive(Debug, Clone, Copy)]
pub struct Named {
    table: &'static str,
    what: &'static str,
}

/// Stored upstreams.
pub const UPSTREAMS: Named = Named {
    table: "upstreams",
    what: "upstream",
};

/// Stored projects.
pub const PROJECTS: Named = Named {
    table: "projects",
    what: "project",
};

const COLUMNS: &str = "name, definition, enabled, created_at, updated_at";

impl Named {
    fn record(&self, store: &Store, row: &AnyRow) -> Result<Record, StoreError> {
        let name: String = row.try_get("name")?;
        let text: String = row.try_get("definition")?;
        let definition =
            secrets::unseal(store.master_key(), &text).map_err(|err| StoreError::Corrupt {
                what: self.what,
                name: name.clone(),
                message: err.to_string(),
            })?;
        Ok(Record {
            name,
            definition,
            enabled: row.try_get::<i64, _>("enabled")? != 0,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    /// Every record, by name.
    pub async fn all(&self, store: &Store) -> Result<Vec<Record>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM {} ORDER BY name", self.table);
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(store.pool())
            .await?;
        rows.iter().map(|row| self.record(store, row)).collect()
    }

    /// One page of records by name, and the total count.
    pub async fn page(&self, store: &Store, page: Page) -> Result<(Vec<Record>, i64), StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM {} ORDER BY name LIMIT $1 OFFSET $2",
            self.table
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(page.limit)
            .bind(page.offset)
            .fetch_all(store.pool())
            .await?;
        let count = format!("SELECT COUNT(*) AS n FROM {}", self.table);
        let total: i64 = sqlx::query(sqlx::AssertSqlSafe(count))
            .fetch_one(store.pool())
            .await?
            .try_get("n")?;
        let records = rows
            .iter()
            .map(|row| self.record(store, row))
            .collect::<Result<_, _>>()?;
        Ok((records, total))
    }

    /// The record called `name`.
    pub async fn get(&self, store: &Store, name: &str) -> Result<Option<Record>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM {} WHERE name = $1", self.table);
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name.to_owned())
            .fetch_optional(store.pool())
            .await?;
        row.as_ref().map(|row| self.record(store, row)).transpose()
    }

    /// Stores a new record; [`StoreError::Conflict`] when the name is taken.
    pub async fn insert(
        &self,
        store: &Store,
        name: &str,
        definition: &Value,
        enabled: bool,
    ) -> Result<Record, StoreError> {
        let now = now_ms();
        let sql = format!(
            "INSERT INTO {} ({COLUMNS}) VALUES ($1, $2, $3, $4, $4)",
            self.table
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name.to_owned())
            .bind(secrets::seal(store.master_key(), definition)?)
            .bind(i64::from(enabled))
            .bind(now)
            .execute(store.pool())
            .await
            .map_err(|err| {
                if is_unique_violation(&err) {
                    StoreError::Conflict(format!("{} '{name}'", self.what))
                } else {
                    err.into()
                }
            })?;
        Ok(Record {
            name: name.to_owned(),
            definition: definition.clone(),
            enabled,
            created_at: now,
            updated_at: now,
        })
    }

    /// Replaces a record's definition and flag; false when it does not exist.
    pub async fn update(
        &self,
        store: &Store,
        name: &str,
        definition: &Value,
        enabled: bool,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE {} SET definition = $1, enabled = $2, updated_at = $3 WHERE name = $4",
            self.table
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(secrets::seal(store.master_key(), definition)?)
            .bind(i64::from(enabled))
            .bind(now_ms())
            .bind(name.to_owned())
            .execute(store.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes a record; false when it did not exist.
    pub async fn delete(&self, store: &Store, name: &str) -> Result<bool, StoreError> {
        let sql = format!("DELETE FROM {} WHERE name = $1", self.table);
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name.to_owned())
            .execute(store.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
