//! Each streamable-HTTP session belongs to the caller that opened it. The
//! handler refuses foreign JSON-RPC requests itself; this layer also covers
//! what never reaches the handler: the GET stream and DELETE of a session.
//! It also caps the sessions one caller may hold open across all routes.
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use rmcp::transport::common::http_header::names;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use serde_json::json;

use super::directory::Directory;
use super::server_routes::ServerSessions;
use crate::auth::identity::Identity;

/// Forgotten sessions are swept after this many new ones.
const SWEEP_EVERY: usize = 256;

/// Session id → owner subject, for every streamable-HTTP service.
pub struct SessionOwners {
    owners: DashMap<Arc<str>, Arc<str>, foldhash::fast::RandomState>,
    /// Open sessions per owner subject.
    per_caller: DashMap<Arc<str>, usize, foldhash::fast::RandomState>,
    /// The federated service's sessions; with `servers`', entries of
    /// sessions that ended are swept.
    federated: Arc<LocalSessionManager>,
    /// Each `/mcp/{server}` service's sessions (servers come and go).
    servers: Arc<ServerSessions>,
    recorded: AtomicUsize,
    /// Sessions one caller may hold open.
    max_per_caller: usize,
    /// Owners of sessions opened on other replicas.
    directory: Option<Arc<Directory>>,
}

impl SessionOwners {
    /// Owners of the sessions of `federated` and `servers`, at most
    /// `max_per_caller` each.
    pub fn new(
        federated: Arc<LocalSessionManager>,
        servers: Arc<ServerSessions>,
        max_per_caller: usize,
        directory: Option<Arc<Directory>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            owners: DashMap::default(),
            per_caller: DashMap::default(),
            federated,
            servers,
            recorded: AtomicUsize::new(0),
            max_per_caller: max_per_caller.max(1),
            directory,
        })
    }

    /// Whether `identity` may open another session; sweeps ended sessions
    /// before saying no.
    async fn may_open(&self, identity: &Identity) -> bool {
        let open = |owners: &Self| owners.per_caller.get(&identity.subject).map_or(0, |n| *n);
        if open(self) < self.max_per_caller {
            return true;
        }
        self.sweep().await;
        open(self) < self.max_per_caller
    }

    fn forget(&self, session: &str) {
        if let Some((_, owner)) = self.owners.remove(session) {
            self.per_caller.remove_if_mut(&owner, |_, n| {
                *n = n.saturating_sub(1);
                *n == 0
            });
        }
    }

    /// False when `session` belongs to someone other than `identity`.
    fn admits(&self, session: &str, identity: &Identity) -> bool {
        self.owners
            .get(session)
            .is_none_or(|owner| **owner == *identity.subject)
    }

    /// `admits` for a session this replica may not have seen: one opened on
    /// another replica is checked against the owner in the directory (and
    /// remembered here); without a directory, unknown sessions are rmcp's
    /// to refuse.
    async fn admits_moved(&self, session: &str, identity: &Identity) -> bool {
        let Some(directory) = &self.directory else {
            return self.admits(session, identity);
        };
        if self.owners.contains_key(session) {
            return self.admits(session, identity);
        }
        match directory.owner(session).await {
            Ok(Some(owner)) if *owner == *identity.subject => {
                self.record_here(session, identity);
                true
            }
            Ok(Some(_)) => false,
            Ok(None) => true,
            Err(err) => {
                // Without the owner the session cannot be trusted to move.
                tracing::warn!(%err, "session directory unavailable: a moved session is refused");
                false
            }
        }
    }

    fn record_here(&self, session: &str, identity: &Identity) {
        if self
            .owners
            .insert(session.into(), identity.subject.clone())
            .is_none()
        {
            *self.per_caller.entry(identity.subject.clone()).or_insert(0) += 1;
        }
    }

    async fn record(&self, session: &str, identity: &Identity) {
        if let Some(directory) = &self.directory {
            directory.set_owner(session, &identity.subject).await;
        }
        self.record_here(session, identity);
        if self.recorded.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep().await;
        }
    }

    /// Drops the owners of sessions that no longer exist.
    async fn sweep(&self) {
        let mut live = std::collections::HashSet::new();
        let mut managers = self.servers.all();
        managers.push(self.federated.clone());
        for manager in &managers {
            live.extend(manager.sessions.read().await.keys().cloned());
        }
        self.owners.retain(|id, _| live.contains(&**id));
        let mut counts: std::collections::HashMap<Arc<str>, usize> = Default::default();
        for owner in &self.owners {
            *counts.entry(owner.value().clone()).or_insert(0) += 1;
        }
        self.per_caller.clear();
        for (owner, open) in counts {
            self.per_caller.insert(owner, open);
        }
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
        .get(&names::MCP_SESSION_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let deleting = request.method() == Method::DELETE;
    if session.is_none() && request.method() == Method::POST && !owners.may_open(&identity).await {
        tracing::warn!(caller = %identity.subject, max = owners.max_per_caller, "new session refused: too many open sessions");
        return crate::front::screen::rpc_error(
            StatusCode::TOO_MANY_REQUESTS,
            serde_json::Value::Null,
            -32000,
            &format!(
                "this caller already has {} open sessions (server.limits.max_sessions_per_caller); \
                 end one (HTTP DELETE) or wait for an idle one to expire",
                owners.max_per_caller
            ),
        );
    }
    if let Some(session) = &session
        && !owners.admits_moved(session, &identity).await
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
            owners.forget(&session);
        }
        Some(_) => {}
        None => {
            let created = response
                .headers()
                .get(&names::MCP_SESSION_ID)
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
        let owners = SessionOwners::new(sessions, Arc::default(), 2, None);
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
        assert_eq!(*owners.per_caller.get(&alice.subject).unwrap(), 1);
    }

    #[tokio::test]
    async fn a_caller_over_its_session_cap_is_refused_until_one_ends() {
        let sessions = Arc::new(LocalSessionManager::default());
        let (first, _t1) = sessions.create_session().await.unwrap();
        let (second, _t2) = sessions.create_session().await.unwrap();
        let owners = SessionOwners::new(sessions.clone(), Arc::default(), 2, None);
        let alice = Identity {
            subject: "key:alice".into(),
            ..Identity::anonymous()
        };
        owners.record(&first, &alice).await;
        assert!(owners.may_open(&alice).await);
        owners.record(&second, &alice).await;
        assert!(!owners.may_open(&alice).await);
        assert!(owners.may_open(&Identity::anonymous()).await);
        sessions.close_session(&first).await.unwrap();
        assert!(owners.may_open(&alice).await);
    }
}
