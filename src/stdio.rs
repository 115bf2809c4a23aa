//! `bulwark stdio`: the federated gateway as a stdio MCP server, for clients
//! that launch it as a process. Logs go to stderr; stdout is the MCP channel.
use rmcp::ServiceExt;

use crate::config::Config;
use crate::mcp::handler::GatewayHandler;
use crate::mcp::sessions::Scope;
use crate::runtime::{Runtime, shutdown_signal};

/// Longest wait for upstreams to start before serving anyway.
const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
const SETTLE_POLL: std::time::Duration = std::time::Duration::from_millis(10);

/// Serves the gateway on stdin/stdout until the client closes it or a signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let runtime = Runtime::start(&config).await?;
    // A client that launched us lists tools right away: give the upstreams
    // their start first, so the first list is the whole list.
    let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
    while !runtime.registry.settled() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(SETTLE_POLL).await;
    }
    let handler = GatewayHandler::new(runtime.gateway.clone(), Scope::Federated);
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
                () = shutdown_signal() => cancel.cancel(),
            }
        }
        Err(err) => tracing::error!(%err, "stdio client did not initialise"),
    }
    runtime.shutdown().await;
    Ok(())
}
