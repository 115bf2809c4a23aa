//! A change made through one replica reaches the others within a second
//! (PostgreSQL LISTEN/NOTIFY), not at the next periodic reload.
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::{Replicas, eventually, initialize_status};
use crate::common::peers;
use crate::control::demo_body;
use crate::gateway::wait_for_upstream;

/// What the issue asks: a change is applied everywhere within a second.
const PROPAGATION: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_on_one_replica_is_refused_on_the_others_within_a_second() {
    let Some(replicas) = Replicas::start(3, "", true).await else {
        return;
    };
    let (status, created) = replicas
        .api(
            0,
            Method::POST,
            "/api/v1/keys",
            Some(&json!({"user": "alice", "project": "admin"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (id, key) = (
        created["id"].as_str().unwrap().to_owned(),
        created["key"].as_str().unwrap().to_owned(),
    );
    // Created on replica 0, usable on every replica.
    for node in &replicas.nodes[1..] {
        assert!(
            eventually(PROPAGATION, || async {
                initialize_status(node, &key).await == 200
            })
            .await,
            "a new key did not reach {}",
            node.base_url()
        );
    }

    let (status, revoked) = replicas
        .api(0, Method::POST, &format!("/api/v1/keys/{id}/revoke"), None)
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(initialize_status(&replicas.nodes[0], &key).await, 401);
    for node in &replicas.nodes[1..] {
        assert!(
            eventually(PROPAGATION, || async {
                initialize_status(node, &key).await == 401
            })
            .await,
            "the revoked key is still accepted on {}",
            node.base_url()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_added_through_one_replica_is_callable_through_all() {
    let Some(peers) = peers() else { return };
    let Some(replicas) = Replicas::start(3, "", false).await else {
        return;
    };
    let mut sessions: Vec<_> = replicas
        .nodes
        .iter()
        .map(|node| peers.session(&[node.mcp_url()]))
        .collect();
    let (status, created) = replicas
        .api(
            0,
            Method::POST,
            "/api/v1/upstreams",
            Some(&demo_body("extra", "echo")),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    // Every replica starts it within a second (then its process has to start).
    for node in &replicas.nodes[1..] {
        assert!(
            eventually(PROPAGATION, || async {
                let (_, tree) = node.get_json("/api/v1/actors").await;
                tree["children"].to_string().contains("\"extra\"")
            })
            .await,
            "the new upstream did not reach {}",
            node.base_url()
        );
    }
    for (node, session) in replicas.nodes.iter().zip(&mut sessions) {
        // Each replica runs its own instance of the new upstream.
        wait_for_upstream(node, "extra", Duration::from_secs(30), |n| {
            n["state"] == "ready"
        })
        .await;
        let answer = session.call("extra__echo", json!({"message": "everywhere"}));
        assert_eq!(answer["result"]["text"], "everywhere", "{answer}");
    }

    // Removed through another replica: gone everywhere.
    let (status, _) = replicas
        .api(1, Method::DELETE, "/api/v1/upstreams/extra", None)
        .await;
    assert_eq!(status, 204);
    for (node, session) in replicas.nodes.iter().zip(&mut sessions) {
        assert!(
            eventually(Duration::from_secs(30), || async {
                let (_, tree) = node.get_json("/api/v1/actors").await;
                !tree["children"].to_string().contains("\"extra\"")
            })
            .await,
            "extra still runs on {}",
            node.base_url()
        );
        let answer = session.call("extra__echo", json!({"message": "gone"}));
        assert!(
            answer["error"].is_object() || answer["result"]["isError"] == true,
            "{answer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_approved_on_one_replica_is_released_on_the_others() {
    let Some(peers) = peers() else { return };
    let config = format!(
        "[guardrails]\npin_tools = \"block\"\ntool_poisoning = \"flag\"\n{}",
        crate::gateway::demo_upstream("rug", "\"rugpull\"")
    );
    let Some(replicas) = Replicas::start(2, &config, false).await else {
        return;
    };
    let lists_fetch_url = |session: &mut crate::common::PythonSession| {
        session.list("tools").to_string().contains("rug__fetch_url")
    };
    let mut sessions: Vec<_> = replicas
        .nodes
        .iter()
        .map(|node| peers.session(&[node.mcp_url()]))
        .collect();
    // Each replica runs its own instance of the upstream: both pull the rug.
    for session in &mut sessions {
        assert!(lists_fetch_url(session));
        session.call("rug__mutate", json!({}));
        assert!(!lists_fetch_url(session), "the changed tool is withheld");
    }
    let (status, approved) = replicas
        .api(
            0,
            Method::POST,
            "/api/v1/guardrails/approve",
            Some(&json!({"server": "rug", "tool": "fetch_url"})),
        )
        .await;
    assert_eq!(status, 200, "{approved}");
    assert!(lists_fetch_url(&mut sessions[0]));
    // Approved on replica 0: released on replica 1 as well.
    assert!(
        eventually(PROPAGATION, || async {
            let (_, flagged) = replicas.nodes[1].get_json("/api/v1/guardrails").await;
            !flagged["flagged_tools"]
                .to_string()
                .contains("definition_changed")
        })
        .await,
        "the approval did not reach replica 1"
    );
    assert!(lists_fetch_url(&mut sessions[1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_changed_on_one_replica_holds_on_the_others_within_a_second() {
    let Some(peers) = peers() else { return };
    let upstreams = format!(
        "{}{}",
        crate::gateway::demo_upstream("echo", "\"echo\""),
        crate::gateway::demo_upstream("other", "\"echo\"")
    );
    let Some(replicas) = Replicas::start(3, &upstreams, true).await else {
        return;
    };
    let project = json!({"name": "team", "upstreams": ["echo"]});
    let (status, created) = replicas
        .api(0, Method::POST, "/api/v1/projects", Some(&project))
        .await;
    assert_eq!(status, 201, "{created}");
    let key = json!({"user": "bob", "project": "team"});
    let (status, created) = replicas
        .api(0, Method::POST, "/api/v1/keys", Some(&key))
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    for node in &replicas.nodes[1..] {
        assert!(
            eventually(PROPAGATION, || async {
                initialize_status(node, &key).await == 200
            })
            .await,
            "the new key did not reach {}",
            node.base_url()
        );
    }
    let mut sessions: Vec<_> = replicas.nodes[1..]
        .iter()
        .map(|node| peers.session_with_headers(node.mcp_url(), &json!({"X-API-Key": key})))
        .collect();
    for session in &mut sessions {
        let answer = session.call("echo__echo", json!({"message": "granted"}));
        assert_eq!(answer["result"]["text"], "granted", "{answer}");
        let answer = session.call("other__echo", json!({"message": "not yet"}));
        assert_eq!(answer["ok"], false, "{answer}");
    }

    let widened = json!({"upstreams": ["echo", "other"]});
    let (status, changed) = replicas
        .api(0, Method::PATCH, "/api/v1/projects/team", Some(&widened))
        .await;
    assert_eq!(status, 200, "{changed}");
    // The session's calls are blocking (a Python peer): poll by hand.
    for session in &mut sessions {
        let deadline = std::time::Instant::now() + PROPAGATION;
        loop {
            let answer = session.call("other__echo", json!({"message": "now granted"}));
            if answer["result"]["text"] == "now granted" {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the project change did not reach a replica: {answer}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
