//! `/api/v1/keys`: API keys. Creating one answers the key once; nothing
//! else ever shows it (the store keeps its hash). A revocation holds on the
//! key's very next request. Admins see and touch every key; other roles
//! only their own (another user's key answers 404, as if absent).
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::page::ListQuery;
use super::problem::{Problem, json_object, take_string};
use crate::config::auth::{ADMIN_PROJECT, KeyEntry};
use crate::control::ControlPlane;
use crate::control::credentials::{self, KeyCreateError};
use crate::govern::Caller;
use crate::govern::roles::Role;
use crate::store::keys;
use crate::store::named::PROJECTS;

type Answer = Result<(StatusCode, Json<Value>), Problem>;
type Who = Option<Extension<Caller>>;

/// True when `caller` may see `key` (no caller: an internal request).
fn owns(caller: &Who, key: &KeyEntry) -> bool {
    caller
        .as_ref()
        .is_none_or(|Extension(caller)| caller.is_admin() || caller.actor == key.user)
}

/// The key `id` when `caller` may see it, with its source.
async fn visible(
    control: &ControlPlane,
    caller: &Who,
    id: &str,
) -> Result<(KeyEntry, &'static str), Problem> {
    let found = match control.credentials.file().keys.iter().find(|k| k.id == id) {
        Some(key) => Some((key.clone(), "file")),
        None => keys::get(&control.store, id).await?.map(|key| (key, "api")),
    };
    found
        .filter(|(key, _)| owns(caller, key))
        .ok_or_else(|| Problem::not_found("key", id))
}

fn shown(key: &KeyEntry, source: &str) -> Value {
    json!({
        "id": key.id,
        "user": key.user,
        "project": key.project,
        "revoked": key.revoked,
        "status": if key.revoked { "revoked" } else { "active" },
        "created_at": key.created_at,
        "source": source,
    })
}

async fn applied(control: &ControlPlane) -> Result<(), Problem> {
    control.credentials.reload(&control.store).await?;
    Ok(())
}

/// `GET /api/v1/keys?project=&status=active|revoked&limit=&offset=`
#[utoipa::path(
    get,
    path = "/api/v1/keys",
    tag = "keys",
    summary = "List API keys (never the keys themselves)",
    params(("limit" = Option<usize>, Query, description = "Most items (default 50, at most 500)"), ("offset" = Option<usize>, Query, description = "Items to skip"), ("status" = Option<String>, Query, description = "Only items in this state"), ("project" = Option<String>, Query, description = "Only keys of this project"), ("source" = Option<String>, Query, description = "`file` or `api`")),
    responses(
        (status = 200, description = "A page of keys", body = super::openapi::Page),
        (status = 422, response = super::openapi::Invalid),
    )
)]
pub(super) async fn list(
    State(control): State<Arc<ControlPlane>>,
    caller: Who,
    Query(query): Query<ListQuery>,
) -> Answer {
    let file = control.credentials.file();
    let mut items: Vec<Value> = file
        .keys
        .iter()
        .filter(|key| owns(&caller, key))
        .map(|key| shown(key, "file"))
        .collect();
    items.extend(
        keys::all(&control.store)
            .await?
            .iter()
            .filter(|key| owns(&caller, key))
            .map(|key| shown(key, "api")),
    );
    items.retain(|item| {
        ListQuery::keeps(
            query.project.as_ref(),
            item["project"].as_str().unwrap_or_default(),
        ) && ListQuery::keeps(
            query.status.as_ref(),
            item["status"].as_str().unwrap_or_default(),
        ) && ListQuery::keeps(
            query.source.as_ref(),
            item["source"].as_str().unwrap_or_default(),
        )
    });
    Ok((StatusCode::OK, Json(query.page(items)?)))
}

/// `GET /api/v1/keys/{id}`
#[utoipa::path(
    get,
    path = "/api/v1/keys/{id}",
    tag = "keys",
    summary = "Show an API key",
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 200, description = "The key (without its secret)", body = super::openapi::Key),
        (status = 404, response = super::openapi::NotFound),
    )
)]
pub(super) async fn get(
    State(control): State<Arc<ControlPlane>>,
    caller: Who,
    Path(id): Path<String>,
) -> Answer {
    let (key, source) = visible(&control, &caller, &id).await?;
    Ok((StatusCode::OK, Json(shown(&key, source))))
}

/// `POST /api/v1/keys` with `{"user", "project"}`: `201` with the key in
/// `key`, shown this once.
#[utoipa::path(
    post,
    path = "/api/v1/keys",
    tag = "keys",
    summary = "Create an API key",
    request_body = super::openapi::KeyBody,
    responses(
        (status = 201, description = "Created; `key` is shown this once", body = super::openapi::Key),
        (status = 422, response = super::openapi::Invalid),
    )
)]
pub(super) async fn create(
    State(control): State<Arc<ControlPlane>>,
    caller: Who,
    body: Bytes,
) -> Answer {
    let mut body = json_object(&body)?;
    let restricted = caller.as_ref().filter(|Extension(c)| !c.is_admin());
    // Non-admins make keys for themselves: `user` defaults to them.
    let user = match (restricted, body.contains_key("user")) {
        (Some(Extension(caller)), false) => caller.actor.clone(),
        _ => take_string(&mut body, "user")?,
    };
    let project = take_string(&mut body, "project")?;
    if let Some(Extension(caller)) = restricted {
        if user != caller.actor {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                format!("role '{}' may create keys for itself only", caller.role),
            ));
        }
        if project == ADMIN_PROJECT {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "only admins may create keys in the admin project",
            ));
        }
        // A user's projects are those it holds a live key in; without this a
        // user of one project could mint itself a key to any other.
        if caller.role == Role::User && !member_projects(&control, &user).await?.contains(&project)
        {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                format!(
                    "role 'user' may create keys only in projects it already holds a key in; '{project}' is not one"
                ),
            ));
        }
    }
    if let Some(field) = body.keys().next() {
        return Err(Problem::invalid(
            field.clone(),
            format!("unknown field `{field}`; expected `user` and `project`"),
        ));
    }
    let known = project == ADMIN_PROJECT
        || control.credentials.file().projects.contains_key(&project)
        || PROJECTS.get(&control.store, &project).await?.is_some();
    if !known {
        return Err(Problem::invalid(
            "project",
            format!("project '{project}' does not exist"),
        ));
    }
    let (key, entry) = credentials::create_key(&control.store, &user, &project)
        .await
        .map_err(|err| match err {
            KeyCreateError::Store(store) => Problem::from(store),
            other => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        })?;
    applied(&control).await?;
    let mut item = shown(&entry, "api");
    item["key"] = json!(key.secret);
    Ok((StatusCode::CREATED, Json(item)))
}

/// The projects `user` holds a live (not revoked) key in.
async fn member_projects(
    control: &ControlPlane,
    user: &str,
) -> Result<std::collections::BTreeSet<String>, Problem> {
    let stored = keys::all(&control.store).await?;
    Ok(control
        .credentials
        .file()
        .keys
        .iter()
        .chain(stored.iter())
        .filter(|key| key.user == user && !key.revoked)
        .map(|key| key.project.clone())
        .collect())
}

fn from_file(control: &ControlPlane, id: &str) -> Result<(), Problem> {
    if control.credentials.file().keys.iter().any(|k| k.id == id) {
        return Err(Problem::conflict(format!(
            "key '{id}' is declared in the config file (source: file): set `revoked = true` on it there"
        )));
    }
    Ok(())
}

/// `POST /api/v1/keys/{id}/revoke`
#[utoipa::path(
    post,
    path = "/api/v1/keys/{id}/revoke",
    tag = "keys",
    summary = "Revoke an API key (refused on its next request)",
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 200, description = "Revoked", body = super::openapi::Key),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
    )
)]
pub(super) async fn revoke(
    State(control): State<Arc<ControlPlane>>,
    caller: Who,
    Path(id): Path<String>,
) -> Answer {
    visible(&control, &caller, &id).await?;
    from_file(&control, &id)?;
    if !keys::revoke(&control.store, &id).await? {
        return Err(Problem::not_found("key", &id));
    }
    applied(&control).await?;
    get(State(control), caller, Path(id)).await
}

/// `DELETE /api/v1/keys/{id}`
#[utoipa::path(
    delete,
    path = "/api/v1/keys/{id}",
    tag = "keys",
    summary = "Delete an API key",
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
    )
)]
pub(super) async fn delete(
    State(control): State<Arc<ControlPlane>>,
    caller: Who,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    visible(&control, &caller, &id).await?;
    from_file(&control, &id)?;
    if !keys::delete(&control.store, &id).await? {
        return Err(Problem::not_found("key", &id));
    }
    applied(&control).await?;
    Ok(StatusCode::NO_CONTENT)
}
