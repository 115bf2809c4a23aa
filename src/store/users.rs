//! Stored management users: name, e-mail, role, status, the argon2id hash
//! of the password (never the password), and the login failure state that
//! drives lockout.
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, is_unique_violation, now_ms};

const COLUMNS: &str =
    "name, email, role, status, password, failed_logins, locked_until, created_at, updated_at";

/// One user as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Unique login name.
    pub name: String,
    /// Contact address (may be empty).
    pub email: String,
    /// `admin`, `operator`, `user` or `viewer`.
    pub role: String,
    /// `active` or `disabled`.
    pub status: String,
    /// argon2id PHC string. Never shown.
    pub password: String,
    /// Consecutive failed logins since the last success.
    pub failed_logins: i64,
    /// Unix milliseconds until which logins are refused (0: not locked).
    pub locked_until: i64,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

fn record(row: &AnyRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        role: row.try_get("role")?,
        status: row.try_get("status")?,
        password: row.try_get("password")?,
        failed_logins: row.try_get("failed_logins")?,
        locked_until: row.try_get("locked_until")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// True when `name` is a usable login name: letters, digits, '.', '_', '-'
/// and '@', at most 64 bytes.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// Every user, by name.
pub async fn all(store: &Store) -> Result<Vec<UserRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM users ORDER BY name");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(record).collect()
}

/// The user called `name`.
pub async fn get(store: &Store, name: &str) -> Result<Option<UserRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE name = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(name.to_owned())
        .fetch_optional(store.pool())
        .await?;
    row.as_ref().map(record).transpose()
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// `query` with `$1`…`$7` bound to the fields from `name` to `locked_until`.
fn bind_fields<'q>(query: AnyQuery<'q>, user: &UserRecord) -> AnyQuery<'q> {
    query
        .bind(user.name.clone())
        .bind(user.email.clone())
        .bind(user.role.clone())
        .bind(user.status.clone())
        .bind(user.password.clone())
        .bind(user.failed_logins)
        .bind(user.locked_until)
}

/// Stores a new user; [`StoreError::Conflict`] when the name is taken.
pub async fn insert(store: &Store, user: &UserRecord) -> Result<(), StoreError> {
    let sql = format!("INSERT INTO users ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)");
    bind_fields(sqlx::query(sqlx::AssertSqlSafe(sql)), user)
        .bind(user.created_at)
        .bind(user.updated_at)
        .execute(store.pool())
        .await
        .map_err(|err| {
            if is_unique_violation(&err) {
                StoreError::Conflict(format!("user '{}'", user.name))
            } else {
                err.into()
            }
        })?;
    Ok(())
}

/// Writes every field of `user` but its name and creation time; false when
/// there is no such user.
pub async fn update(store: &Store, user: &UserRecord) -> Result<bool, StoreError> {
    let sql = "UPDATE users SET email = $2, role = $3, status = $4, password = $5, \
               failed_logins = $6, locked_until = $7, updated_at = $8 WHERE name = $1";
    let done = bind_fields(sqlx::query(sql), user)
        .bind(now_ms())
        .execute(store.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Records the outcome of a login: a success clears the failure count, a
/// failure adds one and locks until `lock_until` when given.
pub async fn record_login(
    store: &Store,
    name: &str,
    success: bool,
    lock_until: Option<i64>,
) -> Result<(), StoreError> {
    let query = if success {
        sqlx::query("UPDATE users SET failed_logins = 0, locked_until = 0 WHERE name = $1")
            .bind(name.to_owned())
    } else {
        sqlx::query(
            "UPDATE users SET failed_logins = failed_logins + 1, \
             locked_until = CASE WHEN $2 > locked_until THEN $2 ELSE locked_until END \
             WHERE name = $1",
        )
        .bind(name.to_owned())
        .bind(lock_until.unwrap_or(0))
    };
    query.execute(store.pool()).await?;
    Ok(())
}

/// Deletes a user; false when there is no such user.
pub async fn delete(store: &Store, name: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM users WHERE name = $1")
        .bind(name.to_owned())
        .execute(store.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Number of active users with `role`.
pub async fn count_active(store: &Store, role: &str) -> Result<i64, StoreError> {
    Ok(
        sqlx::query("SELECT COUNT(*) AS n FROM users WHERE role = $1 AND status = 'active'")
            .bind(role.to_owned())
            .fetch_one(store.pool())
            .await?
            .try_get("n")?,
    )
}

/// A value of `store_meta`, written once: the first writer's value wins
/// (also between replicas on one PostgreSQL), and every caller gets it.
pub async fn meta_once(store: &Store, name: &str, value: &str) -> Result<String, StoreError> {
    sqlx::query(
        "INSERT INTO store_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name.to_owned())
    .bind(value.to_owned())
    .execute(store.pool())
    .await?;
    Ok(sqlx::query("SELECT value FROM store_meta WHERE name = $1")
        .bind(name.to_owned())
        .fetch_one(store.pool())
        .await?
        .try_get("value")?)
}
