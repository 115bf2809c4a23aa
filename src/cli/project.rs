//! `bulwark project add|list|show|update|remove`.
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{CliError, Client, Remote};
use super::output::print;

const COLUMNS: &[&str] = &["name", "source", "enabled", "upstreams"];

/// Project verbs.
#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Add a project that may use the given upstreams.
    Add {
        /// Its name.
        name: String,
        /// An upstream it may use, or `*` (repeat).
        #[arg(long = "upstream")]
        upstreams: Vec<String>,
        /// Tool rules as JSON: `{"UPSTREAM": {"allow": [...], "deny": [...]}}`.
        #[arg(long)]
        tools: Option<String>,
    },
    /// List projects.
    List,
    /// Show one project.
    Show {
        /// Its name.
        name: String,
    },
    /// Replace a project's upstreams and/or tool rules.
    Update {
        /// Its name.
        name: String,
        /// An upstream it may use, or `*` (repeat).
        #[arg(long = "upstream")]
        upstreams: Vec<String>,
        /// Tool rules as JSON.
        #[arg(long)]
        tools: Option<String>,
    },
    /// Remove a project (it must have no keys).
    Remove {
        /// Its name.
        name: String,
    },
}

fn body(upstreams: Vec<String>, tools: Option<String>) -> Result<Value, CliError> {
    let mut body = json!({});
    if !upstreams.is_empty() {
        body["upstreams"] = json!(upstreams);
    }
    if let Some(tools) = tools {
        body["tools"] = serde_json::from_str(&tools)
            .map_err(|err| CliError::Usage(format!("--tools is not JSON: {err}")))?;
    }
    Ok(body)
}

/// Runs one project verb.
pub async fn run(remote: &Remote, command: ProjectCommand) -> Result<(), CliError> {
    let client = Client::new(remote)?;
    let shown = match command {
        ProjectCommand::Add {
            name,
            upstreams,
            tools,
        } => {
            let mut body = body(upstreams, tools)?;
            body["name"] = json!(name);
            client.call(Method::POST, "projects", Some(&body)).await?
        }
        ProjectCommand::List => client.call(Method::GET, "projects?limit=500", None).await?,
        ProjectCommand::Show { name } => {
            client
                .call(Method::GET, &format!("projects/{name}"), None)
                .await?
        }
        ProjectCommand::Update {
            name,
            upstreams,
            tools,
        } => {
            let body = body(upstreams, tools)?;
            client
                .call(Method::PATCH, &format!("projects/{name}"), Some(&body))
                .await?
        }
        ProjectCommand::Remove { name } => {
            client
                .call(Method::DELETE, &format!("projects/{name}"), None)
                .await?;
            eprintln!("Removed project {name}.");
            return Ok(());
        }
    };
    print(remote.output, &shown, COLUMNS).map_err(|err| CliError::Usage(err.to_string()))
}
