//! Hot-path costs of the escalation and cache handles:
//! - `escalation/track_complete`: `Escalation::track` + drop of the guard, as
//!   the caller pays it (target < 2 µs);
//! - `escalation/track_complete_drained`: the same, timed until the actor has
//!   also processed every op, so the actor keeps up at that rate;
//! - `cache/get_hit_memory`: a hit on the memory backend;
//! - `cache/tool_result_key`: hashing a tool call into its cache key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulwark_actors::cache::{CacheActor, CacheArgs, CacheConfig, CacheHandle, CacheKey, CacheKind};
use bulwark_actors::timeout::{
    AlwaysResponsive, Escalation, EscalationActor, EscalationArgs, OpKind, TimeoutsConfig,
};
use criterion::{Criterion, criterion_group, criterion_main};
use ractor::Actor;
use serde_json::json;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn escalation(c: &mut Criterion) {
    let rt = runtime();
    let escalation = Escalation::new(&TimeoutsConfig::default(), "__").unwrap();
    let (actor, _) = rt
        .block_on(Actor::spawn(
            None,
            EscalationActor,
            EscalationArgs::new(escalation.clone(), Arc::new(AlwaysResponsive)),
        ))
        .unwrap();
    let upstream: Arc<str> = "echo".into();
    let tool: Arc<str> = "echo".into();
    let mut group = c.benchmark_group("escalation");
    group.bench_function("track_complete", |b| {
        b.iter(|| {
            let op = escalation.track(OpKind::ToolExecution, upstream.clone(), Some(tool.clone()));
            black_box(op.token());
        })
    });
    let drained =
        |target: u64| escalation.metrics().kind(OpKind::ToolExecution).completed >= target;
    group.bench_function("track_complete_drained", |b| {
        b.iter_custom(|iters| {
            let before = escalation.metrics().kind(OpKind::ToolExecution).completed;
            let start = Instant::now();
            for _ in 0..iters {
                let op =
                    escalation.track(OpKind::ToolExecution, upstream.clone(), Some(tool.clone()));
                black_box(op.token());
            }
            while !drained(before + iters) {
                std::thread::yield_now();
            }
            start.elapsed()
        })
    });
    group.finish();
    actor.stop(None);
}

fn cache(c: &mut Criterion) {
    let rt = runtime();
    let handle = CacheHandle::new(&CacheConfig::default()).unwrap();
    let (actor, _) = rt
        .block_on(Actor::spawn(
            None,
            CacheActor,
            CacheArgs {
                handle: handle.clone(),
            },
        ))
        .unwrap();
    let key = CacheKey::list(CacheKind::Tools, "echo");
    let tools: Vec<_> = (0..20)
        .map(|i| json!({"name": format!("tool{i}"), "description": "x", "inputSchema": {"type": "object"}}))
        .collect();
    handle.put(key.clone(), json!({ "tools": tools }));
    rt.block_on(handle.flush());
    let mut group = c.benchmark_group("cache");
    group.bench_function("get_hit_memory", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(handle.get(&key).await.unwrap()) })
    });
    let args = json!({"path": "/tmp/a", "depth": 2, "filters": {"b": 1, "a": [1, 2, 3]}});
    group.bench_function("tool_result_key", |b| {
        b.iter(|| black_box(CacheKey::tool_result("fs", "read", &args)))
    });
    group.finish();
    actor.stop(None);
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! { name = benches; config = config(); targets = escalation, cache }
criterion_main!(benches);
