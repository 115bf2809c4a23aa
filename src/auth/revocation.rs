//! Long-lived exchanges end when their credential stops being valid: a GET
//! SSE stream and a `bulwark stdio` session re-check the credential that
//! opened them every [`RECHECK`], so a
//! revoked key, a disabled user, an expired token or a withdrawn server grant
//! ends them within about that long instead of at the session's idle timeout.
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use futures::StreamExt;

use super::middleware::{API_KEY_HEADER, credential};
use super::{Auth, Credential};

/// How often an open stream's credential is checked again. Each check is a
/// lookup in the verified-credential cache or the in-memory key index.
pub const RECHECK: Duration = Duration::from_secs(1);

/// The credential headers of a request, kept (cheaply: header values share
/// their bytes) to check again while its response streams.
#[derive(Clone, Default)]
pub struct Presented {
    key: Option<HeaderValue>,
    authorization: Option<HeaderValue>,
}

impl Presented {
    /// The credential headers of `headers`.
    pub fn of(headers: &HeaderMap) -> Self {
        Self {
            key: headers.get(&API_KEY_HEADER).cloned(),
            authorization: headers.get(header::AUTHORIZATION).cloned(),
        }
    }

    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(key) = &self.key {
            headers.insert(API_KEY_HEADER.clone(), key.clone());
        }
        if let Some(authorization) = &self.authorization {
            headers.insert(header::AUTHORIZATION, authorization.clone());
        }
        headers
    }
}

/// Resolves once `credential` is refused, or no longer grants `server`.
pub async fn refused(auth: &Auth, credential: Option<Credential<'_>>, server: Option<&str>) {
    let mut tick = tokio::time::interval(RECHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        match auth.authenticate(credential).await {
            Ok(identity) => {
                if let Some(server) = server
                    && !identity.grant.allows_server(server)
                {
                    tracing::info!(subject = %identity.subject, %server, "server no longer granted; ending the caller's stream");
                    return;
                }
            }
            Err(err) => {
                tracing::info!(reason = %err, "credential refused; ending its stream");
                return;
            }
        }
    }
}

/// True for an SSE response, the one kind that outlives its request.
pub fn is_event_stream(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/event-stream"))
}

/// `response` with a body that ends once `presented` is refused.
pub fn end_when_refused(
    response: Response,
    auth: Arc<Auth>,
    presented: Presented,
    server: Option<Arc<str>>,
) -> Response {
    let (parts, body) = response.into_parts();
    let watch = async move {
        let headers = presented.headers();
        refused(&auth, credential(&headers), server.as_deref()).await;
    };
    let body = body.into_data_stream().take_until(Box::pin(watch));
    Response::from_parts(parts, Body::from_stream(body))
}
