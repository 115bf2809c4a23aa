//! Upstreams added, removed and updated over REST reach the running tree at
//! once: sessions hear `list_changed`, the other upstreams keep their PIDs.
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::{PgDatabase, StoreUnderTest, demo_body, saw_tools_changed, send};
use crate::common::{Gateway, peers};
use crate::gateway::{
    HEAD, demo_pid, demo_upstream, gone_within, upstream_node, wait_for_upstream,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_remove_update_apply_live_on_sqlite() {
    add_remove_update_apply_live(StoreUnderTest::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_remove_update_apply_live_on_postgres() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    add_remove_update_apply_live(StoreUnderTest::Postgres(db)).await;
}

async fn add_remove_update_apply_live(store: StoreUnderTest) {
    let Some(peers) = peers() else { return };
    let config = format!(
        "{HEAD}{}{}{}",
        store.config(),
        demo_upstream("echo", "\"echo\""),
        demo_upstream("slow", "\"slow\""),
    );
    let gw = Gateway::start(&config, &[]);
    gw.wait_ready(Duration::from_secs(60)).await;
    let echo_pid = demo_pid(&gw, "echo").await;
    let slow_pid = demo_pid(&gw, "slow").await;
    let mut session = peers.session(&[gw.mcp_url()]);
    let before = session.list("tools");
    assert!(!before.to_string().contains("extra__"), "{before}");

    // Add: the session hears list_changed and the new tool answers at once.
    let (status, created) = send(
        &gw,
        Method::POST,
        "/api/v1/upstreams",
        Some(&demo_body("extra", "echo")),
        None,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["source"], "api");
    assert_eq!(created["status"], "ready", "{created}");
    assert!(saw_tools_changed(&mut session), "no list_changed after add");
    let tools = session.list("tools");
    assert!(tools.to_string().contains("extra__echo"), "{tools}");
    let answer = session.call("extra__echo", json!({"message": "new"}));
    assert_eq!(answer["result"]["text"], "new", "{answer}");
    assert_eq!(demo_pid(&gw, "echo").await, echo_pid, "echo was touched");
    assert_eq!(demo_pid(&gw, "slow").await, slow_pid, "slow was touched");

    // Update: only that upstream restarts.
    let extra_pid = demo_pid(&gw, "extra").await;
    session.clear_events();
    let (status, updated) = send(
        &gw,
        Method::PATCH,
        "/api/v1/upstreams/extra",
        Some(&json!({"env": {"EXTRA_TOKEN": "sup3r-secret-value"}})),
        None,
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        updated["env"]["EXTRA_TOKEN"], "****",
        "secrets are masked: {updated}"
    );
    assert!(!updated.to_string().contains("sup3r"), "{updated}");
    assert!(
        saw_tools_changed(&mut session),
        "no list_changed after update"
    );
    let new_extra = demo_pid(&gw, "extra").await;
    assert_ne!(new_extra, extra_pid, "extra did not restart");
    assert!(
        gone_within(extra_pid, Duration::from_secs(10)),
        "old extra survives"
    );
    assert_eq!(
        demo_pid(&gw, "echo").await,
        echo_pid,
        "echo was touched by the update"
    );
    assert_eq!(
        demo_pid(&gw, "slow").await,
        slow_pid,
        "slow was touched by the update"
    );

    // Remove with a slow call in flight: it finishes, new calls are refused.
    let (status, _) = send(
        &gw,
        Method::POST,
        "/api/v1/upstreams",
        Some(&demo_body("slowx", "slow")),
        None,
    )
    .await;
    assert_eq!(status, 201);
    let slowx_pid = demo_pid(&gw, "slowx").await;
    let in_flight = session.send(json!({"call": "slowx__slow", "args": {"ms": 3000}}));
    wait_for_upstream(&gw, "slowx", Duration::from_secs(10), |node| {
        node["calls_in_flight"].as_u64().unwrap_or(0) > 0
    })
    .await;
    let url = gw.url("/api/v1/upstreams/slowx");
    let http = gw.http().clone();
    let delete =
        tokio::spawn(async move { http.delete(url).send().await.map(|r| r.status().as_u16()) });
    // Nothing routes to it any more, while its call is still running.
    let refused = crate::common::eventually(Duration::from_secs(10), || {
        let answer = session.call("slowx__slow", json!({"ms": 1}));
        answer["ok"] == false && answer.to_string().contains("slowx")
    })
    .await;
    assert!(refused, "new calls still reach the removed upstream");
    let done = session.recv(&in_flight, Duration::from_secs(30));
    assert_eq!(
        done["ok"], true,
        "the call in flight did not complete: {done}"
    );
    assert_eq!(delete.await.unwrap().unwrap(), 204);
    assert!(
        gone_within(slowx_pid, Duration::from_secs(5)),
        "slowx's process survives"
    );
    let (status, _) = send(&gw, Method::GET, "/api/v1/upstreams/slowx", None, None).await;
    assert_eq!(status, 404);
    assert_eq!(demo_pid(&gw, "echo").await, echo_pid);
    assert_eq!(demo_pid(&gw, "slow").await, slow_pid);
    let node = upstream_node(&gw, "extra").await;
    assert_eq!(node["state"], "ready", "{node}");
}
