//! Secure by default: the first start without credentials prints an admin
//! key once and stores only its hash; authentication off is refused on a
//! non-loopback address unless forced.
use std::time::Duration;

use serde_json::json;

use super::config;
use crate::common::{Gateway, peers};
use crate::gateway::HEAD;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_prints_an_admin_key_once_and_stores_only_its_hash() {
    let Some(peers) = peers() else { return };
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    let first = Gateway::builder(&config(""))
        .with_auth()
        .env("BULWARK__SERVER__DATA_DIR", &data_dir)
        .start();
    first.wait_ready(Duration::from_secs(60)).await;
    let stdout = first.stdout.text();
    let keys: Vec<&str> = stdout.lines().filter(|l| l.starts_with("bk_")).collect();
    assert_eq!(keys.len(), 1, "one key line: {stdout}");
    let key = keys[0].trim().to_owned();
    assert!(
        !key.contains(' ') && key.len() > 40,
        "the key is alone on its line: {key}"
    );
    assert!(!first.stderr.contains(&key), "the key is never logged");
    let stored = crate::common::store_text(data.path());
    assert!(!stored.contains(&key), "the key is not stored");
    assert!(
        stored.contains("sha256:") && stored.contains("admin"),
        "the key's hash is stored in the admin project"
    );

    // The key is an admin key: the management API and every upstream.
    let actors = first
        .http()
        .get(first.url("/api/v1/actors"))
        .header("Authorization", format!("Bearer {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(actors.status(), 200);
    let mut session = peers.session_with_headers(first.mcp_url(), &json!({"X-API-Key": key}));
    let answer = session.call("other__add", json!({"a": 2, "b": 3}));
    assert_eq!(answer["result"]["text"], "5", "{answer}");
    drop(session);
    drop(first);

    let second = Gateway::builder(&config(""))
        .with_auth()
        .env("BULWARK__SERVER__DATA_DIR", &data_dir)
        .start();
    assert!(!second.stdout.contains("bk_"), "{}", second.logs());
    // The first key still opens the management API: the store kept it.
    let actors = second
        .http()
        .get(second.url("/api/v1/actors"))
        .header("Authorization", format!("Bearer {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(actors.status(), 200);
}

#[test]
fn auth_off_on_a_non_loopback_address_is_refused_unless_forced() {
    let toml = HEAD.replace("127.0.0.1:0", "0.0.0.0:0");
    let err = Gateway::builder(&toml).try_start().err().expect("refused");
    assert!(
        err.contains("authentication is off") && err.contains("--insecure"),
        "{err}"
    );
    let forced = Gateway::builder(&toml).arg("--insecure").start();
    assert!(forced.wait_for_log("authentication is OFF", Duration::from_secs(10)));
    let loopback = Gateway::builder(HEAD).start();
    assert!(loopback.wait_for_log("authentication is OFF", Duration::from_secs(10)));
}
