//! `/api/v1/system`: health (store, Redis, upstreams, version, uptime),
//! backup of the whole store as one checked JSON document, restore
//! (validated first, applied atomically, then reconciled live) and reset
//! (back to first-start state, after writing a backup).
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use bulwark_actors::cache::BackendKind;
use bulwark_actors::upstream::UpstreamState;
use serde::Deserialize;
use serde_json::{Value, json};

use super::problem::Problem;
use crate::control::{Applied, ControlPlane, credentials};
use crate::store::backup::{self, BackupError, Known};
use crate::store::pins;

type Answer = Result<(StatusCode, Json<Value>), Problem>;

/// Largest backup a restore accepts (other `/api` bodies keep axum's 2 MiB).
const MAX_BACKUP_BYTES: usize = 64 * 1024 * 1024;

/// The system routes' state: the control plane and when it started.
#[derive(Clone)]
pub(super) struct System {
    control: Arc<ControlPlane>,
    started: Instant,
}

/// The `/api/v1/system` routes.
pub(super) fn routes(control: Arc<ControlPlane>) -> Router {
    Router::new()
        .route("/api/v1/system/health", get(health))
        .route("/api/v1/system/backup", post(backup))
        .route(
            "/api/v1/system/restore",
            post(restore).layer(DefaultBodyLimit::max(MAX_BACKUP_BYTES)),
        )
        .route("/api/v1/system/reset", post(reset))
        .with_state(System {
            control,
            started: Instant::now(),
        })
}

/// `GET /api/v1/system/health`
#[utoipa::path(
    get,
    path = "/api/v1/system/health",
    tag = "system",
    summary = "Store, Redis and upstream health, version and uptime",
    responses(
        (status = 200, description = "Healthy", body = Object),
        (status = 503, description = "Something is wrong: `problems` says what", body = Object),
    )
)]
pub(super) async fn health(State(system): State<System>) -> (StatusCode, Json<Value>) {
    let control = &system.control;
    let mut problems = Vec::new();
    let store = match control.store.ping().await {
        Ok(()) => {
            json!({ "ok": true, "backend": format!("{:?}", control.store.backend()).to_lowercase() })
        }
        Err(err) => {
            problems.push(format!("store: {err}"));
            json!({ "ok": false, "error": err.to_string() })
        }
    };
    let cache = &control.gateway.cache;
    let redis = if cache.backend() == BackendKind::Redis {
        match cache.ping().await {
            Ok(()) => json!({ "ok": true }),
            Err(err) => {
                problems.push(format!("redis: {err}"));
                json!({ "ok": false, "error": err })
            }
        }
    } else {
        Value::Null
    };
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failed = Vec::new();
    for entry in control.registry().servers().iter() {
        let state = entry.pool.state();
        let name = match state {
            UpstreamState::Starting => "starting",
            UpstreamState::Ready => "ready",
            UpstreamState::Restarting => "restarting",
            UpstreamState::Failed => {
                failed.push(entry.spec.name.clone());
                "failed"
            }
            UpstreamState::Stopped => "stopped",
        };
        *counts.entry(name).or_default() += 1;
    }
    if !failed.is_empty() {
        problems.push(format!("upstreams failed: {}", failed.join(", ")));
    }
    let code = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let upstreams = json!({
        "total": counts.values().sum::<usize>(),
        "ready": counts.get("ready").copied().unwrap_or(0),
        "starting": counts.get("starting").copied().unwrap_or(0),
        "restarting": counts.get("restarting").copied().unwrap_or(0),
        "failed": counts.get("failed").copied().unwrap_or(0),
        "stopped": counts.get("stopped").copied().unwrap_or(0),
        "failed_names": failed,
    });
    (
        code,
        Json(json!({
            "status": if problems.is_empty() { "ok" } else { "unhealthy" },
            "problems": problems,
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_secs": system.started.elapsed().as_secs(),
            "store": store,
            "redis": redis,
            "upstreams": upstreams,
        })),
    )
}

/// `POST /api/v1/system/backup`
#[utoipa::path(
    post,
    path = "/api/v1/system/backup",
    tag = "system",
    summary = "The whole store as one JSON document (secrets sealed, with a checksum)",
    responses((status = 200, description = "The backup document", body = Object))
)]
pub(super) async fn backup(State(system): State<System>) -> Answer {
    let document = backup::dump(&system.control.store).await?;
    tracing::info!("backup taken through the API");
    Ok((StatusCode::OK, Json(document)))
}

impl From<BackupError> for Problem {
    fn from(err: BackupError) -> Self {
        match err {
            BackupError::Store(store) => store.into(),
            other => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("backup refused, nothing was changed: {other}"),
            ),
        }
    }
}

/// Names the config file defines, which stored rows may refer to.
fn known(control: &ControlPlane) -> Known {
    let file = control.file_config();
    Known {
        upstreams: file.upstreams.keys().cloned().collect(),
        projects: file.auth.projects.keys().cloned().collect(),
    }
}

/// Makes the running gateway match the store again: credentials, upstreams
/// and guardrail pins.
async fn reconcile_live(control: &ControlPlane) -> Result<Applied, Problem> {
    control.credentials.reload(&control.store).await?;
    let kept = pins::all(&control.store).await?;
    control.gateway.guardrails.pins().replace(kept);
    Ok(control.reconcile().await?)
}

fn applied_json(applied: &Applied) -> Value {
    json!({
        "added": applied.added,
        "removed": applied.removed,
        "updated": applied.updated,
    })
}

/// `POST /api/v1/system/restore`
#[utoipa::path(
    post,
    path = "/api/v1/system/restore",
    tag = "system",
    summary = "Replace the store with a backup (validated first, applied atomically, reconciled live)",
    request_body(content = Object, description = "A document from `POST /api/v1/system/backup`"),
    responses(
        (status = 200, description = "Restored and applied", body = Object),
        (status = 422, description = "Refused: nothing was changed; `detail` says why", body = super::openapi::ProblemDetails),
    )
)]
pub(super) async fn restore(State(system): State<System>, body: Bytes) -> Answer {
    let control = &system.control;
    let checked = backup::validate(&control.store, &body, &known(control))?;
    backup::apply(&control.store, &checked).await?;
    let applied = reconcile_live(control).await?;
    tracing::info!(added = ?applied.added, removed = ?applied.removed, "store restored from a backup");
    Ok((
        StatusCode::OK,
        Json(json!({ "restored": true, "applied": applied_json(&applied) })),
    ))
}

/// `?confirm=true`
#[derive(Debug, Deserialize)]
pub(super) struct Confirm {
    #[serde(default)]
    confirm: bool,
}

/// `POST /api/v1/system/reset?confirm=true`
#[utoipa::path(
    post,
    path = "/api/v1/system/reset",
    tag = "system",
    summary = "Back to first-start state (a backup is written to DATA_DIR/backups first)",
    params(("confirm" = bool, Query, description = "Must be `true`: without it nothing changes")),
    responses(
        (status = 200, description = "Reset; a new admin key is shown once when one was made", body = Object),
        (status = 400, description = "Not confirmed: nothing was changed", body = super::openapi::ProblemDetails),
    )
)]
pub(super) async fn reset(State(system): State<System>, Query(query): Query<Confirm>) -> Answer {
    if !query.confirm {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "a reset deletes every upstream, project, key and pin created through the API: \
             repeat with ?confirm=true to do it (a backup is written first). Nothing was changed",
        ));
    }
    let control = &system.control;
    let document = backup::dump(&control.store).await?;
    let path = write_backup(&control.file_config().server.data_dir(), &document)?;
    backup::reset(&control.store).await?;
    let applied = reconcile_live(control).await?;
    let admin =
        credentials::bootstrap_admin(&control.file_config(), &control.store, &control.credentials)
            .await
            .map_err(|err| Problem::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string()))?;
    tracing::warn!(backup = %path.display(), removed = ?applied.removed, "store reset to first-start state");
    let mut answer = json!({
        "reset": true,
        "backup": path.display().to_string(),
        "applied": applied_json(&applied),
    });
    if let Some(key) = admin {
        // Shown once, as on a first start.
        answer["admin_key"] = json!({ "id": key.id, "key": key.secret });
    }
    Ok((StatusCode::OK, Json(answer)))
}

/// Writes `document` to `DATA_DIR/backups/reset-MILLIS.json`, mode 0600.
fn write_backup(
    data_dir: &std::path::Path,
    document: &Value,
) -> Result<std::path::PathBuf, Problem> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |err: std::io::Error| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the backup before the reset could not be written, nothing was changed: {err}"),
        )
    };
    let dir = data_dir.join("backups");
    std::fs::create_dir_all(&dir).map_err(failed)?;
    let path = dir.join(format!("reset-{}.json", crate::store::now_ms()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(failed)?;
    file.write_all(document.to_string().as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(failed)?;
    Ok(path)
}
