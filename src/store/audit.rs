//! The audit trail: appended, listed with filters, and pruned by the
//! retention sweep only. Nothing here changes an entry.
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Page, Store, StoreError};

const COLUMNS: &str = "id, at, actor, role, credential, action, target, outcome, status, \
                       request_id, client, before_state, after_state, detail";

/// One audit entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Sorts by time.
    pub id: String,
    /// Unix milliseconds.
    pub at: i64,
    /// The user (or `anonymous`, or the name a failed login tried).
    pub actor: String,
    /// The actor's role, or empty when unknown.
    pub role: String,
    /// The credential used: `key:ID`, `login:NAME`, `jwt:SUB`, or empty.
    pub credential: String,
    /// e.g. `upstreams.create`, `auth.login`, `auth.refused`.
    pub action: String,
    /// e.g. `upstreams/echo`, or `METHOD /path` for refusals.
    pub target: String,
    /// `success`, `failure`, `refused`, `locked`, `rate_limited`.
    pub outcome: String,
    /// The HTTP status answered.
    pub status: i64,
    /// `X-Request-Id` (taken from the request or made up).
    pub request_id: String,
    /// The client's address.
    pub client: String,
    /// The target before the change, secrets masked.
    pub before: Option<Value>,
    /// The target after the change (or the answer), secrets masked.
    pub after: Option<Value>,
    /// A short explanation (why it was refused, …).
    pub detail: String,
}

/// Filters of a listing; empty ones match everything.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Exact actor.
    pub actor: Option<String>,
    /// Exact action, or a prefix when it ends in `.` or `*` (`upstreams.*`).
    pub action: Option<String>,
    /// Exact target, or a prefix when it ends in `/` or `*`.
    pub target: Option<String>,
    /// From this Unix millisecond on (inclusive).
    pub since: Option<i64>,
    /// Before this Unix millisecond (exclusive).
    pub until: Option<i64>,
}

fn json_column(row: &AnyRow, column: &str) -> Result<Option<Value>, StoreError> {
    let text: Option<String> = row.try_get(column)?;
    Ok(text.and_then(|text| serde_json::from_str(&text).ok()))
}

fn entry(row: &AnyRow) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        role: row.try_get("role")?,
        credential: row.try_get("credential")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        outcome: row.try_get("outcome")?,
        status: row.try_get("status")?,
        request_id: row.try_get("request_id")?,
        client: row.try_get("client")?,
        before: json_column(row, "before_state")?,
        after: json_column(row, "after_state")?,
        detail: row.try_get("detail")?,
    })
}

/// Appends `entry`.
pub async fn append(store: &Store, entry: &AuditEntry) -> Result<(), StoreError> {
    insert(store.pool(), entry).await
}

/// Appends `entries` in one transaction: one sync to disk for the lot, which
/// is what keeps the per-call audit cheap at a high call rate.
pub async fn append_all(store: &Store, entries: &[AuditEntry]) -> Result<(), StoreError> {
    let mut tx = store.begin_write().await?;
    for entry in entries {
        insert(&mut *tx, entry).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn insert<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO audit_log ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(entry.id.clone())
        .bind(entry.at)
        .bind(entry.actor.clone())
        .bind(entry.role.clone())
        .bind(entry.credential.clone())
        .bind(entry.action.clone())
        .bind(entry.target.clone())
        .bind(entry.outcome.clone())
        .bind(entry.status)
        .bind(entry.request_id.clone())
        .bind(entry.client.clone())
        .bind(entry.before.as_ref().map(Value::to_string))
        .bind(entry.after.as_ref().map(Value::to_string))
        .bind(entry.detail.clone())
        .execute(executor)
        .await?;
    Ok(())
}

/// `(column condition, bound value)` of one text filter.
fn text_filter(column: &str, wanted: &str, prefix_marks: &[char]) -> (String, String) {
    match wanted.strip_suffix('*') {
        Some(prefix) => (
            format!("{column} LIKE"),
            format!("{}%", escape_like(prefix)),
        ),
        None if wanted.ends_with(prefix_marks) => (
            format!("{column} LIKE"),
            format!("{}%", escape_like(wanted)),
        ),
        None => (format!("{column} ="), wanted.to_owned()),
    }
}

/// `LIKE` treats `%` and `_` as wildcards; a filter means them literally.
fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// One page of entries matching `filter`, newest first, and the total.
pub async fn page(
    store: &Store,
    filter: &AuditFilter,
    page: Page,
) -> Result<(Vec<AuditEntry>, i64), StoreError> {
    let mut conditions: Vec<String> = Vec::new();
    let mut texts: Vec<String> = Vec::new();
    let mut numbers: Vec<(String, i64)> = Vec::new();
    let texts_of = [
        ("actor", filter.actor.as_deref(), &[][..]),
        ("action", filter.action.as_deref(), &['.'][..]),
        ("target", filter.target.as_deref(), &['/'][..]),
    ];
    for (column, wanted, marks) in texts_of {
        if let Some(wanted) = wanted {
            let (condition, value) = text_filter(column, wanted, marks);
            texts.push(value);
            let escape = if condition.ends_with("LIKE") {
                " ESCAPE '\\'"
            } else {
                ""
            };
            conditions.push(format!("{condition} ${}{escape}", texts.len()));
        }
    }
    if let Some(since) = filter.since {
        numbers.push(("at >=".into(), since));
    }
    if let Some(until) = filter.until {
        numbers.push(("at <".into(), until));
    }
    for (index, (condition, _)) in numbers.iter().enumerate() {
        conditions.push(format!("{condition} ${}", texts.len() + index + 1));
    }
    let filters = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let bound = texts.len() + numbers.len();
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_log {filters} ORDER BY at DESC, id DESC LIMIT ${} OFFSET ${}",
        bound + 1,
        bound + 2
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for text in &texts {
        query = query.bind(text.clone());
    }
    for (_, number) in &numbers {
        query = query.bind(*number);
    }
    let rows = query
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(store.pool())
        .await?;
    let count = format!("SELECT COUNT(*) AS n FROM audit_log {filters}");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(count));
    for text in &texts {
        query = query.bind(text.clone());
    }
    for (_, number) in &numbers {
        query = query.bind(*number);
    }
    let total: i64 = query.fetch_one(store.pool()).await?.try_get("n")?;
    let entries = rows.iter().map(entry).collect::<Result<_, _>>()?;
    Ok((entries, total))
}

/// Deletes entries older than `before` (Unix milliseconds); how many.
pub async fn prune(store: &Store, before: i64) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM audit_log WHERE at < $1")
        .bind(before)
        .execute(store.pool())
        .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(id: &str, at: i64, action: &str, target: &str) -> AuditEntry {
        AuditEntry {
            id: id.into(),
            at,
            actor: "root".into(),
            action: action.into(),
            target: target.into(),
            outcome: "success".into(),
            ..AuditEntry::default()
        }
    }

    #[tokio::test]
    async fn filters_pages_and_retention_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let key = crate::store::secrets::MasterKey::generate().unwrap().0;
        let store = Store::connect(&url, key).await.unwrap();
        for entry in [
            at("1", 1_000, "upstreams.create", "upstreams/a_b"),
            at("2", 2_000, "upstreams.delete", "upstreams/axb"),
            at("3", 3_000, "users.create", "users/ann"),
        ] {
            append(&store, &entry).await.unwrap();
        }
        let everything = Page {
            limit: 10,
            offset: 0,
        };
        let list = |filter: AuditFilter| {
            let store = store.clone();
            async move { page(&store, &filter, everything).await.unwrap() }
        };
        let (newest_first, total) = list(AuditFilter::default()).await;
        assert_eq!(total, 3);
        assert_eq!(newest_first[0].id, "3");
        let (prefixed, _) = list(AuditFilter {
            action: Some("upstreams.".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(prefixed.len(), 2);
        // `_` is literal in a prefix, not a wildcard.
        let (literal, _) = list(AuditFilter {
            target: Some("upstreams/a_*".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(
            literal.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ["1"]
        );
        let (window, _) = list(AuditFilter {
            since: Some(1_500),
            until: Some(3_000),
            ..Default::default()
        })
        .await;
        assert_eq!(
            window.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ["2"]
        );
        let (second_page, total) = page(
            &store,
            &AuditFilter::default(),
            Page {
                limit: 1,
                offset: 1,
            },
        )
        .await
        .unwrap();
        assert_eq!((second_page[0].id.as_str(), total), ("2", 3));
        // Retention deletes what is older than its cut-off, nothing else.
        assert_eq!(prune(&store, 2_500).await.unwrap(), 2);
        assert_eq!(list(AuditFilter::default()).await.1, 1);
    }
}
