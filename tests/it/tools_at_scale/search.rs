//! `bulwark__search_tools` ranks the tools a caller may use and follows
//! `list_changed`; a project in `search` listing sees only the gateway's
//! tools and its pinned ones, and calls found tools by their usual names.
use std::time::Duration;

use serde_json::json;

use super::{found, tool_names};
use crate::auth::{TestKey, start};
use crate::common::{peers, wait_until};
use crate::gateway::{HEAD, demo_upstream};

fn config(keys: &[(&TestKey, &str)]) -> String {
    let entries: String = keys
        .iter()
        .map(|(key, project)| key.entry("user", project, false))
        .collect();
    format!(
        "{HEAD}{}{}\
         [auth.projects.everything]\nupstreams = [\"*\"]\n\
         [auth.projects.demo]\nupstreams = [\"office\", \"echo\"]\n\
         [auth.projects.demo.tools.office]\ndeny = [\"send_email\"]\n\
         [auth.projects.lean]\nupstreams = [\"*\"]\ntool_listing = \"search\"\npinned_tools = [\"echo__echo\", \"office__send_email\"]\n\
         [auth.projects.lean.tools.office]\ndeny = [\"send_email\"]\n{entries}",
        demo_upstream("office", "\"catalog\""),
        demo_upstream("echo", "\"echo\""),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn search_ranks_the_right_tool_and_respects_grants() {
    let Some(peers) = peers() else { return };
    let (all, demo) = (TestKey::new(), TestKey::new());
    let gw = start(&config(&[(&all, "everything"), (&demo, "demo")])).await;
    let mut admin = peers.session_with_headers(gw.mcp_url(), &all.headers());
    let mut session = peers.session_with_headers(gw.mcp_url(), &demo.headers());

    let search = |query: &str, limit: u64| json!({ "query": query, "limit": limit });
    let hits = found(&session.call(
        "bulwark__search_tools",
        search("weather forecast for my city", 3),
    ));
    assert_eq!(hits[0], "office__get_forecast", "{hits:?}");
    let hits = found(&session.call(
        "bulwark__search_tools",
        search("convert dollars to euros currency", 3),
    ));
    assert_eq!(hits[0], "office__convert_currency", "{hits:?}");
    let hits = found(&session.call(
        "bulwark__search_tools",
        search("open a bug report issue", 3),
    ));
    assert_eq!(hits[0], "office__create_issue", "{hits:?}");

    // Full definitions: description and input schema with its parameters.
    let answer = session.call("bulwark__search_tools", search("resize image pixels", 1));
    let tool = &answer["result"]["structuredContent"]["tools"][0]["tool"];
    assert_eq!(tool["name"], "office__resize_image", "{answer}");
    assert!(
        tool["description"].as_str().unwrap().contains("width"),
        "{tool}"
    );
    assert!(
        tool["inputSchema"]["properties"]["height"].is_object(),
        "{tool}"
    );

    // The grant: `demo` may not send email, so search never offers it.
    let email = search("send an email message to recipients", 5);
    let everyone = found(&admin.call("bulwark__search_tools", email.clone()));
    assert_eq!(everyone[0], "office__send_email", "{everyone:?}");
    let granted = found(&session.call("bulwark__search_tools", email));
    assert!(
        !granted.contains(&"office__send_email".to_owned()),
        "{granted:?}"
    );
    assert!(
        !granted.is_empty(),
        "other mail tools still match: {granted:?}"
    );

    // `server` narrows the search; an unknown (or ungranted) one is refused.
    let echo_only = found(&session.call(
        "bulwark__search_tools",
        json!({ "query": "echo add numbers", "server": "echo" }),
    ));
    assert!(
        !echo_only.is_empty() && echo_only.iter().all(|n| n.starts_with("echo__")),
        "{echo_only:?}"
    );
    let refused = session.call(
        "bulwark__search_tools",
        json!({ "query": "x", "server": "nope" }),
    );
    assert_eq!(refused["ok"], false, "{refused}");
    assert!(
        refused.to_string().contains("unknown server 'nope'"),
        "{refused}"
    );
    let refused = session.call("bulwark__search_tools", json!({ "query": "x", "limit": 0 }));
    assert_eq!(refused["ok"], false, "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_index_follows_list_changed() {
    let Some(peers) = peers() else { return };
    let all = TestKey::new();
    let gw = start(&config(&[(&all, "everything")])).await;
    let mut session = peers.session_with_headers(gw.mcp_url(), &all.headers());
    let query = json!({ "query": "llama carrying luggage over mountains", "limit": 3 });
    let before = found(&session.call("bulwark__search_tools", query.clone()));
    assert!(
        !before.contains(&"office__summon_llama".to_owned()),
        "{before:?}"
    );

    let learned = session.call("office__learn_tool", json!({}));
    assert_eq!(learned["ok"], true, "{learned}");
    let refreshed = wait_until(Duration::from_secs(20), || {
        let hits = found(&session.call("bulwark__search_tools", query.clone()));
        hits.first().is_some_and(|h| h == "office__summon_llama")
    });
    assert!(refreshed, "summon_llama never became searchable");
    let called = session.call("office__summon_llama", json!({ "destination": "Cusco" }));
    assert_eq!(called["ok"], true, "{called}");
}

#[tokio::test(flavor = "multi_thread")]
async fn search_listing_shows_gateway_and_pinned_tools_and_found_tools_are_callable() {
    let Some(peers) = peers() else { return };
    let (all, lean) = (TestKey::new(), TestKey::new());
    let gw = start(&config(&[(&all, "everything"), (&lean, "lean")])).await;
    let mut session = peers.session_with_headers(gw.mcp_url(), &lean.headers());

    let mut names = tool_names(&session.list("tools"));
    names.sort();
    // The pinned `office__send_email` is not granted: not listed.
    let mut expected = vec!["echo__echo".to_owned()];
    expected.extend(
        [
            "cache_clear",
            "cache_status",
            "call_tools",
            "discover_tools",
            "list_servers",
            "search_tools",
            "server_info",
            "timeout_metrics",
        ]
        .map(|tool| format!("bulwark__{tool}")),
    );
    expected.sort();
    assert_eq!(names, expected);

    let hits = found(&session.call(
        "bulwark__search_tools",
        json!({ "query": "translate text language" }),
    ));
    assert_eq!(hits[0], "office__translate_text", "{hits:?}");
    let called = session.call(
        "office__translate_text",
        json!({ "text": "hola", "target_language": "en" }),
    );
    assert_eq!(called["ok"], true, "{called}");
    assert!(
        called["result"]["text"]
            .as_str()
            .unwrap()
            .starts_with("translate_text"),
        "{called}"
    );
    // Search listing is presentation, not permission: the grant still rules.
    let denied = session.call("office__send_email", json!({}));
    assert_eq!(denied["ok"], false, "{denied}");

    // A project in full listing still sees everything.
    let mut admin = peers.session_with_headers(gw.mcp_url(), &all.headers());
    let full = tool_names(&admin.list("tools"));
    assert!(
        full.len() > 20 && full.contains(&"office__get_forecast".to_owned()),
        "{full:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn search_never_offers_a_tool_the_guardrails_hide() {
    let Some(peers) = peers() else { return };
    let config = format!("{HEAD}{}", demo_upstream("poisoned", "\"poisoned\""));
    let gw = crate::common::Gateway::start(&config, &[]);
    gw.wait_ready(Duration::from_secs(30)).await;
    let mut session = crate::common::PythonSession::start(&peers, &[gw.mcp_url()]);
    let hits = found(&session.call(
        "bulwark__search_tools",
        json!({ "query": "add two numbers weather city", "limit": 20 }),
    ));
    // The echo base's clean `add` matches; the poisoned look-alikes do not.
    assert!(hits.contains(&"poisoned__add".to_owned()), "{hits:?}");
    for hidden in ["poisoned__add_numbers", "poisoned__weather"] {
        assert!(
            !hits.contains(&hidden.to_owned()),
            "{hidden} offered: {hits:?}"
        );
    }
}

/// An upstream that lists its tools four to a page: the federated list and
/// the search hold its later pages too; its own endpoint keeps the pages.
#[tokio::test(flavor = "multi_thread")]
async fn every_page_of_a_paginating_upstream_is_listed_and_searched() {
    let Some(peers) = peers() else { return };
    let upstream = demo_upstream("geo", "\"conformance\", \"--tools-page-size\", \"4\"");
    let gw = crate::common::Gateway::start(&format!("{HEAD}{upstream}"), &[]);
    gw.wait_ready(Duration::from_secs(60)).await;
    let mut session = peers.session(&[gw.mcp_url()]);

    let listed = tool_names(&super::list_full(&mut session));
    let geo: Vec<&String> = listed.iter().filter(|n| n.starts_with("geo__")).collect();
    assert!(geo.len() > 8, "more than two pages' worth: {listed:?}");
    assert!(
        listed.contains(&"geo__test_header_param".to_owned()),
        "a later page's tool: {listed:?}"
    );

    let hits = found(&session.call(
        "bulwark__search_tools",
        json!({ "query": "region header where to run", "limit": 3, "server": "geo" }),
    ));
    assert_eq!(
        hits.first().map(String::as_str),
        Some("geo__test_header_param"),
        "{hits:?}"
    );

    // The server's own endpoint still pages: its first page has a cursor.
    let (_, page) =
        crate::gateway::stateless_post(&gw, "/mcp/geo", "tools/list", json!({}), json!({}), &[])
            .await;
    assert!(page["result"]["nextCursor"].is_string(), "{page}");
    assert_eq!(
        page["result"]["tools"].as_array().map(Vec::len),
        Some(4),
        "{page}"
    );
}
