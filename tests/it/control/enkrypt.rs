//! `bulwark import enkrypt` on a realistic Enkrypt gateway config: servers,
//! projects and keys are imported (the Enkrypt keys keep working, through
//! a Python SDK client), what has no equivalent is reported, and an
//! unreadable file changes nothing.
use std::path::Path;
use std::process::Command;

use serde_json::json;

use reqwest::Method;

use super::{PgDatabase, StoreUnderTest, send};
use crate::auth::TestKey;
use crate::common::{Gateway, peers, repo_root, store_text};
use crate::gateway::HEAD;
use crate::governance::login;

const ALICE: &str = "enk-gw-alice-support-5b0c1d2e3f405162738495a6b7c8d9e0";
const BOB: &str = "enk-gw-bob-analytics-a1b2c3d4e5f60718293a4b5c6d7e8f90";

fn import(config: &Path, data_dir: &Path, file: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["import", "enkrypt"])
        .arg(file)
        .arg("--config")
        .arg(config)
        .env("BULWARK__SERVER__DATA_DIR", data_dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enkrypt_config_imports_servers_projects_and_working_keys_on_sqlite() {
    enkrypt_config_imports(StoreUnderTest::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enkrypt_config_imports_servers_projects_and_working_keys_on_postgres() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    enkrypt_config_imports(StoreUnderTest::Postgres(db)).await;
}

async fn enkrypt_config_imports(store: StoreUnderTest) {
    let Some(peers) = peers() else { return };
    let sqlite = matches!(store, StoreUnderTest::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let config = dir.path().join("bulwark.toml");
    let admin = TestKey::new();
    let head = format!(
        "{HEAD}{}{}",
        store.config(),
        admin.entry("root", "admin", false)
    );
    std::fs::write(&config, &head).unwrap();

    // Unreadable files change nothing (the store is not even created).
    let (ok, _, stderr) = import(&config, &data_dir, &dir.path().join("missing.json"));
    assert!(!ok && stderr.contains("nothing was imported"), "{stderr}");
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{\"mcp_configs\": [1, 2").unwrap();
    let (ok, _, stderr) = import(&config, &data_dir, &garbage);
    assert!(
        !ok && stderr.contains("not an Enkrypt gateway config"),
        "{stderr}"
    );
    assert!(!data_dir.join("bulwark.db").exists());

    let fixture =
        std::fs::read_to_string(repo_root().join("tests/it/fixtures/enkrypt_mcp_config.json"))
            .unwrap()
            .replace("BULWARK_BIN", env!("CARGO_BIN_EXE_bulwark"));
    let file = dir.path().join("enkrypt_mcp_config.json");
    std::fs::write(&file, fixture).unwrap();
    let mut dry = Command::new(env!("CARGO_BIN_EXE_bulwark"));
    dry.args(["import", "enkrypt", "--dry-run", "--config"])
        .arg(&config)
        .arg(&file)
        .env("BULWARK__SERVER__DATA_DIR", &data_dir);
    let out = dry.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Would import 4 upstream(s), 2 project(s), 2 user(s), 2 key(s)"),
        "{stdout}"
    );
    assert!(!data_dir.join("bulwark.db").exists(), "a dry run wrote");
    let (ok, stdout, stderr) = import(&config, &data_dir, &file);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("Imported 4 upstream(s), 2 project(s), 2 user(s), 2 key(s)"),
        "{stdout}"
    );
    for reported in [
        "echo_server-analytics_config",
        "customer-support",
        "input_guardrails_config (policy 'Support Guardrail', enabled)",
        "user 'alice@example.com'",
        "a key of unknown project 'no-such-project'",
        "admin_apikey",
        "sandbox",
    ] {
        assert!(
            stdout.contains(reported),
            "{reported:?} not reported:\n{stdout}"
        );
    }
    for secret in [
        "enkrypt-env-secret-4f2a9c",
        "enkrypt-header-secret-77b1",
        ALICE,
    ] {
        assert!(
            !sqlite || !store_text(&data_dir).contains(secret),
            "{secret} stored in clear"
        );
    }
    // Importing again skips what exists.
    let (ok, stdout, _) = import(&config, &data_dir, &file);
    assert!(
        ok && stdout.contains("Imported 0 upstream(s), 0 project(s), 0 user(s), 0 key(s)"),
        "{stdout}"
    );

    // The gateway serves the imported upstreams to the imported keys.
    let gw = Gateway::builder(&head)
        .with_auth()
        .env("BULWARK__SERVER__DATA_DIR", data_dir.display().to_string())
        .start();
    let mut alice = peers.session_with_headers(gw.mcp_url(), &json!({"X-API-Key": ALICE}));
    let answer = alice.call("echo_server__echo", json!({"message": "from enkrypt"}));
    assert_eq!(answer["result"]["text"], "from enkrypt", "{answer}");
    let answer = alice.call(
        "echo_server-analytics_config__echo",
        json!({"message": "no"}),
    );
    assert_eq!(
        answer["ok"], false,
        "alice's project does not grant analytics: {answer}"
    );
    let mut bob = peers.session_with_headers(gw.mcp_url(), &json!({"X-API-Key": BOB}));
    let answer = bob.call(
        "echo_server-analytics_config__echo",
        json!({"message": "bob"}),
    );
    assert_eq!(answer["result"]["text"], "bob", "{answer}");

    // The Enkrypt users are users: role `user`, active, no known password;
    // their keys carry them, so a key's owner sees the key as their own.
    let (status, alice_user) = send(
        &gw,
        Method::GET,
        "/api/v1/users/alice@example.com",
        None,
        Some(&admin.secret),
    )
    .await;
    assert_eq!(status, 200, "{alice_user}");
    assert_eq!(
        (alice_user["role"].as_str(), alice_user["status"].as_str()),
        (Some("user"), Some("active")),
        "{alice_user}"
    );
    assert!(alice_user.get("password").is_none(), "{alice_user}");
    let (status, _) = login(&gw, "alice@example.com", "not the imported password").await;
    assert_eq!(status, 401, "nobody knows an imported user's password");
    // The legacy SSE server is an upstream on the legacy transport.
    let (status, legacy) = send(
        &gw,
        Method::GET,
        "/api/v1/upstreams/legacy_feed",
        None,
        Some(&admin.secret),
    )
    .await;
    assert_eq!(status, 200, "{legacy}");
    assert_eq!(legacy["type"], "sse", "{legacy}");
    // Enkrypt keys are not `bk_` keys: they travel in `X-API-Key`.
    let answer = reqwest::Client::new()
        .get(format!("{}/api/v1/keys", gw.base_url()))
        .header("X-API-Key", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let own: serde_json::Value = answer.json().await.unwrap();
    let owners: Vec<&str> = own["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|key| key["user"].as_str())
        .collect();
    assert_eq!(owners, ["alice@example.com"], "{own}");
}
