//! Each streamable-HTTP session belongs to the caller that opened it. The
//! handler refuses foreign JSON-RPC requests itself; this layer also covers
//! what never reaches the handler: the GET stream and DELETE of a session.
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use serde_json::json;

use crate::auth::identity::Identity;

const SESSION_HEADER: &str = "mcp-session-id";
/// Forgotten sessions are swept after this many new ones.
const SWEEP_EVERY: usize = 256;

/// Session id → owner subject, for one streamable-HTTP service.
pub struct SessionOwners {
    owners: DashMap<Arc<str>, Arc<str>>,
    /// The service's sessions: entries of sessions that ended are swept.
    sessions: Arc<LocalSessionManager>,
    recorded: AtomicUsize,
}

impl SessionOwners {
    /// Owners of the sessions of `sessions`.
    pub fn new(sessions: Arc<LocalSessionManager>) -> Arc<Self> {
        Arc::new(Self {
            owners: DashMap::new(),
            sessions,
            recorded: AtomicUsize::new(0),
        })
    }

    /// False when `session` belongs to someone other than `identity`.
    fn admits(&self, session: &str, identity: &Identity) -> bool {
        self.owners
            .get(session)
            .is_none_or(|owner| **owner == *identity.subject)
    }

    async fn record(&self, session: &str, identity: &Identity) {
        self.owners.insert(session.into(), identity.subject.clone());
        if self.recorded.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep().await;
        }
    }

    /// Drops the owners of sessions that no longer exist.
    async fn sweep(&self) {
        let live = self.sessions.sessions.read().await;
        self.owners.retain(|id, _| live.contains_key(&**id));
    }
}

/// Refuses a request on another caller's session; records new sessions' owners.
pub async fn layer(
    State(owners): State<Arc<SessionOwners>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(identity) = request.extensions().get::<Identity>().cloned() else {
        return next.run(request).await;
    };
    let session = request
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let deleting = request.method() == Method::DELETE;
    if let Some(session) = &session
        && !owners.admits(session, &identity)
    {
        tracing::warn!(caller = %identity.subject, "request on another caller's session refused");
        let body =
            json!({ "error": "forbidden", "message": "this session belongs to another caller" });
        return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    }
    let response = next.run(request).await;
    match session {
        Some(session)
            if (deleting && response.status().is_success())
                || response.status() == StatusCode::NOT_FOUND =>
        {
            owners.owners.remove(session.as_str());
        }
        Some(_) => {}
        None => {
            let created = response
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok());
            if let Some(created) = created {
                owners.record(created, &identity).await;
            }
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use rmcp::transport::streamable_http_server::session::SessionManager;

    use super::*;

    #[tokio::test]
    async fn owners_admit_only_themselves_and_ended_sessions_are_swept() {
        let sessions = Arc::new(LocalSessionManager::default());
        let (live, _transport) = sessions.create_session().await.unwrap();
        let owners = SessionOwners::new(sessions);
        let alice = Identity {
            subject: "key:alice".into(),
            ..Identity::anonymous()
        };
        let bob = Identity {
            subject: "key:bob".into(),
            ..Identity::anonymous()
        };
        owners.record(&live, &alice).await;
        owners.record("ended", &alice).await;
        assert!(owners.admits(&live, &alice));
        assert!(!owners.admits(&live, &bob));
        assert!(owners.admits("never-seen", &bob));
        owners.sweep().await;
        assert!(owners.owners.contains_key(&*live));
        assert!(!owners.owners.contains_key("ended"));
    }
}
