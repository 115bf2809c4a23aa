//! `bulwark upstream add|list|show|update|remove|enable|disable|restart`.
use std::path::PathBuf;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::client::{CliError, Client, Remote};
use super::output::print;

const COLUMNS: &[&str] = &["name", "status", "source", "command", "url"];

/// Upstream verbs.
#[derive(Debug, Subcommand)]
pub enum UpstreamCommand {
    /// Add an upstream (the fields of an `[upstreams.NAME]` table), or every
    /// entry of an `mcpServers` JSON file.
    Add {
        /// Its name (not with --from-mcp-servers).
        name: Option<String>,
        #[command(flatten)]
        fields: Fields,
        /// A Claude Desktop / Cursor `mcpServers` JSON file: adds each entry.
        #[arg(long, conflicts_with = "name")]
        from_mcp_servers: Option<PathBuf>,
    },
    /// List upstreams.
    List {
        /// Only in this state (ready, failed, disabled, …).
        #[arg(long)]
        status: Option<String>,
        /// Only from `file` or `api`.
        #[arg(long)]
        source: Option<String>,
    },
    /// Show one upstream (secrets masked).
    Show {
        /// Its name.
        name: String,
    },
    /// Change the given fields of an upstream; only it restarts.
    Update {
        /// Its name.
        name: String,
        #[command(flatten)]
        fields: Fields,
    },
    /// Remove an upstream (its calls in flight finish first).
    Remove {
        /// Its name.
        name: String,
    },
    /// Start a disabled upstream.
    Enable {
        /// Its name.
        name: String,
    },
    /// Stop an upstream but keep its definition.
    Disable {
        /// Its name.
        name: String,
    },
    /// Restart one upstream.
    Restart {
        /// Its name.
        name: String,
    },
}

/// The fields of an `[upstreams.NAME]` table.
#[derive(Debug, Args)]
pub struct Fields {
    /// Program to run (stdio).
    #[arg(long)]
    command: Option<String>,
    /// One argument (repeat for more).
    #[arg(long = "arg", allow_hyphen_values = true)]
    args: Vec<String>,
    /// `KEY=VALUE` environment for the process (repeat).
    #[arg(long = "env")]
    env: Vec<String>,
    /// Working directory.
    #[arg(long)]
    cwd: Option<String>,
    /// A remote streamable HTTP endpoint instead of a command (the table's
    /// `url`; `--url` is the gateway's own address).
    #[arg(long = "mcp-url", id = "mcp_url")]
    mcp_url: Option<String>,
    /// `NAME=VALUE` header for a remote upstream (repeat).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Add it disabled.
    #[arg(long)]
    disabled: bool,
    /// Any other fields, as a JSON object (e.g. `{"oauth": {...}, "restart": {...}}`).
    #[arg(long)]
    json: Option<String>,
}

fn pairs(items: &[String], flag: &str) -> Result<Map<String, Value>, CliError> {
    items
        .iter()
        .map(|item| {
            let (key, value) = item.split_once('=').ok_or_else(|| {
                CliError::Usage(format!("--{flag} wants KEY=VALUE, got {item:?}"))
            })?;
            Ok((key.to_owned(), json!(value)))
        })
        .collect()
}

impl Fields {
    /// The given fields only (what `update` merges).
    fn body(&self) -> Result<Map<String, Value>, CliError> {
        let mut body = match &self.json {
            Some(text) => match serde_json::from_str(text) {
                Ok(Value::Object(map)) => map,
                _ => return Err(CliError::Usage("--json wants a JSON object".into())),
            },
            None => Map::new(),
        };
        let mut set = |key: &str, value: Value| {
            body.insert(key.to_owned(), value);
        };
        if let Some(command) = &self.command {
            set("command", json!(command));
        }
        if !self.args.is_empty() {
            set("args", json!(self.args));
        }
        if !self.env.is_empty() {
            set("env", Value::Object(pairs(&self.env, "env")?));
        }
        if let Some(cwd) = &self.cwd {
            set("cwd", json!(cwd));
        }
        if let Some(url) = &self.mcp_url {
            set("url", json!(url));
        }
        if !self.headers.is_empty() {
            set("headers", Value::Object(pairs(&self.headers, "header")?));
        }
        if self.disabled {
            set("enabled", json!(false));
        }
        Ok(body)
    }
}

/// Runs one upstream verb.
pub async fn run(remote: &Remote, command: UpstreamCommand) -> Result<(), CliError> {
    let client = Client::new(remote)?;
    let out = remote.output;
    let shown = match command {
        UpstreamCommand::Add {
            from_mcp_servers: Some(file),
            ..
        } => {
            let entries = crate::config::load_mcp_servers(&file)
                .map_err(|err| CliError::Usage(err.to_string()))?;
            let mut added = Vec::new();
            for (name, upstream) in entries {
                for key in upstream.ignored_keys() {
                    eprintln!("warning: {}", crate::config::ignored_key(&name, key));
                }
                let mut body = crate::control::desired::upstream_json(&upstream);
                body["name"] = json!(name);
                added.push(client.call(Method::POST, "upstreams", Some(&body)).await?);
            }
            json!({ "items": added, "total": added.len() })
        }
        UpstreamCommand::Add { name, fields, .. } => {
            let name = name.ok_or_else(|| {
                CliError::Usage("give the upstream a NAME (or use --from-mcp-servers FILE)".into())
            })?;
            let mut body = fields.body()?;
            body.insert("name".into(), json!(name));
            client
                .call(Method::POST, "upstreams", Some(&Value::Object(body)))
                .await?
        }
        UpstreamCommand::List { status, source } => {
            let mut query = vec!["limit=500".to_owned()];
            query.extend(status.map(|s| format!("status={s}")));
            query.extend(source.map(|s| format!("source={s}")));
            client
                .call(Method::GET, &format!("upstreams?{}", query.join("&")), None)
                .await?
        }
        UpstreamCommand::Show { name } => {
            client
                .call(Method::GET, &format!("upstreams/{name}"), None)
                .await?
        }
        UpstreamCommand::Update { name, fields } => {
            let body = Value::Object(fields.body()?);
            client
                .call(Method::PATCH, &format!("upstreams/{name}"), Some(&body))
                .await?
        }
        UpstreamCommand::Remove { name } => {
            client
                .call(Method::DELETE, &format!("upstreams/{name}"), None)
                .await?;
            eprintln!("Removed upstream {name}.");
            return Ok(());
        }
        UpstreamCommand::Enable { name } => {
            client
                .call(Method::POST, &format!("upstreams/{name}/enable"), None)
                .await?
        }
        UpstreamCommand::Disable { name } => {
            client
                .call(Method::POST, &format!("upstreams/{name}/disable"), None)
                .await?
        }
        UpstreamCommand::Restart { name } => {
            client
                .call(Method::POST, &format!("upstreams/{name}/restart"), None)
                .await?
        }
    };
    print(out, &shown, COLUMNS).map_err(|err| CliError::Usage(err.to_string()))
}
