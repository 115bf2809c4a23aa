//! One instance killed with SIGKILL fails only the calls it was serving:
//! its siblings' calls finish, new calls go to the siblings, and the
//! supervisor restarts it alone.
use std::time::Duration;

use serde_json::json;

use super::{HEAD, all_ready, pid_of, slow_pool, wait_for_instances, whoami};
use crate::common::{Gateway, PythonSession, kill9, peers};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_one_instance_fails_none_of_the_calls_routed_elsewhere() {
    let Some(peers) = peers() else { return };
    let gw = Gateway::start(&format!("{HEAD}{}", slow_pool("p", "instances = 3")), &[]);
    gw.wait_ready(Duration::from_secs(60)).await;
    all_ready(&gw, "p", 3).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);

    // Round robin puts two of six long calls on each instance.
    let calls = session.send(json!({"call": "p__slow", "args": {"ms": 4000}, "concurrent": 6}));
    let nodes = wait_for_instances(&gw, "p", Duration::from_secs(10), |nodes| {
        nodes.iter().all(|n| n["calls_in_flight"] == 2)
    })
    .await;
    let victim = pid_of(&nodes[1]);
    kill9(victim);

    // Calls started now go to the two live siblings.
    for _ in 0..4 {
        assert_ne!(whoami(&mut session, "p"), victim);
    }
    let answer = session.recv(&calls, Duration::from_secs(30));
    assert_eq!(
        answer["okCount"], 4,
        "only the victim's calls may fail: {answer}"
    );
    let failed: Vec<_> = answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["ok"] != true)
        .collect();
    for result in &failed {
        let message = result["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("SIGKILL"),
            "the lost call says why: {result}"
        );
    }

    // Only the victim restarted; its siblings kept their process.
    let nodes = wait_for_instances(&gw, "p", Duration::from_secs(30), |nodes| {
        nodes.iter().all(|n| n["state"] == "ready") && nodes[1]["restarts"] == 1
    })
    .await;
    assert_eq!(nodes[0]["restarts"], 0, "{nodes:#?}");
    assert_eq!(nodes[2]["restarts"], 0, "{nodes:#?}");
    assert_ne!(pid_of(&nodes[1]), victim);
}
