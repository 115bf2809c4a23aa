//! Operator HTTP endpoints: `/health`, `/ready`, `/api/v1/actors` (the
//! live supervision tree) and `/api/v1/guardrails`.
mod actors;
mod guardrails;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};

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
        .with_state(gateway)
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
