//! Resource subscriptions towards a shared upstream session: a refused
//! subscribe is not recorded, a restarted upstream gets the live ones again,
//! and the last session to leave withdraws them, so a subscriber still gets
//! updates from a restarted upstream. The `echo` demo server counts the
//! (un)subscribes it receives in `request_count`.
use std::time::Duration;

use serde_json::{Value, json};

use super::notifications::{listen_subscribed, next_event};
use crate::common::{
    Gateway, PythonSession, eventually, kill9, peers, pids_with_cmdline_containing,
};
use crate::gateway::{HEAD, demo_pid, demo_upstream, wait_for_upstream};

/// The echo server's subscribable resource, as federated clients name it.
const GREETING: &str = "bulwark://echo/demo://greeting";

/// Requests of `method` the running `echo` instance has received.
fn upstream_count(session: &mut PythonSession, method: &str) -> u64 {
    let answer = session.call("echo__request_count", json!({}));
    assert_eq!(answer["ok"], true, "{answer}");
    let counts: Value =
        serde_json::from_str(answer["result"]["text"].as_str().unwrap_or("{}")).unwrap_or_default();
    counts[method].as_u64().unwrap_or(0)
}

async fn echo_gateway() -> Option<(crate::common::Peers, Gateway)> {
    let peers = peers()?;
    let toml = format!("{HEAD}{}", demo_upstream("echo", "\"echo\""));
    let gw = Gateway::builder(&toml)
        .env("RUST_LOG", "info,bulwark::mcp::subscriptions=debug")
        .start();
    gw.wait_ready(Duration::from_secs(30)).await;
    Some((peers, gw))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_subscribe_leaves_the_session_unsubscribed() {
    let Some((peers, gw)) = echo_gateway().await else {
        return;
    };
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    let missing = "bulwark://echo/demo://missing";
    for attempt in 1..=2 {
        let refused = session.subscribe(missing);
        assert_eq!(refused["ok"], false, "attempt {attempt}: {refused}");
        // Had the first refusal left the session recorded, the second would
        // have been answered by the gateway without asking the upstream.
        assert_eq!(
            upstream_count(&mut session, "resources/subscribe"),
            attempt,
            "attempt {attempt} never reached the upstream"
        );
    }
    // Another session is not taken for a second subscriber either.
    let mut other = PythonSession::start(&peers, &[gw.mcp_url()]);
    assert_eq!(other.subscribe(missing)["ok"], false);
    assert_eq!(upstream_count(&mut other, "resources/subscribe"), 3);
    // A subscribe the upstream accepts still works, once per URI.
    assert_eq!(session.subscribe(GREETING)["ok"], true);
    assert_eq!(other.subscribe(GREETING)["ok"], true);
    assert_eq!(upstream_count(&mut session, "resources/subscribe"), 4);
    other.quit();
    session.quit();
}

#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_are_replayed_to_a_restarted_upstream() {
    let Some((peers, gw)) = echo_gateway().await else {
        return;
    };
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    let subscribed = session.subscribe(GREETING);
    assert_eq!(subscribed["ok"], true, "{subscribed}");
    assert_eq!(upstream_count(&mut session, "resources/subscribe"), 1);

    kill9(demo_pid(&gw, "echo").await);
    wait_for_upstream(&gw, "echo", Duration::from_secs(20), |n| {
        n["restarts"] == 1 && n["state"] == "ready"
    })
    .await;
    // The new instance knows nothing of its predecessor's subscription.
    assert!(
        eventually(Duration::from_secs(10), || {
            upstream_count(&mut session, "resources/subscribe") == 1
        })
        .await,
        "the restarted upstream was never subscribed again"
    );
    // The session is still the subscriber: leaving withdraws it upstream.
    assert_eq!(session.unsubscribe(GREETING)["ok"], true);
    assert_eq!(upstream_count(&mut session, "resources/unsubscribe"), 1);
    session.quit();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_session_to_leave_unsubscribes_upstream() {
    let Some((peers, gw)) = echo_gateway().await else {
        return;
    };
    let mut first = PythonSession::start(&peers, &[gw.mcp_url()]);
    let mut second = PythonSession::start(&peers, &[gw.mcp_url()]);
    let mut observer = PythonSession::start(&peers, &[gw.mcp_url()]);
    assert_eq!(first.subscribe(GREETING)["ok"], true);
    assert_eq!(second.subscribe(GREETING)["ok"], true);
    assert_eq!(upstream_count(&mut observer, "resources/subscribe"), 1);

    // The first leaves (the SDK ends its session with DELETE): the second
    // still wants the resource.
    first.quit();
    assert!(
        gw.wait_for_log(
            "session closed; no upstream subscription to withdraw",
            Duration::from_secs(20)
        ),
        "the first session was never closed:\n{}",
        gw.logs()
    );
    assert_eq!(upstream_count(&mut observer, "resources/unsubscribe"), 0);

    // The last one leaves: the upstream is unsubscribed.
    second.quit();
    assert!(
        eventually(Duration::from_secs(20), || {
            upstream_count(&mut observer, "resources/unsubscribe") == 1
        })
        .await,
        "the upstream was never unsubscribed:\n{}",
        gw.logs()
    );
    observer.quit();
}

/// The client still gets `resources/updated` from a restarted upstream: its
/// subscription was replayed to the new instance, which alone sends the
/// updates (`mcp-server-everything` sends them for subscribed URIs once its
/// `toggle-subscriber-updates` tool is called).
#[tokio::test(flavor = "multi_thread")]
async fn a_subscriber_still_gets_updates_from_a_restarted_upstream() {
    let Some(peers) = peers() else { return };
    let marker = format!("bulwark-replay-test-{}", std::process::id());
    let toml = format!(
        "{HEAD}[upstreams.every]\ncommand = {:?}\nargs = [\"stdio\", {marker:?}]\n",
        peers.server_everything().display().to_string(),
    );
    let gw = Gateway::builder(&toml)
        .env("RUST_LOG", "info,bulwark::mcp::subscriptions=debug")
        .start();
    gw.wait_ready(Duration::from_secs(60)).await;
    let uri = "bulwark://every/demo://resource/dynamic/text/1";
    let (mut listener, events) = listen_subscribed(&peers, gw.mcp_url(), uri);
    next_event(&events, "listed");

    // The first instance dies before it ever sent an update.
    let pids = pids_with_cmdline_containing(&marker);
    assert_eq!(pids.len(), 1, "{pids:?}");
    kill9(pids[0]);
    wait_for_upstream(&gw, "every", Duration::from_secs(30), |n| {
        n["restarts"] == 1 && n["state"] == "ready"
    })
    .await;
    assert!(
        gw.wait_for_log("replaying resource subscriptions", Duration::from_secs(20)),
        "{}",
        gw.logs()
    );
    let mut other = PythonSession::start(&peers, &[gw.mcp_url()]);
    let toggled = other.call("every__toggle-subscriber-updates", json!({}));
    assert_eq!(toggled["ok"], true, "{toggled}");
    let updated = loop {
        let note = next_event(&events, "notification");
        if note["method"] == "notifications/resources/updated" {
            break note;
        }
    };
    assert_eq!(updated["params"]["uri"], uri, "{updated}");
    other.quit();
    let _ = listener.wait();
}
