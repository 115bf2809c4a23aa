//! The OpenAPI 3.1 document of `/api/v1` (generated from the handlers'
//! `#[utoipa::path]` attributes) at `/api/v1/openapi.json`, and Swagger UI
//! at `/api/docs` with its assets compiled into the binary (no CDN). Both
//! sit behind the same Host/Origin checks as the rest of `/api`, but not the
//! management key: a browser cannot send one before the page has loaded, and
//! they hold the API's shape only (no state, no secret). Every operation they
//! describe still needs the key ("Authorize" in the UI).
use std::collections::BTreeMap;

use axum::Router;
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToResponse, ToSchema};
use utoipa_swagger_ui::{Config, SwaggerUi};

use super::{actors, audit, guardrails, keys, login, projects, system, upstreams, users};
use crate::govern::roles;

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/api/v1/openapi.json";
/// Where Swagger UI is served.
pub const UI_PATH: &str = "/api/docs";

/// Every `/api/v1` operation, by handler.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Bulwark management API",
        description = "Upstreams, projects and API keys of a running Bulwark gateway, \
                       applied without a restart; errors are RFC 9457 problem+json."
    ),
    paths(
        actors::tree,
        crate::ui::stream::events,
        guardrails::report,
        guardrails::approve,
        upstreams::list,
        upstreams::create,
        upstreams::get,
        upstreams::replace,
        upstreams::patch,
        upstreams::delete,
        upstreams::enable,
        upstreams::disable,
        upstreams::restart,
        projects::list,
        projects::create,
        projects::get,
        projects::replace,
        projects::patch,
        projects::delete,
        keys::list,
        keys::create,
        keys::get,
        keys::delete,
        keys::revoke,
        system::health,
        system::backup,
        system::restore,
        system::reset,
        login::login,
        users::list,
        users::create,
        users::get,
        users::patch,
        users::delete,
        users::reset_password,
        audit::list,
    ),
    components(schemas(ProblemDetails), responses(NotFound, Conflict, Invalid)),
    modifiers(&BearerKey, &Permissions),
    security(("management_key" = [])),
    tags(
        (name = "upstreams", description = "Upstream MCP servers"),
        (name = "projects", description = "Projects: upstream grants and tool rules"),
        (name = "keys", description = "API keys (hashes only are stored)"),
        (name = "runtime", description = "The live supervision tree and guardrails"),
        (name = "system", description = "Health, backup, restore and reset"),
        (name = "users", description = "Management users and their roles (admin only)"),
        (name = "auth", description = "Logging in for a session token"),
        (name = "audit", description = "The audit trail (read-only)"),
    )
)]
pub struct ApiDoc;

/// Declares the management key as an HTTP bearer token.
struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "management_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Shows each operation's permission and allowed roles, from the one
/// table the guard enforces: `x-bulwark-permission`, `x-bulwark-roles`,
/// and a line in the description.
struct Permissions;

impl Modify for Permissions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::extensions::ExtensionsBuilder;
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                ("GET", item.get.as_mut()),
                ("POST", item.post.as_mut()),
                ("PUT", item.put.as_mut()),
                ("PATCH", item.patch.as_mut()),
                ("DELETE", item.delete.as_mut()),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation else { continue };
                // Unclassified operations get no extension: the role
                // matrix test fails on them, and the guard refuses them.
                let Some(permission) = roles::of_template(method, path) else {
                    continue;
                };
                let allowed: Vec<&str> = permission
                    .roles()
                    .into_iter()
                    .map(roles::Role::as_str)
                    .collect();
                let extensions = ExtensionsBuilder::new()
                    .add("x-bulwark-permission", permission.as_str())
                    .add("x-bulwark-roles", allowed.clone())
                    .build();
                operation
                    .extensions
                    .get_or_insert_with(Default::default)
                    .merge(extensions);
                let line = if permission == roles::Permission::Public {
                    "Needs no credential.".to_owned()
                } else {
                    format!(
                        "Permission `{}`: roles {}.",
                        permission.as_str(),
                        allowed.join(", ")
                    )
                };
                operation.description = Some(match operation.description.take() {
                    Some(text) if !text.is_empty() => format!("{text}\n\n{line}"),
                    _ => line,
                });
            }
        }
    }
}

/// True for the paths of the document and the UI (served without the key).
pub fn is_public(path: &str) -> bool {
    path == DOCUMENT_PATH
        || path
            .strip_prefix(UI_PATH)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The document route and the embedded Swagger UI.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    SwaggerUi::new(UI_PATH)
        .url(DOCUMENT_PATH, ApiDoc::openapi())
        // The default validator badge would send the document to swagger.io.
        .config(Config::default().validator_url("none"))
        .into()
}

/// An RFC 9457 problem: every error of the management API.
#[derive(ToSchema)]
#[allow(dead_code)] // Documentation shape; answers are built as JSON.
pub struct ProblemDetails {
    /// Always `about:blank`.
    r#type: String,
    /// The status' reason phrase.
    title: String,
    /// The HTTP status.
    status: u16,
    /// What went wrong and what to do.
    detail: String,
    /// The request field at fault (validation errors).
    field: Option<String>,
    /// Validation errors as `{"field", "detail"}` objects.
    errors: Option<Vec<FieldProblem>>,
}

/// `404`: no such resource.
#[derive(ToResponse)]
#[response(
    description = "No such resource",
    content_type = "application/problem+json"
)]
pub struct NotFound(#[allow(dead_code)] ProblemDetails);

/// `409`: a conflict, or an entry from the config file (read-only here).
#[derive(ToResponse)]
#[response(
    description = "It conflicts with what exists, or it comes from the config file \
                   (source: file) and is read-only here",
    content_type = "application/problem+json"
)]
pub struct Conflict(#[allow(dead_code)] ProblemDetails);

/// `422`: a field is invalid.
#[derive(ToResponse)]
#[response(
    description = "A field is invalid (named in `field`)",
    content_type = "application/problem+json"
)]
pub struct Invalid(#[allow(dead_code)] ProblemDetails);

/// One invalid field.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FieldProblem {
    field: String,
    detail: String,
}

/// One page of a list.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Page {
    /// The items of this page.
    items: Vec<Value>,
    /// How many items match in all.
    total: usize,
    /// The page size asked for (default 50, at most 500).
    limit: usize,
    /// Items skipped.
    offset: usize,
}

/// An upstream as submitted: the fields of an `[upstreams.NAME]` config
/// table (also `token_env`, `cwd`, `oauth`, `restart`, …). `name` only on create.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UpstreamBody {
    /// Unique name (create only; the path names it otherwise).
    name: Option<String>,
    /// Program to run (stdio upstreams).
    command: Option<String>,
    /// Its arguments (stdio upstreams; refused with `url` or `urls`).
    args: Option<Vec<String>>,
    /// Environment for the process; values may be `${VAR}` (stdio
    /// upstreams; refused with `url` or `urls`: a remote server takes `headers`).
    env: Option<BTreeMap<String, String>>,
    /// A remote endpoint, instead of a command: streamable HTTP, or legacy
    /// HTTP+SSE when it refuses the `initialize` POST (`type` = `http` or
    /// `sse` picks one).
    url: Option<String>,
    /// Static HTTP headers for a remote upstream.
    headers: Option<BTreeMap<String, String>>,
    /// Disabled upstreams are not started.
    enabled: Option<bool>,
}

/// An upstream as the API shows it: its table with secrets masked, plus
/// where it comes from and its live state.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Upstream {
    name: String,
    /// `file` (read-only here) or `api`.
    source: String,
    enabled: bool,
    /// `starting`, `ready`, `failed`, `disabled`, …
    status: String,
    command: String,
    args: Vec<String>,
    /// Values masked.
    env: BTreeMap<String, String>,
    url: Option<String>,
    /// Values masked.
    headers: BTreeMap<String, String>,
    created_at: Option<String>,
    updated_at: Option<String>,
}

/// A project as submitted: which upstreams its keys may use and which tools.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ProjectBody {
    /// Unique name (create only).
    name: Option<String>,
    /// Upstreams granted.
    upstreams: Option<Vec<String>>,
    /// Tool allow/deny rules.
    tools: Option<Value>,
    enabled: Option<bool>,
}

/// A project as the API shows it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Project {
    name: String,
    /// `file` or `api`.
    source: String,
    enabled: bool,
    upstreams: Vec<String>,
    tools: Value,
    created_at: Option<String>,
    updated_at: Option<String>,
}

/// A new management user.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UserBody {
    /// Unique login name.
    username: String,
    /// At least 12 characters; stored as an argon2id hash, never shown.
    password: String,
    /// `admin`, `operator`, `user` or `viewer`.
    role: String,
    email: Option<String>,
}

/// Changes to a user (the password has its own route).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UserPatch {
    email: Option<String>,
    /// `admin`, `operator`, `user` or `viewer`.
    role: Option<String>,
    /// `active` or `disabled`.
    status: Option<String>,
}

/// A new password.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PasswordBody {
    /// At least 12 characters.
    password: String,
}

/// A user as the API shows it (never the password).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct User {
    username: String,
    email: String,
    role: String,
    /// `active` or `disabled`.
    status: String,
    /// True during a lockout after repeated failed logins.
    locked: bool,
    created_at: i64,
    updated_at: i64,
}

/// User name and password.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LoginBody {
    username: String,
    password: String,
}

/// A session token for the management API.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Session {
    /// Send as `Authorization: Bearer <token>`.
    token: String,
    /// Always `Bearer`.
    token_type: String,
    /// Unix seconds.
    expires_at: u64,
    username: String,
    role: String,
}

/// Asks for a new API key.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct KeyBody {
    /// Who the key is for.
    user: String,
    /// The project it belongs to.
    project: String,
}

/// An API key as the API shows it (never the key itself, except `key` once on create).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Key {
    id: String,
    user: String,
    project: String,
    revoked: bool,
    /// `active` or `revoked`.
    status: String,
    /// `file` or `api`.
    source: String,
    created_at: Option<String>,
    /// The secret: only in the answer to create.
    key: Option<String>,
}
