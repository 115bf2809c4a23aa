//! The CLI round trip through every verb against a running gateway.
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::Gateway;
use crate::gateway::{HEAD, demo_upstream};

struct Cli<'a> {
    gw: &'a Gateway,
}

impl Cli<'_> {
    /// Runs `bulwark ARGS…` against the gateway → (success, stdout, stderr).
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
            .args(args)
            .env("BULWARK_URL", self.gw.base_url())
            .env_remove("BULWARK_API_KEY")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs with `--output json` and parses stdout.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let (ok, stdout, stderr) = self.run(&all);
        assert!(ok, "bulwark {args:?} failed: {stderr}");
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_verb_round_trips_through_the_api() {
    let gw = Gateway::start(&format!("{HEAD}{}", demo_upstream("echo", "\"echo\"")), &[]);
    gw.wait_ready(Duration::from_secs(60)).await;
    let cli = Cli { gw: &gw };
    let bin = env!("CARGO_BIN_EXE_bulwark");

    // upstream add / list / show / update / disable / enable / restart / remove
    let added = cli.json(&[
        "upstream",
        "add",
        "extra",
        "--command",
        bin,
        "--arg",
        "demo-server",
        "--arg",
        "echo",
        "--env",
        "TOKEN=hunter2-secret",
    ]);
    assert_eq!(
        (added["name"].as_str(), added["status"].as_str()),
        (Some("extra"), Some("ready")),
        "{added}"
    );
    assert_eq!(added["env"]["TOKEN"], "****");
    let (ok, table, _) = cli.run(&["upstream", "list"]);
    assert!(
        ok && table.starts_with("NAME") && table.contains("extra") && table.contains("echo"),
        "{table}"
    );
    assert!(!table.contains("hunter2"), "{table}");
    let shown = cli.json(&["upstream", "show", "extra"]);
    assert_eq!(shown["source"], "api");
    let updated = cli.json(&[
        "upstream",
        "update",
        "extra",
        "--env",
        "TOKEN=other-secret-value",
    ]);
    assert_eq!(updated["status"], "ready", "{updated}");
    assert_eq!(
        cli.json(&["upstream", "disable", "extra"])["status"],
        "disabled"
    );
    assert_eq!(
        cli.json(&["upstream", "enable", "extra"])["status"],
        "ready"
    );
    assert_eq!(cli.json(&["upstream", "restart", "extra"])["name"], "extra");
    let (ok, _, stderr) = cli.run(&["upstream", "remove", "extra"]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = cli.run(&["upstream", "show", "extra"]);
    assert!(
        !ok && stderr.contains("404") && stderr.contains("extra"),
        "{stderr}"
    );
    let (ok, _, stderr) = cli.run(&["upstream", "remove", "echo"]);
    assert!(!ok && stderr.contains("config file"), "{stderr}");

    // --from-mcp-servers: every entry in one step.
    let file = gw.dir().join("mcp.json");
    std::fs::write(
        &file,
        json!({"mcpServers": {
            "one": {"command": bin, "args": ["demo-server", "echo"], "autoApprove": ["echo"]},
            "two": {"command": bin, "args": ["demo-server", "echo"]},
        }})
        .to_string(),
    )
    .unwrap();
    let (ok, stdout, stderr) = cli.run(&[
        "upstream",
        "add",
        "--from-mcp-servers",
        file.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert!(ok, "{stderr}");
    let imported: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(imported["total"], 2, "{imported}");
    // The key another client reads and the gateway does not is named, once.
    assert_eq!(
        stderr.matches("mcpServers.one.autoApprove").count(),
        1,
        "{stderr}"
    );
    assert!(!stderr.contains("mcpServers.two"), "{stderr}");
    let listed = cli.json(&["upstream", "list", "--source", "api"]);
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["one", "two"]);

    // project add / list / show / update / remove
    let project = cli.json(&["project", "add", "team", "--upstream", "one"]);
    assert_eq!(project["upstreams"], json!(["one"]));
    let (ok, table, _) = cli.run(&["project", "list"]);
    assert!(ok && table.contains("team"), "{table}");
    assert_eq!(cli.json(&["project", "show", "team"])["source"], "api");
    let project = cli.json(&[
        "project",
        "update",
        "team",
        "--upstream",
        "one",
        "--upstream",
        "two",
    ]);
    assert_eq!(project["upstreams"], json!(["one", "two"]));

    // key create / list / show / revoke / remove
    let (ok, stdout, stderr) = cli.run(&["key", "create", "--project", "team", "--user", "bob"]);
    assert!(ok, "{stderr}");
    let secret = stdout.trim().to_owned();
    assert!(
        secret.starts_with("bk_") && !secret.contains('\n'),
        "{stdout}"
    );
    let id = stderr
        .split("Created key ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let (ok, table, _) = cli.run(&["key", "list", "--project", "team"]);
    assert!(
        ok && table.contains(&id) && !table.contains(&secret),
        "{table}"
    );
    assert_eq!(cli.json(&["key", "show", &id])["status"], "active");
    assert_eq!(cli.json(&["key", "revoke", &id])["status"], "revoked");
    let (ok, _, stderr) = cli.run(&["project", "remove", "team"]);
    assert!(
        !ok && stderr.contains("409"),
        "a project with keys stays: {stderr}"
    );
    let (ok, _, stderr) = cli.run(&["key", "remove", &id]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = cli.run(&["project", "remove", "team"]);
    assert!(ok, "{stderr}");

    // Errors: a clear message and a non-zero exit.
    let (ok, _, stderr) = cli.run(&[
        "project",
        "add",
        "bad",
        "--tools",
        "{\"one\": {\"allow\": 5}}",
    ]);
    assert!(
        !ok && stderr.contains("422") && stderr.contains("one.allow"),
        "{stderr}"
    );
    let out = Command::new(bin)
        .args(["upstream", "list", "--url", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("cannot reach"),
        "{stderr}"
    );
}
