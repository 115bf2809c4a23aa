//! A per-key rate limit with `backend = "redis"` is one budget across
//! replicas; with Redis unreachable each replica falls back to its own
//! limiter and says so.
use std::time::Duration;

use super::initialize_status;
use crate::auth::TestKey;
use crate::common::{self, Gateway};
use crate::gateway::HEAD;

/// The per-key budget: N requests per minute (burst N).
const N: u64 = 6;

fn config(key: &TestKey, redis_url: &str) -> String {
    format!(
        "{HEAD}{}[auth.rate_limits]\nper_key = {{ per_minute = {N} }}\nbackend = \"redis\"\nredis_url = {redis_url:?}\n",
        key.entry("alice", "admin", false)
    )
}

async fn start(n: usize, config: &str) -> Vec<Gateway> {
    let nodes: Vec<Gateway> = (0..n)
        .map(|_| Gateway::builder(config).with_auth().start())
        .collect();
    for node in &nodes {
        node.wait_ready(Duration::from_secs(60)).await;
    }
    nodes
}

/// Sends `count` requests round robin over `nodes` → how many were admitted,
/// and how many more the budget could have refilled meanwhile.
async fn admitted(nodes: &[Gateway], key: &TestKey, count: u64) -> (u64, u64) {
    let started = std::time::Instant::now();
    let mut admitted = 0;
    for i in 0..count {
        let node = &nodes[usize::try_from(i).unwrap() % nodes.len()];
        match initialize_status(node, &key.secret).await {
            200 => admitted += 1,
            429 => {}
            other => panic!("unexpected status {other} from {}", node.base_url()),
        }
    }
    (admitted, started.elapsed().as_secs() * N / 60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_key_limit_of_n_per_minute_admits_at_most_n_across_three_replicas() {
    if common::require_redis().is_none() {
        return;
    }
    // A fresh key: a fresh bucket in Redis.
    let key = TestKey::new();
    let nodes = start(3, &config(&key, "redis://127.0.0.1:6379")).await;
    let (admitted, refilled) = admitted(&nodes, &key, 3 * N).await;
    // Each replica alone would admit N (3N in all); shared, N in all.
    assert!(
        admitted >= N && admitted <= N + refilled,
        "admitted {admitted} of {} (limit {N}, refilled {refilled})",
        3 * N
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_unreachable_each_replica_falls_back_to_its_local_limit_and_says_so() {
    let key = TestKey::new();
    // Nothing listens there.
    let url = format!("redis://127.0.0.1:{}", common::free_port());
    let nodes = start(1, &config(&key, &url)).await;
    let (admitted, refilled) = admitted(&nodes, &key, 2 * N).await;
    assert!(
        admitted >= N && admitted <= N + refilled,
        "local fallback admitted {admitted} (limit {N})"
    );
    assert!(
        nodes[0].wait_for_log(
            "falling back to this replica's local limiter",
            Duration::from_secs(10)
        ),
        "no fallback warning:\n{}",
        nodes[0].logs()
    );
    let (status, text) = crate::telemetry::scrape_with(&nodes[0], Some(&key.secret)).await;
    assert_eq!(status, 200, "{text}");
    let samples = crate::telemetry::parse(&text);
    let fallbacks = crate::telemetry::value(&samples, "bulwark_ratelimit_fallbacks_total", &[]);
    assert!(
        fallbacks >= (2 * N) as f64,
        "fallbacks {fallbacks}:\n{text}"
    );
}
