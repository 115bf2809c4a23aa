//! `prefix = "always" | "conditional" | "never"` per upstream: conditional
//! names keep the prefix only when they collide, `never` names are bare, calls
//! route by the listed names (and by `server__tool` always), and two `never`
//! upstreams exposing one name are a configuration error naming both.
use serde_json::json;

use super::tool_names;
use crate::common::{Gateway, peers};
use crate::gateway::{HEAD, demo_upstream};

fn upstream(name: &str, kind: &str, prefix: &str) -> String {
    format!(
        "{}prefix = {prefix:?}\n",
        demo_upstream(name, &format!("{kind:?}"))
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn prefix_modes_shape_names_and_calls_follow_them() {
    let Some(peers) = peers() else { return };
    let config = format!(
        "{HEAD}{}{}{}",
        upstream("office", "catalog", "conditional"),
        upstream("echo", "echo", "never"),
        upstream("plain", "echo", "always"),
    );
    let gw = Gateway::start(&config, &[]);
    gw.wait_ready(std::time::Duration::from_secs(60)).await;
    let mut session = crate::common::PythonSession::start(&peers, &[gw.mcp_url()]);
    let names = tool_names(&session.list("tools"));
    let has = |name: &str| names.iter().any(|n| n == name);
    // office's own tools are unique: bare. Its echo tools collide with
    // `never` echo's, which keeps the bare names: office's get the prefix.
    assert!(
        has("get_forecast") && !has("office__get_forecast"),
        "{names:?}"
    );
    assert!(
        has("echo") && has("add") && has("office__echo"),
        "{names:?}"
    );
    assert!(!has("echo__echo"), "{names:?}");
    assert!(
        has("plain__echo") && has("bulwark__search_tools"),
        "{names:?}"
    );

    let forecast = session.call("get_forecast", json!({ "city": "Lima" }));
    assert_eq!(forecast["ok"], true, "{forecast}");
    assert!(
        forecast["result"]["text"]
            .as_str()
            .unwrap()
            .starts_with("get_forecast"),
        "{forecast}"
    );
    let echoed = session.call("echo", json!({ "message": "bare" }));
    assert_eq!(echoed["ok"], true, "{echoed}");
    let office_echo = session.call("office__echo", json!({ "message": "prefixed" }));
    assert_eq!(office_echo["ok"], true, "{office_echo}");
    // `server__tool` is always understood, whatever the listing shows.
    let canonical = session.call("echo__echo", json!({ "message": "canonical" }));
    assert_eq!(canonical["ok"], true, "{canonical}");

    // Search answers with the same names.
    let hits = session.call(
        "bulwark__search_tools",
        json!({ "query": "weather forecast" }),
    );
    assert_eq!(
        hits["result"]["structuredContent"]["tools"][0]["tool"]["name"], "get_forecast",
        "{hits}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_never_collision_is_a_configuration_error_naming_both_upstreams() {
    let Some(peers) = peers() else { return };
    let config = format!(
        "{HEAD}{}{}",
        upstream("first", "echo", "never"),
        upstream("second", "echo", "never"),
    );
    let gw = Gateway::start(&config, &[]);
    gw.wait_ready(std::time::Duration::from_secs(60)).await;
    let mut session = crate::common::PythonSession::start(&peers, &[gw.mcp_url()]);
    let listed = session.list("tools");
    assert_eq!(listed["ok"], false, "{listed}");
    let text = listed.to_string();
    assert!(text.contains("configuration error"), "{text}");
    assert!(text.contains("'first' and 'second'"), "{text}");
    let called = session.call("echo", json!({ "message": "which one?" }));
    assert_eq!(called["ok"], false, "{called}");
    assert!(
        called.to_string().contains("'first' and 'second'"),
        "{called}"
    );
    assert!(
        gw.logs().contains("tool name collision"),
        "the gateway logs it"
    );
}
