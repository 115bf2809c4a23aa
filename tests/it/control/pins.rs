//! Guardrail pins and approvals live in the store: an approval made before
//! a restart still decides what is withheld after it.
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Gateway, PythonSession, eventually, peers};
use crate::gateway::{HEAD, demo_upstream};

fn lists_fetch_url(session: &mut PythonSession) -> bool {
    session.list("tools").to_string().contains("rug__fetch_url")
}

/// The stored pin of `rug`/`fetch_url` in the SQLite store of `data`.
async fn stored_pin(data: &std::path::Path) -> Option<String> {
    use sqlx::Row;
    let url = format!("sqlite://{}", data.join("bulwark.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.ok()?;
    let row = sqlx::query(
        "SELECT pinned FROM guardrail_pins WHERE server = 'rug' AND tool = 'fetch_url'",
    )
    .fetch_optional(&pool)
    .await
    .ok()??;
    let pinned = row.try_get("pinned").ok();
    pool.close().await;
    pinned
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_rug_pull_stays_approved_across_a_restart() {
    let Some(peers) = peers() else { return };
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    let config = format!(
        "{HEAD}[guardrails]\npin_tools = \"block\"\ntool_poisoning = \"flag\"\n{}",
        demo_upstream("rug", "\"rugpull\"")
    );
    let start = || {
        Gateway::builder(&config)
            .env("BULWARK__SERVER__DATA_DIR", &data_dir)
            .start()
    };

    let gw = start();
    gw.wait_ready(Duration::from_secs(60)).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    assert!(lists_fetch_url(&mut session));
    let mut original = None;
    assert!(
        eventually(Duration::from_secs(10), || {
            original = futures::executor::block_on(stored_pin(data.path()));
            original.is_some()
        })
        .await,
        "the first pin is stored"
    );
    session.call("rug__mutate", json!({}));
    assert!(
        !lists_fetch_url(&mut session),
        "the changed tool is withheld"
    );
    let approved = gw
        .http()
        .post(gw.url("/api/v1/guardrails/approve"))
        .json(&json!({"server": "rug", "tool": "fetch_url"}))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    assert!(lists_fetch_url(&mut session));
    assert!(
        eventually(Duration::from_secs(10), || {
            futures::executor::block_on(stored_pin(data.path())) != original
        })
        .await,
        "the approval is stored"
    );
    drop(session);
    drop(gw);

    // A fresh upstream lists its original definition again: against the
    // approved (mutated) pin that is a change, so it is withheld.
    let gw = start();
    gw.wait_ready(Duration::from_secs(60)).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    assert!(
        !lists_fetch_url(&mut session),
        "the restart forgot the approval"
    );
    let (_, report) = gw.get_json("/api/v1/guardrails").await;
    let flagged: &Value = &report["flagged_tools"];
    assert!(flagged.to_string().contains("fetch_url"), "{report}");
}
