//! `/api/v1/projects`: which upstreams and tools a project's keys may use.
//! A change holds on the next request (the credential index is swapped
//! before the answer). Projects from the config file are read-only here.
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::page::ListQuery;
use super::problem::{Problem, json_object, take_string};
use super::resource;
use crate::config::auth::{ADMIN_PROJECT, ProjectConfig};
use crate::control::ControlPlane;
use crate::store::keys;
use crate::store::named::{PROJECTS, Record};

type Answer = Result<(StatusCode, Json<Value>), Problem>;

fn stored_resource(record: &Record) -> Value {
    let shown = resource::shown(
        record.definition.clone(),
        &record.name,
        "api",
        record.enabled,
    );
    resource::stamped(shown, record)
}

fn file_resource(control: &ControlPlane, name: &str) -> Option<Value> {
    let file = control.credentials.file();
    let project = file.projects.get(name)?;
    Some(resource::shown(
        serde_json::to_value(project).unwrap_or_default(),
        name,
        "file",
        true,
    ))
}

fn parse(body: Map<String, Value>) -> Result<Value, Problem> {
    let project: ProjectConfig = serde_path_to_error::deserialize(Value::Object(body))
        .map_err(|err| Problem::invalid(err.path().to_string(), err.inner().to_string()))?;
    Ok(serde_json::to_value(project).unwrap_or_default())
}

async fn applied(control: &ControlPlane) -> Result<(), Problem> {
    control.credentials.reload(&control.store).await?;
    Ok(())
}

/// `GET /api/v1/projects?source=&limit=&offset=`
#[utoipa::path(
    get,
    path = "/api/v1/projects",
    tag = "projects",
    summary = "List projects",
    params(("limit" = Option<usize>, Query, description = "Most items (default 50, at most 500)"), ("offset" = Option<usize>, Query, description = "Items to skip"), ("source" = Option<String>, Query, description = "`file` or `api`")),
    responses(
        (status = 200, description = "A page of projects", body = super::openapi::Page),
        (status = 422, response = super::openapi::Invalid),
    )
)]
pub(super) async fn list(
    State(control): State<Arc<ControlPlane>>,
    Query(query): Query<ListQuery>,
) -> Answer {
    let file = control.credentials.file();
    let mut items: Vec<Value> = file
        .projects
        .keys()
        .filter_map(|name| file_resource(&control, name))
        .collect();
    for record in PROJECTS.all(&control.store).await? {
        if !file.projects.contains_key(&record.name) {
            items.push(stored_resource(&record));
        }
    }
    items.retain(|item| {
        ListQuery::keeps(
            query.source.as_ref(),
            item["source"].as_str().unwrap_or_default(),
        )
    });
    Ok((StatusCode::OK, Json(query.page(items)?)))
}

/// `GET /api/v1/projects/{name}`
#[utoipa::path(
    get,
    path = "/api/v1/projects/{name}",
    tag = "projects",
    summary = "Show a project",
    params(("name" = String, Path, description = "The project's name")),
    responses(
        (status = 200, description = "The project", body = super::openapi::Project),
        (status = 404, response = super::openapi::NotFound),
    )
)]
pub(super) async fn get(
    State(control): State<Arc<ControlPlane>>,
    Path(name): Path<String>,
) -> Answer {
    if let Some(item) = file_resource(&control, &name) {
        return Ok((StatusCode::OK, Json(item)));
    }
    let record = PROJECTS
        .get(&control.store, &name)
        .await?
        .ok_or_else(|| Problem::not_found("project", &name))?;
    Ok((StatusCode::OK, Json(stored_resource(&record))))
}

/// `POST /api/v1/projects` with `{"name", "upstreams": [...], "tools": {...}}` (optionally `"tool_listing"`, `"pinned_tools"`).
#[utoipa::path(
    post,
    path = "/api/v1/projects",
    tag = "projects",
    summary = "Add a project",
    request_body = super::openapi::ProjectBody,
    responses(
        (status = 201, description = "Added", body = super::openapi::Project),
        (status = 409, response = super::openapi::Conflict),
        (status = 422, response = super::openapi::Invalid),
    )
)]
pub(super) async fn create(State(control): State<Arc<ControlPlane>>, body: Bytes) -> Answer {
    let mut body = json_object(&body)?;
    let name = take_string(&mut body, "name")?;
    if name == ADMIN_PROJECT || control.credentials.file().projects.contains_key(&name) {
        return Err(Problem::conflict(format!(
            "project '{name}' already exists in the config file"
        )));
    }
    let enabled = body
        .remove("enabled")
        .and_then(|v| v.as_bool())
        .unwrap_or(true);
    let definition = parse(body)?;
    let record = PROJECTS
        .insert(&control.store, &name, &definition, enabled)
        .await?;
    applied(&control).await?;
    Ok((StatusCode::CREATED, Json(stored_resource(&record))))
}

async fn stored(control: &ControlPlane, name: &str) -> Result<Record, Problem> {
    let in_file = name == ADMIN_PROJECT || control.credentials.file().projects.contains_key(name);
    resource::stored(PROJECTS, &control.store, "project", name, in_file).await
}

async fn update(control: &ControlPlane, name: &str, body: &[u8], merge: bool) -> Answer {
    let current = stored(control, name).await?;
    let mut body = json_object(body)?;
    let enabled = body
        .remove("enabled")
        .and_then(|v| v.as_bool())
        .unwrap_or(current.enabled);
    let definition = parse(resource::next_definition(&current.definition, body, merge))?;
    PROJECTS
        .update(&control.store, name, &definition, enabled)
        .await?;
    applied(control).await?;
    let record = stored(control, name).await?;
    Ok((StatusCode::OK, Json(stored_resource(&record))))
}

/// `PUT /api/v1/projects/{name}`: replaces the grant.
#[utoipa::path(
    put,
    path = "/api/v1/projects/{name}",
    tag = "projects",
    summary = "Replace a project",
    params(("name" = String, Path, description = "The project's name")),
    request_body = super::openapi::ProjectBody,
    responses(
        (status = 200, description = "Updated", body = super::openapi::Project),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
        (status = 422, response = super::openapi::Invalid),
    )
)]
pub(super) async fn replace(
    State(control): State<Arc<ControlPlane>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Answer {
    update(&control, &name, &body, false).await
}

/// `PATCH /api/v1/projects/{name}`: merges top-level fields.
#[utoipa::path(
    patch,
    path = "/api/v1/projects/{name}",
    tag = "projects",
    summary = "Merge fields into a project",
    params(("name" = String, Path, description = "The project's name")),
    request_body = super::openapi::ProjectBody,
    responses(
        (status = 200, description = "Updated", body = super::openapi::Project),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
        (status = 422, response = super::openapi::Invalid),
    )
)]
pub(super) async fn patch(
    State(control): State<Arc<ControlPlane>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Answer {
    update(&control, &name, &body, true).await
}

/// `DELETE /api/v1/projects/{name}`: `409` while keys still belong to it.
#[utoipa::path(
    delete,
    path = "/api/v1/projects/{name}",
    tag = "projects",
    summary = "Remove a project",
    params(("name" = String, Path, description = "The project's name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
    )
)]
pub(super) async fn delete(
    State(control): State<Arc<ControlPlane>>,
    Path(name): Path<String>,
) -> Result<StatusCode, Problem> {
    stored(&control, &name).await?;
    let keys = keys::count_in_project(&control.store, &name).await?;
    if keys > 0 {
        return Err(Problem::conflict(format!(
            "project '{name}' still has {keys} key(s): delete them first"
        )));
    }
    PROJECTS.delete(&control.store, &name).await?;
    applied(&control).await?;
    Ok(StatusCode::NO_CONTENT)
}
