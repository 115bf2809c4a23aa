//! `bulwark audit`: the audit trail of a running gateway, newest first.
use clap::Args;
use reqwest::Method;

use super::client::{CliError, Client, Remote};
use super::output::print;

const COLUMNS: &[&str] = &[
    "at", "actor", "role", "action", "target", "outcome", "status", "client",
];

/// Filters of `bulwark audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only entries of this user.
    #[arg(long)]
    actor: Option<String>,
    /// An action (`upstreams.create`) or a prefix ending in `.` (`upstreams.`).
    #[arg(long)]
    action: Option<String>,
    /// A target (`upstreams/echo`) or a prefix ending in `/`.
    #[arg(long)]
    target: Option<String>,
    /// From this Unix millisecond on.
    #[arg(long)]
    since: Option<i64>,
    /// Before this Unix millisecond.
    #[arg(long)]
    until: Option<i64>,
    /// Most entries (at most 500).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Entries to skip.
    #[arg(long, default_value_t = 0)]
    offset: u32,
}

/// Prints one page of the trail.
pub async fn run(remote: &Remote, args: AuditArgs) -> Result<(), CliError> {
    let client = Client::new(remote)?;
    let mut query = vec![
        format!("limit={}", args.limit),
        format!("offset={}", args.offset),
    ];
    for (name, value) in [
        ("actor", args.actor),
        ("action", args.action),
        ("target", args.target),
    ] {
        if let Some(value) = value {
            query.push(format!("{name}={}", encode(&value)));
        }
    }
    for (name, value) in [("since", args.since), ("until", args.until)] {
        if let Some(value) = value {
            query.push(format!("{name}={value}"));
        }
    }
    let page = client
        .call(Method::GET, &format!("audit?{}", query.join("&")), None)
        .await?;
    print(remote.output, &page, COLUMNS).map_err(|err| CliError::Usage(err.to_string()))
}

/// Percent-encodes a query value (`*` and spaces included).
fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
