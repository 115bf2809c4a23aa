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

#[utoipa::path(
    get,
    path = "/api/v1/guardrails",
    tag = "runtime",
    summary = "Flagged tools and guardrail counters",
    responses(
        (status = 200, description = "The report", body = Object),
    )
)]
pub(super) async fn report(State(gateway): State<Arc<Gateway>>) -> Json<Value> {
    Json(report_of(&gateway))
}

/// Flagged tools and counters as they are now (also pushed to the dashboard).
pub(crate) fn report_of(gateway: &Gateway) -> Value {
    let guardrails = &gateway.guardrails;
    json!({
        "flagged_tools": guardrails.flagged(),
        "stats": guardrails.stats(),
    })
}

/// Which tool to approve.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Approval {
    server: String,
    tool: String,
}

/// Re-pins the tool's current definition; clients are told the tool list
/// changed so they see it again. `404` when no change was pending.
#[utoipa::path(
    post,
    path = "/api/v1/guardrails/approve",
    tag = "runtime",
    summary = "Approve a changed tool definition",
    request_body = Approval,
    responses(
        (status = 200, description = "Approved; clients are told the tool list changed", body = Object),
        (status = 404, description = "No change of that tool is waiting", body = Object),
    )
)]
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
