//! Calls spread as each strategy says, counted by the instances themselves.
use std::time::Duration;

use serde_json::json;

use super::{HEAD, all_ready, pid_of, slow_pool, spread, wait_for_instances, whoami};
use crate::common::{Gateway, PythonSession, peers};

async fn pool_session(extra: &str, count: usize) -> Option<(Gateway, PythonSession)> {
    let peers = peers()?;
    let gw = Gateway::start(&format!("{HEAD}{}", slow_pool("p", extra)), &[]);
    gw.wait_ready(Duration::from_secs(60)).await;
    all_ready(&gw, "p", count).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    // The client lists tools before its first call (for output schemas):
    // that list takes a turn of the pool once, before anything is counted.
    whoami(&mut session, "p");
    Some((gw, session))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_gives_each_instance_its_turn() {
    let Some((gw, mut session)) = pool_session("instances = 3", 3).await else {
        return;
    };
    let counts = spread(&mut session, "p", 30);
    assert_eq!(counts.len(), 3, "{counts:?}");
    // Even, give or take the one turn the client's own tools/list may take.
    let (least, most) = (counts.values().min(), counts.values().max());
    assert!(
        most.zip(least).is_some_and(|(m, l)| m - l <= 1),
        "{counts:?}"
    );
    // The instances counted the same calls themselves.
    let nodes = super::instances(&gw, "p").await;
    let pids: Vec<i32> = nodes.iter().map(pid_of).collect();
    assert!(
        counts.keys().all(|pid| pids.contains(pid)),
        "{counts:?} {pids:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_follows_the_weights() {
    let extra = "instances = 2\nstrategy = \"weighted\"\nweights = [3, 1]";
    let Some((gw, mut session)) = pool_session(extra, 2).await else {
        return;
    };
    let counts = spread(&mut session, "p", 40);
    let nodes = super::instances(&gw, "p").await;
    let (first, second) = (pid_of(&nodes[0]), pid_of(&nodes[1]));
    assert_eq!(counts.get(&first), Some(&30), "{counts:?}");
    assert_eq!(counts.get(&second), Some(&10), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_and_power_of_two_choices_reach_every_instance() {
    for strategy in ["random", "power_of_two_choices"] {
        let extra = format!("instances = 3\nstrategy = \"{strategy}\"");
        let Some((_gw, mut session)) = pool_session(&extra, 3).await else {
            return;
        };
        let counts = spread(&mut session, "p", 60);
        // Missing one of three in 60 fair draws: about 1 in 10^10.
        assert_eq!(counts.len(), 3, "{strategy}: {counts:?}");
        assert_eq!(counts.values().sum::<usize>(), 60);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_avoids_the_busy_instance() {
    let extra = "instances = 2\nstrategy = \"least_connections\"";
    let Some((gw, mut session)) = pool_session(extra, 2).await else {
        return;
    };
    // One long call keeps one instance busy.
    let busy_call = session.send(json!({"call": "p__slow", "args": {"ms": 8000}}));
    let nodes = wait_for_instances(&gw, "p", Duration::from_secs(10), |nodes| {
        nodes.iter().any(|n| n["calls_in_flight"] == 1)
    })
    .await;
    let busy = nodes
        .iter()
        .find(|n| n["calls_in_flight"] == 1)
        .map(pid_of)
        .expect("a busy instance");
    for _ in 0..6 {
        assert_ne!(
            whoami(&mut session, "p"),
            busy,
            "a call went to the busy instance"
        );
    }
    let answer = session.recv(&busy_call, Duration::from_secs(30));
    assert_eq!(answer["ok"], true, "{answer}");
}
