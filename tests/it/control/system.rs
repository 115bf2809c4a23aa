//! `/api/v1/system`: health; backup → reset → restore gives back the same
//! store and a live gateway serving the same upstreams (a Python SDK call
//! with a restored key); a tampered or foreign backup is refused and
//! changes nothing; neither the database nor a backup holds a secret in
//! clear. On SQLite and PostgreSQL.
use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};

use super::{PgDatabase, StoreUnderTest, demo_body, send};
use crate::common::{Gateway, peers};
use crate::gateway::HEAD;

const SECRET: &str = "sup3r-secret-token-8c1f";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_reset_restore_round_trip_on_sqlite() {
    backup_reset_restore_round_trip(StoreUnderTest::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_reset_restore_round_trip_on_postgres() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    backup_reset_restore_round_trip(StoreUnderTest::Postgres(db)).await;
}

pub(crate) fn admin_key(gw: &Gateway) -> String {
    gw.stdout
        .text()
        .lines()
        .find(|l| l.starts_with("bk_"))
        .expect("admin key printed")
        .trim()
        .to_owned()
}

/// Runs `bulwark ARGS…` against `gw` with `key` → (success, stderr).
fn cli(gw: &Gateway, key: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(args)
        .env("BULWARK_URL", gw.base_url())
        .env("BULWARK_API_KEY", key)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn backup_reset_restore_round_trip(store: StoreUnderTest) {
    let Some(peers) = peers() else { return };
    let config = format!("{HEAD}{}", store.config());
    let gw = Gateway::builder(&config).with_auth().start();
    // The configured upstreams first: the readiness counted below is compared at the end.
    gw.wait_ready(std::time::Duration::from_secs(60)).await;
    let admin = admin_key(&gw);
    let key = Some(admin.as_str());

    let (status, health) = send(&gw, Method::GET, "/api/v1/system/health", None, key).await;
    assert_eq!(status, 200, "{health}");
    let ready_at_start = health["upstreams"]["ready"].as_u64().unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["store"]["ok"], true);
    assert!(health["version"].is_string() && health["uptime_secs"].is_u64());
    let (status, _) = send(&gw, Method::GET, "/api/v1/system/health", None, None).await;
    assert_eq!(status, 401, "the system endpoints need the admin key");

    // State: an upstream with a secret, a project, a key of bob's.
    let mut body = demo_body("stored", "echo");
    body["env"] = json!({ "STORED_TOKEN": SECRET });
    let (status, created) = send(&gw, Method::POST, "/api/v1/upstreams", Some(&body), key).await;
    assert_eq!(status, 201, "{created}");
    let project = json!({"name": "team", "upstreams": ["stored"]});
    let (status, created) = send(&gw, Method::POST, "/api/v1/projects", Some(&project), key).await;
    assert_eq!(status, 201, "{created}");
    let bob = json!({"user": "bob", "project": "team"});
    let (status, created) = send(&gw, Method::POST, "/api/v1/keys", Some(&bob), key).await;
    assert_eq!(status, 201, "{created}");
    let bob_key = created["key"].as_str().unwrap().to_owned();
    let mut session = peers.session_with_headers(gw.mcp_url(), &json!({"X-API-Key": bob_key}));
    let answer = session.call("stored__echo", json!({"message": "before"}));
    assert_eq!(answer["result"]["text"], "before", "{answer}");
    drop(session);

    let raw = store.raw_text(&gw.data_dir()).await;
    assert!(raw.contains("bulwark:sealed:v1:"), "{raw}");
    assert!(
        !raw.contains(SECRET),
        "the database holds the secret in clear"
    );

    // Backup through the CLI: one document, secrets sealed, mode 0600.
    let file = gw.dir().join("backup.json");
    let file_arg = file.display().to_string();
    let (ok, stderr) = cli(&gw, &admin, &["backup", "-o", &file_arg]);
    assert!(ok, "{stderr}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains(SECRET),
        "the backup holds the secret in clear"
    );
    assert!(!text.contains(&bob_key), "the backup holds a key");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let backup: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(backup["format"], "bulwark-backup");
    assert_eq!(backup["format_version"], 1);
    assert!(backup["checksum"].as_str().unwrap().starts_with("sha256:"));

    // Reset: refused without confirm, nothing changes.
    let (status, refused) = send(&gw, Method::POST, "/api/v1/system/reset", None, key).await;
    assert_eq!(status, 400, "{refused}");
    let (status, _) = send(&gw, Method::GET, "/api/v1/upstreams/stored", None, key).await;
    assert_eq!(status, 200);

    let (status, reset) = send(
        &gw,
        Method::POST,
        "/api/v1/system/reset?confirm=true",
        None,
        key,
    )
    .await;
    assert_eq!(status, 200, "{reset}");
    assert_eq!(reset["applied"]["removed"], json!(["stored"]), "{reset}");
    let written = reset["backup"].as_str().unwrap();
    assert!(!std::fs::read_to_string(written).unwrap().contains(SECRET));
    // First-start state: a new admin key, the old one and bob's are gone.
    let new_admin = reset["admin_key"]["key"].as_str().unwrap().to_owned();
    let (status, _) = send(&gw, Method::GET, "/api/v1/upstreams", None, key).await;
    assert_eq!(status, 401, "the old admin key survived the reset");
    let fresh = Some(new_admin.as_str());
    let (status, _) = send(&gw, Method::GET, "/api/v1/upstreams/stored", None, fresh).await;
    assert_eq!(status, 404);
    let (_, keys) = send(&gw, Method::GET, "/api/v1/keys", None, fresh).await;
    assert_eq!(keys["total"], 1, "only the new admin key: {keys}");

    // Tampered, foreign-version and non-JSON backups are refused; nothing changes.
    let mut tampered = backup.clone();
    tampered["tables"]["upstreams"][0]["enabled"] = json!(0);
    let (status, problem) = send(
        &gw,
        Method::POST,
        "/api/v1/system/restore",
        Some(&tampered),
        fresh,
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("checksum"),
        "{problem}"
    );
    let mut future = backup.clone();
    future["format_version"] = json!(99);
    let (status, problem) = send(
        &gw,
        Method::POST,
        "/api/v1/system/restore",
        Some(&future),
        fresh,
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("version 99"),
        "{problem}"
    );
    let tampered_file = gw.dir().join("tampered.json");
    std::fs::write(&tampered_file, tampered.to_string()).unwrap();
    let (ok, stderr) = cli(
        &gw,
        &new_admin,
        &["restore", &tampered_file.display().to_string()],
    );
    assert!(!ok && stderr.contains("checksum"), "{stderr}");
    let (status, _) = send(&gw, Method::GET, "/api/v1/upstreams/stored", None, fresh).await;
    assert_eq!(status, 404, "a refused restore changed the store");

    // The real backup restores the same state, live.
    let (ok, stderr) = cli(&gw, &new_admin, &["restore", &file_arg]);
    assert!(ok, "{stderr}");
    let (status, again) = send(&gw, Method::POST, "/api/v1/system/backup", None, key).await;
    assert_eq!(status, 200, "the restored admin key works again: {again}");
    assert_eq!(again["tables"], backup["tables"], "restored state differs");
    let (status, _) = send(&gw, Method::GET, "/api/v1/keys", None, fresh).await;
    assert_eq!(status, 401, "the post-reset key outlived the restore");
    let mut session = peers.session_with_headers(gw.mcp_url(), &json!({"X-API-Key": bob_key}));
    let answer = session.call("stored__echo", json!({"message": "after"}));
    assert_eq!(answer["result"]["text"], "after", "{answer}");
    let (status, health) = send(&gw, Method::GET, "/api/v1/system/health", None, key).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["upstreams"]["ready"], ready_at_start + 1, "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_names_a_failed_upstream_and_checks_redis() {
    if crate::common::require_redis().is_none() {
        return;
    }
    let config = format!(
        "{HEAD}[cache]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\n\
         [upstreams.ghost]\ncommand = \"/nonexistent/mcp-server\"\n\
         [upstreams.ghost.restart]\nmax_restarts = 1\nwindow_secs = 60\nbackoff_min_ms = 10\n\
         backoff_max_ms = 20\nprobe_interval_secs = 3600\n"
    );
    let gw = Gateway::start(&config, &[]);
    gw.wait_ready(std::time::Duration::from_secs(60)).await;
    let (status, health) = send(&gw, Method::GET, "/api/v1/system/health", None, None).await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "unhealthy");
    assert_eq!(
        health["upstreams"]["failed_names"],
        json!(["ghost"]),
        "{health}"
    );
    assert!(health["problems"].to_string().contains("ghost"), "{health}");
    assert_eq!(health["redis"]["ok"], true, "{health}");
    assert_eq!(health["store"]["ok"], true, "{health}");
}
