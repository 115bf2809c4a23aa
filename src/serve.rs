//! `bulwark serve`: the HTTP front (MCP + operator API) until SIGTERM/SIGINT.
use std::io::Write;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::front::{self, origin::OriginPolicy};
use crate::mcp::{self, HttpSettings};
use crate::runtime::{Runtime, shutdown_signal};

/// Runs the gateway over HTTP until a shutdown signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    check_exposure(&config, addr)?;
    let mut stdout = std::io::stdout();
    if let Some(key) = crate::auth::bootstrap::admin_key_if_needed(&config)? {
        // Shown once, on its own line, and never logged.
        writeln!(
            stdout,
            "No credentials were configured: created an admin API key (id {}). It is shown only now:",
            key.id
        )?;
        writeln!(stdout, "{}", key.secret)?;
    }
    let runtime = Runtime::start(&config).await?;
    let shutdown = CancellationToken::new();
    runtime.gateway.auth.spawn_pruner(shutdown.clone());
    let settings = HttpSettings {
        allowed_hosts: config.server.allowed_hosts.clone(),
        limits: config.server.limits.clone(),
        shutdown: shutdown.clone(),
    };
    let app = mcp::routes(&runtime.gateway, &settings)
        .merge(crate::api::routes(runtime.gateway.clone()))
        .layer(axum::middleware::from_fn_with_state(
            runtime.gateway.auth.clone(),
            crate::auth::middleware::management,
        ))
        // Outermost: a foreign Host or Origin reaches neither /mcp nor /api.
        .layer(axum::middleware::from_fn_with_state(
            OriginPolicy::new(&config.server.allowed_hosts, &config.server.allowed_origins),
            crate::front::origin::layer,
        ));
    // The one line scripts and tests wait for: where to point an MCP client.
    writeln!(stdout, "Bulwark listening on http://{addr}/mcp")?;
    stdout.flush()?;
    tracing::info!(%addr, upstreams = runtime.registry.servers().len(), "gateway started");

    let server_shutdown = shutdown.clone();
    front::listener::serve(listener, app, &config.server.limits, async move {
        shutdown_signal().await;
        // Ends open SSE streams so graceful shutdown does not wait on them.
        server_shutdown.cancel();
    })
    .await;
    runtime.shutdown().await;
    tracing::info!("gateway stopped");
    Ok(())
}

/// Refuses to serve without authentication beyond loopback unless forced.
fn check_exposure(config: &Config, addr: std::net::SocketAddr) -> anyhow::Result<()> {
    if config.auth.enabled {
        return Ok(());
    }
    if !addr.ip().is_loopback() && !config.auth.allow_insecure {
        anyhow::bail!(
            "authentication is off (auth.enabled = false) and {addr} is not a loopback address: \
             refusing to serve. Turn authentication on, listen on 127.0.0.1, or force it with \
             --insecure (auth.allow_insecure = true)"
        );
    }
    tracing::warn!(%addr, "authentication is OFF (auth.enabled = false): every caller may use every upstream and the management API");
    Ok(())
}
