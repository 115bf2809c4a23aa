//! `bulwark serve`: the HTTP front (MCP + operator API) until SIGTERM/SIGINT.
use std::io::Write;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::mcp::{self, HttpSettings};
use crate::runtime::{Runtime, shutdown_signal};

/// Runs the gateway over HTTP until a shutdown signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    let runtime = Runtime::start(&config).await?;
    let shutdown = CancellationToken::new();
    let settings = HttpSettings {
        allowed_hosts: config.server.allowed_hosts.clone(),
        allowed_origins: config.server.allowed_origins.clone(),
        shutdown: shutdown.clone(),
    };
    let app =
        mcp::routes(&runtime.gateway, &settings).merge(crate::api::routes(runtime.gateway.clone()));
    // The one line scripts and tests wait for: where to point an MCP client.
    let mut stdout = std::io::stdout();
    writeln!(stdout, "Bulwark listening on http://{addr}/mcp")?;
    stdout.flush()?;
    tracing::info!(%addr, upstreams = runtime.registry.servers().len(), "gateway started");

    let server_shutdown = shutdown.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        // Ends open SSE streams so graceful shutdown does not wait on them.
        server_shutdown.cancel();
    });
    let result = server.await;
    runtime.shutdown().await;
    tracing::info!("gateway stopped");
    result.context("HTTP server failed")
}
