//! Operator HTTP endpoints: `/health`, `/ready`, `/api/v1/actors` (the
//! live supervision tree), `/api/v1/guardrails`, and the management API
//! (`/api/v1/upstreams`, `/projects`, `/keys`, `/system`; errors as RFC 9457
//! problem+json from [`problem`]), described by the OpenAPI document and
//! Swagger UI of [`openapi`]. Users, logins and the audit trail
//! (`/api/v1/users`, `/auth/login`, `/audit`) sit on [`governance_routes`];
//! every `/api/v1` route is guarded by [`crate::govern::guard`].
mod actors;
mod audit;
mod guardrails;
mod keys;
mod login;
pub mod openapi;
mod page;
pub mod problem;
mod projects;
mod resource;
mod system;
mod upstreams;
mod users;

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

/// `/health` and `/ready`: served on the public address and, when there
/// is one, the admin address too (probes may use either).
pub fn probes(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(gateway)
}

/// The operator routes under `/api`.
pub fn routes(gateway: Arc<Gateway>) -> Router {
    Router::new()
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
        .with_state(control.clone())
        .merge(system::routes(control))
}

/// The governance routes: users, login, the audit trail.
pub fn governance_routes(governance: Arc<crate::govern::Governance>) -> Router {
    Router::new()
        .route("/api/v1/auth/login", post(login::login))
        .route("/api/v1/users", get(users::list).post(users::create))
        .route(
            "/api/v1/users/{name}",
            get(users::get).patch(users::patch).delete(users::delete),
        )
        .route(
            "/api/v1/users/{name}/reset-password",
            post(users::reset_password),
        )
        .route("/api/v1/audit", get(audit::list))
        .with_state(governance)
}

async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(json!({ "status": "ok" }))
}

/// Ready ("able to serve") when every enabled upstream has an instance that
/// takes calls, has failed for good, or has served before: one upstream
/// restarting after it served does not take the gateway out of a load
/// balancer's rotation; one still on its way to its first `ready` does.
async fn ready(State(gateway): State<Arc<Gateway>>) -> (StatusCode, axum::Json<serde_json::Value>) {
    let pending = gateway.registry.not_serving();
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
