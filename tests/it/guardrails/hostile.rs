//! Each hostile demo upstream handled as its policy says.
use std::time::Duration;

use bulwark::demo::hostile::leaky::{
    AWS_ACCESS_KEY, AWS_SECRET_KEY, CARD, EMAIL, GITHUB_TOKEN, IBAN, JWT, PHONE, SSN,
};
use serde_json::{Value, json};

use super::assert_blocked;
use crate::common::{Gateway, PythonSession, peers};
use crate::gateway::{HEAD, demo_upstream, upstream_node};

fn tool_names(listing: &Value) -> Vec<String> {
    listing["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {listing}"))
        .iter()
        .map(|t| {
            t.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| t["name"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

/// `POST /api/v1/guardrails/approve` for one tool; its status.
async fn approve(gw: &Gateway, server: &str, tool: &str) -> reqwest::StatusCode {
    gw.http()
        .post(gw.url("/api/v1/guardrails/approve"))
        .json(&json!({"server": server, "tool": tool}))
        .send()
        .await
        .unwrap()
        .status()
}

fn text(answer: &Value) -> String {
    assert_eq!(answer["ok"], true, "{answer}");
    answer["result"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn leaked_secrets_are_blocked_pii_is_masked_and_inputs_round_trip() {
    let Some(peers) = peers() else { return };
    let gw = Gateway::start(
        &format!("{HEAD}{}", demo_upstream("leaky", "\"leaky\"")),
        &[],
    );
    gw.wait_ready(Duration::from_secs(30)).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);

    for kind in ["aws", "github", "private_key", "jwt"] {
        let answer = session.call("leaky__leak_secret", json!({"kind": kind}));
        let message = assert_blocked(&answer, "secrets");
        assert!(message.contains("default-output"), "{message}");
        let shown = answer.to_string();
        for secret in [
            AWS_ACCESS_KEY,
            AWS_SECRET_KEY,
            GITHUB_TOKEN,
            "PRIVATE KEY",
            JWT,
        ] {
            assert!(!shown.contains(secret), "refusal leaks {secret}: {shown}");
        }
    }

    // PII the upstream produced reaches the client masked.
    let record = text(&session.call("leaky__customer_record", json!({})));
    assert!(record.contains("Customer: Jane Doe"), "{record}");
    for pii in [EMAIL, PHONE, CARD, SSN, IBAN] {
        assert!(!record.contains(pii), "{pii} unmasked in {record}");
    }

    // The client's own PII: placeholders upstream, originals back to the client.
    let note = format!("Please e-mail {EMAIL} or call {PHONE}");
    let echoed = text(&session.call("leaky__echo_args", json!({"note": note, "n": 7})));
    let echoed: Value = serde_json::from_str(&echoed).unwrap();
    assert_eq!(echoed["note"], note, "the client gets its values back");
    assert_eq!(echoed["n"], 7);
    let stderr = upstream_node(&gw, "leaky").await["stderr_tail"].to_string();
    let seen = stderr
        .split("echo_args received ")
        .nth(1)
        .unwrap_or_else(|| panic!("no echo_args line in {stderr}"));
    assert!(
        !seen.contains(EMAIL) && !seen.contains(PHONE),
        "upstream saw PII: {seen}"
    );
    assert!(
        seen.contains("<EMAIL_1>"),
        "upstream should see a placeholder: {seen}"
    );

    // A secret in the client's arguments never reaches the upstream.
    let answer = session.call("leaky__echo_args", json!({"token": GITHUB_TOKEN}));
    assert_blocked(&answer, "secrets");
    let stderr = upstream_node(&gw, "leaky").await["stderr_tail"].to_string();
    assert_eq!(stderr.matches("echo_args received").count(), 1, "{stderr}");

    // Nothing secret in the gateway's own logs.
    let logs = gw.logs();
    for secret in [
        AWS_ACCESS_KEY,
        AWS_SECRET_KEY,
        GITHUB_TOKEN,
        JWT,
        EMAIL,
        CARD,
        SSN,
    ] {
        assert!(!logs.contains(secret), "gateway log contains {secret}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn poisoned_tools_are_hidden_and_refused() {
    let Some(peers) = peers() else { return };
    let gw = Gateway::start(
        &format!("{HEAD}{}", demo_upstream("poisoned", "\"poisoned\"")),
        &[],
    );
    gw.wait_ready(Duration::from_secs(30)).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    let tools = tool_names(&session.list("tools"));
    assert!(
        tools.contains(&"poisoned__echo".to_owned()),
        "clean tools stay: {tools:?}"
    );
    for hidden in ["poisoned__add_numbers", "poisoned__weather"] {
        assert!(
            !tools.contains(&hidden.to_owned()),
            "{hidden} should be hidden: {tools:?}"
        );
    }
    let answer = session.call("poisoned__add_numbers", json!({"a": 1, "b": 2}));
    assert_blocked(&answer, "tool_poisoning");

    let (status, report) = gw.get_json("/api/v1/guardrails").await;
    assert!(status.is_success(), "{report}");
    let flagged: Vec<&str> = report["flagged_tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["tool"].as_str())
        .collect();
    assert!(
        flagged.contains(&"add_numbers") && flagged.contains(&"weather"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rug_pull_is_withheld_until_an_operator_approves_it() {
    let Some(peers) = peers() else { return };
    let config = format!(
        "{HEAD}[guardrails]\npin_tools = \"block\"\ntool_poisoning = \"flag\"\n{}",
        demo_upstream("rug", "\"rugpull\"")
    );
    let gw = Gateway::start(&config, &[]);
    gw.wait_ready(Duration::from_secs(30)).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    assert!(tool_names(&session.list("tools")).contains(&"rug__fetch_url".to_owned()));
    text(&session.call("rug__mutate", json!({})));

    let tools = tool_names(&session.list("tools"));
    assert!(
        !tools.contains(&"rug__fetch_url".to_owned()),
        "changed tool withheld: {tools:?}"
    );
    let answer = session.call("rug__fetch_url", json!({"url": "https://example.com"}));
    assert_blocked(&answer, "tool_changed");

    let (status, report) = gw.get_json("/api/v1/guardrails").await;
    assert!(status.is_success(), "{report}");
    assert!(
        report["flagged_tools"].to_string().contains("fetch_url"),
        "{report}"
    );

    assert_eq!(
        approve(&gw, "rug", "fetch_url").await,
        reqwest::StatusCode::OK
    );
    let tools = tool_names(&session.list("tools"));
    assert!(
        tools.contains(&"rug__fetch_url".to_owned()),
        "approved tool back: {tools:?}"
    );

    assert_eq!(
        approve(&gw, "rug", "fetch_url").await,
        reqwest::StatusCode::NOT_FOUND,
        "nothing pending any more"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_and_huge_outputs_are_refused() {
    let Some(peers) = peers() else { return };
    let config = format!(
        "{HEAD}{}{}",
        demo_upstream("inj", "\"injector\""),
        demo_upstream("huge", "\"huge\""),
    );
    let gw = Gateway::start(&config, &[]);
    gw.wait_ready(Duration::from_secs(30)).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    assert_blocked(
        &session.call("inj__fetch_page", json!({})),
        "injection_attack",
    );
    assert_blocked(&session.call("huge__big_output", json!({})), "size");
    let small = text(&session.call("huge__big_output", json!({"bytes": 2048})));
    assert_eq!(small.len(), 2048);
    // Under the 1 MiB limit but over one SSE frame (256 KiB): sent in
    // frames, received whole.
    let framed = text(&session.call("huge__big_output", json!({"bytes": 600_000})));
    assert_eq!(framed, bulwark::demo::hostile::huge::filler(600_000));
    // A request larger than the upstream's stdin pipe (64 KiB) cannot be
    // written in one go: its send waits for the child to read (the serve
    // loop hands such a send to a task) and still arrives whole.
    let large = "abcdefgh".repeat(75_000);
    assert_eq!(
        text(&session.call("inj__echo", json!({"message": large}))),
        large
    );
    // The upstreams are fine: a refusal is not a failure of the server.
    assert_eq!(
        text(&session.call("inj__echo", json!({"message": "still here"}))),
        "still here"
    );
}
