//! `bulwark key create|list|show|revoke|remove` against a running gateway.
//! `create` prints the key alone on stdout, once.
use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use super::client::{CliError, Client, Output, Remote};
use super::output::print;

const COLUMNS: &[&str] = &["id", "user", "project", "status", "source"];

/// Key verbs on a running gateway.
#[derive(Debug, Subcommand)]
pub enum RemoteKeyCommand {
    /// Create a key and print it once.
    Create {
        /// The project whose grant the key carries.
        #[arg(long)]
        project: String,
        /// The user the key belongs to.
        #[arg(long)]
        user: String,
    },
    /// List keys (never the keys themselves).
    List {
        /// Only keys of this project.
        #[arg(long)]
        project: Option<String>,
        /// `active` or `revoked`.
        #[arg(long)]
        status: Option<String>,
    },
    /// Show one key.
    Show {
        /// Its id.
        id: String,
    },
    /// Revoke a key: refused from its next request on.
    Revoke {
        /// Its id.
        id: String,
    },
    /// Delete a key.
    Remove {
        /// Its id.
        id: String,
    },
}

/// Runs one key verb.
pub async fn run(remote: &Remote, command: RemoteKeyCommand) -> Result<(), CliError> {
    let client = Client::new(remote)?;
    let shown = match command {
        RemoteKeyCommand::Create { project, user } => {
            let created = client
                .call(
                    Method::POST,
                    "keys",
                    Some(&json!({"user": user, "project": project})),
                )
                .await?;
            if remote.output == Output::Json {
                println!("{created}");
            } else {
                eprintln!(
                    "Created key {} for user '{user}' in project '{project}'. It is shown only now:",
                    created["id"].as_str().unwrap_or_default()
                );
                println!("{}", created["key"].as_str().unwrap_or_default());
            }
            return Ok(());
        }
        RemoteKeyCommand::List { project, status } => {
            let mut query = vec!["limit=500".to_owned()];
            query.extend(project.map(|p| format!("project={p}")));
            query.extend(status.map(|s| format!("status={s}")));
            client
                .call(Method::GET, &format!("keys?{}", query.join("&")), None)
                .await?
        }
        RemoteKeyCommand::Show { id } => {
            client
                .call(Method::GET, &format!("keys/{id}"), None)
                .await?
        }
        RemoteKeyCommand::Revoke { id } => {
            client
                .call(Method::POST, &format!("keys/{id}/revoke"), None)
                .await?
        }
        RemoteKeyCommand::Remove { id } => {
            client
                .call(Method::DELETE, &format!("keys/{id}"), None)
                .await?;
            eprintln!("Removed key {id}.");
            return Ok(());
        }
    };
    print(remote.output, &shown, COLUMNS).map_err(|err| CliError::Usage(err.to_string()))
}
