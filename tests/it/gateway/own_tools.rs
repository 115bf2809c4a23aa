//! The gateway's own tools (`bulwark__*`), answered through a real client
//! (the official Python SDK) on `/mcp`, next to two demo upstreams.
use std::time::Duration;

use serde_json::{Value, json};

use super::{HEAD, demo_upstream};
use crate::common::{Gateway, PythonSession, peers};

fn structured(answer: &Value) -> &Value {
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    &answer["result"]["structuredContent"]
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_tools_answer_through_a_real_client() {
    let Some(peers) = peers() else { return };
    let config = format!(
        "{HEAD}{}{}",
        demo_upstream("echo", "\"echo\""),
        demo_upstream("crashy", "\"crash\", \"--die-at-start\""),
    );
    let gw = Gateway::start(&config, &[]);
    gw.wait_ready(Duration::from_secs(30)).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);

    let tools = session.list("tools");
    let listed = tools.to_string();
    for name in [
        "bulwark__list_servers",
        "bulwark__server_info",
        "bulwark__discover_tools",
        "bulwark__call_tools",
    ] {
        assert!(listed.contains(name), "{name} not listed: {listed}");
    }

    let servers = session.call("bulwark__list_servers", json!({}));
    let servers = structured(&servers)["servers"].as_array().cloned().unwrap();
    let names: Vec<&str> = servers.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, ["crashy", "echo"], "{servers:?}");
    let echo = servers.iter().find(|s| s["name"] == "echo").unwrap();
    assert_eq!(echo["state"], "ready");
    let crashy = servers.iter().find(|s| s["name"] == "crashy").unwrap();
    assert_ne!(crashy["state"], "ready", "{crashy}");

    let info = session.call("bulwark__server_info", json!({"server": "echo"}));
    let info = structured(&info);
    let tool_names: Vec<&str> = info["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        tool_names.contains(&"echo") && tool_names.contains(&"add"),
        "{info}"
    );
    assert_eq!(info["state"], "ready");

    let crashy_info = session.call("bulwark__server_info", json!({"server": "crashy"}));
    let crashy_info = structured(&crashy_info);
    assert!(
        crashy_info["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("exit"),
        "a dead server's info names its last exit: {crashy_info}"
    );
    assert!(crashy_info["tools"]["error"].is_string(), "{crashy_info}");

    let unknown = session.call("bulwark__server_info", json!({"server": "nope"}));
    assert_eq!(unknown["ok"], false, "{unknown}");
    assert!(
        unknown.to_string().contains("unknown server 'nope'"),
        "{unknown}"
    );

    let discovered = session.call(
        "bulwark__discover_tools",
        json!({"server": "echo", "fresh": true}),
    );
    let discovered = structured(&discovered);
    assert!(
        discovered["servers"]["echo"]["tools"].is_array(),
        "{discovered}"
    );

    let batch = session.call(
        "bulwark__call_tools",
        json!({"calls": [
            {"name": "echo__add", "arguments": {"a": 2, "b": 3}},
            {"name": "echo__echo", "arguments": {"message": "in a batch"}},
            {"name": "crashy__anything", "arguments": {}},
            {"name": "bulwark__call_tools", "arguments": {"calls": []}},
        ]}),
    );
    let results = structured(&batch)["results"].as_array().cloned().unwrap();
    assert_eq!(results.len(), 4, "{results:?}");
    assert_eq!(results[0]["ok"], true, "{}", results[0]);
    assert_eq!(
        results[0]["result"]["content"][0]["text"], "5",
        "{}",
        results[0]
    );
    assert_eq!(results[1]["result"]["content"][0]["text"], "in a batch");
    assert_eq!(results[2]["ok"], false, "{}", results[2]);
    assert!(
        results[2]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("crashy")
    );
    assert_eq!(
        results[3]["ok"], false,
        "batches must not nest: {}",
        results[3]
    );

    let bad = session.call("bulwark__server_info", json!({"servr": "echo"}));
    assert_eq!(bad["ok"], false, "{bad}");
    assert!(bad.to_string().contains("bulwark__server_info"), "{bad}");
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_tools_can_be_turned_off() {
    let Some(peers) = peers() else { return };
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ngateway_tools = false\n{}",
        demo_upstream("echo", "\"echo\"")
    );
    let gw = Gateway::start(&config, &[]);
    gw.wait_ready(Duration::from_secs(30)).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    let tools = session.list("tools").to_string();
    assert!(tools.contains("echo__echo"), "{tools}");
    assert!(!tools.contains("bulwark__"), "{tools}");
    let call = session.call("bulwark__list_servers", json!({}));
    assert_eq!(call["ok"], false, "{call}");
}
