//! API keys: missing, wrong and revoked keys get 401 and reach nothing;
//! `bulwark key create/revoke/list` round trip; the management API is for
//! admins; a session belongs to the key that opened it.
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use super::{PROTOCOL, TestKey, config, initialize, post, start, start_with_keys, upstream_counts};
use crate::common::{eventually, peers};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_wrong_and_revoked_keys_get_401_and_reach_nothing() {
    let Some(peers) = peers() else { return };
    let admin = TestKey::new();
    let revoked = TestKey::new();
    let gw = start(&config(&format!(
        "{}{}",
        admin.entry("root", "admin", false),
        revoked.entry("mallory", "demo", true)
    )))
    .await;
    let wrong = format!("bk_{}", "A".repeat(43));
    let wrong_bearer = format!("Bearer {wrong}");
    let cases: [(&str, Vec<(&str, &str)>); 5] = [
        ("no key", vec![]),
        ("wrong key", vec![("X-API-Key", wrong.as_str())]),
        (
            "wrong bearer key",
            vec![("Authorization", wrong_bearer.as_str())],
        ),
        ("revoked key", vec![("X-API-Key", revoked.secret.as_str())]),
        (
            "not a JWT, no JWT configured",
            vec![("Authorization", "Bearer abc.def.ghi")],
        ),
    ];
    for (what, headers) in &cases {
        for path in ["/mcp", "/mcp/echo"] {
            let response = initialize(&gw, path, headers).await;
            assert_eq!(response.status(), 401, "{what} on {path}");
            let challenge = response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(challenge.starts_with("Bearer"), "{challenge}");
            let body = response.text().await.unwrap();
            assert!(
                !body.contains(&revoked.secret) && !body.contains(&wrong),
                "{body}"
            );
        }
        // A tools/call without a session is refused before anything else looks at it.
        let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                          "params": {"name": "echo__echo", "arguments": {"message": "x"}}});
        let response = post(&gw, "/mcp", headers, &call).await;
        assert_eq!(response.status(), 401, "{what}: tools/call");
    }
    let revoked_body = initialize(&gw, "/mcp", &[("X-API-Key", &revoked.secret)])
        .await
        .text()
        .await
        .unwrap();
    assert!(
        revoked_body.contains("revoked") && revoked_body.contains(&revoked.id),
        "{revoked_body}"
    );
    // The Python SDK cannot even open a session with a wrong key.
    let refused = peers.try_session_with_headers(gw.mcp_url(), &json!({"X-API-Key": wrong}));
    match refused {
        Ok(_) => panic!("session opened with a wrong key"),
        Err(fatal) => assert!(fatal.contains("\"fatal\""), "{fatal}"),
    }

    // Nothing reached the upstream: its only tools/call is the count itself.
    let counts = upstream_counts(&peers, &gw, &admin);
    assert_eq!(counts["tools/call"], 1, "{counts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_cli_round_trip_and_revocation_takes_effect_while_running() {
    let Some(peers) = peers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("bulwark.toml");
    std::fs::write(&config_path, config("")).unwrap();
    let data = dir.path().join("data");
    let bulwark = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
            .args(args)
            .arg("--config")
            .arg(&config_path)
            .env("BULWARK__SERVER__DATA_DIR", &data)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.success(), stdout, stderr)
    };
    let (ok, _, stderr) = bulwark(&["key", "create", "--project", "nope", "--user", "x"]);
    assert!(
        !ok && stderr.contains("project 'nope' is not configured"),
        "{stderr}"
    );

    let (ok, stdout, stderr) = bulwark(&["key", "create", "--project", "demo", "--user", "alice"]);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "the key alone on stdout: {stdout}");
    let secret = lines[0].to_owned();
    assert!(secret.starts_with("bk_") && secret.len() > 40, "{secret}");
    let id = stderr
        .split("Created key ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let stored = crate::common::store_text(&data);
    assert!(
        !stored.contains(&secret) && stored.contains("sha256:"),
        "{stored}"
    );

    let (ok, listing, _) = bulwark(&["key", "list"]);
    assert!(ok && listing.contains(&id) && listing.contains("alice") && listing.contains("demo"));
    assert!(
        !listing.contains(&secret) && !listing.contains("sha256"),
        "{listing}"
    );

    let gw = crate::common::Gateway::builder(&config(""))
        .with_auth()
        .env("BULWARK__SERVER__DATA_DIR", data.display().to_string())
        .start();
    gw.wait_ready(Duration::from_secs(60)).await;
    assert!(
        !gw.stdout.contains("bk_"),
        "no bootstrap key when keys exist"
    );
    let mut session = peers.session_with_headers(
        gw.mcp_url(),
        &json!({"Authorization": format!("Bearer {secret}")}),
    );
    let answer = session.call("echo__echo", json!({"message": "with a CLI key"}));
    assert_eq!(answer["result"]["text"], "with a CLI key", "{answer}");
    drop(session);

    let (ok, _, stderr) = bulwark(&["key", "revoke", &id]);
    assert!(ok, "{stderr}");
    let (_, listing, _) = bulwark(&["key", "list"]);
    assert!(listing.contains("revoked"), "{listing}");
    let mut status = 0;
    let refused = eventually(Duration::from_secs(10), || {
        status = status_with_key(&gw, &secret);
        status == 401
    })
    .await;
    assert!(refused, "the revoked key still answers {status}");
}

/// Status of an `initialize` with `key`, from a blocking context.
fn status_with_key(gw: &crate::common::Gateway, key: &str) -> u16 {
    let url = gw.url("/mcp");
    let key = key.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": PROTOCOL, "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"}}});
            reqwest::Client::new()
                .post(url)
                .header("Accept", "application/json, text/event-stream")
                .header("X-API-Key", key)
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        })
    })
    .join()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_api_needs_an_admin_key_and_health_stays_open() {
    let ([admin, member], gw) = start_with_keys([("root", "admin"), ("alice", "demo")], "").await;
    let get = |key: Option<&str>| {
        let mut request = gw.http().get(gw.url("/api/v1/actors"));
        if let Some(key) = key {
            request = request.header("X-API-Key", key);
        }
        request.send()
    };
    assert_eq!(get(None).await.unwrap().status(), 401);
    assert_eq!(get(Some(&member.secret)).await.unwrap().status(), 403);
    assert_eq!(get(Some(&admin.secret)).await.unwrap().status(), 200);
    assert_eq!(gw.get("/health").await.status(), 200);
    assert_eq!(gw.get("/ready").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_refuses_requests_from_another_key() {
    let ([alice, bob], gw) = start_with_keys([("alice", "demo"), ("bob", "demo")], "").await;
    let response = initialize(&gw, "/mcp", &[("X-API-Key", &alice.secret)]).await;
    assert_eq!(response.status(), 200);
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = response.text().await;
    let with = |key: &str| {
        vec![
            ("X-API-Key", key.to_owned()),
            ("Mcp-Session-Id", session.clone()),
            ("MCP-Protocol-Version", PROTOCOL.to_owned()),
        ]
    };
    let send = |headers: Vec<(&'static str, String)>, body: serde_json::Value| {
        let gw = &gw;
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post(gw, "/mcp", &headers, &body).await
        }
    };
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert!(
        send(with(&alice.secret), initialized)
            .await
            .status()
            .is_success()
    );
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let own = send(with(&alice.secret), list.clone())
        .await
        .text()
        .await
        .unwrap();
    assert!(own.contains("echo__echo"), "{own}");

    // Bob holds a valid key and the session id: POST, GET and DELETE are refused.
    let other = send(with(&bob.secret), list.clone()).await;
    assert_eq!(other.status(), 403);
    let other = other.text().await.unwrap();
    assert!(
        other.contains("belongs to another caller") && !other.contains("echo__echo"),
        "{other}"
    );
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let mut request = gw.http().request(method.clone(), gw.url("/mcp"));
        for (name, value) in with(&bob.secret) {
            request = request.header(name, value);
        }
        let response = request
            .header("Accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{method}");
    }
    // The session is still Alice's, and still works.
    let again = send(with(&alice.secret), list).await.text().await.unwrap();
    assert!(again.contains("echo__echo"), "{again}");
}
