//! The vendored rmcp parses an upstream's result (`ServerResult`, an untagged
//! union of 20 result types) with a `tools/call` result tried first
//! (`vendor/rmcp/PATCHES.md`). These hold it to the union serde derives in
//! the same order: each sign it uses to rule out an earlier variant is a key
//! that variant requires, and a corpus parses to the same variant and value.
use rmcp::model::*;
use serde::Deserialize;
use serde_json::{Value, json};

/// The `ServerResult` union as serde derives it, in the same order: what
/// the hand-written parse must agree with.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
#[allow(dead_code, clippy::large_enum_variant, clippy::enum_variant_names)]
enum ServerResultInUnionOrder {
    DiscoverResult(DiscoverResult),
    InitializeResult(InitializeResult),
    CompleteResult(CompleteResult),
    GetPromptResult(GetPromptResult),
    ListPromptsResult(ListPromptsResult),
    ListResourcesResult(ListResourcesResult),
    ListResourceTemplatesResult(ListResourceTemplatesResult),
    ReadResourceResult(ReadResourceResult),
    SubscriptionsListenResult(SubscriptionsListenResult),
    ListToolsResult(ListToolsResult),
    ListSkillsResult(ListSkillsResult),
    GetSkillResult(GetSkillResult),
    ElicitResult(ElicitResult),
    CreateTaskResult(CreateTaskResult),
    GetTaskResult(GetTaskResult),
    CallToolResult(CallToolResult),
    InputRequiredResult(InputRequiredResult),
    TaskAckResult(TaskAckResult),
    EmptyResult(EmptyResult),
    CustomResult(CustomResult),
}

fn variant_name(debug: String) -> String {
    debug.split('(').next().unwrap_or_default().to_owned()
}

/// One valid result of each variant listed before `CallToolResult`, with
/// the key the hand-written parse takes as its sign, as a JSON pointer.
fn earlier_variant_examples() -> Vec<(&'static str, Value, &'static str)> {
    let task = Task::new(
        "t-1",
        TaskStatus::Working,
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00Z",
    );
    vec![
        (
            "DiscoverResult",
            json!(DiscoverResult::new(
                vec![ProtocolVersion::LATEST],
                ServerCapabilities::default()
            )),
            "/supportedVersions",
        ),
        (
            "InitializeResult",
            json!(InitializeResult::new(ServerCapabilities::default())),
            "/protocolVersion",
        ),
        (
            "CompleteResult",
            json!(CompleteResult::default()),
            "/completion",
        ),
        (
            "GetPromptResult",
            json!(GetPromptResult::default()),
            "/messages",
        ),
        (
            "ListPromptsResult",
            json!(ListPromptsResult::default()),
            "/prompts",
        ),
        (
            "ListResourcesResult",
            json!(ListResourcesResult::default()),
            "/resources",
        ),
        (
            "ListResourceTemplatesResult",
            json!(ListResourceTemplatesResult::default()),
            "/resourceTemplates",
        ),
        (
            "ReadResourceResult",
            json!(ReadResourceResult::new(vec![])),
            "/contents",
        ),
        (
            "SubscriptionsListenResult",
            json!(SubscriptionsListenResult::new(
                SubscriptionsListenResultMeta::new(RequestId::Number(7))
            )),
            "/_meta/io.modelcontextprotocol~1subscriptionId",
        ),
        (
            "ListToolsResult",
            json!(ListToolsResult::default()),
            "/tools",
        ),
        (
            "ListSkillsResult",
            json!(ListSkillsResult::default()),
            "/skills",
        ),
        (
            "GetSkillResult",
            json!({
                "resultType": "complete",
                "skill": {
                    "uri": "skill://a/SKILL.md",
                    "frontmatter": {"name": "a", "description": "d"},
                    "resources": "dynamic"
                }
            }),
            "/skill",
        ),
        (
            "ElicitResult",
            json!(ElicitResult::new(ElicitationAction::Accept)),
            "/action",
        ),
        (
            "CreateTaskResult",
            json!(CreateTaskResult::new(task.clone())),
            "/resultType",
        ),
        (
            "GetTaskResult",
            json!(GetTaskResult::new(DetailedTask::new(
                task,
                TaskPayload::Working
            ))),
            "/taskId",
        ),
    ]
}

fn remove_pointer(value: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let key = key.replace("~1", "/");
    value
        .pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove(&key)
        .unwrap();
}

#[test]
fn each_key_is_required_by_its_variant() {
    for (name, example, key) in earlier_variant_examples() {
        let parsed: ServerResult = serde_json::from_value(example.clone()).unwrap();
        assert_eq!(variant_name(format!("{parsed:?}")), name, "{example}");
        let mut without = example.clone();
        remove_pointer(&mut without, key);
        let reparsed = variant_name(format!(
            "{:?}",
            serde_json::from_value::<ServerResultInUnionOrder>(without.clone()).unwrap()
        ));
        assert_ne!(reparsed, name, "{name} parsed without {key}: {without}");
    }
}

#[test]
fn server_results_parse_as_the_derived_union_would() {
    let text = json!([{"type": "text", "text": "hi"}]);
    let mut corpus = vec![
        json!({"content": text}),
        json!({"content": text, "isError": false}),
        json!({"content": text, "resultType": "complete", "_meta": {"progressToken": 1}}),
        json!({"content": [], "structuredContent": null}),
        json!({"structuredContent": {"a": 1}}),
        json!({"isError": true}),
        json!({"content": text, "tools": null}),
        json!({"content": text, "tools": []}),
        json!({"content": text, "protocolVersion": "2025-06-18"}),
        json!({"content": text, "action": "decline"}),
        json!({"content": text, "taskId": "t"}),
        json!({"content": text, "resultType": "complete",
               "_meta": {"io.modelcontextprotocol/subscriptionId": 1}}),
        json!({"content": text, "resultType": "task"}),
        json!({"content": text, "resultType": "input_required", "requestState": "s"}),
        json!({"resultType": "input_required", "requestState": "s"}),
        json!({"content": [{"type": "no-such-content"}]}),
        json!({"content": "not a list"}),
        json!({"isError": "yes"}),
        json!({"resultType": "complete"}),
        json!({}),
        json!({"anything": 1}),
        json!(null),
        json!([1, 2]),
    ];
    corpus.extend(
        earlier_variant_examples()
            .into_iter()
            .map(|(_, example, _)| example),
    );
    for value in corpus {
        let ours = serde_json::from_value::<ServerResult>(value.clone());
        let derived = serde_json::from_value::<ServerResultInUnionOrder>(value.clone());
        match (ours, derived) {
            (Ok(ours), Ok(derived)) => {
                let derived_name = variant_name(format!("{derived:?}"));
                assert_eq!(variant_name(format!("{ours:?}")), derived_name, "{value}");
                let ServerResultInUnionOrder::CallToolResult(derived) = derived else {
                    continue;
                };
                assert_eq!(json!(ours), json!(derived), "{value}");
            }
            (Err(_), Err(_)) => {}
            (ours, derived) => panic!("{value}: {ours:?} but derived {derived:?}"),
        }
    }
}
