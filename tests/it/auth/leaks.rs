//! Log hygiene: with debug logging, authentication traffic of every kind
//! (good and bad keys, good and bad JWTs, the admin API) leaves no key,
//! token, shared secret or upstream password in the gateway's output.
use std::time::Duration;

use serde_json::json;

use super::jwt::{EcKey, Jwks, SECRET, SECRET_ENV, claims, hs256, jwt_section};
use super::{TestKey, config, initialize};
use crate::common::{Gateway, peers};

const PASSWORD: &str = "upstream-db-password-3f9c1e";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logs_carry_no_keys_tokens_secrets_or_passwords() {
    let Some(peers) = peers() else { return };
    let alice = TestKey::new();
    let revoked = TestKey::new();
    let signer = EcKey::new("k1");
    let jwks = Jwks::serve(vec![signer.jwk.clone()]);
    let toml = format!(
        "{}{}{}[upstreams.echo.env]\nDB_PASSWORD = {PASSWORD:?}\n",
        config(&jwt_section(&jwks.url)),
        alice.entry("alice", "demo", false),
        revoked.entry("mallory", "demo", true),
    );
    let gw = Gateway::builder(&toml)
        .with_auth()
        .env(SECRET_ENV, SECRET)
        .env("BULWARK_LOG", "debug")
        .start();
    gw.wait_ready(Duration::from_secs(60)).await;

    let good_jwt = hs256(&claims("demo"), SECRET);
    let jwks_jwt = signer.sign(&claims("demo"));
    let forged_jwt = hs256(&claims("demo"), "a-guessed-secret");
    let wrong_key = format!("bk_{}", "Z".repeat(43));

    let mut session = peers.session_with_headers(gw.mcp_url(), &alice.headers());
    assert_eq!(
        session.call("echo__echo", json!({"message": "hi"}))["ok"],
        true
    );
    assert_eq!(
        session.call("echo__add", json!({"a": 1, "b": 1}))["ok"],
        false
    );
    for token in [&good_jwt, &jwks_jwt] {
        let mut session = peers.session_with_headers(
            gw.mcp_url(),
            &json!({"Authorization": format!("Bearer {token}")}),
        );
        assert_eq!(
            session.call("echo__echo", json!({"message": "jwt"}))["ok"],
            true
        );
    }
    for bad in [
        ("X-API-Key", wrong_key.clone()),
        ("X-API-Key", revoked.secret.clone()),
        ("Authorization", format!("Bearer {forged_jwt}")),
        (
            "Authorization",
            format!("Bearer {}", &good_jwt[..good_jwt.len() - 4]),
        ),
    ] {
        assert_eq!(
            initialize(&gw, "/mcp", &[(bad.0, &bad.1)]).await.status(),
            401
        );
    }
    let api = gw
        .http()
        .get(gw.url("/api/v1/actors"))
        .header("X-API-Key", &alice.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 403);
    drop(session);

    // Debug logging really was on, and saw the traffic.
    assert!(
        gw.wait_for_log("request authenticated", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    let output = format!("{}{}", gw.stdout.text(), gw.stderr.text());
    let signature = |jwt: &str| jwt.rsplit('.').next().unwrap().to_owned();
    for (what, secret) in [
        ("API key", alice.secret.clone()),
        ("revoked key", revoked.secret.clone()),
        ("wrong key", wrong_key),
        ("JWT", good_jwt.clone()),
        ("JWT signature", signature(&good_jwt)),
        ("JWKS JWT signature", signature(&jwks_jwt)),
        ("forged JWT signature", signature(&forged_jwt)),
        ("shared secret", SECRET.to_owned()),
        ("upstream password", PASSWORD.to_owned()),
    ] {
        assert!(
            !output.contains(&secret),
            "the {what} appears in the gateway's output"
        );
    }
}

/// Why an upstream died is told in full (masked) to the admin project only;
/// a tenant learns the kind of failure, not its details.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn why_an_upstream_died_reaches_only_the_admin_project_in_full() {
    use crate::attacks::{call_on, open_session};
    let alice = TestKey::new();
    let root = TestKey::new();
    let toml = format!(
        "{}{}{}[upstreams.broken]\ncommand = \"/nonexistent/secret-path-xyz\"\n[auth.projects.team]\nupstreams = [\"broken\"]\n",
        config(""),
        alice.entry("alice", "team", false),
        root.entry("root", "admin", false),
    );
    let gw = Gateway::builder(&toml).with_auth().start();
    let unavailable = |key: &TestKey| {
        let key = key.secret.clone();
        let gw = &gw;
        async move {
            let headers = [("X-API-Key", key.as_str())];
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                // A fresh session each time: the gateway may still be starting.
                let session = open_session(gw, "/mcp", &headers).await;
                let answer = call_on(gw, &session, &headers, "broken__anything", json!({})).await;
                let message = answer["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                if message.contains("last exit") {
                    assert_eq!(answer["error"]["code"], -32001, "{answer}");
                    return message;
                }
                assert!(std::time::Instant::now() < deadline, "{answer}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    // Not /ready: the broken upstream keeps it pending while it restarts.
    let up = crate::common::eventually(Duration::from_secs(60), || {
        std::net::TcpStream::connect(
            gw.url("/")
                .trim_start_matches("http://")
                .trim_end_matches('/'),
        )
        .is_ok()
    })
    .await;
    assert!(up, "the gateway never listened");
    let tenant = unavailable(&alice).await;
    assert!(tenant.contains("the process could not start"), "{tenant}");
    assert!(!tenant.contains("could not start:"), "{tenant}");
    assert!(!tenant.contains("secret-path-xyz"), "{tenant}");
    let admin = unavailable(&root).await;
    assert!(admin.contains("process could not start:"), "{admin}");
}
