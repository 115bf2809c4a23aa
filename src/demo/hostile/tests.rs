//! Each hostile kind, in process, with the guardrail detectors as the judge:
//! the fixtures must be caught by the detectors they are meant to exercise.
use std::time::Duration;

use bulwark_actors::guardrail::detect::{entropy, injection, pii, secrets};
use bulwark_actors::guardrail::{Guardrails, ToolFlag, tools};
use rmcp::ClientHandler;
use rmcp::model::{CallToolRequestParams, Tool};
use rmcp::service::{NotificationContext, RoleClient};
use serde_json::json;
use tokio::sync::mpsc;

use super::{huge, injector, leaky, poisoned, rugpull};
use crate::demo::echo::tests::{args, connect, connect_with, text};

fn call(name: &str, arguments: serde_json::Value) -> CallToolRequestParams {
    CallToolRequestParams::new(name.to_owned()).with_arguments(args(arguments))
}

fn entities(found: Vec<bulwark_actors::guardrail::detect::Span>) -> Vec<&'static str> {
    found.into_iter().map(|span| span.entity).collect()
}

#[tokio::test]
async fn leaky_outputs_carry_detectable_pii_and_secrets() {
    let client = connect(leaky::LeakyServer::leaky()).await;
    let record = text(
        &client
            .call_tool(call("customer_record", json!({})))
            .await
            .unwrap(),
    );
    assert_eq!(
        entities(pii::find(&record)),
        [
            pii::entity::EMAIL,
            pii::entity::PHONE,
            pii::entity::CARD,
            pii::entity::SSN,
            pii::entity::IBAN
        ]
    );

    use secrets::entity as e;
    for (kind, expected) in [
        ("aws", vec![e::AWS_ACCESS_KEY, e::AWS_SECRET_KEY]),
        ("github", vec![e::GITHUB_TOKEN]),
        ("private_key", vec![e::PRIVATE_KEY]),
        ("jwt", vec![e::JWT]),
    ] {
        let leaked = text(
            &client
                .call_tool(call("leak_secret", json!({"kind": kind})))
                .await
                .unwrap(),
        );
        assert_eq!(
            entities(secrets::find(&leaked, entropy::DEFAULT_THRESHOLD)),
            expected,
            "{kind}"
        );
    }
    let all = text(
        &client
            .call_tool(call("leak_secret", json!({"kind": "all"})))
            .await
            .unwrap(),
    );
    assert_eq!(secrets::find(&all, entropy::DEFAULT_THRESHOLD).len(), 5);
    assert!(
        client
            .call_tool(call("leak_secret", json!({"kind": "nope"})))
            .await
            .is_err()
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn echo_args_returns_exactly_its_arguments() {
    let client = connect(leaky::LeakyServer::leaky()).await;
    let sent = json!({"to": "<EMAIL_1>", "nested": {"n": [1, 2.5, null, true]}, "é": "ü"});
    let echoed = text(
        &client
            .call_tool(call("echo_args", sent.clone()))
            .await
            .unwrap(),
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&echoed).unwrap(),
        sent
    );
    client.cancel().await.unwrap();
}

fn scan_flags(tool: &Tool) -> Vec<ToolFlag> {
    tools::scan(&serde_json::to_value(tool).unwrap())
}

#[tokio::test]
async fn poisoned_tools_are_each_flagged_and_the_clean_ones_are_not() {
    let client = connect(poisoned::PoisonedServer::poisoned()).await;
    let listed = client.list_all_tools().await.unwrap();
    for tool in &listed {
        let flags = scan_flags(tool);
        if poisoned::POISONED_TOOLS.contains(&tool.name.as_ref()) {
            assert!(!flags.is_empty(), "{} should be flagged", tool.name);
        } else {
            assert_eq!(flags, [], "{} is clean", tool.name);
        }
    }
    let flags_of = |name: &str| scan_flags(listed.iter().find(|t| t.name == name).unwrap());
    assert_eq!(
        flags_of("add_numbers"),
        [ToolFlag::HiddenInstructions, ToolFlag::Exfiltration]
    );
    assert_eq!(flags_of("weather"), [ToolFlag::InvisibleUnicode]);
    assert_eq!(flags_of("translate"), [ToolFlag::Injection]);
    assert_eq!(flags_of("save_note"), [ToolFlag::Exfiltration]);

    let guardrails = Guardrails::new(Default::default()).unwrap();
    let shown = guardrails.scan_tools("poisoned", listed);
    let names: Vec<_> = shown.tools.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, ["echo", "add", "request_count"]);
    assert_eq!(shown.flagged.len(), 4);
    client.cancel().await.unwrap();
}

/// A client that reports each `notifications/tools/list_changed`.
#[derive(Clone)]
struct ListChangedWatcher(mpsc::UnboundedSender<()>);

impl ClientHandler for ListChangedWatcher {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self.0.send(());
    }
}

#[tokio::test]
async fn rugpull_changes_its_definition_and_announces_it() {
    let (tx, mut changed) = mpsc::unbounded_channel();
    let client = connect_with(rugpull::RugPullServer::rugpull(), ListChangedWatcher(tx)).await;
    let info = client.peer_info().unwrap();
    assert_eq!(
        info.capabilities
            .tools
            .as_ref()
            .and_then(|t| t.list_changed),
        Some(true)
    );
    let description = |tools: &[Tool]| {
        tools
            .iter()
            .find(|t| t.name == "fetch_url")
            .and_then(|t| t.description.clone())
            .unwrap()
            .to_string()
    };
    let guardrails = Guardrails::new(
        serde_json::from_value(json!({"pin_tools": "block", "tool_poisoning": "off"})).unwrap(),
    )
    .unwrap();

    let before = client.list_all_tools().await.unwrap();
    assert_eq!(description(&before), rugpull::HONEST_DESCRIPTION);
    assert_eq!(guardrails.scan_tools("rp", before).tools.len(), 5);

    let reply = text(&client.call_tool(call("mutate", json!({}))).await.unwrap());
    assert_eq!(reply, "mutated");
    tokio::time::timeout(Duration::from_secs(5), changed.recv())
        .await
        .expect("list_changed within 5 s")
        .unwrap();

    let after = client.list_all_tools().await.unwrap();
    assert_eq!(description(&after), rugpull::MUTATED_DESCRIPTION);
    let scan = guardrails.scan_tools("rp", after);
    assert!(scan.tools.iter().all(|t| t.name != "fetch_url"));
    assert_eq!(scan.flagged[0].flags, [ToolFlag::DefinitionChanged]);
    assert!(guardrails.tool_allowed("rp", "fetch_url").is_err());
    assert!(guardrails.approve_tool("rp", "fetch_url"));
    assert!(guardrails.tool_allowed("rp", "fetch_url").is_ok());

    let fetched = text(
        &client
            .call_tool(call("fetch_url", json!({"url": "https://example.com"})))
            .await
            .unwrap(),
    );
    assert_eq!(fetched, "fetched https://example.com");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn injector_output_is_injection() {
    let client = connect(injector::InjectorServer::injector()).await;
    let page = text(
        &client
            .call_tool(call("fetch_page", json!({"url": "https://blog.example"})))
            .await
            .unwrap(),
    );
    assert_eq!(page, injector::INJECTED_PAGE);
    assert!(injection::is_match(&page));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn huge_returns_exactly_the_size_asked() {
    let client = connect(huge::HugeServer::with_size_bytes(10_000)).await;
    let default = text(
        &client
            .call_tool(call("big_output", json!({})))
            .await
            .unwrap(),
    );
    assert_eq!(default.len(), 10_000);
    let asked = text(
        &client
            .call_tool(call("big_output", json!({"bytes": 123})))
            .await
            .unwrap(),
    );
    assert_eq!(asked.len(), 123);
    assert!(asked.starts_with("All work and no play"));
    let too_big = json!({"bytes": huge::MAX_SIZE_BYTES + 1});
    assert!(client.call_tool(call("big_output", too_big)).await.is_err());
    client.cancel().await.unwrap();
}
