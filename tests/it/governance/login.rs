//! Logins: a session token that works until the user is disabled; lockout
//! after repeated failures, lifted by a password reset; failures
//! rate-limited per user name and per client address; all of it audited.
use reqwest::Method;
use serde_json::json;

use super::{PASSWORD, add_user, audit, login, on_both_stores, start, token};
use crate::control::{StoreUnderTest, send};

const LIMITS: &str =
    "[login]\nmax_failures = 3\nuser_failures_per_minute = 5\naddress_failures_per_minute = 10\n";

async fn login_lockout_reset(store: StoreUnderTest) {
    let (gw, admin) = start(&store, LIMITS).await;
    let user = add_user(&gw, &admin, "alice", "operator").await;
    assert!(user.get("password").is_none(), "{user}");

    // A session token opens the API with the user's role.
    let (status, session) = login(&gw, "alice", PASSWORD).await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(
        (session["role"].as_str(), session["token_type"].as_str()),
        (Some("operator"), Some("Bearer"))
    );
    let alice = session["token"].as_str().unwrap().to_owned();
    let (status, _) = send(&gw, Method::GET, "/api/v1/upstreams", None, Some(&alice)).await;
    assert_eq!(status, 200);
    let (status, _) = send(&gw, Method::GET, "/api/v1/users", None, Some(&alice)).await;
    assert_eq!(status, 403, "an operator manages no users");
    // The session token is not an MCP credential.
    let mcp = crate::auth::initialize(
        &gw,
        "/mcp",
        &[("Authorization", &format!("Bearer {alice}"))],
    )
    .await;
    assert_eq!(mcp.status(), 401);

    // Lockout after `max_failures`; even the right password is refused then.
    for _ in 0..2 {
        let (status, problem) = login(&gw, "alice", "wrong password, sorry").await;
        assert_eq!(status, 401, "{problem}");
    }
    let (status, problem) = login(&gw, "alice", "wrong password, sorry").await;
    assert_eq!(status, 423, "{problem}");
    let (status, _) = login(&gw, "alice", PASSWORD).await;
    assert_eq!(status, 423, "locked means locked");
    let (_, shown) = send(
        &gw,
        Method::GET,
        "/api/v1/users/alice",
        None,
        Some(&admin.secret),
    )
    .await;
    assert_eq!(shown["locked"], true, "{shown}");

    // A password reset lifts the lockout; the old password is gone.
    let new_password = "a brand new long password";
    let (status, problem) = send(
        &gw,
        Method::POST,
        "/api/v1/users/alice/reset-password",
        Some(&json!({"password": "short"})),
        Some(&admin.secret),
    )
    .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (422, Some("password")),
        "{problem}"
    );
    let (status, reset) = send(
        &gw,
        Method::POST,
        "/api/v1/users/alice/reset-password",
        Some(&json!({"password": new_password})),
        Some(&admin.secret),
    )
    .await;
    assert_eq!((status, &reset["locked"]), (200, &json!(false)), "{reset}");
    let (status, _) = login(&gw, "alice", new_password).await;
    assert_eq!(status, 200);

    // Per user name (known or not): over the limit, 429 before any check.
    for _ in 0..5 {
        let (status, _) = login(&gw, "ghost", "whatever it may be").await;
        assert_eq!(status, 401);
    }
    let limited = gw
        .http()
        .post(gw.url("/api/v1/auth/login"))
        .json(&json!({"username": "ghost", "password": "whatever it may be"}))
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    // Per client address: 3 + 5 failures so far, the limit is 10.
    for name in ["casper", "wraith"] {
        let (status, _) = login(&gw, name, "whatever it may be").await;
        assert_eq!(status, 401);
    }
    let (status, _) = login(&gw, "banshee", "whatever it may be").await;
    assert_eq!(status, 429, "the address is over its limit");

    // Disabling a user ends their session at once, and their keys stop
    // everywhere (/mcp too) until they are enabled again.
    let (status, created) = send(
        &gw,
        Method::POST,
        "/api/v1/keys",
        Some(&json!({"user": "alice", "project": "demo"})),
        Some(&admin.secret),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let alice_key = created["key"].as_str().unwrap().to_owned();
    let mcp_status = |key: String| {
        let gw = &gw;
        async move {
            crate::auth::initialize(gw, "/mcp", &[("X-API-Key", key.as_str())])
                .await
                .status()
        }
    };
    assert_eq!(mcp_status(alice_key.clone()).await, 200);
    let (status, _) = send(
        &gw,
        Method::PATCH,
        "/api/v1/users/alice",
        Some(&json!({"status": "disabled"})),
        Some(&admin.secret),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(&gw, Method::GET, "/api/v1/upstreams", None, Some(&alice)).await;
    assert_eq!(status, 403);
    assert_eq!(
        mcp_status(alice_key.clone()).await,
        401,
        "a disabled user's key is refused on /mcp"
    );
    let (status, _) = send(
        &gw,
        Method::PATCH,
        "/api/v1/users/alice",
        Some(&json!({"status": "active"})),
        Some(&admin.secret),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        mcp_status(alice_key).await,
        200,
        "enabled again, the key works again"
    );

    // Every attempt is in the audit trail, with its outcome and address.
    let logins = audit(&gw, &admin, "action=auth.login").await;
    for outcome in ["success", "failure", "locked", "rate_limited"] {
        assert!(
            logins.iter().any(|e| e["outcome"] == outcome),
            "{outcome}: {logins:?}"
        );
    }
    assert!(
        logins.iter().all(|e| e["client"] == "127.0.0.1"),
        "{logins:?}"
    );
    let alice_failures = audit(&gw, &admin, "action=auth.login&actor=alice").await;
    assert_eq!(
        alice_failures
            .iter()
            .filter(|e| e["outcome"] == "failure")
            .count(),
        2,
        "{alice_failures:?}"
    );
    let text = serde_json::to_string(&logins).unwrap();
    for secret in [
        PASSWORD,
        new_password,
        "wrong password",
        "whatever it may be",
    ] {
        assert!(!text.contains(secret), "a password in the audit trail");
    }
    assert!(!gw.logs().contains(new_password), "a password in the logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_lockout_password_reset_and_rate_limits() {
    on_both_stores(login_lockout_reset).await;
}

/// The last active admin user cannot be removed, demoted or disabled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_admin_user_stays() {
    let (gw, admin) = start(&StoreUnderTest::Sqlite, "").await;
    add_user(&gw, &admin, "boss", "admin").await;
    let boss = token(&gw, "boss").await;
    let (status, problem) = send(
        &gw,
        Method::PATCH,
        "/api/v1/users/boss",
        Some(&json!({"role": "viewer"})),
        Some(&boss),
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    let (status, _) = send(&gw, Method::DELETE, "/api/v1/users/boss", None, Some(&boss)).await;
    assert_eq!(status, 409);
    add_user(&gw, &admin, "deputy", "admin").await;
    let (status, _) = send(&gw, Method::DELETE, "/api/v1/users/boss", None, Some(&boss)).await;
    assert_eq!(status, 204);
    let (status, _) = send(&gw, Method::GET, "/api/v1/upstreams", None, Some(&boss)).await;
    assert_eq!(status, 403, "a deleted user's session ends");
}
