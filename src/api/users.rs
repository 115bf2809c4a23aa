//! `/api/v1/users`: management users. The password goes in (create,
//! reset-password) and is never shown or logged; the store keeps its
//! argon2id hash.
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::page::ListQuery;
use super::problem::{Problem, json_object, take_string};
use crate::govern::Governance;
use crate::govern::password::{self, PasswordError};
use crate::govern::roles::Role;
use crate::store::now_ms;
use crate::store::users::{self, UserRecord};

type Answer = Result<(StatusCode, Json<Value>), Problem>;

const STATUSES: [&str; 2] = ["active", "disabled"];

fn shown(user: &UserRecord) -> Value {
    json!({
        "username": user.name,
        "email": user.email,
        "role": user.role,
        "status": user.status,
        "locked": user.locked_until > now_ms(),
        "created_at": user.created_at,
        "updated_at": user.updated_at,
    })
}

async fn hashed(password: String) -> Result<String, Problem> {
    password::hash(password).await.map_err(|err| match err {
        PasswordError::TooShort => Problem::invalid("password", err.to_string()),
        PasswordError::Hash(_) => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    })
}

fn take_role(body: &mut Map<String, Value>) -> Result<Option<String>, Problem> {
    match body.remove("role") {
        None => Ok(None),
        Some(Value::String(role)) => role
            .parse::<Role>()
            .map(|role| Some(role.as_str().to_owned()))
            .map_err(|err| Problem::invalid("role", err.to_string())),
        Some(_) => Err(Problem::invalid("role", "`role` must be a string")),
    }
}

fn take_optional(body: &mut Map<String, Value>, field: &str) -> Result<Option<String>, Problem> {
    match body.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value)),
        Some(_) => Err(Problem::invalid(
            field,
            format!("`{field}` must be a string"),
        )),
    }
}

fn no_more(body: &Map<String, Value>, expected: &str) -> Result<(), Problem> {
    match body.keys().next() {
        Some(field) => Err(Problem::invalid(
            field.clone(),
            format!("unknown field `{field}`; expected {expected}"),
        )),
        None => Ok(()),
    }
}

fn valid_name(name: &str) -> Result<(), Problem> {
    if users::valid_name(name) {
        Ok(())
    } else {
        Err(Problem::invalid(
            "username",
            "`username` may hold letters, digits, '.', '_', '-' and '@' (at most 64)",
        ))
    }
}

async fn existing(governance: &Governance, name: &str) -> Result<UserRecord, Problem> {
    users::get(&governance.store, name)
        .await?
        .ok_or_else(|| Problem::not_found("user", name))
}

/// Refuses a change that would leave no active admin.
async fn keeps_an_admin(
    governance: &Governance,
    before: &UserRecord,
    after: Option<&UserRecord>,
) -> Result<(), Problem> {
    let was_admin = before.role == "admin" && before.status == "active";
    let stays_admin = after.is_some_and(|u| u.role == "admin" && u.status == "active");
    if was_admin && !stays_admin && users::count_active(&governance.store, "admin").await? <= 1 {
        return Err(Problem::conflict(format!(
            "'{}' is the last active admin user: add another admin first",
            before.name
        )));
    }
    Ok(())
}

/// `GET /api/v1/users?status=&limit=&offset=`
#[utoipa::path(
    get,
    path = "/api/v1/users",
    tag = "users",
    summary = "List management users (never their passwords)",
    params(("limit" = Option<usize>, Query, description = "Most items (default 50, at most 500)"), ("offset" = Option<usize>, Query, description = "Items to skip"), ("status" = Option<String>, Query, description = "`active` or `disabled`")),
    responses(
        (status = 200, description = "A page of users", body = super::openapi::Page),
        (status = 422, response = super::openapi::Invalid),
    )
)]
pub(super) async fn list(
    State(governance): State<Arc<Governance>>,
    Query(query): Query<ListQuery>,
) -> Answer {
    let mut items: Vec<Value> = users::all(&governance.store)
        .await?
        .iter()
        .map(shown)
        .collect();
    items.retain(|item| {
        ListQuery::keeps(
            query.status.as_ref(),
            item["status"].as_str().unwrap_or_default(),
        )
    });
    Ok((StatusCode::OK, Json(query.page(items)?)))
}

/// `GET /api/v1/users/{name}`
#[utoipa::path(
    get,
    path = "/api/v1/users/{name}",
    tag = "users",
    summary = "Show a management user",
    params(("name" = String, Path, description = "The user name")),
    responses(
        (status = 200, description = "The user", body = super::openapi::User),
        (status = 404, response = super::openapi::NotFound),
    )
)]
pub(super) async fn get(
    State(governance): State<Arc<Governance>>,
    Path(name): Path<String>,
) -> Answer {
    Ok((
        StatusCode::OK,
        Json(shown(&existing(&governance, &name).await?)),
    ))
}

/// `POST /api/v1/users` with `{"username", "password", "role", "email"}`.
#[utoipa::path(
    post,
    path = "/api/v1/users",
    tag = "users",
    summary = "Create a management user",
    request_body = super::openapi::UserBody,
    responses(
        (status = 201, description = "Created", body = super::openapi::User),
        (status = 409, response = super::openapi::Conflict),
        (status = 422, response = super::openapi::Invalid),
    )
)]
pub(super) async fn create(State(governance): State<Arc<Governance>>, body: Bytes) -> Answer {
    let mut body = json_object(&body)?;
    let name = take_string(&mut body, "username")?;
    valid_name(&name)?;
    let password = take_string(&mut body, "password")?;
    let role =
        take_role(&mut body)?.ok_or_else(|| Problem::invalid("role", "`role` is required"))?;
    let email = take_optional(&mut body, "email")?.unwrap_or_default();
    no_more(&body, "`username`, `password`, `role` and `email`")?;
    let now = now_ms();
    let user = UserRecord {
        name,
        email,
        role,
        status: "active".into(),
        password: hashed(password).await?,
        failed_logins: 0,
        locked_until: 0,
        created_at: now,
        updated_at: now,
    };
    users::insert(&governance.store, &user).await?;
    tracing::info!(user = %user.name, role = %user.role, "management user created");
    Ok((StatusCode::CREATED, Json(shown(&user))))
}

/// `PATCH /api/v1/users/{name}` with any of `email`, `role`, `status`.
#[utoipa::path(
    patch,
    path = "/api/v1/users/{name}",
    tag = "users",
    summary = "Change a user's e-mail, role or status (`disabled` refuses their keys and logins)",
    params(("name" = String, Path, description = "The user name")),
    request_body = super::openapi::UserPatch,
    responses(
        (status = 200, description = "The user", body = super::openapi::User),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
        (status = 422, response = super::openapi::Invalid),
    )
)]
pub(super) async fn patch(
    State(governance): State<Arc<Governance>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Answer {
    let mut body = json_object(&body)?;
    if body.contains_key("password") {
        return Err(Problem::invalid(
            "password",
            format!("set a password with POST /api/v1/users/{name}/reset-password"),
        ));
    }
    let before = existing(&governance, &name).await?;
    let mut user = before.clone();
    if let Some(email) = take_optional(&mut body, "email")? {
        user.email = email;
    }
    if let Some(role) = take_role(&mut body)? {
        user.role = role;
    }
    if let Some(status) = take_optional(&mut body, "status")? {
        if !STATUSES.contains(&status.as_str()) {
            return Err(Problem::invalid(
                "status",
                "`status` must be `active` or `disabled`",
            ));
        }
        user.status = status;
    }
    no_more(&body, "`email`, `role` and `status`")?;
    keeps_an_admin(&governance, &before, Some(&user)).await?;
    if !users::update(&governance.store, &user).await? {
        return Err(Problem::not_found("user", &name));
    }
    if user.status != before.status {
        // Their keys stop (or work again) from the very next request.
        governance.credentials.reload(&governance.store).await?;
    }
    get(State(governance), Path(name)).await
}

/// `POST /api/v1/users/{name}/reset-password` with `{"password"}`; also
/// lifts a lockout.
#[utoipa::path(
    post,
    path = "/api/v1/users/{name}/reset-password",
    tag = "users",
    summary = "Set a user's password and lift any lockout",
    params(("name" = String, Path, description = "The user name")),
    request_body = super::openapi::PasswordBody,
    responses(
        (status = 200, description = "The user", body = super::openapi::User),
        (status = 404, response = super::openapi::NotFound),
        (status = 422, response = super::openapi::Invalid),
    )
)]
pub(super) async fn reset_password(
    State(governance): State<Arc<Governance>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Answer {
    let mut body = json_object(&body)?;
    let password = take_string(&mut body, "password")?;
    no_more(&body, "`password`")?;
    let mut user = existing(&governance, &name).await?;
    user.password = hashed(password).await?;
    user.failed_logins = 0;
    user.locked_until = 0;
    if !users::update(&governance.store, &user).await? {
        return Err(Problem::not_found("user", &name));
    }
    tracing::info!(user = %name, "management user password reset");
    get(State(governance), Path(name)).await
}

/// `DELETE /api/v1/users/{name}`
#[utoipa::path(
    delete,
    path = "/api/v1/users/{name}",
    tag = "users",
    summary = "Delete a management user (their keys lose management access)",
    params(("name" = String, Path, description = "The user name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
    )
)]
pub(super) async fn delete(
    State(governance): State<Arc<Governance>>,
    Path(name): Path<String>,
) -> Result<StatusCode, Problem> {
    let before = existing(&governance, &name).await?;
    keeps_an_admin(&governance, &before, None).await?;
    if !users::delete(&governance.store, &name).await? {
        return Err(Problem::not_found("user", &name));
    }
    if before.status != "active" {
        governance.credentials.reload(&governance.store).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
