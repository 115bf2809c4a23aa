//! End-to-end tests of client authentication through `/mcp`: API keys, JWTs,
//! grants, rate limits, the first-start admin key and log hygiene. The real
//! binary, demo upstreams and the official Python SDK.
mod grants;
mod jwt;
mod keys;
mod leaks;
mod limits;
mod secure_default;

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Gateway, Peers};
use crate::gateway::{HEAD, demo_upstream};

/// A key made with the gateway's own generator; the test keeps the secret.
pub struct TestKey {
    pub id: String,
    pub secret: String,
    hash: String,
}

impl TestKey {
    pub fn new() -> Self {
        let key = bulwark::auth::keys::generate().unwrap();
        Self {
            id: key.id.clone(),
            hash: key.hash.to_stored(),
            secret: key.secret,
        }
    }

    /// The `[[auth.keys]]` entry (hash only) for `user` in `project`.
    pub fn entry(&self, user: &str, project: &str, revoked: bool) -> String {
        format!(
            "[[auth.keys]]\nid = {:?}\nhash = {:?}\nuser = {user:?}\nproject = {project:?}\nrevoked = {revoked}\n",
            self.id, self.hash
        )
    }

    /// `X-API-Key` headers for a Python session.
    pub fn headers(&self) -> Value {
        json!({ "X-API-Key": self.secret })
    }
}

/// Two demo upstreams (`echo`, `other`) and a `demo` project that may use
/// only `echo`'s `echo` and `request_count` tools.
pub fn config(extra: &str) -> String {
    format!(
        "{HEAD}{}{}\n[auth.projects.demo]\nupstreams = [\"echo\"]\n[auth.projects.demo.tools.echo]\nallow = [\"echo\", \"request_count\"]\n{extra}",
        demo_upstream("echo", "\"echo\""),
        demo_upstream("other", "\"echo\""),
    )
}

/// New keys for `(user, project)` pairs, and a ready gateway (auth on)
/// that knows them, with `extra` config.
pub async fn start_with_keys<const N: usize>(
    owners: [(&str, &str); N],
    extra: &str,
) -> ([TestKey; N], Gateway) {
    let keys = owners.map(|_| TestKey::new());
    let entries: String = keys
        .iter()
        .zip(owners)
        .map(|(key, (user, project))| key.entry(user, project, false))
        .collect();
    let gw = start(&config(&format!("{entries}{extra}"))).await;
    (keys, gw)
}

/// Starts a gateway with authentication on and waits until it is ready.
pub async fn start(toml: &str) -> Gateway {
    let gw = Gateway::builder(toml).with_auth().start();
    gw.wait_ready(Duration::from_secs(60)).await;
    gw
}

/// Protocol version the raw-HTTP requests speak.
pub const PROTOCOL: &str = "2025-06-18";

/// A raw `initialize` POST to `path` with `headers`.
pub async fn initialize(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": { "name": "auth-test", "version": "1" }
        }
    });
    post(gw, path, headers, &body).await
}

/// A raw JSON-RPC POST to `path`.
pub async fn post(
    gw: &Gateway,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> reqwest::Response {
    let mut request = gw
        .http()
        .post(gw.url(path))
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// The echo demo's per-method request counts, asked with `key` (which must
/// be allowed `echo__request_count`).
pub fn upstream_counts(peers: &Peers, gw: &Gateway, key: &TestKey) -> Value {
    let mut session = peers.session_with_headers(gw.mcp_url(), &key.headers());
    let answer = session.call("echo__request_count", json!({}));
    assert_eq!(answer["ok"], true, "{answer}");
    serde_json::from_str(answer["result"]["text"].as_str().unwrap()).unwrap()
}

/// Names in a `list` answer of a Python session.
/// Names of the upstream items listed; the gateway's own `bulwark__*` tools
/// (listed for every caller, and scoped inside to the caller's grant) are left out.
pub fn listed(answer: &Value, what: &str) -> Vec<String> {
    answer["result"][what]
        .as_array()
        .unwrap_or_else(|| panic!("no {what} in {answer}"))
        .iter()
        .map(|item| {
            item.as_str()
                .or_else(|| item["name"].as_str())
                .or_else(|| item["uri"].as_str())
                .unwrap_or_default()
                .to_owned()
        })
        .filter(|name| !name.starts_with("bulwark__"))
        .collect()
}
