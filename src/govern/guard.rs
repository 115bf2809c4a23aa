//! The layer in front of every `/api/v1` route: find the caller and their
//! role, check the route's permission in [`ROUTES`](super::roles::ROUTES)
//! (an unclassified route is refused for everyone), and audit every
//! mutation (with the target's state before and after, secrets masked) and
//! every refusal. Generic on purpose: a route added later is guarded and
//! audited by its table entry alone.
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::Body as _;
use serde_json::Value;
use tower::ServiceExt;

use super::roles::{self, Permission, Role};
use super::{Caller, Governance, RequestMeta, audit};
use crate::api::problem::Problem;
use crate::auth::middleware::{credential, refuse};
use crate::auth::{AuthError, Credential};
use crate::store::audit::AuditEntry;
use crate::store::{StoreError, users};

/// Header carrying the request id (kept when the client sends one).
pub const REQUEST_ID: &str = "x-request-id";
/// Answers larger than this are not copied into the audit trail.
const MAX_RECORDED: u64 = 64 * 1024;

/// The guard's state: governance and the unguarded routes, which it asks
/// for a target's state before a change.
#[derive(Clone)]
pub struct GuardState {
    /// Users, sessions, store.
    pub governance: Arc<Governance>,
    /// The management routes without this layer.
    pub inner: Router,
}

/// Why a caller was turned away.
enum Refusal {
    Auth(AuthError),
    Forbidden(String),
    Store(StoreError),
}

impl Refusal {
    fn response(&self, governance: &Governance) -> Response {
        match self {
            Self::Auth(err) => refuse(&governance.auth, err),
            Self::Forbidden(detail) => {
                governance.auth.failures.count_forbidden();
                Problem::new(StatusCode::FORBIDDEN, detail.clone()).into_response()
            }
            Self::Store(err) => {
                tracing::error!(%err, "management store failed while checking a caller");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the management store is unavailable",
                )
                .into_response()
            }
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::Auth(err) => err.to_string(),
            Self::Forbidden(detail) => detail.clone(),
            Self::Store(err) => err.to_string(),
        }
    }
}

/// The layer; see the module docs.
pub async fn layer(State(state): State<GuardState>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if !path.starts_with("/api/") || crate::api::openapi::is_public(&path) {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let meta = request_meta(&request);
    request.extensions_mut().insert(meta.clone());
    let governance = &state.governance;
    let permission = roles::classify(&method, &path);
    if permission == Some(Permission::Public) {
        return with_request_id(next.run(request).await, &meta);
    }
    let caller = match identify(governance, request.headers()).await {
        Ok(caller) => caller,
        Err(refusal) => {
            let response = refusal.response(governance);
            let entry = refused_entry(&method, &path, &meta, None, &refusal.detail(), &response);
            audit::append(&governance.store, entry).await;
            return with_request_id(response, &meta);
        }
    };
    let refusal = match permission {
        None => Some(Refusal::Forbidden(format!(
            "{method} {path} is not classified in the role table: refused for every role"
        ))),
        Some(permission) if !permission.allows(caller.role) => Some(Refusal::Forbidden(format!(
            "role '{}' may not {method} {path}: it needs the '{}' permission ({})",
            caller.role,
            permission.as_str(),
            role_list(permission)
        ))),
        Some(_) => None,
    };
    if let Some(refusal) = refusal {
        tracing::warn!(actor = %caller.actor, role = %caller.role, %method, %path, "management request refused");
        let response = refusal.response(governance);
        let entry = refused_entry(
            &method,
            &path,
            &meta,
            Some(&caller),
            &refusal.detail(),
            &response,
        );
        audit::append(&governance.store, entry).await;
        return with_request_id(response, &meta);
    }
    request.extensions_mut().insert(caller.clone());
    if matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return with_request_id(next.run(request).await, &meta);
    }
    let before = match (
        method != Method::POST || path.matches('/').count() > 4,
        audit::state_path(&path),
    ) {
        (true, Some(state_path)) => current_state(&state.inner, &state_path).await,
        _ => None,
    };
    let response = next.run(request).await;
    let (response, answer) = recorded(response).await;
    let status = response.status();
    let detail = answer
        .as_ref()
        .filter(|_| !status.is_success())
        .and_then(|a| a.get("detail"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let after = if status.is_success() && method != Method::DELETE {
        answer.as_ref().map(audit::masked)
    } else {
        None
    };
    let entry = AuditEntry {
        actor: caller.actor.clone(),
        role: caller.role.to_string(),
        credential: caller.credential.clone(),
        action: audit::action(&method, &path),
        target: audit::target(&path, answer.as_ref().filter(|_| status.is_success())),
        outcome: if status.is_success() {
            "success"
        } else {
            "failure"
        }
        .into(),
        status: i64::from(status.as_u16()),
        request_id: meta.request_id.clone(),
        client: meta.client.clone(),
        before: before.as_ref().map(audit::masked),
        after,
        detail,
        ..AuditEntry::default()
    };
    audit::append(&governance.store, entry).await;
    with_request_id(response, &meta)
}

/// The caller of `request` and their role.
async fn identify(governance: &Governance, headers: &HeaderMap) -> Result<Caller, Refusal> {
    let auth = &governance.auth;
    if !auth.enabled() {
        return Ok(Caller {
            actor: "anonymous".into(),
            role: Role::Admin,
            credential: "anonymous".into(),
        });
    }
    let presented = credential(headers);
    if let Some(Credential::Bearer(token)) = presented
        && let Some(claims) = governance.sessions.verify(token)
    {
        let user = users::get(&governance.store, &claims.sub)
            .await
            .map_err(Refusal::Store)?
            .filter(|user| user.status == "active")
            .ok_or(Refusal::Forbidden(format!(
                "user '{}' no longer exists or is disabled",
                claims.sub
            )))?;
        return Ok(Caller {
            role: role_of(&user.role)?,
            credential: format!("login:{}", user.name),
            actor: user.name,
        });
    }
    let identity = auth.authenticate(presented).await.map_err(Refusal::Auth)?;
    auth.limits()
        .admit_key(&identity.subject)
        .await
        .map_err(|limited| Refusal::Auth(limited.into()))?;
    let user = users::get(&governance.store, &identity.user)
        .await
        .map_err(Refusal::Store)?;
    let role = match user {
        Some(user) if user.status == "active" => role_of(&user.role)?,
        Some(user) => {
            return Err(Refusal::Forbidden(format!(
                "user '{}' is disabled",
                user.name
            )));
        }
        // The first-start admin key and admin keys of the config file
        // belong to no stored user: they stay admins.
        None if identity.is_admin() => Role::Admin,
        None => {
            return Err(Refusal::Forbidden(format!(
                "the management API needs a management user: '{}' is not one (see `bulwark user add`)",
                identity.user
            )));
        }
    };
    Ok(Caller {
        actor: identity.user.to_string(),
        role,
        credential: identity.subject.to_string(),
    })
}

fn role_of(stored: &str) -> Result<Role, Refusal> {
    stored
        .parse()
        .map_err(|err: roles::UnknownRole| Refusal::Forbidden(err.to_string()))
}

fn role_list(permission: Permission) -> String {
    let roles: Vec<&str> = permission.roles().into_iter().map(Role::as_str).collect();
    format!("allowed: {}", roles.join(", "))
}

fn request_meta(request: &Request) -> RequestMeta {
    // The request span's id (the client's `X-Request-Id` when it sent a
    // usable one), so the audit entry, the log lines and the answer agree.
    let request_id = request
        .extensions()
        .get::<crate::telemetry::traces::http::RequestId>()
        .cloned()
        .or_else(|| crate::telemetry::traces::http::RequestId::from_client(request.headers()))
        .map_or_else(
            || audit::entry_id(crate::store::now_ms()),
            |id| id.as_str().to_owned(),
        );
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
        .unwrap_or_default();
    RequestMeta { request_id, client }
}

fn with_request_id(mut response: Response, meta: &RequestMeta) -> Response {
    if let Ok(value) = HeaderValue::from_str(&meta.request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// The audit entry of a refusal.
fn refused_entry(
    method: &Method,
    path: &str,
    meta: &RequestMeta,
    caller: Option<&Caller>,
    detail: &str,
    response: &Response,
) -> AuditEntry {
    let status = response.status();
    let (action, outcome) = match status {
        StatusCode::UNAUTHORIZED => ("auth.failed", "failure"),
        StatusCode::TOO_MANY_REQUESTS => ("auth.rate_limited", "rate_limited"),
        _ => ("auth.refused", "refused"),
    };
    AuditEntry {
        actor: caller.map_or_else(|| "unknown".to_owned(), |c| c.actor.clone()),
        role: caller.map(|c| c.role.to_string()).unwrap_or_default(),
        credential: caller.map(|c| c.credential.clone()).unwrap_or_default(),
        action: action.into(),
        target: format!("{method} {path}"),
        outcome: outcome.into(),
        status: i64::from(status.as_u16()),
        request_id: meta.request_id.clone(),
        client: meta.client.clone(),
        detail: crate::mask::mask(detail, []),
        ..AuditEntry::default()
    }
}

/// The target's current state as its `GET` shows it (secrets already
/// masked by the resource), or `None` when there is none.
async fn current_state(inner: &Router, path: &str) -> Option<Value> {
    let request = Request::get(path).body(Body::empty()).ok()?;
    let response = inner.clone().oneshot(request).await.ok()?;
    if response.status() != StatusCode::OK {
        return None;
    }
    let bytes = axum::body::to_bytes(response.into_body(), usize::try_from(MAX_RECORDED).ok()?)
        .await
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The response as sent and its JSON, when it is small enough to record.
async fn recorded(response: Response) -> (Response, Option<Value>) {
    let small = response
        .body()
        .size_hint()
        .upper()
        .is_some_and(|upper| upper <= MAX_RECORDED);
    if !small {
        return (response, None);
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::try_from(MAX_RECORDED).unwrap_or(usize::MAX))
        .await
        .unwrap_or_else(|_| Bytes::new());
    let json = serde_json::from_slice(&bytes).ok();
    (Response::from_parts(parts, Body::from(bytes)), json)
}
