//! `bulwark serve`: the HTTP front (MCP + operator API) until SIGTERM/SIGINT.
use std::io::Write;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Sources};
use crate::control::watch::Overrides;
use crate::front::{self, origin::OriginPolicy};
use crate::mcp::{self, HttpSettings};
use crate::runtime::{Runtime, shutdown_signal};

/// Runs the gateway over HTTP until a shutdown signal. `sources` are
/// watched; `overrides` re-applies the command line to a reloaded config.
pub async fn run(config: Config, sources: Sources, overrides: Overrides) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    check_exposure(&config, addr)?;
    // What needs no runtime is set up before it: a failure after the
    // runtime made the first start's admin key could lose that key.
    let early = Early {
        directory: crate::mcp::directory::Directory::from_config(
            &config.sessions,
            config.cache.redis_url.as_deref(),
        )?,
        control_thread: crate::control::thread::ControlThread::start()
            .context("starting the control plane's thread")?,
        admin_listener: match &config.server.admin_listen {
            Some(admin) => Some(admin_listener(admin, &config).await?),
            None => None,
        },
    };
    let runtime = Runtime::start_with(&config, sources).await?;
    let shutdown = CancellationToken::new();
    let (app, origin) = match assemble(&config, &runtime, overrides, &shutdown, early).await {
        Ok(assembled) => assembled,
        Err(err) => {
            abandon(runtime, &shutdown).await;
            return Err(err);
        }
    };
    // Every request gets its span and request id first, then the Host and
    // Origin check. Both wrap the router as one service rather than each of
    // its routes (`Router::layer`): a route is a box that each middleware
    // above it clones per request, the router an `Arc`.
    let app = tower::ServiceBuilder::new()
        .layer(axum::middleware::from_fn(
            crate::telemetry::traces::http::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            origin,
            crate::front::origin::layer,
        ))
        .service(app);
    let mut stdout = std::io::stdout();
    if let Some(key) = &runtime.admin_key {
        // Shown once, on its own line, and never logged. Not shown (a write
        // to stdout failed: a broken pipe, say), it is removed: the next
        // start makes another.
        let shown = writeln!(
            stdout,
            "No credentials were configured: created an admin API key (id {}). It is shown only now:\n{}",
            key.id, key.secret
        )
        .and_then(|()| stdout.flush());
        if let Err(err) = shown {
            abandon(runtime, &shutdown).await;
            return Err(anyhow::Error::new(err).context("printing the admin API key"));
        }
    }
    // The one line scripts and tests wait for: where to point an MCP client.
    writeln!(stdout, "Bulwark listening on http://{addr}/mcp")?;
    stdout.flush()?;
    tracing::info!(%addr, upstreams = runtime.registry.servers().len(), "gateway started");

    // SIGTERM: refuse new calls and let those in flight drain (their
    // streams stay open), then end open sessions and SSE streams so
    // graceful shutdown can finish.
    let drain = runtime.drain();
    front::listener::serve(listener, app, &config.server.limits, async move {
        shutdown_signal().await;
        drain.await;
        shutdown.cancel();
    })
    .await;
    runtime.shutdown().await;
    tracing::info!("gateway stopped");
    Ok(())
}

/// Ends a start that failed after the runtime started: its tasks stopped,
/// the admin key it made (never shown) removed, the tree shut down.
async fn abandon(runtime: Runtime, shutdown: &CancellationToken) {
    shutdown.cancel();
    if let Some(key) = &runtime.admin_key {
        crate::control::credentials::forget_unshown_admin_key(&runtime.control.store, &key.id)
            .await;
    }
    runtime.shutdown().await;
}

/// What `serve` sets up before the runtime starts.
struct Early {
    /// Where sessions are found across replicas, if they are shared.
    directory: Option<std::sync::Arc<crate::mcp::directory::Directory>>,
    /// The thread management requests reconcile on.
    control_thread: crate::control::thread::ControlThread,
    /// `server.admin_listen`, bound.
    admin_listener: Option<tokio::net::TcpListener>,
}

/// Everything between the runtime's start and serving: the control plane's
/// tasks (on the thread `early` started), the audit queue, the management
/// API and the MCP routes, with the Host/Origin policy that wraps them.
async fn assemble(
    config: &Config,
    runtime: &Runtime,
    overrides: Overrides,
    shutdown: &CancellationToken,
    early: Early,
) -> anyhow::Result<(axum::Router, std::sync::Arc<OriginPolicy>)> {
    let mut stdout = std::io::stdout();
    let Early {
        directory,
        control_thread,
        admin_listener,
    } = early;
    runtime.gateway.auth.spawn_pruner(shutdown.clone());
    let control = runtime.control.clone();
    // Management requests, the config watch and the shared-store follower
    // reconcile on the control thread, off the workers that serve calls.
    {
        let _on_control_thread = control_thread.enter();
        crate::control::follow::spawn(control.clone(), shutdown.clone());
        crate::control::watch::spawn(control.clone(), overrides, shutdown.clone());
    }
    let settings = HttpSettings {
        limits: config.server.limits.clone(),
        shutdown: shutdown.clone(),
        directory,
    };
    // A foreign Host or Origin reaches neither /mcp nor /api: checked at
    // each listener's edge, for every path.
    let origin = OriginPolicy::new(&config.server.allowed_hosts, &config.server.allowed_origins);
    // The MCP side's audit queue: /mcp refusals always, tool calls when
    // `[audit] mcp_calls` is on. Set once, here, before any request is served.
    let calls = crate::govern::calls::CallAudit::start(
        control.store.clone(),
        config.audit.queue,
        config.audit.include_payloads,
    );
    let _ = runtime.gateway.auth.audit.set(calls.clone());
    if let Some(directory) = &settings.directory {
        let _ = runtime.gateway.attempts.set(directory.clone());
    }
    if config.audit.mcp_calls {
        let _ = runtime.gateway.call_audit.set(calls.clone());
    }
    let governance = crate::govern::Governance::new(
        control.store.clone(),
        runtime.gateway.auth.clone(),
        control.credentials.clone(),
        config.login.clone(),
        calls,
        config.audit.mcp_calls,
    )
    .await?;
    crate::govern::audit::spawn_retention(
        control.store.clone(),
        config.audit.retention_days,
        shutdown.clone(),
    );
    let routes = crate::api::routes(runtime.gateway.clone())
        .merge(crate::api::control_routes(control.clone()))
        .merge(crate::api::governance_routes(governance.clone()))
        .merge(crate::ui::routes(control.clone(), shutdown.clone()))
        .merge(crate::telemetry::endpoint::routes(
            &runtime.telemetry,
            &runtime.gateway.auth,
        ));
    // Every /api/v1 route: authenticated, authorized by role, audited.
    let guard = crate::govern::guard::GuardState {
        governance,
        inner: routes.clone(),
    };
    let management = routes
        .layer(axum::middleware::from_fn_with_state(
            guard,
            crate::govern::guard::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            control_thread,
            crate::control::thread::layer,
        ));
    let probes = crate::api::probes(runtime.gateway.clone());
    let mut app = mcp::routes(&runtime.gateway, &settings).merge(probes.clone());
    // With an admin address, `/api` is served there only: the public port
    // answers 404 for it, as for any path it does not serve.
    match admin_listener {
        Some(listener) => {
            let management = management
                .merge(probes)
                .layer(axum::middleware::from_fn_with_state(
                    origin.clone(),
                    crate::front::origin::layer,
                ))
                .layer(axum::middleware::from_fn(
                    crate::telemetry::traces::http::layer,
                ));
            let admin = admin_server(listener, management, shutdown.clone())?;
            writeln!(stdout, "Bulwark management API on http://{admin}/api/v1")?;
        }
        None => app = app.merge(management),
    }
    Ok((app, origin))
}

/// Binds `server.admin_listen` (`addr`), refusing a non-loopback address
/// without authentication as the public one is refused.
async fn admin_listener(addr: &str, config: &Config) -> anyhow::Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on server.admin_listen = {addr}"))?;
    // The management API without authentication is as dangerous on the
    // admin address as on the public one.
    check_exposure(config, listener.local_addr()?)?;
    Ok(listener)
}

/// Serves the management routes on `listener` until `shutdown`.
fn admin_server(
    listener: tokio::net::TcpListener,
    routes: axum::Router,
    shutdown: CancellationToken,
) -> anyhow::Result<std::net::SocketAddr> {
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let served = axum::serve(
            listener,
            routes.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
        if let Err(err) = served {
            tracing::error!(%err, "management listener failed");
        }
    });
    Ok(bound)
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
