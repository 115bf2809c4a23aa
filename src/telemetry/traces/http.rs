//! The outermost HTTP layer: one span and one request id per HTTP request.
//!
//! The span's parent is the client's `traceparent` header, if valid. The
//! span and the id go into the request extensions, where rmcp hands them to
//! the MCP handler (inside `http::request::Parts`) so the MCP span nests
//! under this one; the id also goes back in the `x-request-id` response
//! header of every answer, refusals included.
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use bulwark_actors::trace_context;
use tracing::Instrument;
use tracing::field::Empty;

/// The response header carrying the request id.
pub static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id of one client request: in every error the client sees and in the
/// log lines written for it (a field of its span).
#[derive(Debug, Clone)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// A new id: 16 hex digits, random. From the thread's `fastrand`
    /// generator (seeded from the OS once per thread), not a `getrandom`
    /// syscall per request: the id names a request, it guards nothing.
    pub fn new() -> Self {
        let mut hex = String::with_capacity(16);
        trace_context::push_hex(&mut hex, &fastrand::u64(..).to_be_bytes());
        Self(Arc::from(hex))
    }

    /// The client's own `X-Request-Id`, when it is one a log line and an
    /// audit entry can carry safely (1..=128 visible ASCII characters).
    pub fn from_client(headers: &axum::http::HeaderMap) -> Option<Self> {
        let id = headers.get(&REQUEST_ID_HEADER)?.to_str().ok()?.trim();
        (!id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_graphic()))
            .then(|| Self(Arc::from(id)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The span of one HTTP request, for the MCP span to nest under.
#[derive(Debug, Clone)]
pub struct RequestSpan(pub tracing::Span);

/// The layer: wraps every route (MCP and API) in a request span.
pub async fn layer(mut request: Request, next: Next) -> Response {
    // A caller's own id is kept, so its logs and ours line up.
    let id = RequestId::from_client(request.headers()).unwrap_or_default();
    let span = tracing::info_span!(
        "http.request",
        otel.status_code = Empty,
        // Text, not `%id`: each layer would format it into a new String.
        request.id = id.as_str(),
        http.response.status_code = Empty,
        // The MCP request's, when nothing exports and this span is its span
        // too (see `RequestTrace::start`).
        mcp.method.name = Empty,
        jsonrpc.request.id = Empty,
        mcp.session.id = Empty,
        gen_ai.tool.name = Empty,
        bulwark.upstream = Empty,
        bulwark.outcome = Empty,
        error.type = Empty,
    );
    super::layer::serving(&span, || {
        [request.method().as_str(), " ", request.uri().path()].concat()
    });
    if let Some(cx) = trace_context::from_headers(request.headers()) {
        trace_context::set_parent(&span, cx);
    }
    request.extensions_mut().insert(id.clone());
    request.extensions_mut().insert(RequestSpan(span.clone()));
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    if super::exporting() {
        span.record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
    }
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response
            .headers_mut()
            .insert(REQUEST_ID_HEADER.clone(), value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_sixteen_hex_digits_and_differ() {
        let ids: Vec<RequestId> = (0..64).map(|_| RequestId::new()).collect();
        for id in &ids {
            assert_eq!(id.as_str().len(), 16, "{id}");
            assert!(
                id.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
        }
        let distinct: std::collections::HashSet<&str> = ids.iter().map(RequestId::as_str).collect();
        assert_eq!(distinct.len(), ids.len());
    }
}
