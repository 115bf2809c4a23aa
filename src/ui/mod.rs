//! The live dashboard: `/ui`, a small vanilla HTML/JS/CSS page compiled into
//! the binary (no CDN), and [`stream`], the Server-Sent Events feed it reads.
//!
//! The page itself holds no state and no secret, so it is served without a
//! key (like Swagger UI); everything it shows comes from `/api/v1`, which the
//! management layer guards as usual. The page keeps the operator's key in
//! `sessionStorage` and sends it in the `Authorization` header (fetch
//! streaming, since `EventSource` cannot send headers), never in a URL.
pub mod stream;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::control::ControlPlane;

/// Where the page is served.
pub const PATH: &str = "/ui";

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");

/// Same-origin only: no inline script, no framing, no third-party fetch.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// `/ui` and its assets, and `GET /api/v1/actors/stream`. Streams end when
/// `shutdown` is cancelled, so graceful shutdown does not wait on them.
pub fn routes(control: Arc<ControlPlane>, shutdown: CancellationToken) -> Router {
    Router::new()
        .route(PATH, get(index))
        .route("/ui/", get(|| async { Redirect::permanent(PATH) }))
        .route("/ui/app.js", get(script))
        .route("/ui/app.css", get(style))
        .route("/api/v1/actors/stream", get(stream::events))
        .with_state(stream::Feed::new(control, shutdown))
}

async fn index() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
