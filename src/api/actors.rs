//! `GET /api/v1/actors`: the supervision tree with per-actor figures.
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use bulwark_actors::oauth::TokenMetricsSnapshot;
use bulwark_actors::upstream::UpstreamState;
use bulwark_supervisors::registry::{Registry, ServerEntry};
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
    /// Seconds since the actor last became ready; absent when not ready.
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
    /// The token actor's counters (never a token).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    tokens: Option<TokenMetricsSnapshot>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(no_recursion)]
    children: Vec<ActorNode>,
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
    let registry = &gateway.registry;
    Json(ActorNode {
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
        tokens: None,
        children: registry
            .shared()
            .iter()
            .map(|actor| shared_node(actor, registry))
            .chain(registry.servers().iter().map(|entry| server_node(entry)))
            .collect(),
    })
}

fn shared_node(actor: &SharedActor, registry: &Registry) -> ActorNode {
    ActorNode {
        name: actor.name.to_owned(),
        kind: actor.kind,
        state: UpstreamState::Ready,
        restarts: Some(actor.restart_count()),
        restarts_by_reason: None,
        uptime_secs: None,
        last_exit: None,
        stderr_tail: None,
        messages_handled: actor.mailbox.handled_total(),
        mailbox_depth: actor.mailbox.depth(),
        calls_in_flight: None,
        tokens: (actor.kind == "token_actor").then(|| registry.tokens.metrics.snapshot()),
        children: Vec::new(),
    }
}

fn server_node(entry: &ServerEntry) -> ActorNode {
    let status = &entry.status;
    let state = status.state();
    let last_exit = status
        .last_exit()
        .map(|r| mask_upstream(entry, &r.to_string()));
    let upstream = ActorNode {
        name: entry.spec.name.clone(),
        kind: "upstream",
        state,
        restarts: Some(status.restarts()),
        restarts_by_reason: None,
        uptime_secs: (state == UpstreamState::Ready).then(|| status.state_age().as_secs_f64()),
        last_exit: last_exit.clone(),
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
        tokens: None,
        children: Vec::new(),
    };
    ActorNode {
        name: entry.spec.name.clone(),
        kind: "server_supervisor",
        state,
        restarts: Some(status.restarts()),
        restarts_by_reason: Some(status.restarts_by_reason().into_iter().collect()),
        uptime_secs: None,
        last_exit,
        stderr_tail: None,
        messages_handled: entry.supervisor_mailbox.handled_total(),
        mailbox_depth: entry.supervisor_mailbox.depth(),
        calls_in_flight: None,
        tokens: None,
        children: vec![upstream],
    }
}
