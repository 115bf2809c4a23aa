//! The tasks extension (SEP-2663) through the gateway: two demo conformance
//! upstreams run tasks (rmcp's task manager), the gateway hands them to
//! stateless clients under namespaced ids, keeps each task to the caller
//! that created it, runs guardrails on its result and advertises the
//! extension only to callers with a task-capable upstream. The official
//! conformance suite's `tasks-*` scenarios run through `/mcp/conformance`
//! in `conformance.rs`.
use std::time::Duration;

use serde_json::{Value, json};

use super::{HEAD, demo_upstream};
use crate::auth::TestKey;
use crate::common::Gateway;

const TASKS: &str = "io.modelcontextprotocol/tasks";

/// One stateless request to `/mcp` as `key`, declaring the tasks extension
/// when `tasks`: the JSON-RPC response.
async fn stateless(gw: &Gateway, key: &TestKey, tasks: bool, method: &str, params: Value) -> Value {
    let capabilities = if tasks {
        json!({ "extensions": { TASKS: {} } })
    } else {
        json!({})
    };
    super::stateless_request(gw, "/mcp", Some(key), method, params, capabilities).await
}

/// Polls `tasks/get` until the task is terminal: its last state.
async fn settled(gw: &Gateway, key: &TestKey, task_id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = stateless(gw, key, true, "tasks/get", json!({ "taskId": task_id })).await;
        let status = got["result"]["status"]
            .as_str()
            .unwrap_or_else(|| panic!("{got}"));
        if ["completed", "failed", "cancelled"].contains(&status) {
            return got["result"].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never settled: {got}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn advertises_tasks(discovered: &Value) -> bool {
    discovered["result"]["capabilities"]["extensions"]
        .get(TASKS)
        .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_of_two_upstreams_are_namespaced_kept_to_their_creator_and_screened() {
    let (alice, bob, carol) = (TestKey::new(), TestKey::new(), TestKey::new());
    let config = format!(
        "{HEAD}{}{}{}{}{}{}[auth.projects.plain]\nupstreams = [\"plain\"]\n",
        demo_upstream("ta", "\"conformance\""),
        demo_upstream("tb", "\"conformance\""),
        demo_upstream("plain", "\"echo\""),
        alice.entry("alice", "admin", false),
        bob.entry("bob", "admin", false),
        carol.entry("carol", "plain", false),
    );
    let gw = Gateway::builder(&config).with_auth().start();
    gw.wait_ready(Duration::from_secs(60)).await;

    // Advertised only to callers with a task-capable upstream.
    let discovered = stateless(&gw, &alice, true, "server/discover", json!({})).await;
    assert!(advertises_tasks(&discovered), "{discovered}");
    let discovered = stateless(&gw, &carol, true, "server/discover", json!({})).await;
    assert!(!advertises_tasks(&discovered), "{discovered}");

    // Each upstream's task under its own prefix; the label's e-mail address
    // reaches the upstream as a placeholder and comes back restored.
    let mut ids = Vec::new();
    for server in ["ta", "tb"] {
        let created = stateless(
            &gw,
            &alice,
            true,
            "tools/call",
            json!({ "name": format!("{server}__slow_compute"),
                    "arguments": { "seconds": 0.2, "label": "alice@example.com" } }),
        )
        .await;
        assert_eq!(created["result"]["resultType"], "task", "{created}");
        let id = created["result"]["taskId"]
            .as_str()
            .unwrap_or_else(|| panic!("{created}"));
        assert!(id.starts_with(&format!("{server}__")), "{created}");
        ids.push(id.to_owned());
    }
    assert_ne!(ids[0].split_once("__").unwrap().1, "", "{ids:?}");
    for id in &ids {
        // Another caller (same project, other credential) cannot see it.
        let foreign = stateless(&gw, &bob, true, "tasks/get", json!({ "taskId": id })).await;
        assert_eq!(foreign["error"]["code"], -32602, "{foreign}");
        let done = settled(&gw, &alice, id).await;
        assert_eq!(done["status"], "completed", "{done}");
        assert_eq!(done["taskId"], *id, "{done}");
        let text = done["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default();
        assert!(text.contains("computed alice@example.com"), "{done}");
    }
    // An id the gateway never issued is unknown, whatever its prefix.
    let made_up = stateless(
        &gw,
        &alice,
        true,
        "tasks/get",
        json!({ "taskId": "ta__nope" }),
    )
    .await;
    assert_eq!(made_up["error"]["code"], -32602, "{made_up}");

    // Input inside a task, answered through the gateway; cancel is acknowledged.
    let created = stateless(
        &gw,
        &alice,
        true,
        "tools/call",
        json!({ "name": "tb__confirm_delete", "arguments": { "filename": "a.txt" } }),
    )
    .await;
    let id = created["result"]["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let asked = loop {
        let got = stateless(&gw, &alice, true, "tasks/get", json!({ "taskId": id })).await;
        if got["result"]["status"] == "input_required" {
            break got;
        }
        assert!(tokio::time::Instant::now() < deadline, "never asked: {got}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        asked["result"]["inputRequests"]["confirm"]["method"], "elicitation/create",
        "{asked}"
    );
    let ack = stateless(
        &gw,
        &alice,
        true,
        "tasks/update",
        json!({ "taskId": id, "inputResponses": { "confirm": { "action": "accept", "content": { "confirm": true } } } }),
    )
    .await;
    assert_eq!(ack["result"]["resultType"], "complete", "{ack}");
    let done = settled(&gw, &alice, &id).await;
    assert_eq!(
        done["result"]["content"][0]["text"], "deleted a.txt",
        "{done}"
    );

    // Without the extension a task-supporting tool runs synchronously.
    let sync = stateless(
        &gw,
        &alice,
        false,
        "tools/call",
        json!({ "name": "ta__slow_compute", "arguments": { "seconds": 0, "label": "now" } }),
    )
    .await;
    assert_eq!(sync["result"]["resultType"], "complete", "{sync}");
    assert!(sync["result"].get("taskId").is_none(), "{sync}");
}
