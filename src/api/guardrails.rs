//! `GET /api/v1/guardrails` (flagged tools and counters) and
//! `POST /api/v1/guardrails/approve` (accept a changed tool definition).
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rmcp::model::ServerNotification;
use serde::Deserialize;
use serde_json::{Value, json};

use bulwark_actors::upstream::UpstreamObserver;

use crate::mcp::Gateway;

pub(super) async fn report(State(gateway): State<Arc<Gateway>>) -> Json<Value> {
    let guardrails = &gateway.guardrails;
    Json(json!({
        "flagged_tools": guardrails.flagged(),
        "stats": guardrails.stats(),
    }))
}

/// Which tool to approve.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Approval {
    server: String,
    tool: String,
}

/// Re-pins the tool's current definition; clients are told the tool list
/// changed so they see it again. `404` when no change was pending.
pub(super) async fn approve(
    State(gateway): State<Arc<Gateway>>,
    Json(approval): Json<Approval>,
) -> (StatusCode, Json<Value>) {
    if !gateway
        .guardrails
        .approve_tool(&approval.server, &approval.tool)
    {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({
                "error": format!(
                    "no changed definition of '{}' on '{}' is waiting for approval",
                    approval.tool, approval.server
                )
            })),
        );
    }
    gateway.sessions.notification(
        &approval.server,
        ServerNotification::ToolListChangedNotification(Default::default()),
    );
    (StatusCode::OK, Json(json!({ "approved": true })))
}
