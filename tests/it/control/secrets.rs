//! Secrets at rest on real SQLite and PostgreSQL stores: the key file is
//! created 0600; a clear-text secret left by an earlier version is sealed
//! on start; `bulwark rotate-master-key` re-seals under a new key that
//! still opens every secret, and the old key is then refused at start.
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use reqwest::Method;
use serde_json::json;

use super::{PgDatabase, StoreUnderTest, demo_body, send};
use crate::common::Gateway;
use crate::gateway::HEAD;

const SECRET: &str = "clear-text-secret-from-v0-51aa";

async fn stored_secret(config: &str, data_dir: &Path) -> String {
    let config: bulwark::store::StoreConfig = toml::from_str::<toml::Table>(config)
        .unwrap()
        .get("store")
        .cloned()
        .map(|store| store.try_into().unwrap())
        .unwrap_or_default();
    let store = bulwark::store::Store::open(&config, data_dir)
        .await
        .unwrap();
    let record = bulwark::store::named::UPSTREAMS
        .get(&store, "stored")
        .await
        .unwrap()
        .unwrap();
    store.close().await;
    record.definition["env"]["STORED_TOKEN"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn start(config: &str, data_dir: &Path) -> Gateway {
    Gateway::builder(config)
        .env("BULWARK__SERVER__DATA_DIR", data_dir.display().to_string())
        .start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_text_secrets_are_sealed_on_start_and_the_master_key_rotates_on_sqlite() {
    secrets_sealed_and_rotated(StoreUnderTest::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_text_secrets_are_sealed_on_start_and_the_master_key_rotates_on_postgres() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    secrets_sealed_and_rotated(StoreUnderTest::Postgres(db)).await;
}

async fn secrets_sealed_and_rotated(store: StoreUnderTest) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let key_file = data_dir.join("master.key");
    let config = format!("{HEAD}{}", store.config());

    let gw = start(&config, &data_dir);
    let mut body = demo_body("stored", "echo");
    body["env"] = json!({ "STORED_TOKEN": "placeholder" });
    let (status, created) = send(&gw, Method::POST, "/api/v1/upstreams", Some(&body), None).await;
    assert_eq!(status, 201, "{created}");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the key file is private");
    drop(gw);

    // What an earlier version wrote: the definition with its secret in clear.
    body["env"]["STORED_TOKEN"] = json!(SECRET);
    let definition = json!({
        "command": body["command"], "args": body["args"], "env": body["env"],
    });
    store
        .raw_execute(
            &data_dir,
            "UPDATE upstreams SET definition = $1 WHERE name = 'stored'",
            &definition.to_string(),
        )
        .await;
    assert!(store.raw_text(&data_dir).await.contains(SECRET));

    // The next start seals it; the API still masks it; the store opens it.
    let gw = start(&config, &data_dir);
    let (status, shown) = send(&gw, Method::GET, "/api/v1/upstreams/stored", None, None).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["env"]["STORED_TOKEN"], "****");
    drop(gw);
    assert!(
        !store.raw_text(&data_dir).await.contains(SECRET),
        "a clear-text secret survived the start"
    );
    assert_eq!(stored_secret(&config, &data_dir).await, SECRET);

    // Rotation: a new key file, every secret re-sealed and still readable.
    let old_key = std::fs::read_to_string(&key_file).unwrap();
    let before = store.raw_text(&data_dir).await;
    let config_file = dir.path().join("bulwark.toml");
    std::fs::write(&config_file, &config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["rotate-master-key", "--config"])
        .arg(&config_file)
        .env("BULWARK__SERVER__DATA_DIR", &data_dir)
        .env_remove("BULWARK_MASTER_KEY")
        .env_remove("BULWARK_NEW_MASTER_KEY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Re-sealed 1 record"), "{stderr}");
    let new_key = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(new_key, old_key);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(new_key.trim()));
    assert!(!stderr.contains(new_key.trim()) && !stderr.contains(old_key.trim()));
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(!data_dir.join("master.key.new").exists());
    assert_eq!(stored_secret(&config, &data_dir).await, SECRET);
    let after = store.raw_text(&data_dir).await;
    assert!(!after.contains(SECRET));
    assert_ne!(before, after, "nothing was re-sealed");

    // The old key no longer opens the store: refused at start, by name.
    let refused = Gateway::builder(&config)
        .env("BULWARK__SERVER__DATA_DIR", data_dir.display().to_string())
        .env("BULWARK_MASTER_KEY", old_key.trim())
        .try_start()
        .err()
        .expect("the gateway started with the old master key");
    assert!(refused.contains("sealed under master key"), "{refused}");
    let output = refused.split("--- stdout").nth(1).unwrap_or_default();
    assert!(!output.contains(old_key.trim()), "the key was printed");
    // The new key serves.
    let gw = start(&config, &data_dir);
    let (status, _) = send(&gw, Method::GET, "/api/v1/upstreams/stored", None, None).await;
    assert_eq!(status, 200);
}
