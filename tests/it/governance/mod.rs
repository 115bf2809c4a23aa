//! Users, roles and the audit trail of the management API, on the real
//! binary with SQLite and PostgreSQL stores: the role matrix over every
//! documented route, logins with lockout and password reset, and audit
//! entries for every kind of mutation with secrets masked.
mod audit;
mod calls;
mod cli;
mod login;
mod roles;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::auth::TestKey;
use crate::common::Gateway;
use crate::control::{StoreUnderTest, send};
use crate::gateway::{HEAD, demo_upstream};

/// A password every test user gets (long enough for the policy).
pub const PASSWORD: &str = "correct horse battery staple";

/// A gateway with authentication on, an `echo` upstream, a `demo` project,
/// `extra` config, and a config-file admin key of user `root` (no stored
/// user: it stays an admin).
pub async fn start(store: &StoreUnderTest, extra: &str) -> (Gateway, TestKey) {
    let admin = TestKey::new();
    let config = format!(
        "{HEAD}{}{}\n[auth.projects.demo]\nupstreams = [\"echo\"]\n{}{extra}",
        store.config(),
        demo_upstream("echo", "\"echo\""),
        admin.entry("root", "admin", false),
    );
    let gw = Gateway::builder(&config).with_auth().start();
    gw.wait_ready(Duration::from_secs(60)).await;
    (gw, admin)
}

/// Creates user `name` with `role` (as the admin); panics on failure.
pub async fn add_user(gw: &Gateway, admin: &TestKey, name: &str, role: &str) -> Value {
    let (status, user) = send(
        gw,
        Method::POST,
        "/api/v1/users",
        Some(&json!({"username": name, "password": PASSWORD, "role": role, "email": format!("{name}@example.com")})),
        Some(&admin.secret),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    user
}

/// `POST /api/v1/auth/login` → (status, answer).
pub async fn login(gw: &Gateway, name: &str, password: &str) -> (u16, Value) {
    send(
        gw,
        Method::POST,
        "/api/v1/auth/login",
        Some(&json!({"username": name, "password": password})),
        None,
    )
    .await
}

/// A session token of `name` (who must have [`PASSWORD`]).
pub async fn token(gw: &Gateway, name: &str) -> String {
    let (status, session) = login(gw, name, PASSWORD).await;
    assert_eq!(status, 200, "{session}");
    session["token"].as_str().unwrap().to_owned()
}

/// Every audit entry matching `query` (e.g. `action=auth.login`), newest first.
pub async fn audit(gw: &Gateway, admin: &TestKey, query: &str) -> Vec<Value> {
    let (status, page) = send(
        gw,
        Method::GET,
        &format!("/api/v1/audit?limit=500&{query}"),
        None,
        Some(&admin.secret),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

/// Runs `test` on SQLite, then on a fresh PostgreSQL database (skipped
/// visibly when PostgreSQL is absent).
pub async fn on_both_stores<F, Fut>(test: F)
where
    F: Fn(StoreUnderTest) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    test(StoreUnderTest::Sqlite).await;
    if let Some(db) = crate::control::PgDatabase::create().await {
        test(StoreUnderTest::Postgres(db)).await;
    }
}

/// Now, in Unix milliseconds (the audit trail's time).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap())
        .unwrap()
}
