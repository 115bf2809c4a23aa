//! `GET /api/v1/audit`: the audit trail, newest first, filtered and paged,
//! with the per-call audit's state (`mcp_calls`: on, records dropped).
//! Read-only: no route changes or deletes an entry.
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::problem::Problem;
use crate::govern::Governance;
use crate::store::Page;
use crate::store::audit::{self, AuditFilter};

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

/// Filters and page of `GET /api/v1/audit`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// `GET /api/v1/audit?actor=&action=&target=&since=&until=&limit=&offset=`
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    summary = "The audit trail, newest first",
    params(
        ("actor" = Option<String>, Query, description = "Only entries of this user"),
        ("action" = Option<String>, Query, description = "Exact action (`upstreams.create`), or a prefix ending in `.` or `*` (`upstreams.`)"),
        ("target" = Option<String>, Query, description = "Exact target (`upstreams/echo`), or a prefix ending in `/` or `*`"),
        ("since" = Option<i64>, Query, description = "From this Unix millisecond on"),
        ("until" = Option<i64>, Query, description = "Before this Unix millisecond"),
        ("limit" = Option<usize>, Query, description = "Most items (default 50, at most 500)"),
        ("offset" = Option<usize>, Query, description = "Items to skip"),
    ),
    responses(
        (status = 200, description = "A page of entries", body = super::openapi::Page),
        (status = 422, response = super::openapi::Invalid),
    )
)]
pub(super) async fn list(
    State(governance): State<Arc<Governance>>,
    Query(query): Query<AuditQuery>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Problem::invalid(
            "limit",
            format!("`limit` must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let offset = query.offset.unwrap_or(0);
    if offset < 0 {
        return Err(Problem::invalid("offset", "`offset` must not be negative"));
    }
    let filter = AuditFilter {
        actor: query.actor,
        action: query.action,
        target: query.target,
        since: query.since,
        until: query.until,
    };
    let (entries, total) = audit::page(&governance.store, &filter, Page { limit, offset }).await?;
    let mcp_calls = json!({
        "enabled": governance.mcp_calls,
        "dropped": governance.calls.dropped(),
    });
    Ok((
        StatusCode::OK,
        Json(json!({
            "items": entries, "total": total, "limit": limit, "offset": offset,
            "mcp_calls": mcp_calls,
        })),
    ))
}
