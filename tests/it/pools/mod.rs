//! Upstream pools end to end: the real binary running several `slow` demo
//! instances, the official Python SDK as the client. Instances are told
//! apart by the pid their `whoami` tool reports (and their stderr tail).
mod affinity;
mod health;
mod isolation;
mod ready;
mod remote;
mod strategies;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Gateway, PythonSession};

/// The config head every pool test uses: an ephemeral port.
const HEAD: &str = "[server]\nlisten = \"127.0.0.1:0\"\n";

/// `[upstreams.NAME]` running the `slow` demo, plus `extra` keys.
fn slow_pool(name: &str, extra: &str) -> String {
    format!(
        "[upstreams.{name}]\ncommand = {bin:?}\nargs = [\"demo-server\", \"slow\"]\n{extra}\n",
        bin = env!("CARGO_BIN_EXE_bulwark"),
    )
}

/// The pid of the instance that answered one `whoami` call of `server`.
fn whoami(session: &mut PythonSession, server: &str) -> i32 {
    let answer = session.call(&format!("{server}__whoami"), json!({}));
    assert_eq!(answer["ok"], true, "{answer}");
    let text = answer["result"]["text"].as_str().unwrap_or_default();
    let report: Value = serde_json::from_str(text).unwrap_or_else(|_| panic!("{answer}"));
    i32::try_from(report["pid"].as_i64().expect("pid")).expect("pid fits")
}

/// How many of `calls` whoami calls each instance answered, by pid.
fn spread(session: &mut PythonSession, server: &str, calls: usize) -> BTreeMap<i32, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..calls {
        *counts.entry(whoami(session, server)).or_default() += 1;
    }
    counts
}

/// The upstream (instance) nodes of `server` in `/api/v1/actors`.
async fn instances(gw: &Gateway, server: &str) -> Vec<Value> {
    let (status, tree) = gw.get_json("/api/v1/actors").await;
    assert!(status.is_success(), "{tree}");
    tree["children"]
        .as_array()
        .and_then(|servers| {
            servers
                .iter()
                .find(|s| s["name"] == server && s["kind"] == "server_supervisor")
        })
        .and_then(|s| s["children"].as_array().cloned())
        .unwrap_or_else(|| panic!("no actor for {server} in {tree}"))
}

/// Polls `server`'s instance nodes until `cond` holds for the list.
async fn wait_for_instances(
    gw: &Gateway,
    server: &str,
    timeout: Duration,
    cond: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let nodes = instances(gw, server).await;
        if cond(&nodes) {
            return nodes;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{server}'s instances never reached the expected state: {nodes:#?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Every instance of `server` ready.
async fn all_ready(gw: &Gateway, server: &str, count: usize) -> Vec<Value> {
    wait_for_instances(gw, server, Duration::from_secs(60), |nodes| {
        nodes.len() == count && nodes.iter().all(|n| n["state"] == "ready")
    })
    .await
}

/// The pid a demo instance node reported on stderr (`pid=N`).
fn pid_of(node: &Value) -> i32 {
    crate::gateway::pid_in_tail(node)
}
