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

/// Calls `tool` as a task (stateless, the extension declared): its task id.
async fn create_task(gw: &Gateway, key: &TestKey, tool: &str, arguments: Value) -> String {
    let created = stateless(
        gw,
        key,
        true,
        "tools/call",
        json!({ "name": tool, "arguments": arguments }),
    )
    .await;
    created["result"]["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned()
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
    let id = create_task(
        &gw,
        &alice,
        "tb__confirm_delete",
        json!({ "filename": "a.txt" }),
    )
    .await;
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

/// A 2025-11-25 session client (rmcp) declaring the tasks extension for its
/// session: every `notifications/tasks` it receives goes to `statuses`.
struct TaskWatcher {
    statuses: tokio::sync::mpsc::UnboundedSender<Value>,
}

impl rmcp::ClientHandler for TaskWatcher {
    async fn on_task_status(
        &self,
        params: rmcp::model::TaskStatusNotificationParams,
        _context: rmcp::service::NotificationContext<rmcp::RoleClient>,
    ) {
        let _ = self
            .statuses
            .send(serde_json::to_value(params).expect("status serializes"));
    }

    fn get_info(&self) -> rmcp::model::ClientConfig {
        rmcp::model::ClientConfig::new(
            rmcp::model::ClientCapabilities::builder()
                .enable_tasks()
                .build(),
            rmcp::model::Implementation::new("bulwark-it-tasks", "0"),
        )
        .with_protocol_version(rmcp::model::ProtocolVersion::V_2025_11_25)
    }
}

type WatchedSession = (
    rmcp::service::RunningService<rmcp::RoleClient, TaskWatcher>,
    tokio::sync::mpsc::UnboundedReceiver<Value>,
);

/// Opens a session on `/mcp` as `key`.
async fn watched_session(gw: &Gateway, key: &TestKey) -> WatchedSession {
    use rmcp::ServiceExt;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

    let headers = std::collections::HashMap::from([(
        reqwest::header::HeaderName::from_static("x-api-key"),
        reqwest::header::HeaderValue::from_str(&key.secret).expect("key is a header value"),
    )]);
    let config =
        StreamableHttpClientTransportConfig::with_uri(gw.url("/mcp")).custom_headers(headers);
    let (statuses, received) = tokio::sync::mpsc::unbounded_channel();
    let client = TaskWatcher { statuses }
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("session opens");
    (client, received)
}

/// Calls `tool` as a task over `session`: the client-facing task id.
async fn start_task(session: &WatchedSession, tool: &str, arguments: Value) -> String {
    let mut params = rmcp::model::CallToolRequestParams::new(tool.to_owned());
    params.arguments = arguments.as_object().cloned();
    let result = session
        .0
        .peer()
        .send_request(rmcp::model::ClientRequest::CallToolRequest(
            rmcp::model::Request::new(params),
        ))
        .await
        .expect("tools/call answered");
    let rmcp::model::ServerResult::CreateTaskResult(created) = result else {
        panic!("not a task: {result:?}");
    };
    created.task.task_id
}

/// The next status notification `session` receives (20 s at most).
async fn next_status(session: &mut WatchedSession) -> Value {
    tokio::time::timeout(Duration::from_secs(20), session.1.recv())
        .await
        .expect("a task status notification within 20 s")
        .expect("session still open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_status_reaches_only_the_creating_session_under_its_id_and_screened() {
    let (alice, bob) = (TestKey::new(), TestKey::new());
    let config = format!(
        "{HEAD}{}{}{}",
        demo_upstream("ta", "\"conformance\""),
        alice.entry("alice", "admin", false),
        bob.entry("bob", "admin", false),
    );
    let gw = Gateway::builder(&config).with_auth().start();
    gw.wait_ready(Duration::from_secs(60)).await;

    // Two sessions of the same caller and one of another, all seeing `ta`.
    let mut first = watched_session(&gw, &alice).await;
    let mut second = watched_session(&gw, &alice).await;
    let mut other = watched_session(&gw, &bob).await;

    // The label's e-mail address reaches the upstream as a placeholder: the
    // status carries it restored, as `tasks/get` does.
    let id = start_task(
        &first,
        "ta__slow_compute",
        json!({ "seconds": 0.3, "label": "alice@example.com" }),
    )
    .await;
    assert!(id.starts_with("ta__"), "{id}");
    let pushed = next_status(&mut first).await;
    assert_eq!(pushed["taskId"], id, "{pushed}");
    assert_eq!(pushed["status"], "completed", "{pushed}");
    assert_eq!(
        pushed["result"]["content"][0]["text"], "computed alice@example.com in 0.3s",
        "{pushed}"
    );

    // The others' own tasks are the barrier: had the first task's status
    // reached them, it would have been queued before their own.
    for session in [&mut second, &mut other] {
        let own = start_task(session, "ta__slow_compute", json!({ "seconds": 0.1 })).await;
        let status = next_status(session).await;
        assert_eq!(
            status["taskId"], own,
            "another session's task status leaked: {status}"
        );
        assert_eq!(status["status"], "completed", "{status}");
    }
    assert!(
        first.1.try_recv().is_err(),
        "the others' statuses reached the first session"
    );

    // The polled state agrees with the pushed one.
    let polled = settled(&gw, &alice, &id).await;
    assert_eq!(polled["result"], pushed["result"], "{polled}");
    for session in [first, second, other] {
        let _ = session.0.cancel().await;
    }
}

/// The upstream's questions inside a task are upstream output: an
/// `input_required` status passes the output guardrails before the client
/// sees its requests, as a bridged call's requests do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tasks_input_requests_pass_the_output_guardrails() {
    let alice = TestKey::new();
    let config = format!(
        "{HEAD}{}{}[guardrails.upstreams.tb.output]\nblock = [\"keyword\"]\nadditional_config = {{ keywords = [\"forbidden-file\"] }}\n",
        demo_upstream("tb", "\"conformance\""),
        alice.entry("alice", "admin", false),
    );
    let gw = Gateway::builder(&config).with_auth().start();
    gw.wait_ready(Duration::from_secs(60)).await;

    // Polls a confirm_delete task of `filename` until it asks or fails to.
    let asked = |filename: &'static str| {
        let (gw, alice) = (&gw, &alice);
        async move {
            let arguments = json!({ "filename": filename });
            let id = create_task(gw, alice, "tb__confirm_delete", arguments).await;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                let got = stateless(gw, alice, true, "tasks/get", json!({ "taskId": id })).await;
                if got.get("error").is_some() || got["result"]["status"] == "input_required" {
                    return got;
                }
                assert!(tokio::time::Instant::now() < deadline, "never asked: {got}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let clean = asked("a.txt").await;
    assert_eq!(
        clean["result"]["inputRequests"]["confirm"]["params"]["message"], "Delete a.txt?",
        "{clean}"
    );
    let blocked = asked("forbidden-file.txt").await;
    let message = blocked["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{blocked}"));
    assert!(message.contains("keyword"), "{blocked}");
    assert!(
        !blocked.to_string().contains("Delete forbidden-file"),
        "the request leaked: {blocked}"
    );
}
