//! `GET /api/v1/actors`: the supervision tree with per-actor figures.
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use bulwark_actors::cache::StatsSnapshot;
use bulwark_actors::oauth::TokenMetricsSnapshot;
use bulwark_actors::timeout::MetricsSnapshot;
use bulwark_actors::upstream::UpstreamState;
use bulwark_supervisors::registry::ServerEntry;
use bulwark_supervisors::shared::SharedActor;
use serde::Serialize;

use crate::mask::mask_upstream;
use crate::mcp::Gateway;

/// One actor in the tree.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActorNode {
    name: String,
    kind: &'static str,
    /// `starting`, `ready`, `failed`, `stopped`, …
    #[schema(value_type = String)]
    state: UpstreamState,
    #[serde(skip_serializing_if = "Option::is_none")]
    restarts: Option<u32>,
    /// Restarts by why the instance before ended (`exit`, `signal`, `hung`,
    /// `token_rotation`, `requested`, …); the same counters `/metrics` reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    restarts_by_reason: Option<std::collections::BTreeMap<&'static str, u32>>,
    /// Seconds since the actor last became ready (an upstream) or was last
    /// (re)started (a shared actor); absent when not running.
    #[serde(skip_serializing_if = "Option::is_none")]
    uptime_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_exit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stderr_tail: Option<Vec<String>>,
    messages_handled: u64,
    mailbox_depth: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    calls_in_flight: Option<usize>,
    /// Operations finished by the upstream since start (the dashboard's
    /// calls/s is the rate of this counter).
    #[serde(skip_serializing_if = "Option::is_none")]
    calls_finished: Option<u64>,
    /// Latency bucket bound (ms) at or under which half of them finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    p50_le_ms: Option<u64>,
    /// The same for 99 %.
    #[serde(skip_serializing_if = "Option::is_none")]
    p99_le_ms: Option<u64>,
    /// The cache actor's reads, all kinds together.
    #[serde(skip_serializing_if = "Option::is_none")]
    cache: Option<CacheReads>,
    /// The token actor's counters (never a token).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    tokens: Option<TokenMetricsSnapshot>,
    /// A pool instance's place in its pool (pools of several, or with
    /// health checks, only).
    #[serde(skip_serializing_if = "Option::is_none")]
    instance: Option<usize>,
    /// Whether health checks took this instance out of rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    ejected: Option<bool>,
    /// Times health checks ejected this instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    ejections: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(no_recursion)]
    children: Vec<ActorNode>,
}

/// Cache reads of every kind together.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CacheReads {
    hits: u64,
    misses: u64,
    /// `hits / (hits + misses)`; absent before the first read.
    #[serde(skip_serializing_if = "Option::is_none")]
    hit_ratio: Option<f64>,
}

impl CacheReads {
    fn of(stats: &StatsSnapshot) -> Self {
        let hits = stats.kinds.iter().map(|k| k.hits).sum::<u64>();
        let misses = stats.kinds.iter().map(|k| k.misses).sum::<u64>();
        let reads = hits + misses;
        Self {
            hits,
            misses,
            hit_ratio: (reads > 0).then(|| hits as f64 / reads as f64),
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/actors",
    tag = "runtime",
    summary = "The live supervision tree",
    responses(
        (status = 200, description = "The root actor and its children", body = ActorNode),
    )
)]
pub(super) async fn tree(State(gateway): State<Arc<Gateway>>) -> Json<ActorNode> {
    Json(snapshot(&gateway))
}

/// The tree as it is now (also what the dashboard's stream pushes).
pub(crate) fn snapshot(gateway: &Gateway) -> ActorNode {
    let registry = &gateway.registry;
    let latency = gateway.deadlines.metrics();
    ActorNode {
        name: "root".into(),
        kind: "root_supervisor",
        state: UpstreamState::Ready,
        restarts: None,
        restarts_by_reason: None,
        uptime_secs: None,
        last_exit: None,
        stderr_tail: None,
        messages_handled: registry.root_mailbox.handled_total(),
        mailbox_depth: registry.root_mailbox.depth(),
        calls_in_flight: None,
        calls_finished: None,
        p50_le_ms: None,
        p99_le_ms: None,
        cache: None,
        tokens: None,
        instance: None,
        ejected: None,
        ejections: None,
        children: registry
            .shared()
            .iter()
            .map(|actor| shared_node(actor, gateway))
            .chain(
                registry
                    .servers()
                    .iter()
                    .map(|entry| server_node(entry, &latency)),
            )
            .collect(),
    }
}

fn shared_node(actor: &SharedActor, gateway: &Gateway) -> ActorNode {
    let registry = &gateway.registry;
    ActorNode {
        name: actor.name.to_owned(),
        kind: actor.kind,
        state: UpstreamState::Ready,
        restarts: Some(actor.restart_count()),
        restarts_by_reason: None,
        uptime_secs: actor.uptime().map(|up| up.as_secs_f64()),
        last_exit: None,
        stderr_tail: None,
        messages_handled: actor.mailbox.handled_total(),
        mailbox_depth: actor.mailbox.depth(),
        calls_in_flight: None,
        calls_finished: None,
        p50_le_ms: None,
        p99_le_ms: None,
        cache: (actor.name == "cache").then(|| CacheReads::of(&gateway.cache.stats())),
        tokens: (actor.kind == "token_actor").then(|| registry.tokens.metrics.snapshot()),
        instance: None,
        ejected: None,
        ejections: None,
        children: Vec::new(),
    }
}

fn server_node(entry: &ServerEntry, latency: &MetricsSnapshot) -> ActorNode {
    let pool = &entry.pool;
    let measured = latency.upstream(&entry.spec.name).map(|m| &m.latency);
    let state = pool.state();
    let last_exit = pool
        .last_exit()
        .map(|r| mask_upstream(entry, &r.to_string()));
    let single = pool.instances().len() == 1;
    // Latency is measured per upstream: a lone instance carries it, a pool's
    // supervisor does.
    let latency_of = |shown: bool| {
        let measured = measured.filter(|_| shown);
        (
            Some(measured.map_or(0, |m| m.count)),
            measured.and_then(|m| m.p50_le_ms),
            measured.and_then(|m| m.p99_le_ms),
        )
    };
    let children = pool
        .instances()
        .iter()
        .map(|status| {
            let state = status.state();
            let (calls_finished, p50_le_ms, p99_le_ms) = latency_of(single);
            let pooled = !single || entry.spec.pool.health.is_some();
            ActorNode {
                name: crate::telemetry::observed::instance_name(entry, status.index()),
                kind: "upstream",
                state,
                restarts: Some(status.restarts()),
                restarts_by_reason: None,
                uptime_secs: (state == UpstreamState::Ready)
                    .then(|| status.state_age().as_secs_f64()),
                last_exit: status
                    .last_exit()
                    .map(|r| mask_upstream(entry, &r.to_string())),
                stderr_tail: Some(
                    status
                        .stderr
                        .lines()
                        .iter()
                        .map(|line| mask_upstream(entry, line))
                        .collect(),
                ),
                messages_handled: status.mailbox.handled_total(),
                mailbox_depth: status.mailbox.depth(),
                calls_in_flight: Some(status.in_flight()),
                calls_finished: calls_finished.filter(|_| single),
                p50_le_ms,
                p99_le_ms,
                cache: None,
                tokens: None,
                instance: pooled.then(|| status.index()),
                ejected: pooled.then(|| status.is_ejected()),
                ejections: pooled.then(|| status.ejections()),
                children: Vec::new(),
            }
        })
        .collect();
    let (calls_finished, p50_le_ms, p99_le_ms) = latency_of(!single);
    ActorNode {
        name: entry.spec.name.clone(),
        kind: "server_supervisor",
        state,
        restarts: Some(pool.restarts()),
        restarts_by_reason: Some(pool.restarts_by_reason().into_iter().collect()),
        uptime_secs: None,
        last_exit,
        stderr_tail: None,
        messages_handled: entry.supervisor_mailbox.handled_total(),
        mailbox_depth: entry.supervisor_mailbox.depth(),
        calls_in_flight: (!single).then(|| pool.in_flight()),
        calls_finished: calls_finished.filter(|_| !single),
        p50_le_ms,
        p99_le_ms,
        cache: None,
        tokens: None,
        instance: None,
        ejected: None,
        ejections: None,
        children,
    }
}

#[cfg(test)]
mod tests {
    use bulwark_actors::cache::{CacheKind, KindStats, StatsSnapshot};

    use super::CacheReads;

    fn stats(reads: &[(u64, u64)]) -> StatsSnapshot {
        StatsSnapshot {
            kinds: CacheKind::ALL
                .iter()
                .zip(reads.iter().chain(std::iter::repeat(&(0, 0))))
                .map(|(&kind, &(hits, misses))| KindStats {
                    kind,
                    hits,
                    misses,
                    entries: None,
                    evictions: 0,
                    expirations: 0,
                    errors: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn hit_ratio_sums_every_kind_and_is_absent_before_any_read() {
        let none = CacheReads::of(&stats(&[]));
        assert_eq!((none.hits, none.misses, none.hit_ratio), (0, 0, None));
        let some = CacheReads::of(&stats(&[(3, 1), (0, 4)]));
        assert_eq!((some.hits, some.misses), (3, 5));
        assert_eq!(some.hit_ratio, Some(3.0 / 8.0));
    }
}
