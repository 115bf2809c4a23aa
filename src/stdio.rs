//! `bulwark stdio`: the federated gateway as a stdio MCP server, for clients
//! that launch it as a process. Logs go to stderr; stdout is the MCP channel.
use anyhow::Context;
use rmcp::ServiceExt;

use crate::auth::identity::Identity;
use crate::auth::{Auth, Credential, revocation};
use crate::config::Config;
use crate::control::credentials::LiveCredentials;
use crate::mcp::access::Access;
use crate::mcp::handler::GatewayHandler;
use crate::mcp::sessions::Scope;
use crate::runtime::{Runtime, shutdown_signal};
use crate::store::Store;
use tokio_util::sync::CancellationToken;

/// Longest wait for upstreams to start before serving anyway.
const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
const SETTLE_POLL: std::time::Duration = std::time::Duration::from_millis(10);

/// Environment variable holding the API key of a stdio session.
pub const API_KEY_ENV: &str = "BULWARK_API_KEY";

/// Serves the gateway on stdin/stdout until the client closes it or a signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    // Checked before any upstream starts: a refused key costs nothing.
    let (identity, key) = identity(&config).await?;
    let runtime = Runtime::start(&config).await?;
    // Keys revoked through the API or `bulwark key revoke` reach this process
    // through the store, as they reach `serve`.
    let poll = CancellationToken::new();
    let control = runtime.control.clone();
    control
        .credentials
        .spawn_poll(control.store.clone(), poll.clone());
    // A client that launched us lists tools right away: give the upstreams
    // their start first, so the first list is the whole list.
    let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
    while !runtime.registry.settled() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(SETTLE_POLL).await;
    }
    let access = Access::fixed(runtime.gateway.auth.clone(), identity);
    let handler = GatewayHandler::new(runtime.gateway.clone(), Scope::Federated, access);
    let service = handler.serve(crate::stdio_transport::stdio()).await;
    let mut ended = Ok(());
    match service {
        Ok(service) => {
            let cancel = service.cancellation_token();
            let auth = runtime.gateway.auth.clone();
            // A revoked key (or a withdrawn project) ends the session.
            let revoked = async {
                match &key {
                    Some(key) => revocation::refused(&auth, Some(Credential::Key(key)), None).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = revoked => {
                    tracing::warn!("{API_KEY_ENV} is no longer accepted; ending the stdio session");
                    cancel.cancel();
                    ended = Err(Revoked.into());
                }
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
    poll.cancel();
    runtime.shutdown().await;
    ended
}

/// The session ended because its key stopped being accepted. The caller
/// exits the process at once: the runtime would otherwise wait for the
/// blocking read of stdin, which the client keeps open.
#[derive(Debug, thiserror::Error)]
#[error(
    "{API_KEY_ENV} is no longer accepted (revoked, or its user disabled): the stdio session ended"
)]
pub struct Revoked;

/// The stdio session's caller and its key: the key in [`API_KEY_ENV`] (from
/// the config file or the management store, as `serve` knows them), or
/// anonymous (no key) when authentication is off.
async fn identity(config: &Config) -> anyhow::Result<(Identity, Option<String>)> {
    let store = Store::open(&config.store, &config.server.data_dir()).await?;
    crate::store::import::keys_file_once(&store, &crate::auth::keys_file(config)).await?;
    let credentials = LiveCredentials::load(&config.auth, &store).await;
    store.close().await;
    let auth = Auth::with_store(config, credentials?)?;
    if !auth.enabled() {
        tracing::warn!(
            "authentication is OFF (auth.enabled = false): every caller may use every upstream"
        );
        return Ok((Identity::anonymous(), None));
    }
    let key = std::env::var(API_KEY_ENV).ok().filter(|k| !k.trim().is_empty()).with_context(|| {
        format!(
            "authentication is on: set {API_KEY_ENV} to an API key (create one with `bulwark key create --project P --user U`), \
             or set BULWARK__AUTH__ENABLED=false for local testing"
        )
    })?;
    let key = key.trim().to_owned();
    let identity = auth
        .identify_key(&key)
        .with_context(|| format!("{API_KEY_ENV} was refused"))?;
    Ok((identity, Some(key)))
}
