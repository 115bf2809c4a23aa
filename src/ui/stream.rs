//! `GET /api/v1/actors/stream`: the dashboard's feed. A Server-Sent Event
//! named `snapshot` every [`PERIOD`] (the first at once), each holding the
//! actor tree of `/api/v1/actors`, the guardrail report of
//! `/api/v1/guardrails` and the upstream list of `/api/v1/upstreams` (so
//! disabled upstreams, absent from the tree, stay visible).
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, Sse};
use futures::{Stream, StreamExt};
use serde::Serialize;
use serde_json::Value;
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::api::{ActorNode, actor_tree, all_upstreams, guardrail_report};
use crate::control::ControlPlane;

/// How often a snapshot is pushed: twice a second, so a state that lasts a
/// second (a restart's backoff) is seen.
pub const PERIOD: Duration = Duration::from_millis(500);

/// What the stream reads from, and when it stops.
#[derive(Clone)]
pub struct Feed {
    control: Arc<ControlPlane>,
    /// Cancelled at shutdown; open streams end so the server can stop.
    shutdown: CancellationToken,
}

impl Feed {
    /// A feed over `control`, ending at `shutdown`.
    pub fn new(control: Arc<ControlPlane>, shutdown: CancellationToken) -> Self {
        Self { control, shutdown }
    }
}

/// One event's data.
#[derive(Debug, Serialize)]
struct Snapshot {
    actors: ActorNode,
    guardrails: Value,
    /// `None` when the store could not be read (logged; the tree still shows).
    upstreams: Option<Vec<Value>>,
}

#[utoipa::path(
    get,
    path = "/api/v1/actors/stream",
    tag = "runtime",
    summary = "The live supervision tree as Server-Sent Events",
    description = "A `snapshot` event twice a second: `{actors, guardrails, upstreams}`, \
                   the bodies of `/api/v1/actors`, `/api/v1/guardrails` and the items of \
                   `/api/v1/upstreams`. Ends when the gateway shuts down.",
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream", body = String),
    )
)]
pub(crate) async fn events(
    State(feed): State<Feed>,
) -> (
    [(&'static str, &'static str); 1],
    Sse<impl Stream<Item = Result<Event, Infallible>>>,
) {
    let mut ticks = tokio::time::interval(PERIOD);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let Feed { control, shutdown } = feed;
    let stream =
        futures::stream::unfold((control, ticks), next).take_until(shutdown.cancelled_owned());
    // A reverse proxy (nginx) would otherwise hold events back in its buffer.
    ([("x-accel-buffering", "no")], Sse::new(stream))
}

async fn next(
    (control, mut ticks): (Arc<ControlPlane>, Interval),
) -> Option<(Result<Event, Infallible>, (Arc<ControlPlane>, Interval))> {
    ticks.tick().await;
    let event = snapshot_event(&control).await;
    Some((Ok(event), (control, ticks)))
}

async fn snapshot_event(control: &ControlPlane) -> Event {
    let upstreams = match all_upstreams(control).await {
        Ok(items) => Some(items),
        Err(problem) => {
            tracing::warn!(?problem, "dashboard stream: cannot list upstreams");
            None
        }
    };
    let snapshot = Snapshot {
        actors: actor_tree(&control.gateway),
        guardrails: guardrail_report(&control.gateway),
        upstreams,
    };
    Event::default()
        .event("snapshot")
        .json_data(&snapshot)
        .unwrap_or_else(|err| {
            tracing::warn!(%err, "dashboard stream: cannot encode a snapshot");
            Event::default()
                .event("error")
                .data("snapshot not encodable")
        })
}
