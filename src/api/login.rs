//! `POST /api/v1/auth/login`: user name and password for a short-lived
//! session token. Failures are rate-limited per user name and per client
//! address, counted towards the user's lockout, and audited.
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::problem::{Problem, json_object, take_string};
use crate::govern::password;
use crate::govern::{Governance, RequestMeta, audit};
use crate::store::audit::AuditEntry;
use crate::store::{now_ms, users};

/// What a login attempt came to, for the answer and the audit entry.
enum Outcome {
    Success { role: String },
    Failure,
    Locked { until: i64 },
    RateLimited { retry_secs: u64 },
}

/// `POST /api/v1/auth/login` with `{"username", "password"}`.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    summary = "Log in: a short-lived session token for the management API",
    request_body = super::openapi::LoginBody,
    security(()),
    responses(
        (status = 200, description = "`token` to send as `Authorization: Bearer`", body = super::openapi::Session),
        (status = 401, description = "Wrong user name or password", content_type = "application/problem+json"),
        (status = 423, description = "Locked after repeated failures", content_type = "application/problem+json"),
        (status = 429, description = "Too many failures from this address or for this user", content_type = "application/problem+json"),
    )
)]
pub(super) async fn login(
    State(governance): State<Arc<Governance>>,
    meta: Option<Extension<RequestMeta>>,
    body: Bytes,
) -> Result<Response, Problem> {
    let meta = meta.map(|Extension(meta)| meta).unwrap_or_default();
    let mut body = json_object(&body)?;
    let name = take_string(&mut body, "username")?;
    let password = take_string(&mut body, "password")?;
    let outcome = attempt(&governance, &meta, &name, password).await?;
    let (status, detail) = match &outcome {
        Outcome::Success { .. } => (StatusCode::OK, String::new()),
        Outcome::Failure => (
            StatusCode::UNAUTHORIZED,
            "wrong user name or password".to_owned(),
        ),
        Outcome::Locked { until } => (
            StatusCode::LOCKED,
            format!(
                "too many failed logins: locked for {} more seconds (an admin can lift it with reset-password)",
                (until - now_ms()).max(0) / 1000 + 1
            ),
        ),
        Outcome::RateLimited { retry_secs } => (
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many failed logins: retry in {retry_secs} seconds"),
        ),
    };
    let entry = AuditEntry {
        actor: name.clone(),
        role: match &outcome {
            Outcome::Success { role } => role.clone(),
            _ => String::new(),
        },
        credential: format!("login:{name}"),
        action: "auth.login".into(),
        target: format!("users/{name}"),
        outcome: match outcome {
            Outcome::Success { .. } => "success",
            Outcome::Failure => "failure",
            Outcome::Locked { .. } => "locked",
            Outcome::RateLimited { .. } => "rate_limited",
        }
        .into(),
        status: i64::from(status.as_u16()),
        request_id: meta.request_id.clone(),
        client: meta.client.clone(),
        detail: detail.clone(),
        ..AuditEntry::default()
    };
    audit::append(&governance.store, entry).await;
    if let Outcome::Success { role } = outcome {
        let (token, expires_at) = governance
            .sessions
            .issue(&name)
            .map_err(|err| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))?;
        tracing::info!(user = %name, "management login");
        let body = json!({
            "token": token,
            "token_type": "Bearer",
            "expires_at": expires_at,
            "username": name,
            "role": role,
        });
        return Ok((StatusCode::OK, Json(body)).into_response());
    }
    tracing::warn!(user = %name, client = %meta.client, %status, "management login refused");
    let mut response = Problem::new(status, detail).into_response();
    if let Outcome::RateLimited { retry_secs } = outcome
        && let Ok(value) = HeaderValue::from_str(&retry_secs.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    Ok(response)
}

async fn attempt(
    governance: &Governance,
    meta: &RequestMeta,
    name: &str,
    password: String,
) -> Result<Outcome, Problem> {
    let limits = &governance.login;
    let by_user = format!("user:{name}");
    let by_address = format!("addr:{}", meta.client);
    for (key, limit) in [
        (&by_address, limits.address_failures_per_minute),
        (&by_user, limits.user_failures_per_minute),
    ] {
        if governance.failures.count(key) >= limit.max(1) {
            let retry_secs = governance.failures.retry_after(key).as_secs().max(1);
            return Ok(Outcome::RateLimited { retry_secs });
        }
    }
    let user = users::get(&governance.store, name).await?;
    if let Some(user) = &user
        && user.locked_until > now_ms()
    {
        return Ok(Outcome::Locked {
            until: user.locked_until,
        });
    }
    let active = user.as_ref().filter(|u| u.status == "active");
    let matched = password::verify(password, active.map(|u| u.password.clone())).await;
    match active {
        Some(user) if matched => {
            users::record_login(&governance.store, name, true, None).await?;
            Ok(Outcome::Success {
                role: user.role.clone(),
            })
        }
        _ => {
            governance.failures.fail(&by_user);
            governance.failures.fail(&by_address);
            if let Some(user) = &user {
                let failures = user.failed_logins.saturating_add(1);
                let lock = (failures >= i64::from(limits.max_failures.max(1))).then(|| {
                    now_ms().saturating_add(
                        i64::try_from(limits.lockout_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
                    )
                });
                users::record_login(&governance.store, name, false, lock).await?;
                if let Some(until) = lock {
                    tracing::warn!(user = %name, "management user locked after repeated failed logins");
                    return Ok(Outcome::Locked { until });
                }
            }
            Ok(Outcome::Failure)
        }
    }
}
