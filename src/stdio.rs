//! `bulwark stdio`: the federated gateway as a stdio MCP server, for clients
//! that launch it as a process. Logs go to stderr; stdout is the MCP channel.
use rmcp::ServiceExt;

use crate::config::Config;
use crate::mcp::handler::GatewayHandler;
use crate::mcp::sessions::Scope;
use crate::runtime::{Runtime, shutdown_signal};

/// Serves the gateway on stdin/stdout until the client closes it or a signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let runtime = Runtime::start(&config).await?;
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
