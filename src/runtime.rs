//! Starting and stopping the supervision tree under a front door.
use std::sync::Arc;

use bulwark_actors::oauth::Tokens;
use bulwark_actors::upstream::UpstreamObserver;
use bulwark_supervisors::registry::Registry;
use bulwark_supervisors::root::{self, RootArgs, RootMsg, RootSupervisor};
use ractor::{Actor, ActorRef};

use crate::config::{self, Config, ConfigError};
use crate::mcp::Gateway;
use crate::mcp::naming::Naming;

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The root supervisor did not start.
    #[error("the supervision tree did not start: {0}")]
    Spawn(#[from] ractor::SpawnErr),
}

/// A running gateway core: the tree and the MCP front's shared state.
pub struct Runtime {
    /// Configured upstreams and their status.
    pub registry: Arc<Registry>,
    /// The MCP front's shared state.
    pub gateway: Arc<Gateway>,
    /// Upstream OAuth tokens and their counters.
    pub tokens: Arc<Tokens>,
    root: ActorRef<RootMsg>,
}

impl Runtime {
    /// Starts one supervised actor per enabled upstream.
    pub async fn start(config: &Config) -> Result<Self, StartError> {
        let registry = Arc::new(Registry::new(config::upstream_specs(config)?));
        let gateway = Gateway::new(registry.clone(), Naming::new(&config.server.tool_separator));
        let observer: Arc<dyn UpstreamObserver> = gateway.sessions.clone();
        let tokens = registry.tokens.clone();
        let (root, _) = Actor::spawn(
            None,
            RootSupervisor,
            RootArgs {
                registry: registry.clone(),
                observer,
                tokens: tokens.clone(),
            },
        )
        .await?;
        Ok(Self {
            registry,
            gateway,
            tokens,
            root,
        })
    }

    /// Stops every upstream and waits until their processes are gone.
    pub async fn shutdown(self) {
        root::shutdown(&self.root, &self.registry).await;
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = term => tracing::info!("SIGTERM received; shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; shutting down"),
    }
}
