//! `bulwark user …` and `bulwark audit` against a running gateway: every
//! user verb, passwords only through stdin or the environment.
use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::{PASSWORD, login, start};
use crate::common::Gateway;
use crate::control::StoreUnderTest;

/// Runs `bulwark ARGS… --output json` as the admin, with `stdin` → JSON.
fn bulwark(gw: &Gateway, key: &str, args: &[&str], stdin: Option<&str>) -> (bool, Value, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(args)
        .args(["--output", "json"])
        .env("BULWARK_URL", gw.base_url())
        .env("BULWARK_API_KEY", key)
        .env_remove("BULWARK_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        out.status.success(),
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_verbs_and_audit_through_the_cli() {
    let (gw, admin) = start(&StoreUnderTest::Sqlite, "").await;
    let key = admin.secret.as_str();
    let run = |args: &[&str], stdin: Option<&str>| {
        let (ok, json, stderr) = bulwark(&gw, key, args, stdin);
        assert!(ok, "bulwark {args:?}: {stderr}");
        json
    };
    let line = format!("{PASSWORD}\n");
    let added = run(
        &[
            "user",
            "add",
            "carol",
            "--role",
            "operator",
            "--email",
            "c@example.com",
            "--password-stdin",
        ],
        Some(&line),
    );
    assert_eq!(
        (added["username"].as_str(), added["role"].as_str()),
        (Some("carol"), Some("operator")),
        "{added}"
    );
    assert_eq!(login(&gw, "carol", PASSWORD).await.0, 200);
    // Without a password source it refuses and says how.
    let (ok, _, stderr) = bulwark(&gw, key, &["user", "add", "dan", "--role", "viewer"], None);
    assert!(!ok && stderr.contains("--password-stdin"), "{stderr}");

    let listed = run(&["user", "list"], None);
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(
        run(&["user", "show", "carol"], None)["email"],
        "c@example.com"
    );
    assert_eq!(
        run(&["user", "update", "carol", "--role", "viewer"], None)["role"],
        "viewer"
    );
    assert_eq!(
        run(&["user", "disable", "carol"], None)["status"],
        "disabled"
    );
    assert_eq!(login(&gw, "carol", PASSWORD).await.0, 401);
    run(&["user", "update", "carol", "--status", "active"], None);
    run(
        &["user", "reset-password", "carol", "--password-stdin"],
        Some("the second long password\n"),
    );
    assert_eq!(login(&gw, "carol", "the second long password").await.0, 200);
    run(&["user", "remove", "carol"], None);
    let (ok, _, stderr) = bulwark(&gw, key, &["user", "show", "carol"], None);
    assert!(!ok && stderr.contains("404"), "{stderr}");

    let trail = run(
        &["audit", "--target", "users/carol", "--limit", "100"],
        None,
    );
    let actions: Vec<&str> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "users.create",
        "users.update",
        "users.reset-password",
        "users.delete",
        "auth.login",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    let (ok, table, _) = {
        let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
            .args(["audit", "--action", "users."])
            .env("BULWARK_URL", gw.base_url())
            .env("BULWARK_API_KEY", key)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            (),
        )
    };
    assert!(
        ok && table.contains("users.delete") && table.contains("root"),
        "{table}"
    );
    assert!(!trail.to_string().contains(PASSWORD));
}
