//! Operator HTTP endpoints: `/health`, `/ready` and `/api/v1/actors` (the
//! live supervision tree).
mod actors;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use bulwark_supervisors::registry::Registry;
use serde_json::json;

/// The operator routes.
pub fn routes(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/api/v1/actors", get(actors::tree))
        .with_state(registry)
}

async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(json!({ "status": "ok" }))
}

/// Ready once every enabled upstream has started or failed for good.
async fn ready(
    State(registry): State<Arc<Registry>>,
) -> (StatusCode, axum::Json<serde_json::Value>) {
    let pending = registry.pending();
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
