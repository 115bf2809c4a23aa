//! Starting and stopping the supervision tree under a front door.
use std::sync::Arc;

use bulwark_actors::guardrail::{GuardrailActor, GuardrailArgs, GuardrailConfigError, Guardrails};
use bulwark_actors::mailbox::MailboxStats;
use bulwark_actors::upstream::UpstreamObserver;
use bulwark_supervisors::registry::Registry;
use bulwark_supervisors::root::{self, RootArgs, RootMsg, RootSupervisor};
use bulwark_supervisors::shared::SharedActor;
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
    /// The guardrail policies did not compile.
    #[error("guardrails: {0}")]
    Guardrails(#[from] GuardrailConfigError),
    /// The root supervisor did not start.
    #[error("the supervision tree did not start: {0}")]
    Spawn(#[from] ractor::SpawnErr),
    /// Authentication could not be set up.
    #[error("auth: {0}")]
    Auth(#[from] crate::auth::SetupError),
}

/// A running gateway core: the tree and the MCP front's shared state.
pub struct Runtime {
    /// Configured upstreams and their status.
    pub registry: Arc<Registry>,
    /// The MCP front's shared state.
    pub gateway: Arc<Gateway>,
    root: ActorRef<RootMsg>,
}

impl Runtime {
    /// Starts one supervised actor per enabled upstream.
    pub async fn start(config: &Config) -> Result<Self, StartError> {
        let guardrails = Guardrails::new(config.guardrails.clone())?;
        let registry = Arc::new(
            Registry::new(config::upstream_specs(config)?)
                .with_shared(vec![guardrail_actor(&guardrails)]),
        );
        let auth = crate::auth::Auth::from_config(config)?;
        let gateway = Gateway::new(
            registry.clone(),
            Naming::new(&config.server.tool_separator),
            config.server.gateway_tools,
            guardrails,
            auth,
        );
        let observer: Arc<dyn UpstreamObserver> = gateway.sessions.clone();
        let (root, _) = Actor::spawn(
            None,
            RootSupervisor,
            RootArgs {
                registry: registry.clone(),
                observer,
            },
        )
        .await?;
        Ok(Self {
            registry,
            gateway,
            root,
        })
    }

    /// Stops every upstream and waits until their processes are gone.
    pub async fn shutdown(self) {
        root::shutdown(&self.root, &self.registry).await;
    }
}

/// The `GuardrailActor` as the root starts (and restarts) it.
fn guardrail_actor(guardrails: &Guardrails) -> SharedActor {
    let mailbox = Arc::new(MailboxStats::default());
    let (handle, stats) = (guardrails.clone(), mailbox.clone());
    SharedActor::new(
        "guardrails",
        mailbox,
        Arc::new(move |supervisor| {
            let args = GuardrailArgs {
                guardrails: handle.clone(),
                mailbox: stats.clone(),
            };
            Box::pin(async move {
                let (actor, _) =
                    Actor::spawn_linked(None, GuardrailActor, args, supervisor).await?;
                Ok(actor.get_cell())
            })
        }),
    )
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
