//! SEP-2243 `x-mcp-header` through the gateway: the annotation reaches
//! clients unchanged, and the `Mcp-Param-*` headers of a 2026-07-28 call are
//! checked against its arguments (`-32020`, HTTP 400, on a mismatch), on the
//! transparent proxy and on the federated endpoint alike.
use std::time::Duration;

use serde_json::{Value, json};

use super::{HEAD, demo_upstream, stateless_post};
use crate::common::Gateway;

const TOOL: &str = "test_header_param";

/// One stateless request to `path` with `headers` next to the standard
/// ones: (HTTP status, JSON-RPC response).
async fn post(
    gw: &Gateway,
    path: &str,
    method: &str,
    params: Value,
    headers: &[(&str, &str)],
) -> (reqwest::StatusCode, Value) {
    stateless_post(gw, path, method, params, json!({}), headers).await
}

async fn call(
    gw: &Gateway,
    path: &str,
    name: &str,
    region: &str,
    headers: &[(&str, &str)],
) -> (reqwest::StatusCode, Value) {
    let params = json!({ "name": name, "arguments": { "region": region } });
    post(gw, path, "tools/call", params, headers).await
}

fn assert_rejected((status, response): &(reqwest::StatusCode, Value)) {
    assert_eq!(*status, reqwest::StatusCode::BAD_REQUEST, "{response}");
    assert_eq!(response["error"]["code"], -32020, "{response}");
}

fn assert_answered((status, response): &(reqwest::StatusCode, Value), region: &str) {
    assert!(status.is_success(), "{status} {response}");
    assert_eq!(
        response["result"]["content"][0]["text"],
        format!("Region: {region}"),
        "{response}"
    );
}

/// The annotation of `name` in a `tools/list` response.
fn annotation(list: &Value, name: &str) -> Value {
    let tools = list["result"]["tools"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let tool = tools
        .iter()
        .find(|tool| tool["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed: {list}"));
    tool["inputSchema"]["properties"]["region"]["x-mcp-header"].clone()
}

#[tokio::test]
async fn param_headers_are_relayed_and_checked_against_the_body() {
    let virtual_server =
        format!("[[virtual_servers.v.tools]]\ntool = \"geo__{TOOL}\"\nname = \"where\"\n");
    let gw = Gateway::start(
        &format!(
            "{HEAD}{}{virtual_server}",
            demo_upstream("geo", "\"conformance\"")
        ),
        &[],
    );
    gw.wait_ready(Duration::from_secs(60)).await;

    // Before any client listed the tools: the gateway reads the list to check.
    let first = call(
        &gw,
        "/mcp/geo",
        TOOL,
        "eu-west",
        &[("mcp-param-region", "us-east")],
    )
    .await;
    assert_rejected(&first);

    let (_, list) = post(&gw, "/mcp/geo", "tools/list", json!({}), &[]).await;
    assert_eq!(annotation(&list, TOOL), "Region");
    let (_, list) = post(&gw, "/mcp", "tools/list", json!({}), &[]).await;
    let federated = format!("geo__{TOOL}");
    assert_eq!(annotation(&list, &federated), "Region");

    // A virtual server's call goes on under the federated name: same check.
    let (_, list) = post(&gw, "/mcp/v/v", "tools/list", json!({}), &[]).await;
    assert_eq!(annotation(&list, "where"), "Region");

    for (path, name) in [
        ("/mcp/geo", TOOL),
        ("/mcp", &*federated),
        ("/mcp/v/v", "where"),
    ] {
        let matching = call(
            &gw,
            path,
            name,
            "eu-west",
            &[("Mcp-Param-Region", "eu-west")],
        )
        .await;
        assert_answered(&matching, "eu-west");
        // Base64-wrapped (`eu-west`), as clients send values a header cannot hold.
        let wrapped = [("mcp-param-region", "=?base64?ZXUtd2VzdA==?=")];
        assert_answered(&call(&gw, path, name, "eu-west", &wrapped).await, "eu-west");
        let mismatch = [("mcp-param-region", "us-east")];
        assert_rejected(&call(&gw, path, name, "eu-west", &mismatch).await);
        // The value is in the body, so the header must be there too.
        assert_rejected(&call(&gw, path, name, "eu-west", &[]).await);
        let bad_base64 = [("mcp-param-region", "=?base64?ZXUtd2VzdA?=")];
        assert_rejected(&call(&gw, path, name, "eu-west", &bad_base64).await);
    }

    // A tool without annotations takes no such header into account.
    let plain = json!({ "name": "test_simple_text", "arguments": {} });
    let (status, response) = post(
        &gw,
        "/mcp/geo",
        "tools/call",
        plain,
        &[("mcp-param-region", "anything")],
    )
    .await;
    assert!(status.is_success(), "{status} {response}");
    assert!(response["result"].is_object(), "{response}");
}

/// The tool's list in pages of four: `test_header_param` is on a later
/// page, and `test_move_header_param` moves its header to `Zone`,
/// announcing `tools/list_changed`. Both are honoured: every page counts,
/// and a changed list is read again before the next check.
#[tokio::test]
async fn later_pages_count_and_a_changed_list_replaces_the_checked_schemas() {
    let upstream = demo_upstream("geo", "\"conformance\", \"--tools-page-size\", \"4\"");
    let gw = Gateway::start(&format!("{HEAD}{upstream}"), &[]);
    gw.wait_ready(Duration::from_secs(60)).await;

    let (_, page) = post(&gw, "/mcp/geo", "tools/list", json!({}), &[]).await;
    assert!(page["result"]["nextCursor"].is_string(), "{page}");
    let on_first = page["result"]["tools"]
        .as_array()
        .is_some_and(|tools| tools.iter().any(|tool| tool["name"] == TOOL));
    assert!(!on_first, "{TOOL} must be on a later page: {page}");

    // Checked although only the first page was listed.
    let geo = |headers: &'static [(&'static str, &'static str)]| {
        call(&gw, "/mcp/geo", TOOL, "eu-west", headers)
    };
    const REGION: &[(&str, &str)] = &[("mcp-param-region", "eu-west")];
    const ZONE: &[(&str, &str)] = &[("mcp-param-zone", "eu-west")];
    assert_rejected(&geo(&[("mcp-param-region", "us-east")]).await);
    assert_answered(&geo(REGION).await, "eu-west");

    let moved = json!({ "name": "test_move_header_param", "arguments": {} });
    let (status, response) = post(&gw, "/mcp/geo", "tools/call", moved, &[]).await;
    assert!(status.is_success(), "{status} {response}");

    // The announcement reaches the gateway on its own; once it has, the
    // new mapping is what counts.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !geo(ZONE).await.0.is_success() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the moved header never counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_answered(&geo(ZONE).await, "eu-west");
    assert_rejected(&geo(REGION).await);
    assert_rejected(&geo(&[("mcp-param-zone", "us-east")]).await);
}
