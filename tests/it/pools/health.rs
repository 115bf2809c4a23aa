//! Active health checks: an instance that stops answering `ping` is
//! ejected (calls go to its sibling) and admitted again once it answers.
use std::time::Duration;

use serde_json::json;

use super::{HEAD, all_ready, pid_of, slow_pool, wait_for_instances, whoami};
use crate::common::{Gateway, PythonSession, peers};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_instance_is_ejected_and_admitted_again() {
    let Some(peers) = peers() else { return };
    let extra =
        "instances = 2\n[upstreams.p.health]\ninterval_ms = 100\nfailures = 2\nsuccesses = 2";
    let gw = Gateway::start(&format!("{HEAD}{}", slow_pool("p", extra)), &[]);
    gw.wait_ready(Duration::from_secs(60)).await;
    let nodes = all_ready(&gw, "p", 2).await;
    assert!(nodes.iter().all(|n| n["ejected"] == false), "{nodes:#?}");
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);

    // One instance stops answering anything, ping included, for 4 s.
    let hang = session.send(json!({"call": "p__hang", "args": {"ms": 4000}}));
    let nodes = wait_for_instances(&gw, "p", Duration::from_secs(10), |nodes| {
        nodes.iter().any(|n| n["ejected"] == true)
    })
    .await;
    let sick = nodes
        .iter()
        .find(|n| n["ejected"] == true)
        .expect("an ejected instance");
    let sick_pid = pid_of(sick);
    assert_eq!(sick["ejections"], 1, "{sick}");
    assert_eq!(sick["state"], "ready", "ejected, not restarted: {sick}");
    assert!(
        gw.wait_for_log("ejected", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );

    // Meanwhile every call goes to the healthy sibling.
    for _ in 0..6 {
        assert_ne!(whoami(&mut session, "p"), sick_pid);
    }

    // It answers again: admitted after two good pings, same process.
    let answer = session.recv(&hang, Duration::from_secs(30));
    assert_eq!(answer["ok"], true, "{answer}");
    let nodes = wait_for_instances(&gw, "p", Duration::from_secs(10), |nodes| {
        nodes.iter().all(|n| n["ejected"] == false)
    })
    .await;
    assert!(
        nodes
            .iter()
            .any(|n| pid_of(n) == sick_pid && n["restarts"] == 0),
        "{nodes:#?}"
    );
    assert!(
        gw.wait_for_log("admitted again", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    let seen: std::collections::BTreeSet<i32> = (0..6).map(|_| whoami(&mut session, "p")).collect();
    assert!(
        seen.contains(&sick_pid),
        "the admitted instance takes calls again: {seen:?}"
    );
}
