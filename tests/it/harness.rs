//! Smoke tests of the harness itself against real peers; none needs the gateway.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{self, EverythingHttp, Gateway};

fn fake_gateway() -> PathBuf {
    common::repo_root().join("tests/it/fixtures/fake_gateway.py")
}

#[test]
fn probe_http_against_server_everything() {
    let Some(peers) = common::peers() else { return };
    let up = EverythingHttp::start(&peers);
    let out = peers.run_python(
        "probe_http.py",
        &[
            &up.url(),
            "--headers",
            r#"{"X-Bulwark-Test": "1"}"#,
            "--call",
            "echo",
            r#"{"message": "hello"}"#,
            "--call",
            "get-sum",
            r#"{"a": 2, "b": 3}"#,
            "--read",
            "demo://resource/static/document/architecture.md",
            "--prompt",
            "args-prompt",
            r#"{"city": "Paris"}"#,
            "--strict",
        ],
    );
    assert_eq!(out["exitCode"], 0, "{out:#}");
    assert_eq!(
        out["initialize"]["serverInfo"]["name"],
        "mcp-servers/everything"
    );
    let tools = out["tools"].as_array().unwrap();
    assert!(tools.contains(&json!("echo")), "{tools:?}");
    let steps = out["steps"].as_array().unwrap();
    assert_eq!(steps[0]["result"]["text"], "Echo: hello");
    assert_eq!(steps[1]["result"]["text"], "The sum of 2 and 3 is 5.");
    assert!(
        steps[2]["result"]["text"]
            .as_str()
            .unwrap()
            .contains("Architecture")
    );
    assert_eq!(
        steps[3]["result"]["messages"][0]["content"]["text"],
        "What's weather in Paris?"
    );
}

#[test]
fn probe_reports_unreachable_target() {
    let Some(peers) = common::peers() else { return };
    let port = common::free_port();
    let out = peers.run_python("probe_http.py", &[&format!("http://127.0.0.1:{port}/mcp")]);
    assert_eq!(out["exitCode"], 1, "{out:#}");
    assert_eq!(out["ok"], false);
    assert!(out["error"]["message"].is_string(), "{out:#}");
}

#[test]
fn probe_stdio_against_mcp_server_time() {
    let Some(peers) = common::peers() else { return };
    let server = peers.mcp_server_time();
    let out = peers.run_python(
        "probe_stdio.py",
        &[
            "--call",
            "get_current_time",
            r#"{"timezone": "UTC"}"#,
            "--call",
            "no_such_tool",
            "{}",
            "--",
            server.to_str().unwrap(),
        ],
    );
    assert_eq!(out["exitCode"], 0, "{out:#}");
    assert_eq!(out["tools"], json!(["get_current_time", "convert_time"]));
    let steps = out["steps"].as_array().unwrap();
    assert_eq!(steps[0]["ok"], true, "{out:#}");
    assert_eq!(steps[0]["result"]["structuredContent"]["timezone"], "UTC");
    // Protocol errors are per-step observations, not aborts.
    assert_eq!(steps[1]["ok"], false);
    assert!(steps[1]["error"]["code"].is_i64(), "{out:#}");
}

#[test]
fn session_sees_upstream_death_promptly() {
    let Some(peers) = common::peers() else { return };
    let mut up = EverythingHttp::start(&peers);
    let mut s = peers.session(&[&up.url(), "--request-timeout", "10"]);
    assert_eq!(s.initialize["serverInfo"]["name"], "mcp-servers/everything");

    let r = s.call("echo", json!({"message": "one"}));
    assert_eq!(r["result"]["text"], "Echo: one", "{r:#}");
    let r = s.concurrent(4, "get-sum", json!({"a": 1, "b": 1}));
    assert_eq!(r["okCount"], 4, "{r:#}");
    let r = s.list("prompts");
    assert!(
        r["result"]["prompts"]
            .as_array()
            .unwrap()
            .contains(&json!("simple-prompt"))
    );

    // The upstream is the node process listed under our own process tree.
    let pid = up.pid().unwrap();
    let me = i32::try_from(std::process::id()).unwrap();
    assert!(common::descendants(me).contains(&pid));
    assert!(common::pids_with_cmdline_containing("mcp-server-everything").contains(&pid));

    up.kill9();
    assert!(common::wait_until(Duration::from_secs(5), || {
        !common::alive(pid)
    }));
    let started = Instant::now();
    let r = s.call("echo", json!({"message": "two"}));
    assert_eq!(r["ok"], false, "{r:#}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "error took {:?}",
        started.elapsed()
    );
}

#[test]
fn session_over_stdio_quits_cleanly() {
    let Some(peers) = common::peers() else { return };
    let server = peers.mcp_server_time();
    let mut s = peers.session(&["--", server.to_str().unwrap()]);
    let r = s.call(
        "convert_time",
        json!({
        "source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}),
    );
    assert_eq!(
        r["result"]["structuredContent"]["target"]["timezone"], "Asia/Tokyo",
        "{r:#}"
    );
    let status = s.quit().expect("session.py exits after quit");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_harness_with_fake_gateway() {
    let mut gw = Gateway::builder("[server]\nlisten = \"127.0.0.1:0\"\n")
        .program(fake_gateway())
        .arg("--child")
        .start();
    assert!(
        gw.mcp_url().starts_with("http://127.0.0.1:"),
        "{}",
        gw.mcp_url()
    );
    assert!(gw.mcp_url().ends_with("/mcp"));
    assert_eq!(gw.url("/ready"), format!("{}/ready", gw.base_url()));
    gw.wait_ready(Duration::from_secs(10)).await;
    let (status, body) = gw.get_json("/config").await;
    assert_eq!(status, 200);
    assert!(body["config"].as_str().unwrap().contains("127.0.0.1:0"));

    // The --child sleep is a descendant of the gateway.
    let pid = gw.pid();
    assert!(
        common::eventually(Duration::from_secs(5), || !common::descendants(pid)
            .is_empty())
        .await,
        "no child of the fake gateway"
    );
    gw.sigterm();
    let status = gw
        .wait_exit(Duration::from_secs(10))
        .expect("exits after SIGTERM");
    assert!(status.success(), "{}", common::describe_status(&status));
    assert!(gw.wait_for_log("shutting down", Duration::from_secs(5)));
}

#[test]
fn gateway_drop_kills_the_whole_process_group() {
    let gw = Gateway::builder("")
        .program(fake_gateway())
        .arg("--child")
        .start();
    let pid = gw.pid();
    assert!(common::wait_until(Duration::from_secs(5), || {
        !common::descendants(pid).is_empty()
    }));
    let kids = common::descendants(pid);
    drop(gw);
    assert!(!common::alive(pid));
    assert!(
        common::wait_until(Duration::from_secs(5), || kids
            .iter()
            .all(|&k| !common::alive(k))),
        "children survived: {kids:?}"
    );
}

#[test]
fn gateway_start_failure_reports_output() {
    let err = Gateway::builder("")
        .program("/bin/sh")
        .arg("-c")
        .startup_timeout(Duration::from_secs(5))
        .try_start()
        .err()
        .expect("sh exits without a URL");
    assert!(err.contains("before printing its URL"), "{err}");
}

#[test]
fn process_helpers_track_a_child() {
    let mut child = Command::new("sleep")
        .arg("300.4242")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    let me = i32::try_from(std::process::id()).unwrap();
    assert!(common::descendants(me).contains(&pid));
    assert!(common::pids_with_cmdline_containing("sleep 300.4242").contains(&pid));
    common::kill9(pid);
    let _ = child.wait();
    assert!(common::wait_until(Duration::from_secs(5), || {
        !common::alive(pid)
    }));
    assert!(!common::descendants(me).contains(&pid));
}

#[test]
fn services_skip_or_connect() {
    // Without BULWARK_REQUIRE_SERVICES these return None after a SKIP line when
    // the service is down; with it they panic. Either way no test time is lost.
    if common::services_required() {
        return; // CI machines may lack postgres/redis; nothing to check here.
    }
    let _ = common::require_postgres();
    let _ = common::require_redis();
}
