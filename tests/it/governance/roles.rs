//! The role matrix: every role × every operation of the OpenAPI document
//! (so a new route cannot be missed) × allowed or refused, as the
//! document's `x-bulwark-roles` says and the guard enforces. An operation
//! without a classification fails the test.
use reqwest::Method;
use serde_json::{Value, json};

use super::{add_user, on_both_stores, start, token};
use crate::common::Gateway;
use crate::control::{StoreUnderTest, send};

const ROLES: [&str; 4] = ["admin", "operator", "user", "viewer"];

/// `(method, path template, allowed roles)` of every documented operation.
async fn operations(gw: &Gateway) -> Vec<(Method, String, Vec<String>)> {
    let (status, document) = gw.get_json("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    let mut found = Vec::new();
    let mut unclassified = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            match operation["x-bulwark-roles"].as_array() {
                Some(roles) if operation["x-bulwark-permission"].is_string() => {
                    let roles = roles
                        .iter()
                        .map(|r| r.as_str().unwrap().to_owned())
                        .collect();
                    found.push((method, path.clone(), roles));
                }
                _ => unclassified.push(format!("{method} {path}")),
            }
        }
    }
    assert!(
        unclassified.is_empty(),
        "operations missing from the role table (src/govern/roles.rs): {unclassified:?}"
    );
    assert!(found.len() >= 30, "{found:?}");
    found
}

/// A concrete path: every `{param}` names something that does not exist,
/// so an allowed mutation answers 404/422 and changes nothing.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "no-such-thing"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn matrix(store: StoreUnderTest) {
    let (gw, admin) = start(&store, "").await;
    let mut credentials = vec![("admin", admin.secret.clone())];
    for role in &ROLES[1..] {
        let name = format!("the-{role}");
        add_user(&gw, &admin, &name, role).await;
        credentials.push((role, token(&gw, &name).await));
    }
    let operations = operations(&gw).await;
    let mut wrong = Vec::new();
    for (method, template, allowed) in &operations {
        let path = concrete(template);
        let body = matches!(*method, Method::POST | Method::PUT | Method::PATCH).then(|| json!({}));
        for (role, credential) in &credentials {
            let (status, answer) =
                send(&gw, method.clone(), &path, body.as_ref(), Some(credential)).await;
            let expected_allowed = allowed.iter().any(|r| r == role);
            let refused = status == 403 || status == 401;
            if expected_allowed == refused {
                wrong.push(format!(
                    "{role} {method} {path}: {status} (expected {}) {answer}",
                    if expected_allowed {
                        "allowed"
                    } else {
                        "refused"
                    }
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "role matrix violations:\n{}",
        wrong.join("\n")
    );

    // Refusals are audited with who was refused and why.
    let refused = super::audit(&gw, &admin, "action=auth.refused&actor=the-viewer").await;
    assert!(!refused.is_empty());
    assert!(
        refused
            .iter()
            .all(|e| e["role"] == "viewer" && e["status"] == 403),
        "{refused:?}"
    );
    assert!(
        refused
            .iter()
            .any(|e| e["target"] == "POST /api/v1/upstreams"),
        "{refused:?}"
    );

    // No credential at all: only the login is open.
    let (status, _) = send(&gw, Method::GET, "/api/v1/upstreams", None, None).await;
    assert_eq!(status, 401);
    let failed = super::audit(&gw, &admin, "action=auth.failed").await;
    assert!(
        failed
            .iter()
            .any(|e| e["target"] == "GET /api/v1/upstreams" && e["client"] == "127.0.0.1"),
        "{failed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_on_every_documented_route() {
    on_both_stores(matrix).await;
}

/// API keys carry their user's role; keys of non-admins touch only their
/// own keys; the config-file admin key (no stored user) stays an admin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_carry_their_users_role_and_users_see_only_their_own_keys() {
    let (gw, admin) = start(
        &StoreUnderTest::Sqlite,
        "[auth.projects.other]\nupstreams = [\"echo\"]\n",
    )
    .await;
    add_user(&gw, &admin, "vera", "viewer").await;
    add_user(&gw, &admin, "uma", "user").await;
    add_user(&gw, &admin, "ugo", "user").await;
    let key_of = |user: &'static str| {
        let gw = &gw;
        let admin = &admin;
        async move {
            let (status, key) = send(
                gw,
                Method::POST,
                "/api/v1/keys",
                Some(&json!({"user": user, "project": "demo"})),
                Some(&admin.secret),
            )
            .await;
            assert_eq!(status, 201, "{key}");
            key
        }
    };
    let vera = key_of("vera").await;
    let vera_key = vera["key"].as_str().unwrap();
    let (status, _) = send(&gw, Method::GET, "/api/v1/upstreams", None, Some(vera_key)).await;
    assert_eq!(status, 200, "a viewer's key reads");
    let (status, _) = send(
        &gw,
        Method::PATCH,
        "/api/v1/upstreams/echo",
        Some(&json!({"enabled": false})),
        Some(vera_key),
    )
    .await;
    assert_eq!(status, 403, "a viewer's key does not write");
    let (status, _) = send(&gw, Method::GET, "/api/v1/keys", None, Some(vera_key)).await;
    assert_eq!(status, 403, "a viewer sees no keys");

    let ugo = key_of("ugo").await;
    let uma = token(&gw, "uma").await;
    let uma_creates = |body: Value| {
        let (gw, uma) = (&gw, &uma);
        async move { send(gw, Method::POST, "/api/v1/keys", Some(&body), Some(uma)).await }
    };
    // A user's projects are those it holds a key in: none yet.
    let (status, refused) = uma_creates(json!({"project": "demo"})).await;
    assert_eq!(status, 403, "{refused}");
    let first = key_of("uma").await;
    // uma creates her own key (user defaults to her) in her project, not
    // one in a project she is not in, not one for ugo, not an admin key.
    let (status, own) = uma_creates(json!({"project": "demo"})).await;
    assert_eq!((status, own["user"].as_str()), (201, Some("uma")), "{own}");
    for refused in [
        json!({"project": "other"}),
        json!({"user": "ugo", "project": "demo"}),
        json!({"project": "admin"}),
    ] {
        let (status, problem) = uma_creates(refused.clone()).await;
        assert_eq!(status, 403, "{refused}: {problem}");
    }
    let (status, listed) = send(&gw, Method::GET, "/api/v1/keys", None, Some(&uma)).await;
    assert_eq!(status, 200);
    let users: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["user"].as_str().unwrap())
        .collect();
    assert_eq!(users, vec!["uma", "uma"], "{listed}");
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == first["id"]),
        "{listed}"
    );
    let ugo_id = ugo["id"].as_str().unwrap();
    for (method, path) in [
        (Method::GET, format!("/api/v1/keys/{ugo_id}")),
        (Method::POST, format!("/api/v1/keys/{ugo_id}/revoke")),
        (Method::DELETE, format!("/api/v1/keys/{ugo_id}")),
    ] {
        let (status, _) = send(&gw, method.clone(), &path, None, Some(&uma)).await;
        assert_eq!(
            status, 404,
            "{method} {path}: another user's key is invisible"
        );
    }
    let own_id = own["id"].as_str().unwrap();
    let (status, revoked) = send(
        &gw,
        Method::POST,
        &format!("/api/v1/keys/{own_id}/revoke"),
        None,
        Some(&uma),
    )
    .await;
    assert_eq!(
        (status, &revoked["status"]),
        (200, &Value::from("revoked")),
        "{revoked}"
    );
    // The admin sees every key, the file admin key included.
    let (_, all) = send(&gw, Method::GET, "/api/v1/keys", None, Some(&admin.secret)).await;
    assert!(all["total"].as_u64().unwrap() >= 4, "{all}");
}
