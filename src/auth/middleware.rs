//! The axum layer in front of `/mcp` and `/mcp/{server}`: find the
//! credential, authenticate, check the server grant and the per-key budget,
//! and put the [`Identity`] into the request extensions. Refusals are
//! answered here, so nothing reaches an upstream. (`/api/v1` has its own
//! guard, [`crate::govern::guard`], which uses [`credential`] and [`refuse`].)
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bulwark_actors::trace_context::Step;
use serde_json::json;

use super::identity::Identity;
use super::keys::looks_like_key;
use super::revocation::{self, Presented};
use super::{Auth, AuthError, Credential};

/// Header for API keys (the alternative to `Authorization: Bearer`).
pub static API_KEY_HEADER: axum::http::HeaderName =
    axum::http::HeaderName::from_static("x-api-key");

/// State of the MCP layer: the auth state and the route's server, if one.
#[derive(Clone)]
pub struct McpGuard {
    /// Shared authentication state.
    pub auth: Arc<Auth>,
    /// `Some(server)` on `/mcp/{server}`.
    pub server: Option<Arc<str>>,
}

/// The credential a request carries, if any.
pub fn credential(headers: &HeaderMap) -> Option<Credential<'_>> {
    if let Some(key) = headers.get(&API_KEY_HEADER).and_then(|v| v.to_str().ok()) {
        return Some(Credential::Key(key.trim()));
    }
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    Some(if looks_like_key(token) {
        Credential::Key(token)
    } else {
        Credential::Bearer(token)
    })
}

/// Authenticates an MCP request and checks its server grant and key budget.
pub async fn mcp(State(guard): State<McpGuard>, mut request: Request, next: Next) -> Response {
    // A step of the request's trace (see `telemetry::traces`).
    let mut step = Step::start("authenticate");
    let admitted = admit(&guard.auth, request.headers()).await;
    let identity = match admitted {
        Ok(identity) => {
            step.str("auth.outcome", "admitted");
            identity
        }
        Err(err) => {
            step.str("auth.outcome", "refused").failed();
            return refused(&guard.auth, &request, None, &err);
        }
    };
    drop(step);
    if let Some(server) = &guard.server
        && !identity.grant.allows_server(server)
    {
        let err = AuthError::ServerNotGranted {
            project: identity.project.to_string(),
            server: server.to_string(),
        };
        return refused(&guard.auth, &request, Some(&identity), &err);
    }
    request.extensions_mut().insert(identity);
    // Only a GET stream outlives its request: a POST answered as a stream
    // ends with its call (which has a deadline), and the next request is
    // authenticated again, so calls carry no watch.
    if !guard.auth.enabled() || request.method() != axum::http::Method::GET {
        return next.run(request).await;
    }
    let presented = Presented::of(request.headers());
    let response = next.run(request).await;
    if revocation::is_event_stream(&response) {
        return revocation::end_when_refused(response, guard.auth, presented, guard.server);
    }
    response
}

/// [`refuse`], and the refusal handed to the audit trail's queue (when the
/// gateway has one; it never waits for it).
fn refused(
    auth: &Auth,
    request: &Request,
    identity: Option<&Identity>,
    err: &AuthError,
) -> Response {
    let response = refuse(auth, err);
    if let Some(audit) = auth.audit.get() {
        let client = request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip().to_string())
            .unwrap_or_default();
        audit.refusal(crate::govern::calls::Refusal {
            actor: identity.map(|i| i.user.to_string()),
            credential: identity.map(|i| i.subject.to_string()),
            target: format!("{} {}", request.method(), request.uri().path()),
            status: response.status().as_u16(),
            client,
            detail: err.to_string(),
        });
    }
    response
}

async fn admit(auth: &Auth, headers: &HeaderMap) -> Result<Identity, AuthError> {
    let identity = auth.authenticate(credential(headers)).await?;
    auth.limits().admit_key(&identity.subject).await?;
    tracing::debug!(subject = %identity.subject, project = %identity.project, "request authenticated");
    Ok(identity)
}

/// 401 (with `WWW-Authenticate`), 403 or 429 (with `Retry-After`).
pub(crate) fn refuse(auth: &Auth, err: &AuthError) -> Response {
    auth.failures.count(err);
    let message = err.to_string();
    if let AuthError::RateLimited(limited) = err {
        tracing::info!(
            limit = limited.limit.as_str(),
            "request over its rate limit"
        );
        let retry_secs = limited.retry_after.as_secs_f64().ceil().max(1.0);
        let body = json!({
            "error": "rate_limited",
            "message": message,
            "limit": limited.limit.as_str(),
            "retry_after_ms": u64::try_from(limited.retry_after.as_millis()).unwrap_or(u64::MAX),
        });
        let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
        if let Ok(value) = HeaderValue::from_str(&format!("{retry_secs:.0}")) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    if err.is_forbidden() {
        tracing::info!(reason = %message, "request forbidden");
        let body = json!({ "error": "forbidden", "message": message });
        return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    }
    tracing::info!(reason = %message, "request unauthenticated");
    let body = json!({ "error": "unauthorized", "message": message });
    let mut response = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    let challenge = super::metadata::challenge(auth.oauth(), !matches!(err, AuthError::Missing));
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn finds_keys_and_tokens_in_either_header() {
        let key = |h: &HeaderMap| match credential(h) {
            Some(Credential::Key(k)) => Some(k.to_owned()),
            _ => None,
        };
        assert_eq!(key(&headers(&[("x-api-key", "bk_abc")])).unwrap(), "bk_abc");
        assert_eq!(
            key(&headers(&[("authorization", "Bearer bk_abc")])).unwrap(),
            "bk_abc"
        );
        assert!(matches!(
            credential(&headers(&[("authorization", "bearer eyJ.a.b")])),
            Some(Credential::Bearer("eyJ.a.b"))
        ));
        assert!(credential(&headers(&[("authorization", "Basic dXNlcg==")])).is_none());
        assert!(credential(&HeaderMap::new()).is_none());
    }
}
