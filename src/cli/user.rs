//! `bulwark user add|list|show|update|disable|remove|reset-password`
//! against a running gateway (admin only). Passwords come from stdin
//! (`--password-stdin`) or `BULWARK_PASSWORD`, never from an argument, so
//! they stay out of shell history and `ps`.
use std::io::BufRead;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::client::{CliError, Client, Remote};
use super::output::print;

const COLUMNS: &[&str] = &["username", "role", "status", "locked", "email"];
const PASSWORD_ENV: &str = "BULWARK_PASSWORD";

/// Where a password comes from.
#[derive(Debug, Args)]
pub struct PasswordSource {
    /// Read the password from the first line of stdin (else `BULWARK_PASSWORD`).
    #[arg(long)]
    password_stdin: bool,
}

impl PasswordSource {
    fn read(&self) -> Result<String, CliError> {
        let password = if self.password_stdin {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|err| {
                    CliError::Usage(format!("cannot read the password from stdin: {err}"))
                })?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        } else {
            std::env::var(PASSWORD_ENV).map_err(|_| {
                CliError::Usage(format!(
                    "no password: pass --password-stdin and write it to stdin, or set {PASSWORD_ENV}"
                ))
            })?
        };
        if password.is_empty() {
            return Err(CliError::Usage("the password is empty".into()));
        }
        Ok(password)
    }
}

/// User verbs on a running gateway.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user.
    Add {
        /// Login name.
        username: String,
        /// `admin`, `operator`, `user` or `viewer`.
        #[arg(long)]
        role: String,
        /// Contact address.
        #[arg(long)]
        email: Option<String>,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// List users.
    List {
        /// `active` or `disabled`.
        #[arg(long)]
        status: Option<String>,
    },
    /// Show one user.
    Show {
        /// Login name.
        username: String,
    },
    /// Change a user's role, e-mail or status.
    Update {
        /// Login name.
        username: String,
        /// New role.
        #[arg(long)]
        role: Option<String>,
        /// New e-mail.
        #[arg(long)]
        email: Option<String>,
        /// `active` or `disabled`.
        #[arg(long)]
        status: Option<String>,
    },
    /// Disable a user: their logins, sessions and keys lose the management API.
    Disable {
        /// Login name.
        username: String,
    },
    /// Delete a user.
    Remove {
        /// Login name.
        username: String,
    },
    /// Set a new password (also lifts a lockout).
    ResetPassword {
        /// Login name.
        username: String,
        #[command(flatten)]
        password: PasswordSource,
    },
}

/// Runs one user verb.
pub async fn run(remote: &Remote, command: UserCommand) -> Result<(), CliError> {
    let client = Client::new(remote)?;
    let shown = match command {
        UserCommand::Add {
            username,
            role,
            email,
            password,
        } => {
            let mut body =
                json!({"username": username, "role": role, "password": password.read()?});
            if let Some(email) = email {
                body["email"] = json!(email);
            }
            client.call(Method::POST, "users", Some(&body)).await?
        }
        UserCommand::List { status } => {
            let query = status.map(|s| format!("&status={s}")).unwrap_or_default();
            client
                .call(Method::GET, &format!("users?limit=500{query}"), None)
                .await?
        }
        UserCommand::Show { username } => {
            client
                .call(Method::GET, &format!("users/{username}"), None)
                .await?
        }
        UserCommand::Update {
            username,
            role,
            email,
            status,
        } => {
            let mut body = Map::new();
            for (field, value) in [("role", role), ("email", email), ("status", status)] {
                if let Some(value) = value {
                    body.insert(field.into(), Value::String(value));
                }
            }
            if body.is_empty() {
                return Err(CliError::Usage(
                    "nothing to change: pass --role, --email or --status".into(),
                ));
            }
            client
                .call(
                    Method::PATCH,
                    &format!("users/{username}"),
                    Some(&Value::Object(body)),
                )
                .await?
        }
        UserCommand::Disable { username } => {
            client
                .call(
                    Method::PATCH,
                    &format!("users/{username}"),
                    Some(&json!({"status": "disabled"})),
                )
                .await?
        }
        UserCommand::Remove { username } => {
            client
                .call(Method::DELETE, &format!("users/{username}"), None)
                .await?;
            eprintln!("Removed user {username}.");
            return Ok(());
        }
        UserCommand::ResetPassword { username, password } => {
            client
                .call(
                    Method::POST,
                    &format!("users/{username}/reset-password"),
                    Some(&json!({"password": password.read()?})),
                )
                .await?
        }
    };
    print(remote.output, &shown, COLUMNS).map_err(|err| CliError::Usage(err.to_string()))
}
