//! The audit trail: one entry per mutation of every kind (who, role,
//! credential, action, target, before/after, request id, client, outcome),
//! secrets masked everywhere, filters and pages, and no way to change it.
use reqwest::Method;
use serde_json::{Value, json};

use super::{PASSWORD, add_user, audit, on_both_stores, start};
use crate::common::Gateway;
use crate::control::{StoreUnderTest, demo_body, send};

const ENV_SECRET: &str = "sk-live-0123456789abcdefghij";

async fn admin_send(
    gw: &Gateway,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let (status, answer) = send(gw, method.clone(), path, body.as_ref(), Some(key)).await;
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {answer}"
    );
    answer
}

async fn every_mutation(store: StoreUnderTest) {
    let (gw, admin) = start(&store, "").await;
    let key = admin.secret.as_str();
    let started = super::now_ms();

    // Upstreams: create (with secrets), update, disable, enable, restart, delete.
    let mut body = demo_body("calc", "calc");
    body["env"] = json!({"CALC_TOKEN": ENV_SECRET});
    admin_send(&gw, key, Method::POST, "/api/v1/upstreams", Some(body)).await;
    let tagged = gw
        .http()
        .patch(gw.url("/api/v1/upstreams/calc"))
        .bearer_auth(key)
        .header("X-Request-Id", "req-patch-calc-1")
        .json(&json!({"env": {"CALC_TOKEN": ENV_SECRET, "MODE": "fast"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(tagged.status(), 200);
    assert_eq!(tagged.headers()["x-request-id"], "req-patch-calc-1");
    for verb in ["disable", "enable", "restart"] {
        admin_send(
            &gw,
            key,
            Method::POST,
            &format!("/api/v1/upstreams/calc/{verb}"),
            None,
        )
        .await;
    }
    admin_send(&gw, key, Method::DELETE, "/api/v1/upstreams/calc", None).await;
    // Projects.
    admin_send(
        &gw,
        key,
        Method::POST,
        "/api/v1/projects",
        Some(json!({"name": "team", "upstreams": ["echo"]})),
    )
    .await;
    admin_send(
        &gw,
        key,
        Method::PUT,
        "/api/v1/projects/team",
        Some(json!({"upstreams": []})),
    )
    .await;
    admin_send(&gw, key, Method::DELETE, "/api/v1/projects/team", None).await;
    // Keys: the created key appears once in the answer, never in the trail.
    let created = admin_send(
        &gw,
        key,
        Method::POST,
        "/api/v1/keys",
        Some(json!({"user": "bob", "project": "demo"})),
    )
    .await;
    let new_key = created["key"].as_str().unwrap().to_owned();
    let key_id = created["id"].as_str().unwrap().to_owned();
    admin_send(
        &gw,
        key,
        Method::POST,
        &format!("/api/v1/keys/{key_id}/revoke"),
        None,
    )
    .await;
    admin_send(
        &gw,
        key,
        Method::DELETE,
        &format!("/api/v1/keys/{key_id}"),
        None,
    )
    .await;
    // Users.
    add_user(&gw, &admin, "bob", "user").await;
    admin_send(
        &gw,
        key,
        Method::PATCH,
        "/api/v1/users/bob",
        Some(json!({"role": "viewer"})),
    )
    .await;
    admin_send(
        &gw,
        key,
        Method::POST,
        "/api/v1/users/bob/reset-password",
        Some(json!({"password": "another long password"})),
    )
    .await;
    admin_send(&gw, key, Method::DELETE, "/api/v1/users/bob", None).await;
    // A failed mutation is audited too.
    let (status, _) = send(
        &gw,
        Method::DELETE,
        "/api/v1/upstreams/nothing-here",
        None,
        Some(key),
    )
    .await;
    assert_eq!(status, 404);

    let entries = audit(&gw, &admin, &format!("since={started}")).await;
    let find = |action: &str, target: &str| -> Value {
        entries
            .iter()
            .find(|e| e["action"] == action && e["target"] == target)
            .unwrap_or_else(|| panic!("no {action} of {target} in {entries:#?}"))
            .clone()
    };
    for (action, target) in [
        ("upstreams.create", "upstreams/calc"),
        ("upstreams.update", "upstreams/calc"),
        ("upstreams.disable", "upstreams/calc"),
        ("upstreams.enable", "upstreams/calc"),
        ("upstreams.restart", "upstreams/calc"),
        ("upstreams.delete", "upstreams/calc"),
        ("projects.create", "projects/team"),
        ("projects.replace", "projects/team"),
        ("projects.delete", "projects/team"),
        ("keys.create", &format!("keys/{key_id}")),
        ("keys.revoke", &format!("keys/{key_id}")),
        ("keys.delete", &format!("keys/{key_id}")),
        ("users.create", "users/bob"),
        ("users.update", "users/bob"),
        ("users.reset-password", "users/bob"),
        ("users.delete", "users/bob"),
    ] {
        let entry = find(action, target);
        assert_eq!(
            (
                entry["actor"].as_str(),
                entry["role"].as_str(),
                entry["outcome"].as_str()
            ),
            (Some("root"), Some("admin"), Some("success")),
            "{entry}"
        );
        assert_eq!(entry["credential"], format!("key:{}", admin.id), "{entry}");
        assert_eq!(entry["client"], "127.0.0.1", "{entry}");
        assert!(!entry["request_id"].as_str().unwrap().is_empty(), "{entry}");
    }
    // Before and after of a change, secrets masked in both.
    let update = find("upstreams.update", "upstreams/calc");
    assert_eq!(update["request_id"], "req-patch-calc-1");
    assert_eq!(update["before"]["env"]["CALC_TOKEN"], "****", "{update}");
    assert_eq!(
        update["after"]["env"]["MODE"], "****",
        "env values are all masked: {update}"
    );
    assert!(update["before"]["env"].get("MODE").is_none(), "{update}");
    let role_change = find("users.update", "users/bob");
    assert_eq!(
        (
            role_change["before"]["role"].as_str(),
            role_change["after"]["role"].as_str()
        ),
        (Some("user"), Some("viewer"))
    );
    let deleted = find("upstreams.delete", "upstreams/calc");
    assert!(
        deleted["before"].is_object() && deleted["after"].is_null(),
        "{deleted}"
    );
    assert_eq!(
        find("keys.create", &format!("keys/{key_id}"))["after"]["key"],
        "****"
    );
    let failed = find("upstreams.delete", "upstreams/nothing-here");
    assert_eq!(
        (failed["outcome"].as_str(), failed["status"].as_i64()),
        (Some("failure"), Some(404))
    );

    // No secret anywhere in the trail.
    let text = serde_json::to_string(&entries).unwrap();
    for secret in [
        ENV_SECRET,
        new_key.as_str(),
        admin.secret.as_str(),
        PASSWORD,
        "another long password",
    ] {
        assert!(!text.contains(secret), "a secret in the audit trail");
    }

    // Filters: actor, action prefix, target, time range; pages.
    assert!(audit(&gw, &admin, "actor=nobody").await.is_empty());
    let upstreams = audit(&gw, &admin, &format!("action=upstreams.&since={started}")).await;
    assert_eq!(upstreams.len(), 7, "{upstreams:#?}");
    let bob = audit(&gw, &admin, "target=users/bob").await;
    assert_eq!(bob.len(), 4, "{bob:#?}");
    assert!(
        audit(&gw, &admin, &format!("until={started}"))
            .await
            .iter()
            .all(|e| e["at"].as_i64().unwrap() < started)
    );
    let (_, page) = send(
        &gw,
        Method::GET,
        "/api/v1/audit?target=users/bob&limit=3&offset=3",
        None,
        Some(key),
    )
    .await;
    assert_eq!(
        (
            page["total"].as_i64(),
            page["items"].as_array().unwrap().len()
        ),
        (Some(4), 1),
        "{page}"
    );
    let newest_first: Vec<i64> = bob.iter().map(|e| e["at"].as_i64().unwrap()).collect();
    assert!(
        newest_first.windows(2).all(|w| w[0] >= w[1]),
        "{newest_first:?}"
    );

    // The trail cannot be changed through the API, not even by an admin.
    let before = audit(&gw, &admin, "").await.len();
    for method in [Method::DELETE, Method::PUT, Method::PATCH, Method::POST] {
        let (status, _) = send(
            &gw,
            method.clone(),
            "/api/v1/audit",
            Some(&json!({})),
            Some(key),
        )
        .await;
        assert_eq!(status, 403, "{method} /api/v1/audit");
    }
    let (status, _) = send(
        &gw,
        Method::DELETE,
        &format!("/api/v1/audit/{}", entries[0]["id"].as_str().unwrap()),
        None,
        Some(key),
    )
    .await;
    assert_eq!(status, 403);
    let after = audit(&gw, &admin, "").await;
    assert_eq!(after.len(), before + 5, "only the refusals were added");
    assert!(after.iter().take(5).all(|e| e["action"] == "auth.refused"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mutation_kind_is_audited_with_secrets_masked() {
    on_both_stores(every_mutation).await;
}
