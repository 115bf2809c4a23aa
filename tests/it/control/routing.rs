//! `/mcp/{server}` follows the live set of upstreams: one added over REST
//! is reachable there at once (official SDK client), and once it is removed
//! its sessions end and new ones are refused with a 404 naming it.
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::{demo_body, send};
use crate::common::{Gateway, PythonSession, peers};
use crate::gateway::{HEAD, demo_upstream, wait_for_upstream};

fn initialize() -> serde_json::Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": crate::auth::PROTOCOL, "capabilities": {},
        "clientInfo": {"name": "routing", "version": "1"}}})
}

/// A raw `initialize` on `path`: (status, body text, whether a session was made).
async fn open_raw(gw: &Gateway, path: &str) -> (u16, String, bool) {
    let response = crate::auth::post(gw, path, &[], &initialize()).await;
    let status = response.status().as_u16();
    let session = response.headers().get("mcp-session-id").is_some();
    (status, response.text().await.unwrap_or_default(), session)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_added_live_is_served_on_its_own_route_until_removed() {
    let Some(peers) = peers() else { return };
    let config = format!("{HEAD}{}", demo_upstream("echo", "\"echo\""));
    let gw = Gateway::start(&config, &[]);
    gw.wait_ready(Duration::from_secs(60)).await;

    // Before it exists: a clear 404, no session.
    let (status, body, session) = open_raw(&gw, "/mcp/extra").await;
    assert_eq!((status, session), (404, false), "{body}");
    assert!(body.contains("'extra'"), "{body}");

    let (status, created) = send(
        &gw,
        Method::POST,
        "/api/v1/upstreams",
        Some(&demo_body("extra", "echo")),
        None,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let url = gw.url("/mcp/extra");
    let mut session = peers.session(&[url.as_str()]);
    let tools = session.list("tools");
    assert!(tools.to_string().contains("\"echo\""), "{tools}");
    assert!(
        !tools.to_string().contains("extra__"),
        "names unchanged: {tools}"
    );
    let answer = session.call("echo", json!({"message": "live route"}));
    assert_eq!(answer["result"]["text"], "live route", "{answer}");
    // The route of an upstream from the file is unaffected.
    let mut echo = peers.session(&[gw.url("/mcp/echo").as_str()]);
    let answer = echo.call("echo", json!({"message": "file route"}));
    assert_eq!(answer["result"]["text"], "file route", "{answer}");

    let (status, _) = send(&gw, Method::DELETE, "/api/v1/upstreams/extra", None, None).await;
    assert_eq!(status, 204);
    // The open session ended with its upstream: a call there fails.
    let answer = session.call("echo", json!({"message": "after"}));
    assert_eq!(answer["ok"], false, "{answer}");
    // New sessions are refused, over raw HTTP and through the SDK alike.
    let (status, body, session) = open_raw(&gw, "/mcp/extra").await;
    assert_eq!((status, session), (404, false), "{body}");
    assert!(body.contains("no upstream named 'extra'"), "{body}");
    let refused = PythonSession::try_start(&peers, &[url.as_str()]);
    assert!(
        refused.is_err(),
        "an SDK session opened on a removed upstream"
    );
    let answer = echo.call("echo", json!({"message": "still here"}));
    assert_eq!(answer["result"]["text"], "still here", "{answer}");

    // Added again under the same name: served again.
    let (status, _) = send(
        &gw,
        Method::POST,
        "/api/v1/upstreams",
        Some(&demo_body("extra", "echo")),
        None,
    )
    .await;
    assert_eq!(status, 201);
    let mut again = peers.session(&[url.as_str()]);
    let answer = again.call("echo", json!({"message": "back"}));
    assert_eq!(answer["result"]["text"], "back", "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_whose_url_refuses_is_accepted_and_shows_its_failure() {
    let config = format!("{HEAD}{}", demo_upstream("echo", "\"echo\""));
    let gw = Gateway::start(&config, &[]);
    gw.wait_ready(Duration::from_secs(60)).await;
    // A port nobody listens on any more: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let body = json!({"name": "refused", "url": format!("http://127.0.0.1:{port}/mcp")});
    let (status, created) = send(&gw, Method::POST, "/api/v1/upstreams", Some(&body), None).await;
    assert_eq!(status, 201, "{created}");
    let node = wait_for_upstream(&gw, "refused", Duration::from_secs(30), |node| {
        node["last_exit"].is_string() || node["state"] == "failed"
    })
    .await;
    assert_ne!(node["state"], "ready", "{node}");
    let (status, shown) = send(&gw, Method::GET, "/api/v1/upstreams/refused", None, None).await;
    assert_eq!(status, 200, "{shown}");
    assert_ne!(shown["status"], "ready", "{shown}");
    // The others keep serving.
    let node = wait_for_upstream(&gw, "echo", Duration::from_secs(5), |n| {
        n["state"] == "ready"
    })
    .await;
    assert_eq!(node["state"], "ready", "{node}");
}
