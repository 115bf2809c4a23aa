//! Revocation ends what a key has open: a GET stream opened before the key
//! was revoked closes within seconds (not at the session's idle timeout), and
//! `bulwark stdio` running on a key exits. Other keys are still served.
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use super::{normal_call_served, open_session};
use crate::auth::{PROTOCOL, config};

/// How long a revoked key's stream or stdio session may outlive the revocation.
const ENDS_WITHIN: Duration = Duration::from_secs(20);

/// A config file (the auth tests' two upstreams) and a data directory.
struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
    data: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("bulwark.toml");
        std::fs::write(&config_path, config("")).unwrap();
        Self {
            data: dir.path().join("data"),
            config: config_path,
            _dir: dir,
        }
    }

    /// `bulwark ARGS --config …` against the data directory: (ok, stdout, stderr).
    fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env("BULWARK__SERVER__DATA_DIR", &self.data)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// A new key of `user` in project `demo`: (id, secret).
    fn create_key(&self, user: &str) -> (String, String) {
        let (ok, stdout, stderr) =
            self.cli(&["key", "create", "--project", "demo", "--user", user]);
        assert!(ok, "{stderr}");
        let id = stderr
            .split("Created key ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("no key id in {stderr}"))
            .to_owned();
        (id, stdout.trim().to_owned())
    }

    fn revoke(&self, id: &str) {
        let (ok, _, stderr) = self.cli(&["key", "revoke", id]);
        assert!(ok, "{stderr}");
    }

    fn data(&self) -> &Path {
        &self.data
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_key_closes_its_open_get_stream() {
    let setup = Setup::new();
    let (alice_id, alice) = setup.create_key("alice");
    let (_, bob) = setup.create_key("bob");
    let gw = crate::common::Gateway::builder(&config(""))
        .with_auth()
        .env(
            "BULWARK__SERVER__DATA_DIR",
            setup.data().display().to_string(),
        )
        .start();
    gw.wait_ready(Duration::from_secs(60)).await;

    let key = [("X-API-Key", alice.as_str())];
    let session = open_session(&gw, "/mcp", &key).await;
    let mut stream = gw
        .http()
        .get(gw.url("/mcp"))
        .header("X-API-Key", &alice)
        .header("Accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", PROTOCOL)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);

    setup.revoke(&alice_id);
    let revoked_at = Instant::now();
    let ended = tokio::time::timeout(ENDS_WITHIN, async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(
        ended.is_ok(),
        "the revoked key's GET stream was still open after {ENDS_WITHIN:?}"
    );
    eprintln!(
        "GET stream ended {:?} after the revocation",
        revoked_at.elapsed()
    );
    normal_call_served(&gw, &[("X-API-Key", bob.as_str())]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_its_key_ends_bulwark_stdio() {
    let setup = Setup::new();
    let (id, secret) = setup.create_key("alice");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["stdio", "--config"])
        .arg(&setup.config)
        .env("BULWARK__SERVER__DATA_DIR", setup.data())
        .env("BULWARK_API_KEY", &secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": PROTOCOL, "capabilities": {},
            "clientInfo": {"name": "revocation-test", "version": "1"}}});
    writeln!(stdin, "{initialize}").unwrap();
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains("\"result\""), "{line}");
    writeln!(
        stdin,
        "{}",
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
    )
    .unwrap();

    setup.revoke(&id);
    let deadline = Instant::now() + ENDS_WITHIN;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if status.is_none() {
        let _ = child.kill();
    }
    let mut stderr = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr);
    assert!(
        status.is_some(),
        "bulwark stdio still runs on a revoked key: {stderr}"
    );
    assert!(stderr.contains("no longer accepted"), "{stderr}");
    drop(stdin);
}
