//! `bulwark serve` refusing a configuration at start: the real binary, its
//! exit status and what it prints, for values that only go wrong once the
//! process environment is read (a `${VAR}` holding a line break) or that a
//! parser would otherwise quote (a secret given where a table belongs).
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::{Finished, Gateway, run_with_timeout, wait_until};
use crate::gateway::HEAD;

/// A value shaped like nothing the masker knows: only not quoting it hides it.
const SECRET: &str = "plain-words-hunter-two";

/// Runs `bulwark serve ARGS…` in `dir` with `env`, and waits for it to exit:
/// a refused configuration ends the process before it listens (one that
/// serves instead is killed after a minute and fails the test).
fn serve(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Finished {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bulwark"));
    command
        .arg("serve")
        .args(args)
        .current_dir(dir)
        .env("BULWARK__SERVER__LISTEN", "127.0.0.1:0")
        .env("BULWARK__SERVER__DATA_DIR", dir.join("data"));
    for (name, value) in env {
        command.env(name, value);
    }
    run_with_timeout(command, Duration::from_secs(60))
}

/// A start refused for its configuration leaves no store and no admin key
/// behind: a key printed above the error would be easily lost, and the
/// next start, finding one, would print none.
fn created_nothing(dir: &Path) {
    let data = dir.join("data");
    let left: Vec<_> = std::fs::read_dir(&data)
        .map(|entries| entries.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{} holds {left:?}", data.display());
}

fn refused(out: &Finished) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "started: {stdout}{stderr}");
    assert!(!stdout.contains("listening on"), "{stdout}");
    assert!(
        !stdout.contains(SECRET) && !stderr.contains(SECRET),
        "{stdout}{stderr}"
    );
    stderr
}

#[test]
fn a_header_variable_holding_a_line_break_stops_the_start_without_showing_it() {
    let value = format!("{SECRET}\r\nX-Injected: 1");
    let env = [("BULWARK_IT_HEADER_VALUE", value.as_str())];
    // The same header from the TOML file and from an mcpServers file:
    // (flag, file name, its text, the key the error names).
    let files = [
        (
            "--config",
            "bulwark.toml",
            "[upstreams.far]\nurl = \"https://127.0.0.1:9/mcp\"\n\
             headers = { X-Api-Key = \"${BULWARK_IT_HEADER_VALUE}\" }\n",
            "upstreams.far.headers.X-Api-Key",
        ),
        (
            "--mcp-servers",
            "mcp.json",
            r#"{"mcpServers": {"far": {"url": "https://127.0.0.1:9/mcp",
                "headers": {"X-Api-Key": "${BULWARK_IT_HEADER_VALUE}"}}}}"#,
            "mcpServers.far.headers.X-Api-Key",
        ),
    ];
    for (flag, name, text, key) in files {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let stderr = refused(&serve(dir.path(), &[flag, file.to_str().unwrap()], &env));
        let expected = format!("{key}: once ${{BULWARK_IT_HEADER_VALUE}} is expanded");
        assert!(stderr.contains(&expected), "{stderr}");
        created_nothing(dir.path());
    }
}

#[test]
fn toml_mistakes_stop_the_start_naming_the_key_not_the_value() {
    let cases = [
        // A secret given where a table belongs: serde would quote it.
        (
            format!("[upstreams.local]\ncommand = \"x\"\nenv = \"{SECRET}\"\n"),
            "invalid type: a string (value not shown), expected a map for key `upstreams.local.env`",
        ),
        // A syntax error on a line holding a secret: its place, not its text.
        (
            format!("[upstreams.local]\ncommand = \"x\"\nenv = {{ K = \"{SECRET} }}\n"),
            "line 3",
        ),
        // A remote server's key in `env`, which it would never see.
        (
            format!(
                "[upstreams.far]\nurl = \"https://127.0.0.1:9/mcp\"\nenv = {{ API_KEY = \"{SECRET}\" }}\n"
            ),
            "upstreams.far.env applies to stdio (command) upstreams only",
        ),
    ];
    for (text, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("bulwark.toml");
        std::fs::write(&toml, &text).unwrap();
        let stderr = refused(&serve(
            dir.path(),
            &["--config", toml.to_str().unwrap()],
            &[],
        ));
        assert!(stderr.contains(expected), "{text}: {stderr}");
        created_nothing(dir.path());
    }
}

/// A first start whose stdout is a broken pipe cannot show the admin key it
/// made: it removes the key and fails, so the next start makes and shows one.
#[test]
fn an_admin_key_that_could_not_be_shown_is_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut closed = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .arg("serve")
        .current_dir(dir.path())
        .env("BULWARK__SERVER__LISTEN", "127.0.0.1:0")
        .env("BULWARK__SERVER__DATA_DIR", &data_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(closed.stdout.take());
    let stderr = crate::common::drain(closed.stderr.take());
    let exited = wait_until(Duration::from_secs(60), || {
        closed.try_wait().unwrap().is_some()
    });
    if !exited {
        let _ = closed.kill();
        panic!("serve kept running without a stdout to show its key on");
    }
    assert!(!closed.wait().unwrap().success());
    stderr.wait_closed(Duration::from_secs(5));
    let said = stderr.text();
    assert!(
        said.contains("printing the admin API key")
            && said.contains("removed the admin API key made by this failed start"),
        "{said}"
    );

    let shown = Gateway::builder(HEAD)
        .with_auth()
        .env("BULWARK__SERVER__DATA_DIR", data_dir.display().to_string())
        .start();
    let text = shown.stdout.text();
    assert!(text.contains("It is shown only now"), "{text}");
    assert!(text.lines().any(|line| line.starts_with("bk_")), "{text}");
}
