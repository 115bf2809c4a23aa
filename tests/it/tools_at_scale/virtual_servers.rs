//! `/mcp/v/{name}`: a curated set of tools from two upstreams, renamed and
//! re-described, with the caller's grant applied to listing and calls; an
//! unknown virtual server is 404 and an unknown upstream a config error.
use std::time::Duration;

use serde_json::json;

use super::{list_full, tool_names};
use crate::auth::{TestKey, start};
use crate::common::{Gateway, peers};
use crate::gateway::{HEAD, demo_upstream};

const SUPPORT: &str = "\
[[virtual_servers.support.tools]]\n\
tool = \"office__create_issue\"\n\
name = \"report_bug\"\n\
description = \"File a bug report for the support team\"\n\
[[virtual_servers.support.tools]]\n\
tool = \"echo__add\"\n\
[[virtual_servers.support.tools]]\n\
tool = \"office__send_email\"\n\
name = \"mail_customer\"\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_virtual_server_renames_overrides_and_applies_grants() {
    let Some(peers) = peers() else { return };
    let (all, demo) = (TestKey::new(), TestKey::new());
    let config = format!(
        "{HEAD}{}{}{SUPPORT}\
         [auth.projects.everything]\nupstreams = [\"*\"]\n\
         [auth.projects.demo]\nupstreams = [\"office\", \"echo\"]\n\
         [auth.projects.demo.tools.office]\ndeny = [\"send_email\"]\n{}{}",
        demo_upstream("office", "\"catalog\""),
        demo_upstream("echo", "\"echo\""),
        all.entry("admin-user", "everything", false),
        demo.entry("demo-user", "demo", false),
    );
    let gw = start(&config).await;
    let url = gw.url("/mcp/v/support");

    let mut admin = peers.session_with_headers(&url, &all.headers());
    let listed = list_full(&mut admin);
    assert_eq!(
        tool_names(&listed),
        ["report_bug", "add", "mail_customer"],
        "{listed}"
    );
    let report = &listed["result"]["tools"][0];
    assert_eq!(
        report["description"],
        "File a bug report for the support team"
    );
    assert!(
        report["inputSchema"]["properties"]["repository"].is_object(),
        "{report}"
    );
    assert!(
        listed["result"]["tools"][1]["description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "no override keeps the upstream's description: {listed}"
    );

    let mut session = peers.session_with_headers(&url, &demo.headers());
    assert_eq!(tool_names(&session.list("tools")), ["report_bug", "add"]);
    let filed = session.call(
        "report_bug",
        json!({ "repository": "bulwark", "title": "crash" }),
    );
    assert_eq!(filed["ok"], true, "{filed}");
    assert!(
        filed["result"]["text"]
            .as_str()
            .unwrap()
            .starts_with("create_issue"),
        "{filed}"
    );
    let sum = session.call("add", json!({ "a": 2, "b": 3 }));
    assert_eq!(sum["ok"], true, "{sum}");
    assert!(
        sum["result"]["text"].as_str().unwrap().contains('5'),
        "{sum}"
    );
    let denied = session.call("mail_customer", json!({}));
    assert_eq!(denied["ok"], false, "{denied}");
    assert!(denied.to_string().contains("may not use"), "{denied}");
    // Upstream names are not the virtual server's names.
    let unknown = session.call("office__create_issue", json!({}));
    assert_eq!(unknown["ok"], false, "{unknown}");

    let (status, body) = gw.get_json("/mcp/v/nope").await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
    assert!(
        body["message"].as_str().unwrap().contains("'nope'"),
        "{body}"
    );
    let status = gw.get("/mcp/v/support/extra").await.status();
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
}

#[test]
fn a_virtual_tool_of_an_unknown_upstream_is_a_config_error() {
    let config = format!(
        "{HEAD}{}[[virtual_servers.support.tools]]\ntool = \"ghost__create_issue\"\n",
        demo_upstream("echo", "\"echo\"")
    );
    let err = match Gateway::builder(&config)
        .startup_timeout(Duration::from_secs(30))
        .try_start()
    {
        Ok(_) => panic!("a virtual server naming an unknown upstream must not start"),
        Err(err) => err,
    };
    assert!(err.contains("unknown upstream 'ghost'"), "{err}");
    assert!(err.contains("virtual_servers.support.tools[0]"), "{err}");
}
