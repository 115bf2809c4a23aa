//! The management API's contract: problem+json errors naming the field,
//! 201/404/409/422, pagination and filters, file entries read-only, secrets
//! masked, and a revoked key refused on its very next request.
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::{StoreUnderTest, demo_body, send};
use crate::common::{Gateway, peers};
use crate::gateway::{HEAD, demo_upstream, wait_for_upstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_pagination_filters_and_file_entries() {
    let config = format!("{HEAD}{}", demo_upstream("echo", "\"echo\""));
    let gw = Gateway::start(&config, &[]);
    gw.wait_ready(Duration::from_secs(60)).await;

    // 422 naming the field, as problem+json.
    let response = gw
        .http()
        .post(gw.url("/api/v1/upstreams"))
        .json(&json!({"name": "bad", "command": "x", "args": "not-a-list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["field"], "args", "{problem}");
    assert_eq!(problem["status"], 422);
    let (status, problem) = send(
        &gw,
        Method::POST,
        "/api/v1/upstreams",
        Some(&json!({"command": "x"})),
        None,
    )
    .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (422, Some("name")),
        "{problem}"
    );
    let (status, problem) = send(
        &gw,
        Method::POST,
        "/api/v1/upstreams",
        Some(&json!({"name": "nothing"})),
        None,
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("command"),
        "{problem}"
    );

    // File entries: listed as such, read-only.
    let (status, problem) = send(
        &gw,
        Method::POST,
        "/api/v1/upstreams",
        Some(&demo_body("echo", "echo")),
        None,
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    let (status, problem) = send(&gw, Method::DELETE, "/api/v1/upstreams/echo", None, None).await;
    assert_eq!(status, 409, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("config file"),
        "{problem}"
    );
    let (status, _) = send(&gw, Method::DELETE, "/api/v1/upstreams/ghost", None, None).await;
    assert_eq!(status, 404);

    // A command that does not exist is accepted and shows its failure.
    let (status, created) = send(
        &gw,
        Method::POST,
        "/api/v1/upstreams",
        Some(
            &json!({"name": "missing", "command": "/nonexistent/bulwark-test-binary",
                     "env": {"API_TOKEN": "very-secret-token"}}),
        ),
        None,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["env"]["API_TOKEN"], "****");
    wait_for_upstream(&gw, "missing", Duration::from_secs(30), |node| {
        node["last_exit"].is_string() || node["state"] == "failed" || node["state"] == "restarting"
    })
    .await;
    let (status, created) = send(
        &gw,
        Method::POST,
        "/api/v1/upstreams",
        Some(&demo_body("second", "echo")),
        None,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (status, again) = send(
        &gw,
        Method::POST,
        "/api/v1/upstreams",
        Some(&demo_body("second", "echo")),
        None,
    )
    .await;
    assert_eq!(status, 409, "{again}");

    // Pagination with a total, filters by source and status.
    let (_, page) = send(
        &gw,
        Method::GET,
        "/api/v1/upstreams?limit=2&offset=1",
        None,
        None,
    )
    .await;
    assert_eq!(page["total"], 3, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 2, "{page}");
    let (_, from_file) = send(
        &gw,
        Method::GET,
        "/api/v1/upstreams?source=file",
        None,
        None,
    )
    .await;
    assert_eq!(from_file["total"], 1);
    assert_eq!(from_file["items"][0]["name"], "echo");
    let (_, ready) = send(
        &gw,
        Method::GET,
        "/api/v1/upstreams?status=ready",
        None,
        None,
    )
    .await;
    let names: Vec<&str> = ready["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo", "second"], "{ready}");
    let whole = send(&gw, Method::GET, "/api/v1/upstreams", None, None)
        .await
        .1
        .to_string();
    assert!(!whole.contains("very-secret-token"), "{whole}");

    // Disable stops it, enable starts it again.
    let (status, disabled) = send(
        &gw,
        Method::POST,
        "/api/v1/upstreams/second/disable",
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, disabled["status"].as_str()),
        (200, Some("disabled")),
        "{disabled}"
    );
    let (status, enabled) = send(
        &gw,
        Method::POST,
        "/api/v1/upstreams/second/enable",
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, enabled["status"].as_str()),
        (200, Some("ready")),
        "{enabled}"
    );
    let (status, restarted) = send(
        &gw,
        Method::POST,
        "/api/v1/upstreams/echo/restart",
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{restarted}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_and_keys_take_effect_on_the_next_request() {
    let Some(peers) = peers() else { return };
    let store = StoreUnderTest::Sqlite;
    let config = format!(
        "{HEAD}{}{}{}",
        store.config(),
        demo_upstream("echo", "\"echo\""),
        demo_upstream("other", "\"echo\"")
    );
    let gw = Gateway::builder(&config).with_auth().start();
    let admin = gw
        .stdout
        .text()
        .lines()
        .find(|l| l.starts_with("bk_"))
        .expect("admin key printed")
        .trim()
        .to_owned();
    let admin = Some(admin.as_str());
    let (status, project) = send(
        &gw,
        Method::POST,
        "/api/v1/projects",
        Some(&json!({"name": "team", "upstreams": ["echo"]})),
        admin,
    )
    .await;
    assert_eq!(status, 201, "{project}");
    let (status, problem) = send(
        &gw,
        Method::POST,
        "/api/v1/keys",
        Some(&json!({"user": "bob", "project": "nope"})),
        admin,
    )
    .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (422, Some("project")),
        "{problem}"
    );
    let (status, created) = send(
        &gw,
        Method::POST,
        "/api/v1/keys",
        Some(&json!({"user": "bob", "project": "team"})),
        admin,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    let (_, listed) = send(&gw, Method::GET, "/api/v1/keys?project=team", None, admin).await;
    assert_eq!(listed["total"], 1, "{listed}");
    assert!(
        !listed.to_string().contains(&key),
        "a list never shows the key"
    );

    // The new key works at once, with its project's grant.
    let mut session = peers.session_with_headers(gw.mcp_url(), &json!({"X-API-Key": key}));
    let answer = session.call("echo__echo", json!({"message": "granted"}));
    assert_eq!(answer["result"]["text"], "granted", "{answer}");
    let answer = session.call("other__echo", json!({"message": "no"}));
    assert_eq!(answer["ok"], false, "{answer}");

    // A project change holds on the next call.
    let (status, _) = send(
        &gw,
        Method::PATCH,
        "/api/v1/projects/team",
        Some(&json!({"upstreams": ["echo", "other"]})),
        admin,
    )
    .await;
    assert_eq!(status, 200);
    let answer = session.call("other__echo", json!({"message": "now granted"}));
    assert_eq!(answer["result"]["text"], "now granted", "{answer}");
    drop(session);
    let (status, problem) = send(&gw, Method::DELETE, "/api/v1/projects/team", None, admin).await;
    assert_eq!(status, 409, "a project with keys is not deleted: {problem}");

    // Revoked: refused on its very next request.
    let (status, revoked) = send(
        &gw,
        Method::POST,
        &format!("/api/v1/keys/{id}/revoke"),
        None,
        admin,
    )
    .await;
    assert_eq!(
        (status, revoked["status"].as_str()),
        (200, Some("revoked")),
        "{revoked}"
    );
    let refused = gw
        .http()
        .post(gw.url("/mcp"))
        .header("X-API-Key", &key)
        .header("Accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}
