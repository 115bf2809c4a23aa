//! Path, `Host` and `Origin` tricks: only the exact MCP paths open
//! sessions, and neither `/mcp` nor `/api/v1` answers a foreign `Host` or
//! `Origin` (DNS rebinding, cross-site pages), with authentication off.
use serde_json::json;

use super::{echo_gateway, normal_call_served};
use crate::auth::post;

fn initialize() -> serde_json::Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": crate::auth::PROTOCOL, "capabilities": {},
        "clientInfo": {"name": "paths", "version": "1"}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_are_404_and_foreign_hosts_and_origins_403() {
    let gw = echo_gateway("").await;
    // Sent as is: HTTP clients would normalise the dot segments away.
    let raw = raw_post(
        gw.base_url(),
        "/mcp/../api/v1/actors",
        &initialize().to_string(),
    );
    assert!(raw.starts_with("HTTP/1.1 404"), "{raw}");
    for path in ["/mcp/nope", "/mcp/echo/extra", "/mcp/"] {
        let response = post(&gw, path, &[], &initialize()).await;
        assert_eq!(response.status(), 404, "{path}");
        assert!(response.headers().get("mcp-session-id").is_none(), "{path}");
    }
    let port = gw.base_url().rsplit(':').next().unwrap().to_owned();
    let api = |host: String, origin: Option<&'static str>| {
        let mut request = gw.http().get(gw.url("/api/v1/actors")).header("Host", host);
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        request.send()
    };
    assert_eq!(
        api("evil.example".into(), None).await.unwrap().status(),
        403
    );
    assert_eq!(
        api(format!("evil.example:{port}"), None)
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        api(format!("127.0.0.1:{port}"), Some("https://evil.example"))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        api(format!("localhost:{port}"), Some("http://localhost:3000"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        api(format!("127.0.0.1:{port}"), None)
            .await
            .unwrap()
            .status(),
        200
    );
    let rebound = post(&gw, "/mcp", &[("Host", "evil.example")], &initialize()).await;
    assert_eq!(rebound.status(), 403);
    let cross_site = post(
        &gw,
        "/mcp",
        &[("Origin", "https://evil.example")],
        &initialize(),
    )
    .await;
    assert_eq!(cross_site.status(), 403);
    let health = gw
        .http()
        .get(gw.url("/health"))
        .header("Host", "10.0.0.7:8000")
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "probes use the pod address");
    normal_call_served(&gw, &[]).await;
}

/// A POST of `body` to `path` over a plain socket; the response head.
fn raw_post(base: &str, path: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}
