//! `/ready` means "able to serve": an upstream still on its way to its
//! first `ready` holds it at 503; one that served and now restarts does not.
use std::time::Duration;

use super::{HEAD, all_ready, pid_of, slow_pool, wait_for_instances};
use crate::common::{Gateway, kill9};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarting_upstream_that_served_keeps_the_gateway_ready() {
    // A long backoff keeps the second crash in `restarting` for a while.
    let restart = "[upstreams.flaky.restart]\nbackoff_min_ms = 20000\nbackoff_max_ms = 20000";
    let config = format!(
        "{HEAD}{}{}",
        slow_pool("steady", ""),
        slow_pool("flaky", restart)
    );
    let gw = Gateway::start(&config, &[]);
    gw.wait_ready(Duration::from_secs(60)).await;
    // The first crash restarts at once; the second waits out the backoff.
    for restarts in 1..=2 {
        let nodes = all_ready(&gw, "flaky", 1).await;
        kill9(pid_of(&nodes[0]));
        wait_for_instances(&gw, "flaky", Duration::from_secs(10), |nodes| {
            nodes[0]["restarts"] == restarts
        })
        .await;
    }
    let nodes = super::instances(&gw, "flaky").await;
    assert_eq!(nodes[0]["state"], "restarting", "{nodes:#?}");
    let (status, body) = gw.get_json("/ready").await;
    assert_eq!(
        status, 200,
        "a flapping upstream must not fail /ready: {body}"
    );
    assert_eq!(body["ready"], true, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_never_was_ready_holds_the_gateway_back() {
    // Never answers initialize: `starting` until the handshake deadline.
    let config = format!(
        "{HEAD}{}[upstreams.mute]\ncommand = \"sleep\"\nargs = [\"600\"]\n",
        slow_pool("steady", "")
    );
    let gw = Gateway::start(&config, &[]);
    all_ready(&gw, "steady", 1).await;
    let (status, body) = gw.get_json("/ready").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["pending"], serde_json::json!(["mute"]), "{body}");
}
