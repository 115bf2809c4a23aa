//! `/api/v1/upstreams`: create, list, get, update, delete, enable, disable
//! and restart upstreams. Entries from the config file are listed with
//! `source: file` and are read-only here; entries created here live in the
//! store. Every change goes through the one reconcile path; secrets are
//! masked in every answer.
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::page::ListQuery;
use super::problem::{Problem, json_object, take_string};
use super::resource;
use crate::control::ControlPlane;
use crate::control::desired::{self, FieldError};
use crate::store::named::{Record, UPSTREAMS};
use crate::store::secrets;

type Answer = Result<(StatusCode, Json<Value>), Problem>;

/// One upstream as the API shows it: its table (secrets masked) plus
/// `name`, `source`, `enabled` and the live `status`.
fn resource(
    control: &ControlPlane,
    name: &str,
    source: &str,
    definition: &Value,
    enabled: bool,
) -> Value {
    let status = match control.registry().get(name) {
        Some(entry) => json!(entry.pool.state()),
        None if !enabled => json!("disabled"),
        None => json!("invalid"),
    };
    let mut shown = resource::shown(secrets::mask_upstream(definition), name, source, enabled);
    if let Value::Object(map) = &mut shown {
        map.insert("status".into(), status);
    }
    shown
}

fn stored_resource(control: &ControlPlane, record: &Record) -> Value {
    let shown = resource(
        control,
        &record.name,
        "api",
        &record.definition,
        record.enabled,
    );
    resource::stamped(shown, record)
}

fn file_resource(control: &ControlPlane, name: &str) -> Option<Value> {
    let file = control.file_config();
    let upstream = file.upstreams.get(name)?;
    Some(resource(
        control,
        name,
        "file",
        &desired::upstream_json(upstream),
        upstream.enabled,
    ))
}

fn invalid(err: FieldError) -> Problem {
    Problem::invalid(err.field, err.message)
}

/// `GET /api/v1/upstreams?status=&source=&limit=&offset=`
#[utoipa::path(
    get,
    path = "/api/v1/upstreams",
    tag = "upstreams",
    summary = "List upstreams",
    params(("limit" = Option<usize>, Query, description = "Most items (default 50, at most 500)"), ("offset" = Option<usize>, Query, description = "Items to skip"), ("status" = Option<String>, Query, description = "Only items in this state"), ("source" = Option<String>, Query, description = "`file` or `api`")),
    responses(
        (status = 200, description = "A page of upstreams", body = super::openapi::Page),
        (status = 422, response = super::openapi::Invalid),
    )
)]
pub(super) async fn list(
    State(control): State<Arc<ControlPlane>>,
    Query(query): Query<ListQuery>,
) -> Answer {
    let mut items = all(&control).await?;
    items.retain(|item| {
        ListQuery::keeps(
            query.status.as_ref(),
            item["status"].as_str().unwrap_or_default(),
        ) && ListQuery::keeps(
            query.source.as_ref(),
            item["source"].as_str().unwrap_or_default(),
        )
    });
    Ok((StatusCode::OK, Json(query.page(items)?)))
}

/// Every upstream (file entries first), as the API shows them; the
/// dashboard's stream pushes these too, so disabled upstreams stay visible.
pub(crate) async fn all(control: &ControlPlane) -> Result<Vec<Value>, Problem> {
    let file = control.file_config();
    let mut items: Vec<Value> = file
        .upstreams
        .keys()
        .filter_map(|name| file_resource(control, name))
        .collect();
    for record in UPSTREAMS.all(&control.store).await? {
        if !file.upstreams.contains_key(&record.name) {
            items.push(stored_resource(control, &record));
        }
    }
    Ok(items)
}

/// `GET /api/v1/upstreams/{name}`
#[utoipa::path(
    get,
    path = "/api/v1/upstreams/{name}",
    tag = "upstreams",
    summary = "Show an upstream",
    params(("name" = String, Path, description = "The upstream's name")),
    responses(
        (status = 200, description = "The upstream", body = super::openapi::Upstream),
        (status = 404, response = super::openapi::NotFound),
    )
)]
pub(super) async fn get(
    State(control): State<Arc<ControlPlane>>,
    Path(name): Path<String>,
) -> Answer {
    if let Some(shown) = file_resource(&control, &name) {
        return Ok((StatusCode::OK, Json(shown)));
    }
    let record = UPSTREAMS
        .get(&control.store, &name)
        .await?
        .ok_or_else(|| Problem::not_found("upstream", &name))?;
    Ok((StatusCode::OK, Json(stored_resource(&control, &record))))
}

/// Whether a stored or merged definition names a remote server.
fn is_remote(definition: &Value) -> bool {
    definition.get("url").is_some_and(|url| !url.is_null())
        || definition
            .get("urls")
            .and_then(Value::as_array)
            .is_some_and(|urls| !urls.is_empty())
}

/// Parses and checks a submitted table, as the config file's would be.
fn checked(
    control: &ControlPlane,
    name: &str,
    body: Map<String, Value>,
) -> Result<(Value, bool), Problem> {
    let upstream = desired::parse_upstream(Value::Object(body)).map_err(invalid)?;
    desired::check_upstream(&control.file_config(), name, &upstream).map_err(invalid)?;
    Ok((desired::upstream_json(&upstream), upstream.enabled))
}

/// `POST /api/v1/upstreams` with `{"name": …, <the fields of an [upstreams.NAME] table>}`:
/// `201` with the upstream once it is applied (started or failed).
#[utoipa::path(
    post,
    path = "/api/v1/upstreams",
    tag = "upstreams",
    summary = "Add an upstream",
    request_body = super::openapi::UpstreamBody,
    responses(
        (status = 201, description = "Added and applied (started or failed)", body = super::openapi::Upstream),
        (status = 409, response = super::openapi::Conflict),
        (status = 422, response = super::openapi::Invalid),
    )
)]
pub(super) async fn create(State(control): State<Arc<ControlPlane>>, body: Bytes) -> Answer {
    let mut body = json_object(&body)?;
    let name = take_string(&mut body, "name")?;
    if control.file_config().upstreams.contains_key(&name) {
        return Err(Problem::conflict(format!(
            "upstream '{name}' already exists in the config file"
        )));
    }
    let (definition, enabled) = checked(&control, &name, body)?;
    let record = UPSTREAMS
        .insert(&control.store, &name, &definition, enabled)
        .await?;
    control.reconcile().await?;
    Ok((
        StatusCode::CREATED,
        Json(stored_resource(&control, &record)),
    ))
}

/// The stored upstream `name`, or 404 / 409 (file entry).
async fn stored(control: &ControlPlane, name: &str) -> Result<Record, Problem> {
    let in_file = control.file_config().upstreams.contains_key(name);
    resource::stored(UPSTREAMS, &control.store, "upstream", name, in_file).await
}

/// `PUT` (replace the table) or `PATCH` (merge top-level fields) `/api/v1/upstreams/{name}`.
/// Secrets sent back masked keep their stored value. Only this upstream restarts.
pub(super) async fn update(
    control: &Arc<ControlPlane>,
    name: &str,
    body: &[u8],
    merge: bool,
) -> Answer {
    let current = stored(control, name).await?;
    let mut body = json_object(body)?;
    match body.remove("name") {
        Some(Value::String(given)) if given != name => {
            return Err(Problem::invalid(
                "name",
                "an upstream cannot be renamed: create a new one",
            ));
        }
        _ => {}
    }
    let sent: Vec<&str> = ["env", "args", "cwd"]
        .into_iter()
        .filter(|key| body.get(*key).is_some_and(|value| !value.is_null()))
        .collect();
    let was_remote = is_remote(&current.definition);
    let mut next = Value::Object(resource::next_definition(&current.definition, body, merge));
    // Launch settings a remote upstream was stored with (accepted before
    // they were refused) never reached its server: whether it stays remote
    // or becomes a command, it keeps only those this request sends (sent
    // with a `url`, they are refused below). `null` clears one.
    let now_remote = is_remote(&next);
    if let Value::Object(fields) = &mut next {
        for key in ["env", "args", "cwd"] {
            let unsent = !sent.contains(&key);
            if fields.get(key).is_some_and(Value::is_null) || (unsent && (was_remote || now_remote))
            {
                fields.remove(key);
            }
        }
    }
    secrets::keep_masked(&mut next, &current.definition);
    let Value::Object(next) = next else {
        return Err(Problem::invalid("body", "the body must be a JSON object"));
    };
    let (definition, enabled) = checked(control, name, next)?;
    UPSTREAMS
        .update(&control.store, name, &definition, enabled)
        .await?;
    control.reconcile().await?;
    let record = stored(control, name).await?;
    Ok((StatusCode::OK, Json(stored_resource(control, &record))))
}

/// `PUT /api/v1/upstreams/{name}`
#[utoipa::path(
    put,
    path = "/api/v1/upstreams/{name}",
    tag = "upstreams",
    summary = "Replace an upstream (restarts only it)",
    params(("name" = String, Path, description = "The upstream's name")),
    request_body = super::openapi::UpstreamBody,
    responses(
        (status = 200, description = "Updated and applied", body = super::openapi::Upstream),
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

/// `PATCH /api/v1/upstreams/{name}`
#[utoipa::path(
    patch,
    path = "/api/v1/upstreams/{name}",
    tag = "upstreams",
    summary = "Merge fields into an upstream (restarts only it)",
    params(("name" = String, Path, description = "The upstream's name")),
    request_body = super::openapi::UpstreamBody,
    responses(
        (status = 200, description = "Updated and applied", body = super::openapi::Upstream),
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

/// `DELETE /api/v1/upstreams/{name}`: `204` once its calls in flight have
/// finished (up to the drain timeout) and its processes are gone.
#[utoipa::path(
    delete,
    path = "/api/v1/upstreams/{name}",
    tag = "upstreams",
    summary = "Remove an upstream after draining its calls",
    params(("name" = String, Path, description = "The upstream's name")),
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
    UPSTREAMS.delete(&control.store, &name).await?;
    control.reconcile().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_enabled(control: &Arc<ControlPlane>, name: &str, enabled: bool) -> Answer {
    let current = stored(control, name).await?;
    let mut definition = current.definition;
    definition["enabled"] = json!(enabled);
    UPSTREAMS
        .update(&control.store, name, &definition, enabled)
        .await?;
    control.reconcile().await?;
    let record = stored(control, name).await?;
    Ok((StatusCode::OK, Json(stored_resource(control, &record))))
}

/// `POST /api/v1/upstreams/{name}/enable`
#[utoipa::path(
    post,
    path = "/api/v1/upstreams/{name}/enable",
    tag = "upstreams",
    summary = "Enable an upstream",
    params(("name" = String, Path, description = "The upstream's name")),
    responses(
        (status = 200, description = "Enabled", body = super::openapi::Upstream),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
    )
)]
pub(super) async fn enable(
    State(control): State<Arc<ControlPlane>>,
    Path(name): Path<String>,
) -> Answer {
    set_enabled(&control, &name, true).await
}

/// `POST /api/v1/upstreams/{name}/disable`: stops it (after draining).
#[utoipa::path(
    post,
    path = "/api/v1/upstreams/{name}/disable",
    tag = "upstreams",
    summary = "Disable an upstream (after draining)",
    params(("name" = String, Path, description = "The upstream's name")),
    responses(
        (status = 200, description = "Disabled", body = super::openapi::Upstream),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
    )
)]
pub(super) async fn disable(
    State(control): State<Arc<ControlPlane>>,
    Path(name): Path<String>,
) -> Answer {
    set_enabled(&control, &name, false).await
}

/// `POST /api/v1/upstreams/{name}/restart`: a fresh instance of this one upstream.
#[utoipa::path(
    post,
    path = "/api/v1/upstreams/{name}/restart",
    tag = "upstreams",
    summary = "Restart one upstream",
    params(("name" = String, Path, description = "The upstream's name")),
    responses(
        (status = 200, description = "Restarted", body = super::openapi::Upstream),
        (status = 404, response = super::openapi::NotFound),
    )
)]
pub(super) async fn restart(
    State(control): State<Arc<ControlPlane>>,
    Path(name): Path<String>,
) -> Answer {
    if !control.restart(&name).await? {
        let known = control.file_config().upstreams.contains_key(&name)
            || UPSTREAMS.get(&control.store, &name).await?.is_some();
        return Err(if known {
            Problem::conflict(format!(
                "upstream '{name}' is not running (disabled or invalid)"
            ))
        } else {
            Problem::not_found("upstream", &name)
        });
    }
    get(State(control), Path(name)).await
}
