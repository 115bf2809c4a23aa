//! Operator HTTP endpoints: `/health`, `/ready`, `/api/v1/actors` (the
//! live supervision tree), `/api/v1/guardrails`, and the management API
//! (`/api/v1/upstreams`, `/projects`, `/keys`; errors as RFC 9457
//! problem+json from [`problem`]), described by the OpenAPI document and
//! Swagger UI of [`openapi`].
mod actors;
mod guardrails;
mod keys;
pub mod openapi;
mod page;
pub mod problem;
mod projects;
mod resource;
mod upstreams;

pub(crate) use actors::{ActorNode, snapshot as actor_tree};
pub(crate) use guardrails::report_of as guardrail_report;
pub(crate) use upstreams::all as all_upstreams;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};

use crate::control::ControlPlane;
use crate::mcp::Gateway;
use serde_json::json;

/// The operator routes.
pub fn routes(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/api/v1/actors", get(actors::tree))
        .route("/api/v1/guardrails", get(guardrails::report))
        .route("/api/v1/guardrails/approve", post(guardrails::approve))
        .merge(openapi::routes())
        .with_state(gateway)
}

/// The management routes: upstreams, projects and keys.
pub fn control_routes(control: Arc<ControlPlane>) -> Router {
    Router::new()
        .route(
            "/api/v1/upstreams",
            get(upstreams::list).post(upstreams::create),
        )
        .route(
            "/api/v1/upstreams/{name}",
            get(upstreams::get)
                .put(upstreams::replace)
                .patch(upstreams::patch)
                .delete(upstreams::delete),
        )
        .route("/api/v1/upstreams/{name}/enable", post(upstreams::enable))
        .route("/api/v1/upstreams/{name}/disable", post(upstreams::disable))
        .route("/api/v1/upstreams/{name}/restart", post(upstreams::restart))
        .route(
            "/api/v1/projects",
            get(projects::list).post(projects::create),
        )
        .route(
            "/api/v1/projects/{name}",
            get(projects::get)
                .put(projects::replace)
                .patch(projects::patch)
                .delete(projects::delete),
        )
        .route("/api/v1/keys", get(keys::list).post(keys::create))
        .route("/api/v1/keys/{id}", get(keys::get).delete(keys::delete))
        .route("/api/v1/keys/{id}/revoke", post(keys::revoke))
        .with_state(control)
}

async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(json!({ "status": "ok" }))
}

/// Ready once every enabled upstream has started or failed for good.
async fn ready(State(gateway): State<Arc<Gateway>>) -> (StatusCode, axum::Json<serde_json::Value>) {
    let pending = gateway.registry.pending();
    let code = if pending.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        axum::Json(json!({ "ready": pending.is_empty(), "pending": pending })),
    )
}
