//! `GET /metrics`: Prometheus text exposition. Who may read it is
//! `[telemetry] metrics_access`: an admin credential or the dedicated
//! `metrics_token` (`"admin"`, the default), or anyone (`"open"`, meant for
//! `server.admin_listen` on a private interface).
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Telemetry;
use crate::auth::Auth;
use crate::auth::middleware::credential;
use crate::config::telemetry::MetricsAccess;

/// The content type of the Prometheus text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone)]
struct Scrape {
    telemetry: Arc<Telemetry>,
    auth: Arc<Auth>,
    /// SHA-256 of `metrics_token`: compared in constant time, never kept in clear.
    token: Option<[u8; 32]>,
}

/// The `/metrics` route, or none when metrics are off.
pub fn routes(telemetry: &Arc<Telemetry>, auth: &Arc<Auth>) -> Router {
    if !telemetry.enabled() {
        return Router::new();
    }
    if telemetry.config().metrics_access == MetricsAccess::Open {
        tracing::warn!(
            "/metrics is open (telemetry.metrics_access = \"open\"): anyone who reaches its listener can read it"
        );
    }
    let token = (telemetry.config().metrics_token.as_ref())
        .map(|token| Sha256::digest(token.expose().as_bytes()).into());
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(Scrape {
            telemetry: telemetry.clone(),
            auth: auth.clone(),
            token,
        })
}

async fn scrape(State(scrape): State<Scrape>, headers: HeaderMap) -> Response {
    if let Err(refused) = admit(&scrape, &headers).await {
        return refused;
    }
    match scrape.telemetry.render() {
        Ok(text) => ([(header::CONTENT_TYPE, TEXT_FORMAT)], text).into_response(),
        Err(err) => {
            tracing::error!(%err, "cannot render /metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn admit(scrape: &Scrape, headers: &HeaderMap) -> Result<(), Response> {
    if scrape.telemetry.config().metrics_access == MetricsAccess::Open {
        return Ok(());
    }
    if let Some(expected) = &scrape.token
        && let Some(bearer) = bearer(headers)
        && bool::from(Sha256::digest(bearer.as_bytes()).ct_eq(expected))
    {
        return Ok(());
    }
    match scrape.auth.authenticate(credential(headers)).await {
        Ok(identity) if identity.is_admin() => Ok(()),
        Ok(identity) => {
            tracing::info!(subject = %identity.subject, "/metrics refused: not an admin");
            scrape.auth.failures.count_forbidden();
            Err(refusal(StatusCode::FORBIDDEN))
        }
        Err(err) => {
            tracing::info!(reason = %err, "/metrics refused");
            scrape.auth.failures.count(&err);
            Err(refusal(StatusCode::UNAUTHORIZED))
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn refusal(status: StatusCode) -> Response {
    let mut response = (status, "metrics need an admin key or the metrics token\n").into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}
