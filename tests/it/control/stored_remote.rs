//! A remote upstream stored with launch settings (`env`, `args`, `cwd`),
//! as versions that accepted them wrote it: new ones are refused at the
//! API, but a stored one still starts (they are dropped with a warning)
//! and can be patched.
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::{StoreUnderTest, send};
use crate::common::{Gateway, wait_until};
use crate::gateway::{HEAD, wait_for_upstream};
use crate::remote::DemoHttp;

fn start(data_dir: &std::path::Path) -> Gateway {
    Gateway::builder(HEAD)
        .env("BULWARK__SERVER__DATA_DIR", data_dir.display().to_string())
        .start()
}

/// Writes `definition` as the stored record of `far`, as an older version did.
async fn store_as_before(data_dir: &std::path::Path, definition: &serde_json::Value) {
    StoreUnderTest::Sqlite
        .raw_execute(
            data_dir,
            "UPDATE upstreams SET definition = $1 WHERE name = 'far'",
            &definition.to_string(),
        )
        .await;
}

/// `PATCH /api/v1/upstreams/far` with `body`, which must succeed.
async fn patch(gw: &Gateway, body: serde_json::Value) -> serde_json::Value {
    let (status, patched) = send(
        gw,
        Method::PATCH,
        "/api/v1/upstreams/far",
        Some(&body),
        None,
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    patched
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_upstream_stored_with_launch_settings_still_starts_and_patches() {
    let upstream = DemoHttp::start("echo");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let gw = start(&data_dir);

    // New: refused, naming every key at fault.
    let body = json!({
        "name": "far", "url": upstream.url(),
        "env": {"API_KEY": "never-sent"}, "cwd": "/tmp",
    });
    let (status, refused) = send(&gw, Method::POST, "/api/v1/upstreams", Some(&body), None).await;
    assert_eq!(status, 422, "{refused}");
    let text = refused.to_string();
    assert!(
        text.contains("upstreams.far.env, upstreams.far.cwd apply to stdio"),
        "{text}"
    );
    assert!(!text.contains("never-sent"), "{text}");
    let body = json!({"name": "far", "url": upstream.url()});
    let (status, created) = send(&gw, Method::POST, "/api/v1/upstreams", Some(&body), None).await;
    assert_eq!(status, 201, "{created}");
    drop(gw);

    // What an earlier version stored.
    let definition = json!({
        "url": upstream.url(), "env": {"API_KEY": "never-sent"}, "args": ["-v"],
    });
    store_as_before(&data_dir, &definition).await;

    let gw = start(&data_dir);
    let node = wait_for_upstream(&gw, "far", Duration::from_secs(30), |n| {
        n["state"] == "ready"
    })
    .await;
    assert_eq!(node["state"], "ready", "{node}");
    assert!(
        wait_until(Duration::from_secs(10), || gw
            .stderr
            .text()
            .contains("stored remote upstream has launch settings")),
        "{}",
        gw.logs()
    );
    assert!(!gw.logs().contains("never-sent"), "{}", gw.logs());

    // A PATCH of another field goes through; what it stores has none of them.
    let patched = patch(&gw, json!({"headers": {"X-Team": "blue"}})).await;
    // (Header values are shown masked: they may be keys.)
    assert!(patched["headers"]["X-Team"].is_string(), "{patched}");
    for key in ["env", "args", "cwd"] {
        assert!(
            patched
                .get(key)
                .is_none_or(|v| v.is_null() || v == &json!({}) || v == &json!([])),
            "{key}: {patched}"
        );
    }
    // What the record holds now (values were sealed at start; names show).
    let url = format!("sqlite://{}", data_dir.join("bulwark.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let (stored,): (String,) =
        sqlx::query_as("SELECT definition FROM upstreams WHERE name = 'far'")
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    assert!(
        !stored.contains("API_KEY") && !stored.contains("\"-v\""),
        "{stored}"
    );

    // Switched to a command by PATCH, it is a stdio upstream as sent.
    let patched = patch(
        &gw,
        json!({"url": null, "headers": {}, "command": env!("CARGO_BIN_EXE_bulwark"),
            "args": ["demo-server", "echo"], "env": {"MODE": "plain"}}),
    )
    .await;
    assert_eq!(patched["args"], json!(["demo-server", "echo"]), "{patched}");
    assert!(patched["env"].get("MODE").is_some(), "{patched}");

    // Back to remote without naming them: its launch settings go.
    let patched = patch(&gw, json!({"url": upstream.url(), "command": ""})).await;
    assert_eq!(patched["env"], json!({}), "{patched}");
    assert_eq!(patched["args"], json!([]), "{patched}");

    // An old remote record switched to a command keeps only what is sent:
    // the stored settings were never its server's.
    store_as_before(&data_dir, &definition).await;
    let patched = patch(
        &gw,
        json!({"url": null, "command": env!("CARGO_BIN_EXE_bulwark"),
            "args": ["demo-server", "echo"]}),
    )
    .await;
    assert_eq!(patched["env"], json!({}), "{patched}");
    assert_eq!(patched["args"], json!(["demo-server", "echo"]), "{patched}");
}
