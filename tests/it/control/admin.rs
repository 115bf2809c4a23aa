//! `[server] admin_listen`: `/api` is served on the admin address only,
//! still behind an admin key; the public port keeps `/mcp` and the probes
//! and answers 404 for `/api`.
use std::time::Duration;

use serde_json::json;

use super::demo_body;
use crate::common::{Gateway, peers};
use crate::gateway::demo_upstream;

/// The `http://ADDR` the gateway printed for its management API.
fn admin_base(gw: &Gateway) -> String {
    let stdout = gw.stdout.text();
    let line = stdout
        .lines()
        .find(|line| line.contains("management API on http://"))
        .unwrap_or_else(|| panic!("no management address printed{}", gw.logs()));
    let url = line.split("on ").nth(1).unwrap().trim();
    url.trim_end_matches("/api/v1").to_owned()
}

/// The admin key printed at the first start.
fn bootstrap_key(gw: &Gateway) -> String {
    let stdout = gw.stdout.text();
    stdout
        .lines()
        .find(|line| line.starts_with("bk_"))
        .unwrap_or_else(|| panic!("no admin key printed{}", gw.logs()))
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_listen_moves_the_api_off_the_public_port() {
    let Some(peers) = peers() else { return };
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{}",
        demo_upstream("echo", "\"echo\"")
    );
    let gw = Gateway::builder(&config).with_auth().start();
    let admin = admin_base(&gw);
    let key = bootstrap_key(&gw);
    assert_ne!(admin, gw.base_url(), "one address for both");
    let http = gw.http();
    let bearer = format!("Bearer {key}");

    // The probes answer on both addresses.
    gw.wait_ready(Duration::from_secs(60)).await;
    for base in [gw.base_url(), admin.as_str()] {
        let ready = http.get(format!("{base}/ready")).send().await.unwrap();
        assert_eq!(ready.status(), 200, "{base}/ready");
        let health = http.get(format!("{base}/health")).send().await.unwrap();
        assert_eq!(health.status(), 200, "{base}/health");
    }

    // The API: on the admin address, behind an admin key.
    let actors = |base: &str, key: Option<&str>| {
        let mut request = http.get(format!("{base}/api/v1/actors"));
        if let Some(key) = key {
            request = request.header("Authorization", key);
        }
        request.send()
    };
    let tree = actors(&admin, Some(&bearer)).await.unwrap();
    assert_eq!(tree.status(), 200);
    let tree: serde_json::Value = tree.json().await.unwrap();
    assert!(tree.to_string().contains("\"echo\""), "{tree}");
    assert_eq!(actors(&admin, None).await.unwrap().status(), 401);
    let docs = http
        .get(format!("{admin}/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), 200);

    // The public port does not serve it, key or not.
    assert_eq!(
        actors(gw.base_url(), Some(&bearer)).await.unwrap().status(),
        404
    );
    let create = http
        .post(gw.url("/api/v1/upstreams"))
        .header("Authorization", &bearer)
        .json(&demo_body("sneaky", "echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(create.status(), 404);
    for path in ["/api/v1/openapi.json", "/api/docs"] {
        let response = http.get(gw.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    // …and the admin address serves no MCP.
    let mcp = http
        .post(format!("{admin}/mcp"))
        .header("Authorization", &bearer)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(mcp.status(), 404);

    // An upstream created on the admin address is served on the public one.
    let created = http
        .post(format!("{admin}/api/v1/upstreams"))
        .header("Authorization", &bearer)
        .json(&demo_body("extra", "echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let headers = json!({"Authorization": bearer});
    let mut session = peers.session_with_headers(gw.mcp_url(), &headers);
    let answer = session.call("extra__echo", json!({"message": "via public"}));
    assert_eq!(answer["result"]["text"], "via public", "{answer}");
}
