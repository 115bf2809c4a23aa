//! The cache through its public API, with a real actor: memory backend, Redis
//! at 127.0.0.1:6379 (skipped visibly when absent), and a refusing Redis.
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ractor::{Actor, ActorRef};
use serde_json::{Value, json};

use super::*;
use crate::test_support::require_redis;

async fn start(config: CacheConfig) -> (CacheHandle, ActorRef<CacheMsg>) {
    let handle = CacheHandle::new(&config).unwrap();
    let (actor, _) = Actor::spawn(
        None,
        CacheActor,
        CacheArgs {
            handle: handle.clone(),
        },
    )
    .await
    .unwrap();
    (handle, actor)
}

fn memory(max_entries: u64) -> CacheConfig {
    CacheConfig {
        max_entries,
        ..CacheConfig::default()
    }
}

fn redis_config(url: &str) -> CacheConfig {
    CacheConfig {
        backend: BackendKind::Redis,
        redis_url: Some(url.into()),
        // A fresh namespace per test, so parallel tests never see each other's keys.
        key_prefix: format!("bulwark-test:{:016x}", rand::random::<u64>()),
        ..CacheConfig::default()
    }
}

fn tools(upstream: &str) -> CacheKey {
    CacheKey::list(CacheKind::Tools, upstream)
}

// ---------------------------------------------------------------------------
// Memory

#[tokio::test]
async fn memory_put_then_get_hits_and_counts() {
    let (cache, actor) = start(memory(100)).await;
    let key = tools("echo");
    assert_eq!(cache.get(&key).await, None);
    cache.put(key.clone(), json!({"tools": [{"name": "echo"}]}));
    cache.flush().await;
    let value = cache.get(&key).await.unwrap();
    assert_eq!(value["tools"][0]["name"], "echo");
    let stats = cache.stats();
    let row = stats.kind(CacheKind::Tools);
    assert_eq!((row.hits, row.misses, row.entries), (1, 1, Some(1)));
    assert_eq!(stats.kind(CacheKind::Prompts).hits, 0);
    actor.stop(None);
}

#[tokio::test]
async fn memory_get_as_deserialises_and_treats_wrong_shapes_as_misses() {
    #[derive(serde::Deserialize, PartialEq, Debug)]
    struct Grants {
        project: String,
    }
    let (cache, actor) = start(memory(100)).await;
    let key = CacheKey::credential("secret-key");
    cache.put(key.clone(), json!({"project": "p1"}));
    cache.flush().await;
    assert_eq!(
        cache.get_as::<Grants>(&key).await,
        Some(Grants {
            project: "p1".into()
        })
    );
    assert_eq!(cache.get_as::<Vec<u8>>(&key).await, None);
    actor.stop(None);
}

#[tokio::test]
async fn memory_entries_expire_after_their_own_ttl() {
    let (cache, actor) = start(memory(100)).await;
    let short = CacheKey::tool_result("s", "t", &json!({"a": 1}));
    let long = tools("s");
    cache.put_with_ttl(short.clone(), json!("short"), Duration::from_millis(50));
    cache.put(long.clone(), json!("long"));
    cache.flush().await;
    assert!(cache.get(&short).await.is_some());
    wait_until(|| async { cache.get(&short).await.is_none() }).await;
    assert!(cache.get(&long).await.is_some());
    // moka's timer wheel sweeps expired entries at about one-second granularity.
    wait_until(|| async {
        cache.flush().await;
        cache.stats().kind(CacheKind::ToolResult).expirations == 1
    })
    .await;
    let stats = cache.stats();
    assert_eq!(stats.kind(CacheKind::ToolResult).entries, Some(0));
    assert_eq!(stats.kind(CacheKind::Tools).entries, Some(1));
    actor.stop(None);
}

#[tokio::test]
async fn memory_invalidates_by_kind_of_upstream_upstream_kind_and_all() {
    let (cache, actor) = start(memory(100)).await;
    let keys = [
        tools("a"),
        CacheKey::list(CacheKind::Prompts, "a"),
        tools("b"),
        CacheKey::list(CacheKind::Resources, "b"),
        CacheKey::credential("k"),
    ];
    let fill = || {
        for key in &keys {
            cache.put(key.clone(), json!(1));
        }
    };
    let present = || async {
        let mut out = Vec::new();
        for key in &keys {
            out.push(cache.get(key).await.is_some());
        }
        out
    };
    fill();
    cache.invalidate(Scope::KindOf(CacheKind::Tools, "a".into()));
    cache.flush().await;
    assert_eq!(present().await, [false, true, true, true, true]);

    fill();
    cache.invalidate(Scope::Upstream("b".into()));
    cache.flush().await;
    assert_eq!(present().await, [true, true, false, false, true]);

    fill();
    cache.invalidate(Scope::Kind(CacheKind::Tools));
    cache.flush().await;
    assert_eq!(present().await, [false, true, false, true, true]);

    fill();
    cache.invalidate(Scope::Key(CacheKey::credential("k")));
    cache.flush().await;
    assert_eq!(present().await, [true, true, true, true, false]);

    fill();
    cache.invalidate(Scope::All);
    cache.flush().await;
    assert_eq!(present().await, [false; 5]);
    let stats = cache.stats();
    assert!(
        stats.kinds.iter().all(|k| k.entries == Some(0)),
        "{stats:?}"
    );
    actor.stop(None);
}

#[tokio::test]
async fn memory_evicts_beyond_max_entries_and_counts_evictions() {
    let (cache, actor) = start(memory(10)).await;
    for i in 0..50 {
        cache.put(
            CacheKey::tool_result("s", "t", &json!({ "i": i })),
            json!(i),
        );
        // Each flush runs the housekeeping that enforces the bound.
        cache.flush().await;
    }
    let row = cache.stats().kind(CacheKind::ToolResult).clone();
    assert!(row.entries.unwrap() <= 10, "{row:?}");
    assert_eq!(row.evictions, 50 - row.entries.unwrap(), "{row:?}");
    actor.stop(None);
}

#[tokio::test]
async fn memory_keeps_large_values_within_max_bytes() {
    let config = CacheConfig {
        max_entries: 10_000,
        max_bytes: 1024 * 1024,
        ..CacheConfig::default()
    };
    let (cache, actor) = start(config).await;
    let big = "x".repeat(100 * 1024);
    for i in 0..40 {
        cache.put(
            CacheKey::tool_result("s", "t", &json!({ "i": i })),
            json!({ "text": big }),
        );
        cache.flush().await;
    }
    // 40 values of 100 KiB against a 1 MiB budget: at most 10 stay.
    let row = cache.stats().kind(CacheKind::ToolResult).clone();
    let entries = row.entries.unwrap();
    assert!((1..=10).contains(&entries), "{row:?}");
    assert_eq!(row.evictions, 40 - entries, "{row:?}");
    actor.stop(None);
}

#[tokio::test]
async fn memory_get_or_fetch_shares_one_fetch_among_concurrent_callers() {
    let (cache, actor) = start(memory(100)).await;
    let fetches = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Notify::new());
    let mut callers = Vec::new();
    for _ in 0..8 {
        let cache = cache.clone();
        let fetches = fetches.clone();
        let gate = gate.clone();
        callers.push(tokio::spawn(async move {
            cache
                .get_or_fetch(tools("echo"), async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    gate.notified().await;
                    Ok::<_, std::io::Error>(json!(["echo"]))
                })
                .await
                .unwrap()
        }));
    }
    // Wake the one fetch once it started; the other callers wait on it.
    wait_until(|| async { fetches.load(Ordering::SeqCst) == 1 }).await;
    gate.notify_one();
    for caller in callers {
        assert_eq!(*caller.await.unwrap(), json!(["echo"]));
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    let again = cache
        .get_or_fetch(tools("echo"), async {
            Err::<Value, _>(std::io::Error::other("not called"))
        })
        .await
        .unwrap();
    assert_eq!(*again, json!(["echo"]));
    let row = cache.stats().kind(CacheKind::Tools).clone();
    assert_eq!((row.misses, row.hits), (1, 8), "{row:?}");
    actor.stop(None);
}

#[tokio::test]
async fn fetch_errors_are_returned_and_not_cached() {
    let (cache, actor) = start(memory(100)).await;
    let err = cache
        .get_or_fetch(tools("x"), async {
            Err::<Value, _>(std::io::Error::other("upstream down"))
        })
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "upstream down");
    let ok = cache
        .get_or_fetch(tools("x"), async { Ok::<_, std::io::Error>(json!(1)) })
        .await
        .unwrap();
    assert_eq!(*ok, json!(1));
    actor.stop(None);
}

#[tokio::test]
async fn a_fill_that_overlaps_an_invalidation_is_not_kept() {
    let (cache, actor) = start(memory(100)).await;
    let invalidating = cache.clone();
    let value = cache
        .get_or_fetch(tools("a"), async move {
            // list_changed arrives while the old list is being fetched.
            invalidating.invalidate(Scope::KindOf(CacheKind::Tools, "a".into()));
            Ok::<_, std::io::Error>(json!("old list"))
        })
        .await
        .unwrap();
    assert_eq!(*value, json!("old list"));
    cache.flush().await;
    assert_eq!(cache.get(&tools("a")).await, None);
    actor.stop(None);
}

#[tokio::test]
async fn memory_entries_survive_an_actor_restart() {
    let config = memory(100);
    let (cache, actor) = start(config).await;
    cache.put(tools("a"), json!(1));
    cache.flush().await;
    actor.stop_and_wait(None, None).await.unwrap();
    assert!(cache.get(&tools("a")).await.is_some());
    // Writes while no actor runs are dropped, not errors.
    cache.put(tools("b"), json!(2));
    let (replacement, _) = Actor::spawn(
        None,
        CacheActor,
        CacheArgs {
            handle: cache.clone(),
        },
    )
    .await
    .unwrap();
    cache.put(tools("c"), json!(3));
    cache.flush().await;
    assert!(cache.get(&tools("b")).await.is_none());
    assert!(cache.get(&tools("c")).await.is_some());
    replacement.stop(None);
}

// ---------------------------------------------------------------------------
// Redis

#[tokio::test]
async fn redis_put_get_ttl_and_two_replicas_share_entries() {
    if require_redis().is_none() {
        return;
    }
    let config = redis_config("redis://127.0.0.1:6379");
    let (one, one_actor) = start(config.clone()).await;
    let (two, two_actor) = start(config).await;
    let key = CacheKey::tool_result("fs", "read", &json!({"path": "/a"}));
    one.put(key.clone(), json!({"content": "A"}));
    one.flush().await;
    assert_eq!(*two.get(&key).await.unwrap(), json!({"content": "A"}));
    assert_eq!(two.stats().kind(CacheKind::ToolResult).hits, 1);
    assert_eq!(two.stats().kind(CacheKind::ToolResult).entries, None);

    let short = tools("fs");
    two.put_with_ttl(short.clone(), json!(1), Duration::from_millis(100));
    two.flush().await;
    assert!(one.get(&short).await.is_some());
    wait_until(|| async { one.get(&short).await.is_none() }).await;
    one_actor.stop(None);
    two_actor.stop(None);
}

#[tokio::test]
async fn redis_invalidation_on_one_replica_reaches_the_other() {
    if require_redis().is_none() {
        return;
    }
    let config = redis_config("redis://127.0.0.1:6379");
    let (one, one_actor) = start(config.clone()).await;
    let (two, two_actor) = start(config).await;
    let keys = [
        tools("a"),
        CacheKey::list(CacheKind::Prompts, "a"),
        tools("b"),
        CacheKey::credential("k"),
    ];
    for key in &keys {
        one.put(key.clone(), json!(1));
    }
    one.flush().await;
    two.invalidate(Scope::Upstream("a".into()));
    two.flush().await;
    let mut present = Vec::new();
    for key in &keys {
        present.push(one.get(key).await.is_some());
    }
    assert_eq!(present, [false, false, true, true]);
    two.invalidate(Scope::Key(CacheKey::credential("k")));
    two.flush().await;
    assert!(one.get(&keys[3]).await.is_none());
    assert!(one.get(&keys[2]).await.is_some());
    two.invalidate(Scope::All);
    two.flush().await;
    for key in &keys {
        assert!(one.get(key).await.is_none());
    }
    assert_eq!(one.stats().kind(CacheKind::Tools).errors, 0);
    one_actor.stop(None);
    two_actor.stop(None);
}

#[tokio::test]
async fn redis_get_or_fetch_fetches_once_then_serves_from_redis() {
    if require_redis().is_none() {
        return;
    }
    let (cache, actor) = start(redis_config("redis://127.0.0.1:6379")).await;
    let fetches = AtomicUsize::new(0);
    let fetch = || async {
        fetches.fetch_add(1, Ordering::SeqCst);
        Ok::<_, std::io::Error>(json!(["t"]))
    };
    cache.get_or_fetch(tools("u"), fetch()).await.unwrap();
    cache.flush().await;
    let again = cache.get_or_fetch(tools("u"), fetch()).await.unwrap();
    assert_eq!(*again, json!(["t"]));
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    actor.stop(None);
}

#[tokio::test]
async fn a_refusing_redis_degrades_to_misses_without_errors_or_hangs() {
    // Port 1 refuses connections; startup must not wait for it.
    let started = tokio::time::Instant::now();
    let (cache, actor) = start(redis_config("redis://127.0.0.1:1")).await;
    let key = tools("a");
    for _ in 0..20 {
        cache.put(key.clone(), json!(1));
        assert_eq!(cache.get(&key).await, None);
    }
    cache.invalidate(Scope::All);
    cache.flush().await;
    let value = cache
        .get_or_fetch(key.clone(), async {
            Ok::<_, std::io::Error>(json!("fresh"))
        })
        .await
        .unwrap();
    assert_eq!(*value, json!("fresh"));
    let row = cache.stats().kind(CacheKind::Tools).clone();
    assert_eq!(row.hits, 0);
    assert_eq!(row.misses, 21);
    assert!(row.errors >= 1, "{row:?}");
    // The outage backoff means most operations never tried Redis at all.
    assert!(row.errors < 10, "{row:?}");
    // Generous bound: only fails if every operation waited out its timeout.
    assert!(started.elapsed() < Duration::from_secs(5));
    actor.stop(None);
}

/// A TCP server on loopback that accepts connections and then either holds
/// them silent (a hung Redis) or closes them at once (resets).
async fn fake_redis(hold: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            if hold {
                held.push(socket);
            }
        }
    });
    format!("redis://{addr}")
}

async fn assert_outage_is_only_misses(url: String) {
    let config = CacheConfig {
        op_timeout_ms: 100,
        ..redis_config(&url)
    };
    let (cache, actor) = start(config).await;
    let key = tools("a");
    let started = tokio::time::Instant::now();
    assert_eq!(cache.get(&key).await, None);
    // Bounded by the op timeout (plus scheduling slack), never a hang.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Inside the outage backoff Redis is not even tried: one error in all.
    for _ in 0..10 {
        assert_eq!(cache.get(&key).await, None);
    }
    let row = cache.stats().kind(CacheKind::Tools).clone();
    assert_eq!((row.misses, row.errors), (11, 1), "{row:?}");
    actor.stop(None);
}

#[tokio::test]
async fn a_silent_redis_costs_one_op_timeout_then_nothing() {
    assert_outage_is_only_misses(fake_redis(true).await).await;
}

#[tokio::test]
async fn a_redis_that_resets_connections_degrades_to_misses() {
    assert_outage_is_only_misses(fake_redis(false).await).await;
}

#[test]
fn a_malformed_redis_url_is_a_config_error_without_the_url() {
    let err = CacheHandle::new(&redis_config("nope://user:hunter2@host")).unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let err = CacheHandle::new(&CacheConfig {
        backend: BackendKind::Redis,
        ..CacheConfig::default()
    })
    .unwrap_err();
    assert!(matches!(err, CacheError::Config(_)));
}

/// Polls `condition` every 10 ms for up to 5 s.
async fn wait_until<F, Fut>(mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------
// Caching hints (SEP-2549): `ttlMs` bounds the TTL, `private` stays per caller

/// A hinted fetch of `key` for `caller` that counts its calls and answers `value`.
async fn hinted(
    cache: &CacheHandle,
    key: &CacheKey,
    caller: &str,
    fetches: &AtomicUsize,
    value: Value,
) -> Value {
    let fetch = || {
        let value = value.clone();
        async move {
            fetches.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(value)
        }
    };
    let got = cache
        .get_or_fetch_hinted(key.clone(), caller, fetch)
        .await
        .unwrap();
    cache.flush().await;
    (*got).clone()
}

async fn private_results_stay_with_their_caller(cache: CacheHandle) {
    let key = tools("private");
    let fetches = AtomicUsize::new(0);
    let alice = json!({"tools": ["a"], "cacheScope": "private"});
    let bob = json!({"tools": ["b"], "cacheScope": "private"});
    assert_eq!(
        hinted(&cache, &key, "alice", &fetches, alice.clone()).await,
        alice
    );
    // Alice's private list is not bob's: he gets his own fetch.
    assert_eq!(
        hinted(&cache, &key, "bob", &fetches, bob.clone()).await,
        bob
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    // Each is served from the cache afterwards, to its own caller only.
    assert_eq!(
        hinted(&cache, &key, "alice", &fetches, json!("refetched")).await,
        alice
    );
    assert_eq!(
        hinted(&cache, &key, "bob", &fetches, json!("refetched")).await,
        bob
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    assert!(
        cache.get(&key).await.is_none(),
        "a private result under the shared key"
    );
    // The upstream's invalidation covers every caller's copy.
    cache.invalidate(Scope::KindOf(CacheKind::Tools, "private".into()));
    cache.flush().await;
    hinted(&cache, &key, "alice", &fetches, alice.clone()).await;
    assert_eq!(fetches.load(Ordering::SeqCst), 3);
    // Public results are shared as before.
    let shared = tools("public");
    let public = json!({"tools": ["p"], "cacheScope": "public"});
    hinted(&cache, &shared, "alice", &fetches, public.clone()).await;
    assert_eq!(
        hinted(&cache, &shared, "bob", &fetches, json!("x")).await,
        public
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn memory_private_results_stay_with_their_caller() {
    let (cache, actor) = start(memory(100)).await;
    private_results_stay_with_their_caller(cache).await;
    actor.stop(None);
}

#[tokio::test]
async fn redis_private_results_stay_with_their_caller() {
    if require_redis().is_none() {
        return;
    }
    let (cache, actor) = start(redis_config("redis://127.0.0.1:6379")).await;
    private_results_stay_with_their_caller(cache).await;
    actor.stop(None);
}

#[tokio::test]
async fn memory_a_private_result_of_a_shared_fetch_is_fetched_again_for_the_waiter() {
    let (cache, actor) = start(memory(100)).await;
    let key = tools("private");
    let fetches = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Notify::new());
    let mut callers = Vec::new();
    for caller in ["alice", "bob"] {
        let (cache, key, fetches, gate) =
            (cache.clone(), key.clone(), fetches.clone(), gate.clone());
        callers.push(tokio::spawn(async move {
            let fetch = || {
                let (fetches, gate) = (fetches.clone(), gate.clone());
                async move {
                    if fetches.fetch_add(1, Ordering::SeqCst) == 0 {
                        gate.notified().await;
                    }
                    Ok::<_, std::io::Error>(json!({"for": caller, "cacheScope": "private"}))
                }
            };
            let value = cache.get_or_fetch_hinted(key, caller, fetch).await.unwrap();
            (caller, value)
        }));
    }
    wait_until(|| async { fetches.load(Ordering::SeqCst) == 1 }).await;
    gate.notify_one();
    for caller in callers {
        let (caller, value) = caller.await.unwrap();
        assert_eq!(value["for"], caller, "{value}");
    }
    actor.stop(None);
}

#[tokio::test]
async fn ttl_ms_bounds_how_long_a_result_is_kept() {
    let (cache, actor) = start(memory(100)).await;
    let fetches = AtomicUsize::new(0);
    // ttlMs 0: immediately stale, never served from the cache.
    let stale = tools("stale");
    let zero = json!({"tools": [], "ttlMs": 0});
    hinted(&cache, &stale, "a", &fetches, zero.clone()).await;
    hinted(&cache, &stale, "a", &fetches, zero.clone()).await;
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    // A short ttlMs expires the entry long before the kind's 4 h TTL.
    let short = tools("short");
    let brief = json!({"tools": [], "ttlMs": 200});
    hinted(&cache, &short, "a", &fetches, brief.clone()).await;
    assert!(cache.get(&short).await.is_some());
    wait_until(|| async { cache.get(&short).await.is_none() }).await;
    actor.stop(None);
}
