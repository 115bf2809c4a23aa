//! Sessions hear list changes from the moment they are initialized, and a
//! re-list right after the notice is already fresh.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Gateway, PythonSession, peers};
use crate::gateway::{HEAD, demo_upstream};

/// `listen.py` on `url`: its JSON lines, as they come.
pub(crate) fn listen(
    peers: &crate::common::Peers,
    url: &str,
) -> (std::process::Child, mpsc::Receiver<Value>) {
    listen_with(peers, url, &[])
}

/// `listen.py --subscribe URI` on `url`: it exits after the first
/// `resources/updated` (90 s at most).
pub(crate) fn listen_subscribed(
    peers: &crate::common::Peers,
    url: &str,
    uri: &str,
) -> (std::process::Child, mpsc::Receiver<Value>) {
    listen_with(peers, url, &["--subscribe", uri])
}

fn listen_with(
    peers: &crate::common::Peers,
    url: &str,
    extra: &[&str],
) -> (std::process::Child, mpsc::Receiver<Value>) {
    let mut child = Command::new(&peers.python)
        .arg(peers.client("listen.py"))
        .arg(url)
        .args(["--timeout", "90"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("listen.py starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(value) = serde_json::from_str(&line) {
                let _ = tx.send(value);
            }
        }
    });
    (child, rx)
}

pub(crate) fn next_event(rx: &mpsc::Receiver<Value>, event: &str) -> Value {
    loop {
        let value = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no {event} event from listen.py"));
        if value["event"] == event {
            return value;
        }
        assert_ne!(value["event"], "fatal", "{value}");
        assert_ne!(value["event"], "timeout", "{value}");
    }
}

fn fetch_url_description(listed: &Value) -> String {
    listed["tools"]
        .as_array()
        .and_then(|tools| tools.iter().find(|t| t["name"] == "rug__fetch_url"))
        .and_then(|t| t["description"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_only_lists_receives_list_changed_and_a_fresh_list() {
    let Some(peers) = peers() else { return };
    let toml = format!(
        "{HEAD}[guardrails]\ntool_poisoning = \"flag\"\n{}{}",
        demo_upstream("rug", "\"rugpull\""),
        demo_upstream("echo", "\"echo\""),
    );
    let gw = Gateway::start(&toml, &[]);
    gw.wait_ready(Duration::from_secs(30)).await;
    let (mut listener, events) = listen(&peers, gw.mcp_url());
    let listed = next_event(&events, "listed");
    let before = fetch_url_description(&listed);
    assert!(!before.is_empty(), "{listed}");

    // Another session pulls the rug; the listener never called anything.
    let mut other = PythonSession::start(&peers, &[gw.mcp_url()]);
    assert_eq!(other.call("rug__mutate", json!({}))["ok"], true);
    let relisted = next_event(&events, "relisted");
    let after = fetch_url_description(&relisted);
    assert_ne!(
        after, before,
        "the re-list right after list_changed was stale"
    );
    assert!(after.contains("IMPORTANT"), "{relisted}");
    other.quit();
    let _ = listener.wait();
}
