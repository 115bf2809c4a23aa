//! `affinity = "session"`: a client session keeps to one instance, and is
//! re-bound to another when that instance dies.
use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use super::{HEAD, all_ready, slow_pool, wait_for_instances, whoami};
use crate::common::{Gateway, PythonSession, kill9, peers};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_sticks_to_its_instance_and_is_rebound_when_it_dies() {
    let Some(peers) = peers() else { return };
    let extra = "instances = 3\naffinity = \"session\"";
    let gw = Gateway::start(&format!("{HEAD}{}", slow_pool("p", extra)), &[]);
    gw.wait_ready(Duration::from_secs(60)).await;
    all_ready(&gw, "p", 3).await;

    let mut first = PythonSession::start(&peers, &[gw.mcp_url()]);
    let mut second = PythonSession::start(&peers, &[gw.mcp_url()]);
    let home = whoami(&mut first, "p");
    let other = whoami(&mut second, "p");
    for _ in 0..8 {
        assert_eq!(
            whoami(&mut first, "p"),
            home,
            "the session left its instance"
        );
        assert_eq!(whoami(&mut second, "p"), other);
    }
    // Round robin bound the two sessions to different instances.
    assert_ne!(home, other);

    // The instance dies under a call in flight: that call is lost...
    let lost = first.send(json!({"call": "p__slow", "args": {"ms": 10000}}));
    wait_for_instances(&gw, "p", Duration::from_secs(10), |nodes| {
        nodes.iter().any(|n| n["calls_in_flight"] == 1)
    })
    .await;
    kill9(home);
    let answer = first.recv(&lost, Duration::from_secs(10));
    assert_eq!(answer["ok"], false, "{answer}");
    assert_eq!(
        answer["error"]["code"], -32002,
        "the usual lost-call error: {answer}"
    );

    // ...and the next call re-binds the session to a live instance, for good.
    let rebound = whoami(&mut first, "p");
    assert_ne!(rebound, home);
    let seen: BTreeSet<i32> = (0..6).map(|_| whoami(&mut first, "p")).collect();
    assert_eq!(
        seen,
        BTreeSet::from([rebound]),
        "the re-bound session moved again"
    );
    // The other session never noticed.
    assert_eq!(whoami(&mut second, "p"), other);
}
