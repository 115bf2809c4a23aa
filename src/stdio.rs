//! `bulwark stdio`: the federated gateway as a stdio MCP server, for clients
//! that launch it as a process. Logs go to stderr; stdout is the MCP channel.
use anyhow::Context;
use rmcp::ServiceExt;

use crate::auth::Auth;
use crate::auth::identity::Identity;
use crate::config::Config;
use crate::mcp::access::Access;
use crate::mcp::handler::GatewayHandler;
use crate::mcp::sessions::Scope;
use crate::runtime::{Runtime, shutdown_signal};

/// Longest wait for upstreams to start before serving anyway.
const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
const SETTLE_POLL: std::time::Duration = std::time::Duration::from_millis(10);

/// Environment variable holding the API key of a stdio session.
pub const API_KEY_ENV: &str = "BULWARK_API_KEY";

/// Serves the gateway on stdin/stdout until the client closes it or a signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    // Checked before any upstream starts: a refused key costs nothing.
    let identity = identity(&config)?;
    let runtime = Runtime::start(&config).await?;
    // A client that launched us lists tools right away: give the upstreams
    // their start first, so the first list is the whole list.
    let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
    while !runtime.registry.settled() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(SETTLE_POLL).await;
    }
    let access = Access::fixed(runtime.gateway.auth.clone(), identity);
    let handler = GatewayHandler::new(runtime.gateway.clone(), Scope::Federated, access);
    let service = handler.serve(rmcp::transport::io::stdio()).await;
    match service {
        Ok(service) => {
            let cancel = service.cancellation_token();
            tokio::select! {
                result = service.waiting() => {
                    if let Err(err) = result {
                        tracing::warn!(%err, "stdio session ended abnormally");
                    }
                }
                () = shutdown_signal() => {
                    runtime.drain().await;
                    cancel.cancel();
                }
            }
        }
        Err(err) => tracing::error!(%err, "stdio client did not initialise"),
    }
    runtime.shutdown().await;
    Ok(())
}

/// The stdio session's caller: the key in [`API_KEY_ENV`], or anonymous
/// when authentication is off.
fn identity(config: &Config) -> anyhow::Result<Identity> {
    let auth = Auth::from_config(config)?;
    if !auth.enabled() {
        tracing::warn!(
            "authentication is OFF (auth.enabled = false): every caller may use every upstream"
        );
        return Ok(Identity::anonymous());
    }
    let key = std::env::var(API_KEY_ENV).ok().filter(|k| !k.trim().is_empty()).with_context(|| {
        format!(
            "authentication is on: set {API_KEY_ENV} to an API key (create one with `bulwark key create --project P --user U`), \
             or set BULWARK__AUTH__ENABLED=false for local testing"
        )
    })?;
    auth.identify_key(key.trim())
        .with_context(|| format!("{API_KEY_ENV} was refused"))
}
