//! Backup, restore and reset of the whole store as one JSON document:
//! format name and version, the master key id, every row of every table in
//! [`TABLES`] (definitions as JSON, their secrets still sealed) and a
//! SHA-256 checksum over the rest. Restoring validates everything first
//! (format, checksum, key, columns, references) and then replaces the
//! tables in one transaction, so a bad file changes nothing.
use std::collections::BTreeSet;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, now_ms, secrets};
use crate::config::auth::{ADMIN_PROJECT, ProjectConfig};

/// The `format` field of every backup.
pub const FORMAT: &str = "bulwark-backup";
/// The document version this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;

/// How a column is kept in the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string.
    Text,
    /// An integer (times, flags).
    Int,
    /// JSON text, kept in the document as JSON.
    Json,
    /// A string or NULL.
    OptText,
    /// An integer or NULL.
    OptInt,
}

/// One table a backup covers.
#[derive(Debug)]
pub struct Table {
    /// The table.
    pub name: &'static str,
    /// Its columns, all of them.
    pub columns: &'static [(&'static str, Kind)],
    /// The listing order (its key), so equal stores give equal documents.
    pub order_by: &'static str,
    /// Whether a reset empties it (`store_meta` survives: it records
    /// one-time imports and the master key id).
    pub reset: bool,
}

use Kind::{Int, Json, OptInt, OptText, Text};

const NAMED: &[(&str, Kind)] = &[
    ("name", Text),
    ("definition", Json),
    ("enabled", Int),
    ("created_at", Int),
    ("updated_at", Int),
];

/// Every table a backup covers, parents before children: the one list to
/// extend when a migration adds a table.
pub const TABLES: &[Table] = &[
    Table {
        name: "store_meta",
        columns: &[("name", Text), ("value", Text)],
        order_by: "name",
        reset: false,
    },
    Table {
        name: "upstreams",
        columns: NAMED,
        order_by: "name",
        reset: true,
    },
    Table {
        name: "projects",
        columns: NAMED,
        order_by: "name",
        reset: true,
    },
    Table {
        name: "api_keys",
        columns: &[
            ("id", Text),
            ("hash", Text),
            ("user_name", Text),
            ("project", Text),
            ("revoked", Int),
            ("created_at", Int),
        ],
        order_by: "id",
        reset: true,
    },
    Table {
        name: "guardrail_pins",
        columns: &[
            ("server", Text),
            ("tool", Text),
            ("pinned", Text),
            ("updated_at", Int),
        ],
        order_by: "server, tool",
        reset: true,
    },
    // Password hashes (argon2id) only. The audit trail is not here on
    // purpose: it is append-only, and a restore must not rewrite history.
    Table {
        name: "users",
        columns: &[
            ("name", Text),
            ("email", Text),
            ("role", Text),
            ("status", Text),
            ("password", Text),
            ("failed_logins", Int),
            ("locked_until", Int),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        order_by: "name",
        reset: true,
    },
];

/// Why a backup document was refused (nothing was changed).
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Not JSON, or not an object.
    #[error("the backup is not a JSON object: {0}")]
    NotJson(String),
    /// Another format or version.
    #[error("{0}")]
    Format(String),
    /// The checksum does not match the content.
    #[error(
        "the checksum does not match the content: the file was altered or truncated after it was written"
    )]
    Checksum,
    /// The secrets are sealed under another master key.
    #[error(
        "the backup's secrets are sealed under master key {found}, this gateway's key is {expected}: restore with the key the backup was made with"
    )]
    WrongKey {
        /// The backup's key id.
        found: String,
        /// Ours.
        expected: String,
    },
    /// A table or row is not what this version stores.
    #[error("{0}")]
    Shape(String),
    /// A row names something that exists neither in the backup nor in the
    /// config file.
    #[error("{0}")]
    Reference(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for BackupError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(err.into())
    }
}

/// Names defined outside the store (the config file), which stored rows may
/// refer to.
#[derive(Debug, Default, Clone)]
pub struct Known {
    /// Upstreams of the config file.
    pub upstreams: BTreeSet<String>,
    /// Projects of the config file.
    pub projects: BTreeSet<String>,
}

/// A validated backup, ready to apply.
#[derive(Debug, Clone)]
pub struct Backup {
    tables: Map<String, Value>,
}

/// The whole store as a backup document.
pub async fn dump(store: &Store) -> Result<Value, StoreError> {
    let mut tables = Map::new();
    for table in TABLES {
        let columns: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {}",
            columns.join(", "),
            table.name,
            table.order_by
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(store.pool())
            .await?;
        let rows = rows
            .iter()
            .map(|row| row_json(table, row))
            .collect::<Result<Vec<_>, _>>()?;
        tables.insert(table.name.into(), Value::Array(rows));
    }
    let mut document = json!({
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "bulwark_version": env!("CARGO_PKG_VERSION"),
        "created_at": now_ms(),
        "master_key_id": store.master_key().id(),
        "tables": tables,
    });
    document["checksum"] = json!(checksum(&document));
    Ok(document)
}

fn row_json(table: &Table, row: &AnyRow) -> Result<Value, StoreError> {
    let mut out = Map::new();
    for &(column, kind) in table.columns {
        let value = match kind {
            Text => json!(row.try_get::<String, _>(column)?),
            Int => json!(row.try_get::<i64, _>(column)?),
            OptText => json!(row.try_get::<Option<String>, _>(column)?),
            OptInt => json!(row.try_get::<Option<i64>, _>(column)?),
            Json => {
                let text: String = row.try_get(column)?;
                serde_json::from_str(&text).map_err(|err| StoreError::Corrupt {
                    what: table.name,
                    name: column.to_owned(),
                    message: err.to_string(),
                })?
            }
        };
        out.insert(column.to_owned(), value);
    }
    Ok(Value::Object(out))
}

/// `sha256:HEX` of the document without its `checksum` field.
fn checksum(document: &Value) -> String {
    let mut content = document.clone();
    if let Value::Object(map) = &mut content {
        map.remove("checksum");
    }
    let digest = Sha256::digest(content.to_string().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Checks a backup document against this store and `known` names, without
/// changing anything.
pub fn validate(store: &Store, text: &[u8], known: &Known) -> Result<Backup, BackupError> {
    let document: Value =
        serde_json::from_slice(text).map_err(|err| BackupError::NotJson(err.to_string()))?;
    let Value::Object(fields) = &document else {
        return Err(BackupError::NotJson("the document is not an object".into()));
    };
    if fields.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(BackupError::Format(format!(
            "not a Bulwark backup: `format` must be \"{FORMAT}\""
        )));
    }
    let version = fields.get("format_version").and_then(Value::as_u64);
    if version != Some(FORMAT_VERSION) {
        return Err(BackupError::Format(format!(
            "backup format version {} is not supported: this Bulwark reads version {FORMAT_VERSION}",
            fields.get("format_version").unwrap_or(&Value::Null)
        )));
    }
    if fields.get("checksum").and_then(Value::as_str) != Some(checksum(&document).as_str()) {
        return Err(BackupError::Checksum);
    }
    let found = fields
        .get("master_key_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if found != store.master_key().id() {
        return Err(BackupError::WrongKey {
            found: found.to_owned(),
            expected: store.master_key().id().to_owned(),
        });
    }
    let Some(Value::Object(tables)) = fields.get("tables") else {
        return Err(BackupError::Shape("`tables` must be an object".into()));
    };
    if let Some(unknown) = tables
        .keys()
        .find(|name| !TABLES.iter().any(|t| t.name == name.as_str()))
    {
        return Err(BackupError::Shape(format!(
            "table '{unknown}' is not known to this version of Bulwark"
        )));
    }
    for table in TABLES {
        check_rows(table, tables.get(table.name))?;
    }
    check_references(store, tables, known)?;
    Ok(Backup {
        tables: tables.clone(),
    })
}

fn check_rows(table: &Table, rows: Option<&Value>) -> Result<(), BackupError> {
    let Some(Value::Array(rows)) = rows else {
        return Err(BackupError::Shape(format!(
            "table '{}' is missing or not a list",
            table.name
        )));
    };
    for (index, row) in rows.iter().enumerate() {
        let at = || format!("table '{}', row {index}", table.name);
        let Value::Object(row) = row else {
            return Err(BackupError::Shape(format!("{}: not an object", at())));
        };
        if row.len() != table.columns.len() {
            return Err(BackupError::Shape(format!(
                "{}: expected the columns {:?}",
                at(),
                table.columns.iter().map(|(c, _)| *c).collect::<Vec<_>>()
            )));
        }
        for &(column, kind) in table.columns {
            let fits = match (kind, row.get(column)) {
                (Text, Some(Value::String(_))) => true,
                (Int, Some(value)) => value.is_i64(),
                (Json, Some(value)) => value.is_object(),
                (OptText, Some(value)) => value.is_null() || value.is_string(),
                (OptInt, Some(value)) => value.is_null() || value.is_i64(),
                _ => false,
            };
            if !fits {
                return Err(BackupError::Shape(format!(
                    "{}: column `{column}` is missing or not {}",
                    at(),
                    match kind {
                        Text => "a string",
                        Int => "an integer",
                        Json => "an object",
                        OptText => "a string or null",
                        OptInt => "an integer or null",
                    }
                )));
            }
        }
    }
    Ok(())
}

fn names<'a>(tables: &'a Map<String, Value>, table: &str, column: &str) -> Vec<&'a str> {
    tables
        .get(table)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|row| row.get(column).and_then(Value::as_str))
        .collect()
}

fn check_references(
    store: &Store,
    tables: &Map<String, Value>,
    known: &Known,
) -> Result<(), BackupError> {
    let upstreams: BTreeSet<&str> = names(tables, "upstreams", "name")
        .into_iter()
        .chain(known.upstreams.iter().map(String::as_str))
        .collect();
    let projects: BTreeSet<&str> = names(tables, "projects", "name")
        .into_iter()
        .chain(known.projects.iter().map(String::as_str))
        .chain([ADMIN_PROJECT])
        .collect();
    for table in ["upstreams", "projects"] {
        for row in tables
            .get(table)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = row["name"].as_str().unwrap_or_default();
            // Every sealed secret must open under this store's key.
            let definition = secrets::unseal(store.master_key(), &row["definition"].to_string())
                .map_err(|err| BackupError::Reference(format!("{table} '{name}': {err}")))?;
            if table == "upstreams" {
                if known.upstreams.contains(name) {
                    return Err(BackupError::Reference(format!(
                        "upstream '{name}' is now defined in the config file: remove it there first"
                    )));
                }
                crate::control::desired::parse_upstream(definition).map_err(|err| {
                    BackupError::Shape(format!(
                        "upstream '{name}' is not an upstream: {}: {}",
                        err.field, err.message
                    ))
                })?;
                continue;
            }
            let project: ProjectConfig = serde_json::from_value(definition).map_err(|err| {
                BackupError::Shape(format!("project '{name}' is not a project: {err}"))
            })?;
            if let Some(missing) = project
                .upstreams
                .iter()
                .find(|u| u.as_str() != "*" && !upstreams.contains(u.as_str()))
            {
                return Err(BackupError::Reference(format!(
                    "project '{name}' grants upstream '{missing}', which neither the backup nor the config file defines"
                )));
            }
        }
    }
    for row in tables
        .get("api_keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let project = row["project"].as_str().unwrap_or_default();
        if !projects.contains(project) {
            return Err(BackupError::Reference(format!(
                "key '{}' belongs to project '{project}', which neither the backup nor the config file defines",
                row["id"].as_str().unwrap_or_default()
            )));
        }
    }
    Ok(())
}

/// Replaces every covered table with the backup's rows, in one transaction.
pub async fn apply(store: &Store, backup: &Backup) -> Result<(), StoreError> {
    let mut tx = store.begin_write().await?;
    for table in TABLES.iter().rev() {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {}", table.name)))
            .execute(&mut *tx)
            .await?;
    }
    for table in TABLES {
        let rows = backup
            .tables
            .get(table.name)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let columns: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
        let params: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            table.name,
            columns.join(", "),
            params.join(", ")
        );
        for row in rows {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for &(column, kind) in table.columns {
                query = match kind {
                    Text => query.bind(row[column].as_str().unwrap_or_default().to_owned()),
                    Int => query.bind(row[column].as_i64().unwrap_or_default()),
                    Json => query.bind(row[column].to_string()),
                    OptText => query.bind(row[column].as_str().map(str::to_owned)),
                    OptInt => query.bind(row[column].as_i64()),
                };
            }
            query.execute(&mut *tx).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Empties every table a reset covers, in one transaction.
pub async fn reset(store: &Store) -> Result<(), StoreError> {
    let mut tx = store.begin_write().await?;
    for table in TABLES.iter().rev().filter(|t| t.reset) {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {}", table.name)))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The tables' rows of a document (to compare two stores' content).
pub fn content(document: &Value) -> &Value {
    &document["tables"]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::named::{PROJECTS, UPSTREAMS};

    async fn store(dir: &std::path::Path) -> Store {
        Store::open(&Default::default(), dir).await.unwrap()
    }

    /// `document` with its checksum made right again (to reach later checks).
    fn resigned(mut document: Value) -> Vec<u8> {
        document["checksum"] = json!(checksum(&document));
        document.to_string().into_bytes()
    }

    fn refused(store: &Store, document: Value) -> String {
        match validate(store, &resigned(document), &Known::default()) {
            Ok(_) => panic!("accepted"),
            Err(err) => err.to_string(),
        }
    }

    #[tokio::test]
    async fn validation_refuses_bad_references_keys_and_tables_and_apply_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let upstream = json!({"command": "x", "env": {"TOKEN": "in-the-clear?"}});
        UPSTREAMS
            .insert(&store, "u", &upstream, true)
            .await
            .unwrap();
        PROJECTS
            .insert(&store, "p", &json!({"upstreams": ["u"]}), true)
            .await
            .unwrap();
        let document = dump(&store).await.unwrap();
        assert!(!document.to_string().contains("in-the-clear?"));
        let known = Known::default();
        let backup = validate(&store, document.to_string().as_bytes(), &known).unwrap();

        let mut broken = document.clone();
        broken["tables"]["upstreams"] = json!([]);
        assert!(refused(&store, broken).contains("grants upstream 'u'"));
        let mut broken = document.clone();
        broken["tables"]["api_keys"] = json!([{
            "id": "k", "hash": "sha256:00", "user_name": "bob", "project": "nope",
            "revoked": 0, "created_at": 1
        }]);
        assert!(refused(&store, broken).contains("project 'nope'"));
        let in_file = Known {
            upstreams: ["u".to_owned()].into(),
            ..Known::default()
        };
        let taken = validate(&store, document.to_string().as_bytes(), &in_file);
        assert!(matches!(taken, Err(BackupError::Reference(m)) if m.contains("config file")));
        let mut broken = document.clone();
        broken["tables"]["upstreams"][0]["definition"]["args"] = json!("not a list");
        assert!(refused(&store, broken).contains("is not an upstream"));
        let mut broken = document.clone();
        broken["tables"]["accounts"] = json!([]);
        assert!(refused(&store, broken).contains("table 'accounts'"));
        let mut broken = document.clone();
        broken["tables"]["projects"][0]["enabled"] = json!("yes");
        assert!(refused(&store, broken).contains("`enabled`"));
        let mut broken = document.clone();
        broken["master_key_id"] = json!("0000000000000000");
        assert!(refused(&store, broken).contains("master key 0000000000000000"));
        let mut broken = document.clone();
        broken["tables"]["upstreams"][0]["definition"]["env"]["TOKEN"] =
            json!("bulwark:sealed:v1:zz");
        assert!(refused(&store, broken).contains("upstreams 'u'"));
        assert!(matches!(
            validate(&store, b"[1, 2", &known),
            Err(BackupError::NotJson(_))
        ));

        reset(&store).await.unwrap();
        assert!(UPSTREAMS.all(&store).await.unwrap().is_empty());
        apply(&store, &backup).await.unwrap();
        let again = dump(&store).await.unwrap();
        assert_eq!(content(&again), content(&document));
        let restored = UPSTREAMS.get(&store, "u").await.unwrap().unwrap();
        assert_eq!(restored.definition, upstream);
        store.close().await;
    }
}
