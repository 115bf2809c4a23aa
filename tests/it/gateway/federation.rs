//! The federated view through `/mcp` and through `bulwark stdio`, with a
//! third-party reference server (`mcp-server-time`) next to our echo demo.
use std::time::Duration;

use serde_json::Value;

use super::{HEAD, demo_upstream};
use crate::common::{Gateway, peers};

fn config(time_server: &std::path::Path) -> String {
    format!(
        "{HEAD}{echo}\n[upstreams.time]\ncommand = {time:?}\nargs = [\"--local-timezone\", \"UTC\"]\n",
        echo = demo_upstream("echo", "\"echo\""),
        time = time_server.display().to_string(),
    )
}

const PROBE_STEPS: [&str; 11] = [
    "--call",
    "echo__echo",
    r#"{"message": "hello through bulwark"}"#,
    "--call",
    "time__get_current_time",
    r#"{"timezone": "UTC"}"#,
    "--read",
    "bulwark://echo/demo://greeting",
    "--prompt",
    "echo__greet",
    r#"{"name": "Ada"}"#,
];

fn names(report: &Value, key: &str) -> Vec<String> {
    report[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {report}"))
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| v["name"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

fn assert_federated(report: &Value) {
    assert_eq!(report["ok"], true, "{report}");
    let tools = names(report, "tools");
    for tool in [
        "echo__echo",
        "echo__add",
        "time__get_current_time",
        "time__convert_time",
    ] {
        assert!(
            tools.contains(&tool.to_owned()),
            "{tool} missing from {tools:?}"
        );
    }
    let steps = report["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 4, "{report}");
    for step in steps {
        assert_eq!(step["ok"], true, "step failed: {step}");
    }
    assert_eq!(
        steps[0]["result"]["text"], "hello through bulwark",
        "{}",
        steps[0]
    );
    assert_eq!(steps[0]["result"]["isError"], false);
    let time = steps[1]["result"]["text"].as_str().unwrap_or_default();
    assert!(
        time.contains("UTC") && time.contains("datetime"),
        "time result: {time}"
    );
    assert!(
        steps[2]
            .to_string()
            .contains("Hello from the echo demo server"),
        "{}",
        steps[2]
    );
    assert!(steps[3].to_string().contains("Hello, Ada!"), "{}", steps[3]);
}

#[tokio::test]
async fn python_sdk_over_http_sees_and_calls_every_upstream() {
    let Some(peers) = peers() else { return };
    let gw = Gateway::start(&config(&peers.mcp_server_time()), &[]);
    gw.wait_ready(Duration::from_secs(60)).await;
    let mut args = vec![gw.mcp_url()];
    args.extend(PROBE_STEPS);
    let report = peers.run_python("probe_http.py", &args);
    assert_federated(&report);
    assert!(names(&report, "resources").contains(&"bulwark://echo/demo://greeting".to_owned()));
    assert!(names(&report, "prompts").contains(&"echo__greet".to_owned()));
}

#[tokio::test]
async fn python_sdk_over_bulwark_stdio_sees_the_same() {
    let Some(peers) = peers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bulwark.toml");
    // The SDK launches `bulwark stdio` with a minimal environment: auth goes off in the file.
    let toml = format!(
        "{}[auth]\nenabled = false\n",
        config(&peers.mcp_server_time())
    );
    std::fs::write(&file, toml).unwrap();
    let file = file.display().to_string();
    let mut args: Vec<&str> = PROBE_STEPS.to_vec();
    args.extend([
        "--",
        env!("CARGO_BIN_EXE_bulwark"),
        "stdio",
        "--config",
        &file,
    ]);
    let report = peers.run_python("probe_stdio.py", &args);
    assert_federated(&report);
}

#[tokio::test]
async fn transparent_proxy_keeps_upstream_names() {
    let Some(peers) = peers() else { return };
    let gw = Gateway::start(&config(&peers.mcp_server_time()), &[]);
    gw.wait_ready(Duration::from_secs(60)).await;
    let url = gw.url("/mcp/echo");
    let report = peers.run_python(
        "probe_http.py",
        &[
            &url,
            "--call",
            "echo",
            r#"{"message": "direct"}"#,
            "--read",
            "demo://greeting",
        ],
    );
    assert_eq!(report["ok"], true, "{report}");
    let tools = names(&report, "tools");
    assert!(
        tools.contains(&"echo".to_owned()) && !tools.iter().any(|t| t.contains("__")),
        "{tools:?}"
    );
    assert_eq!(report["steps"][0]["result"]["text"], "direct");
    assert_eq!(report["steps"][1]["ok"], true, "{report}");
}

#[tokio::test]
async fn unknown_upstream_command_is_that_upstreams_failure_only() {
    let Some(peers) = peers() else { return };
    let toml = format!(
        "{HEAD}[supervision]\nmax_restarts = 1\nbackoff_min_ms = 10\nbackoff_max_ms = 20\n{}\n[upstreams.ghost]\ncommand = \"/nonexistent/mcp-server\"\n",
        demo_upstream("echo", "\"echo\"")
    );
    let gw = Gateway::start(&toml, &[]);
    gw.wait_ready(Duration::from_secs(60)).await;
    let ghost = super::upstream_node(&gw, "ghost").await;
    assert_eq!(ghost["state"], "failed", "{ghost}");
    assert!(
        ghost["last_exit"]
            .as_str()
            .unwrap_or_default()
            .contains("/nonexistent/mcp-server"),
        "{ghost}"
    );
    let report = peers.run_python(
        "probe_http.py",
        &[
            gw.mcp_url(),
            "--call",
            "echo__echo",
            r#"{"message": "still here"}"#,
        ],
    );
    assert_eq!(
        report["steps"][0]["result"]["text"], "still here",
        "{report}"
    );
}
