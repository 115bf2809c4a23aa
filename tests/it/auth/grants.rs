//! Grants: a key sees only its project's servers and tools; a call outside
//! the grant is refused and never reaches the upstream; `/mcp/{server}` of a
//! server outside the project is 403; stdio takes its key from the environment.
use serde_json::json;

use super::{TestKey, config, initialize, listed, start_with_keys, upstream_counts};
use crate::common::{peers, run_with_timeout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_sees_and_calls_only_what_its_project_grants() {
    let Some(peers) = peers() else { return };
    let ([alice, admin], gw) = start_with_keys([("alice", "demo"), ("root", "admin")], "").await;

    let mut session = peers.session_with_headers(gw.mcp_url(), &alice.headers());
    let all = session.list("all");
    assert_eq!(all["ok"], true, "{all}");
    let mut tools = listed(&all, "tools");
    tools.sort();
    assert_eq!(tools, ["echo__echo", "echo__request_count"], "{all}");
    assert_eq!(listed(&all, "prompts"), ["echo__greet"], "{all}");
    assert_eq!(
        listed(&all, "resources"),
        ["bulwark://echo/demo://greeting"],
        "{all}"
    );

    let echoed = session.call("echo__echo", json!({"message": "granted"}));
    assert_eq!(echoed["result"]["text"], "granted", "{echoed}");
    for (tool, what) in [
        ("echo__add", "tool 'echo__add'"),
        ("other__echo", "tool 'other__echo'"),
    ] {
        let refused = session.call(tool, json!({"message": "x", "a": 1, "b": 2}));
        assert_eq!(refused["ok"], false, "{refused}");
        assert_eq!(refused["error"]["code"], -32004, "{refused}");
        let message = refused["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("project 'demo' may not use") && message.contains(what),
            "{message}"
        );
    }
    // The gateway's own tools see the grant too.
    let servers = session.call("bulwark__list_servers", json!({}));
    let names: Vec<&str> = servers["result"]["structuredContent"]["servers"]
        .as_array()
        .unwrap_or_else(|| panic!("{servers}"))
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["echo"], "{servers}");
    let batch = session.call(
        "bulwark__call_tools",
        json!({"calls": [{"name": "echo__echo", "arguments": {"message": "ok"}},
                         {"name": "other__echo", "arguments": {"message": "no"}}]}),
    );
    let results = &batch["result"]["structuredContent"]["results"];
    assert_eq!(results[0]["ok"], true, "{batch}");
    assert_eq!(results[1]["error"]["code"], -32004, "{batch}");

    let read = session.read("bulwark://other/demo://greeting");
    assert_eq!(read["error"]["code"], -32004, "{read}");
    let prompt = session.prompt("other__greet", json!({"name": "x"}));
    assert_eq!(prompt["error"]["code"], -32004, "{prompt}");

    // One server's own endpoint: the allow list still filters its tools.
    let mut direct = peers.session_with_headers(&gw.url("/mcp/echo"), &alice.headers());
    let mut tools = listed(&direct.list("tools"), "tools");
    tools.sort();
    assert_eq!(tools, ["echo", "request_count"]);
    assert_eq!(
        direct.call("add", json!({"a": 1, "b": 2}))["error"]["code"],
        -32004
    );
    let other = initialize(&gw, "/mcp/other", &[("X-API-Key", &alice.secret)]).await;
    assert_eq!(other.status(), 403);
    assert!(
        other
            .text()
            .await
            .unwrap()
            .contains("may not use server 'other'")
    );

    // The admin project sees everything.
    let mut root = peers.session_with_headers(gw.mcp_url(), &admin.headers());
    let tools = listed(&root.list("tools"), "tools");
    assert!(
        tools.contains(&"other__add".to_owned()) && tools.contains(&"echo__add".to_owned()),
        "{tools:?}"
    );

    // Upstream `echo` saw three calls: alice's echo, her batch's granted
    // echo and this request_count (refused calls never left the gateway).
    let counts = upstream_counts(&peers, &gw, &admin);
    assert_eq!(counts["tools/call"], 3, "{counts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_takes_its_key_from_the_environment_and_refuses_without_one() {
    let Some(peers) = peers() else { return };
    let alice = TestKey::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bulwark.toml");
    std::fs::write(&file, config(&alice.entry("alice", "demo", false))).unwrap();
    let file = file.display().to_string();
    let data = dir.path().join("data").display().to_string();

    let mut bare = std::process::Command::new(env!("CARGO_BIN_EXE_bulwark"));
    bare.args(["stdio", "--config", &file])
        .env("BULWARK__SERVER__DATA_DIR", &data)
        .env_remove("BULWARK_API_KEY");
    let out = run_with_timeout(bare, std::time::Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "stdio started without a key");
    assert!(stderr.contains("BULWARK_API_KEY"), "{stderr}");

    let env = json!({"BULWARK_API_KEY": alice.secret, "BULWARK__SERVER__DATA_DIR": data});
    let env = env.to_string();
    let mut session = peers.session(&[
        "--env",
        &env,
        "--",
        env!("CARGO_BIN_EXE_bulwark"),
        "stdio",
        "--config",
        &file,
    ]);
    let mut tools = listed(&session.list("tools"), "tools");
    tools.sort();
    assert_eq!(tools, ["echo__echo", "echo__request_count"]);
    assert_eq!(
        session.call("echo__add", json!({"a": 1, "b": 2}))["error"]["code"],
        -32004
    );
}
