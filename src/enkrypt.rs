//! `bulwark import enkrypt FILE`: an Enkrypt Secure MCP Gateway config
//! (`enkrypt_mcp_config.json`: `mcp_configs`, `projects`, `users`,
//! `apikeys`, per-server guardrail policies) into stored upstreams,
//! projects, users and API keys, with a report of what was mapped and what
//! has no Bulwark equivalent.
//!
//! The whole file is read and planned before the store is opened, so an
//! unreadable or malformed file changes nothing. Enkrypt keeps gateway keys
//! in clear; they are imported as SHA-256 hashes, so clients keep working
//! with the key they have. Enkrypt users have no management password or
//! role: they become `user`-role users whose password nobody knows (an
//! operator gives one with `bulwark user reset-password`), and their keys
//! carry that user. Names that already exist in the store are skipped (and
//! reported), never overwritten.
use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::auth::keys::KeyHash;
use crate::config::auth::{KeyEntry, ProjectConfig, ToolRules};
use crate::config::{Config, UpstreamConfig};
use crate::control::desired;
use crate::store::named::{PROJECTS, UPSTREAMS};
use crate::store::users::{self, UserRecord};
use crate::store::{Store, StoreError, keys};

/// Why an import did nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("cannot read {path}: {message}; nothing was imported")]
    Read {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The file is not an Enkrypt gateway config.
    #[error("{path} is not an Enkrypt gateway config: {message}; nothing was imported")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The store failed (part of the import may be applied: see the log).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key id could not be generated.
    #[error("key id: {0}")]
    Key(#[from] crate::auth::keys::KeyError),
    /// An imported user's password hash could not be made.
    #[error("user password: {0}")]
    Password(String),
}

#[derive(Debug, Deserialize)]
struct EnkryptFile {
    #[serde(default)]
    mcp_configs: BTreeMap<String, McpConfig>,
    #[serde(default)]
    projects: BTreeMap<String, EnkryptProject>,
    #[serde(default)]
    users: BTreeMap<String, EnkryptUser>,
    #[serde(default)]
    apikeys: BTreeMap<String, EnkryptKey>,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
struct McpConfig {
    #[serde(default)]
    mcp_config_name: Option<String>,
    #[serde(default)]
    mcp_config: Vec<EnkryptServer>,
}

#[derive(Debug, Deserialize)]
struct EnkryptServer {
    server_name: String,
    #[serde(default)]
    config: Map<String, Value>,
    #[serde(default)]
    oauth_config: Option<Map<String, Value>>,
    #[serde(default)]
    tools: Map<String, Value>,
    #[serde(default)]
    denied_tools: Vec<Value>,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
struct EnkryptProject {
    project_name: String,
    #[serde(default)]
    mcp_config_id: Option<String>,
    #[serde(default)]
    users: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct EnkryptUser {
    #[serde(default)]
    email: Option<String>,
}

#[derive(Debug, Deserialize)]
struct EnkryptKey {
    project_id: String,
    #[serde(default)]
    user_id: Option<String>,
}

/// What an import mapped, skipped and could not map.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Upstreams created.
    pub upstreams: Vec<String>,
    /// Projects created.
    pub projects: Vec<String>,
    /// Key ids created (the keys themselves are never shown).
    pub keys: Vec<String>,
    /// Users created (role `user`, no known password).
    pub users: Vec<String>,
    /// Already in the store or the config file: left as they are.
    pub skipped: Vec<String>,
    /// What has no Bulwark equivalent, and why.
    pub not_mapped: Vec<String>,
}

/// The planned import.
#[derive(Debug, Default)]
struct Plan {
    upstreams: Vec<(String, UpstreamConfig)>,
    projects: Vec<(String, ProjectConfig)>,
    keys: Vec<(String, String, String)>,
    /// (login name, e-mail).
    users: Vec<(String, String)>,
    report: Report,
}

/// Reads `path` and imports it into the store of `config`; with `dry_run`
/// the store is not touched.
pub async fn import(config: &Config, path: &Path, dry_run: bool) -> Result<Report, ImportError> {
    let text = std::fs::read(path).map_err(|err| ImportError::Read {
        path: path.display().to_string(),
        message: err.to_string(),
    })?;
    let file: EnkryptFile = serde_json::from_slice(&text).map_err(|err| ImportError::Format {
        path: path.display().to_string(),
        message: err.to_string(),
    })?;
    if file.mcp_configs.is_empty() && file.projects.is_empty() && file.apikeys.is_empty() {
        return Err(ImportError::Format {
            path: path.display().to_string(),
            message: "it has no `mcp_configs`, `projects` or `apikeys`".into(),
        });
    }
    let mut plan = plan(config, &file);
    if dry_run {
        let mut report = plan.report;
        report.upstreams = plan.upstreams.into_iter().map(|(name, _)| name).collect();
        report.projects = plan.projects.into_iter().map(|(name, _)| name).collect();
        report.users = plan.users.into_iter().map(|(name, _)| name).collect();
        report.keys = plan
            .keys
            .into_iter()
            .map(|(_, user, project)| format!("(new) user '{user}', project '{project}'"))
            .collect();
        return Ok(report);
    }
    let store = Store::open(&config.store, &config.server.data_dir()).await?;
    apply(&store, &mut plan).await?;
    store.close().await;
    Ok(plan.report)
}

fn plan(config: &Config, file: &EnkryptFile) -> Plan {
    let mut plan = Plan::default();
    let not_mapped = &mut plan.report.not_mapped;
    for key in file.rest.keys().filter(|k| !k.starts_with('_')) {
        not_mapped.push(match key.as_str() {
            "admin_apikey" => "admin_apikey: Bulwark makes its own admin key on first start".into(),
            "common_mcp_gateway_config" => "common_mcp_gateway_config: gateway settings (log level, cache, timeouts, sandbox) go in bulwark.toml ([cache], [timeouts])".into(),
            "plugins" => "plugins: auth is Bulwark's own; Enkrypt cloud guardrails have no equivalent (use [guardrails])".into(),
            other => format!("{other}: not an Enkrypt field Bulwark maps"),
        });
    }
    // Servers by config id, under their Bulwark upstream names.
    let mut servers: BTreeMap<&str, Vec<(String, &EnkryptServer)>> = BTreeMap::new();
    let mut taken: BTreeMap<String, Value> = BTreeMap::new();
    for (config_id, mcp) in &file.mcp_configs {
        let label = mcp.mcp_config_name.as_deref().unwrap_or(config_id);
        for server in &mcp.mcp_config {
            let upstream = match upstream(server, &mut plan.report.not_mapped) {
                Ok(upstream) => upstream,
                Err(why) => {
                    plan.report.not_mapped.push(format!(
                        "server '{}' of '{label}': {why}",
                        server.server_name
                    ));
                    continue;
                }
            };
            let mut name = clean_name(&server.server_name);
            if let Err(err) = desired::check_upstream(config, &name, &upstream) {
                plan.report.not_mapped.push(format!(
                    "server '{}' of '{label}': {}",
                    server.server_name, err.message
                ));
                continue;
            }
            let shape = desired::upstream_json(&upstream);
            match taken.get(&name) {
                Some(existing) if *existing == shape => {}
                Some(_) => {
                    // The same server name with another definition.
                    name = clean_name(&format!("{}-{label}", server.server_name));
                    taken.insert(name.clone(), shape);
                    plan.upstreams.push((name.clone(), upstream));
                }
                None => {
                    taken.insert(name.clone(), shape);
                    plan.upstreams.push((name.clone(), upstream));
                }
            }
            servers
                .entry(config_id.as_str())
                .or_default()
                .push((name, server));
        }
    }
    let mut project_names = BTreeMap::new();
    for (project_id, project) in &file.projects {
        let name = clean_name(&project.project_name);
        project_names.insert(project_id.as_str(), name.clone());
        let granted = project
            .mcp_config_id
            .as_deref()
            .and_then(|id| servers.get(id))
            .map(Vec::as_slice)
            .unwrap_or_default();
        if granted.is_empty() {
            plan.report.not_mapped.push(format!(
                "project '{name}': its mcp_config_id names no imported config, so it grants no upstream"
            ));
        }
        let mut tools = BTreeMap::new();
        for (upstream, server) in granted {
            if let Some(rules) = tool_rules(server) {
                tools.insert(upstream.clone(), rules);
            }
        }
        plan.projects.push((
            name,
            ProjectConfig {
                upstreams: granted.iter().map(|(name, _)| name.clone()).collect(),
                tools,
                ..ProjectConfig::default()
            },
        ));
        if !project.users.is_empty() {
            plan.report.not_mapped.push(format!(
                "project '{}': membership of {} user(s) is carried by their imported keys",
                project.project_name,
                project.users.len()
            ));
        }
    }
    for (id, user) in &file.users {
        let name = user_name(id, user);
        plan.report.not_mapped.push(format!(
            "user '{name}': Enkrypt has no management password or role; imported as role 'user' with no known password (give one with `bulwark user reset-password {name}`)"
        ));
        plan.users
            .push((name, user.email.clone().unwrap_or_default()));
    }
    for (secret, key) in &file.apikeys {
        let Some(project) = project_names.get(key.project_id.as_str()) else {
            plan.report
                .not_mapped
                .push(format!("a key of unknown project '{}'", key.project_id));
            continue;
        };
        let user = key
            .user_id
            .as_deref()
            .map(|id| match file.users.get(id) {
                Some(user) => user_name(id, user),
                None => id.to_owned(),
            })
            .unwrap_or_else(|| "imported".into());
        plan.keys
            .push((KeyHash::of(secret).to_stored(), user, project.clone()));
    }
    for (name, _) in plan.upstreams.iter() {
        if config.upstreams.contains_key(name) {
            plan.report
                .skipped
                .push(format!("upstream '{name}' (defined in the config file)"));
        }
    }
    plan.upstreams
        .retain(|(name, _)| !config.upstreams.contains_key(name));
    plan.projects.retain(|(name, _)| {
        let in_file = config.auth.projects.contains_key(name);
        if in_file {
            plan.report
                .skipped
                .push(format!("project '{name}' (defined in the config file)"));
        }
        !in_file
    });
    plan
}

/// The Bulwark upstream of one Enkrypt server entry.
fn upstream(
    server: &EnkryptServer,
    not_mapped: &mut Vec<String>,
) -> Result<UpstreamConfig, String> {
    let name = &server.server_name;
    let mut definition = Map::new();
    for (field, value) in &server.config {
        match field.as_str() {
            "command" | "args" | "env" | "url" | "headers" | "cwd" => {
                definition.insert(field.clone(), value.clone());
            }
            "transport" if value == "streamable_http" || value == "http" => {}
            "transport" if value == "sse" => {
                definition.insert("type".into(), Value::from("sse"));
            }
            "transport" => {
                return Err(format!(
                    "transport {value}: Bulwark reaches remote servers over streamable HTTP or the legacy HTTP+SSE transport"
                ));
            }
            other => not_mapped.push(format!("server '{name}': config.{other} = {value}")),
        }
    }
    if let Some(oauth) = server
        .oauth_config
        .as_ref()
        .filter(|o| o.get("enabled") == Some(&Value::Bool(true)))
    {
        definition.insert("oauth".into(), oauth_table(oauth));
    }
    for (field, value) in &server.rest {
        if field.starts_with('_') || field == "description" {
            continue;
        }
        let enabled = value.get("enabled").and_then(Value::as_bool);
        let what = match field.as_str() {
            "input_guardrails_config" | "output_guardrails_config" | "tool_guardrails_config" => {
                let policy = value
                    .get("guardrail_name")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                format!(
                    "{field} (policy '{policy}', {}): an Enkrypt cloud guardrail; use Bulwark's [guardrails] rules",
                    if enabled == Some(true) {
                        "enabled"
                    } else {
                        "disabled"
                    }
                )
            }
            "sandbox" => "sandbox: Bulwark runs stdio servers as plain child processes".into(),
            "enable_server_info_validation" => {
                "enable_server_info_validation: Bulwark pins tool definitions instead".into()
            }
            other => format!("{other}: no Bulwark equivalent"),
        };
        if enabled != Some(false) || field.ends_with("guardrails_config") {
            not_mapped.push(format!("server '{name}': {what}"));
        }
    }
    let mut upstream = desired::parse_upstream(Value::Object(definition))
        .map_err(|err| format!("not a usable server ({}: {})", err.field, err.message))?;
    if upstream.command.is_empty() && upstream.url.is_none() {
        return Err("neither a command nor a url".into());
    }
    // Enkrypt's gateway never passed these to a remote server either.
    for key in upstream.take_remote_launch_settings() {
        not_mapped.push(format!(
            "server '{name}': config.{key} applies to launched (command) servers only"
        ));
    }
    Ok(upstream)
}

/// Enkrypt's `OAUTH_*` fields as a Bulwark `oauth` table.
fn oauth_table(oauth: &Map<String, Value>) -> Value {
    let text = |field: &str| oauth.get(field).filter(|v| v.is_string()).cloned();
    let mut table = json!({
        "client_id": text("OAUTH_CLIENT_ID").unwrap_or(json!("")),
        "scopes": oauth
            .get("OAUTH_SCOPE")
            .and_then(Value::as_str)
            .map(|s| s.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_default(),
    });
    for (from, to) in [
        ("OAUTH_CLIENT_SECRET", "client_secret"),
        ("OAUTH_TOKEN_URL", "token_url"),
        ("OAUTH_AUDIENCE", "audience"),
        ("OAUTH_RESOURCE", "resource"),
        ("OAUTH_REVOCATION_URL", "revocation_url"),
    ] {
        if let Some(value) = text(from) {
            table[to] = value;
        }
    }
    table
}

/// Tool rules from a server's `tools` (an allow-list when not empty) and
/// `denied_tools` (names, or `{"pattern", "reason"}`).
fn tool_rules(server: &EnkryptServer) -> Option<ToolRules> {
    let deny: Vec<String> = server
        .denied_tools
        .iter()
        .filter_map(|d| {
            d.as_str()
                .or_else(|| d.get("pattern").and_then(Value::as_str))
                .map(str::to_owned)
        })
        .collect();
    let allow = (!server.tools.is_empty()).then(|| server.tools.keys().cloned().collect());
    (allow.is_some() || !deny.is_empty()).then_some(ToolRules { allow, deny })
}

/// The login name of an Enkrypt user: the e-mail when it is a usable
/// name, else the Enkrypt id (cleaned). Their keys carry the same name.
fn user_name(id: &str, user: &EnkryptUser) -> String {
    match user.email.as_deref() {
        Some(email) if users::valid_name(email) => email.to_owned(),
        _ if users::valid_name(id) => id.to_owned(),
        _ => {
            let cleaned: String = clean_name(id).chars().take(64).collect();
            if cleaned.is_empty() {
                "imported".into()
            } else {
                cleaned
            }
        }
    }
}

/// Lower-case letters, digits, `-` and `_`; anything else becomes `-`.
fn clean_name(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

async fn apply(store: &Store, plan: &mut Plan) -> Result<(), ImportError> {
    let report = &mut plan.report;
    for (name, upstream) in &plan.upstreams {
        let definition = desired::upstream_json(upstream);
        match UPSTREAMS
            .insert(store, name, &definition, upstream.enabled)
            .await
        {
            Ok(_) => report.upstreams.push(name.clone()),
            Err(StoreError::Conflict(_)) => report
                .skipped
                .push(format!("upstream '{name}' (already in the store)")),
            Err(err) => return Err(err.into()),
        }
    }
    for (name, project) in &plan.projects {
        let definition = serde_json::to_value(project).unwrap_or(Value::Null);
        match PROJECTS.insert(store, name, &definition, true).await {
            Ok(_) => report.projects.push(name.clone()),
            Err(StoreError::Conflict(_)) => report
                .skipped
                .push(format!("project '{name}' (already in the store)")),
            Err(err) => return Err(err.into()),
        }
    }
    for (name, email) in &plan.users {
        // A password nobody knows: the user's keys work at once, logging in
        // waits for an operator's `reset-password`.
        let unknown = crate::auth::keys::generate()?.secret;
        let password = crate::govern::password::hash(unknown)
            .await
            .map_err(|err| ImportError::Password(err.to_string()))?;
        let now = crate::store::now_ms();
        let record = UserRecord {
            name: name.clone(),
            email: email.clone(),
            role: "user".into(),
            status: "active".into(),
            password,
            failed_logins: 0,
            locked_until: 0,
            created_at: now,
            updated_at: now,
        };
        match users::insert(store, &record).await {
            Ok(()) => report.users.push(name.clone()),
            Err(StoreError::Conflict(_)) => report
                .skipped
                .push(format!("user '{name}' (already in the store)")),
            Err(err) => return Err(err.into()),
        }
    }
    for (hash, user, project) in &plan.keys {
        let entry = KeyEntry {
            id: crate::auth::keys::generate()?.id,
            hash: hash.clone(),
            user: user.clone(),
            project: project.clone(),
            revoked: false,
            created_at: u64::try_from(crate::store::now_ms() / 1000).ok(),
        };
        match keys::insert(store, &entry).await {
            Ok(()) => report.keys.push(entry.id),
            Err(StoreError::Conflict(_)) => report.skipped.push(format!(
                "a key of user '{user}' in project '{project}' (already in the store)"
            )),
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}
