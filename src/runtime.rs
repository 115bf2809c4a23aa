//! Starting and stopping the supervision tree under a front door.
use std::sync::Arc;

use bulwark_actors::cache::{CacheActor, CacheArgs, CacheError, CacheHandle};
use bulwark_actors::guardrail::{GuardrailActor, GuardrailArgs, GuardrailConfigError, Guardrails};
use bulwark_actors::mailbox::MailboxStats;
use bulwark_actors::oauth::Tokens;
use bulwark_actors::timeout::{
    Escalation, EscalationActor, EscalationArgs, InstanceProbe, TimeoutConfigError,
};
use bulwark_actors::upstream::UpstreamObserver;
use bulwark_supervisors::registry::Registry;
use bulwark_supervisors::root::{self, RootArgs, RootMsg, RootSupervisor};
use bulwark_supervisors::shared::SharedActor;
use ractor::{Actor, ActorRef};

use crate::auth::keys::NewKey;
use crate::config::{Config, ConfigError, Sources};
use crate::control::ControlPlane;
use crate::control::credentials::{self, LiveCredentials};
use crate::mcp::naming::Naming;
use crate::mcp::observer::GatewayObserver;
use crate::mcp::{Gateway, Services};
use crate::probe::UpstreamProbe;
use crate::store::{self, Store};

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The guardrail policies did not compile.
    #[error("guardrails: {0}")]
    Guardrails(#[from] GuardrailConfigError),
    /// The cache configuration is unusable.
    #[error("cache: {0}")]
    Cache(#[from] CacheError),
    /// The timeout configuration is unusable.
    #[error("timeouts: {0}")]
    Timeouts(#[from] TimeoutConfigError),
    /// The root supervisor did not start.
    #[error("the supervision tree did not start: {0}")]
    Spawn(#[from] ractor::SpawnErr),
    /// Authentication could not be set up.
    #[error("auth: {0}")]
    Auth(#[from] crate::auth::SetupError),
    /// The management store is unusable.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The metrics pipeline could not be built.
    #[error("telemetry: {0}")]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    /// The first-start admin key could not be made.
    #[error("admin key: {0}")]
    AdminKey(#[from] crate::control::credentials::KeyCreateError),
}

/// A running gateway core: the tree and the MCP front's shared state.
pub struct Runtime {
    /// Configured upstreams and their status.
    pub registry: Arc<Registry>,
    /// The MCP front's shared state.
    pub gateway: Arc<Gateway>,
    /// Upstream OAuth tokens and their counters.
    pub tokens: Arc<Tokens>,
    /// The store and the reconcile path.
    pub control: Arc<ControlPlane>,
    /// The admin key made on a first start, to be shown once.
    pub admin_key: Option<NewKey>,
    /// Metrics: `/metrics` and the OTLP push.
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    root: ActorRef<RootMsg>,
    shutdown_grace: std::time::Duration,
}

impl Runtime {
    /// Starts one supervised actor per enabled upstream.
    pub async fn start(config: &Config) -> Result<Self, StartError> {
        Self::start_with(config, Sources::default()).await
    }

    /// Starts the tree for the file upstreams plus the store's; `sources`
    /// are where `config` came from (watched by [`crate::control::watch`]).
    pub async fn start_with(config: &Config, sources: Sources) -> Result<Self, StartError> {
        config.warn_ignored_keys();
        // What the file gets wrong once the environment is read (an unset
        // `${VAR}`, a line break in a header's variable) fails the start
        // here, before the store is opened or an admin key is made: a key
        // printed above a configuration error is easily lost.
        crate::config::upstream_specs(config)?;
        let telemetry = crate::telemetry::Telemetry::new(&config.telemetry)?;
        let guardrails = Guardrails::new(config.guardrails.clone())?;
        let cache = CacheHandle::new(&config.cache)?;
        let deadlines = Escalation::new(&config.timeouts, &config.server.tool_separator)?;
        let store = Store::open(&config.store, &config.server.data_dir()).await?;
        store::import::keys_file_once(&store, &crate::auth::keys_file(config)).await?;
        crate::control::pins::keep(&guardrails, &store).await?;
        let credentials = LiveCredentials::load(&config.auth, &store).await?;
        let stored = store::named::UPSTREAMS.all(&store).await?;
        let specs = crate::control::desired::specs(config, &stored)?;
        let auth = crate::auth::Auth::with_store(config, credentials.clone())?;
        let registry = Arc::new_cyclic(|registry: &std::sync::Weak<Registry>| {
            let probe = Arc::new(UpstreamProbe::new(registry.clone()));
            let registry = Registry::new(specs);
            let tokens = token_actor(&registry.tokens);
            registry.with_shared(vec![
                tokens,
                guardrail_actor(&guardrails),
                cache_actor(&cache),
                escalation_actor(&deadlines, probe),
            ])
        });
        let gateway = Gateway::new(
            registry.clone(),
            Naming::new(&config.server.tool_separator),
            config.server.gateway_tools,
            Services {
                guardrails,
                auth,
                cache: cache.clone(),
                deadlines,
                metrics: telemetry.requests(),
            },
        );
        telemetry.observe(&gateway);
        (gateway.virtual_servers).set(&config.virtual_servers, &config.server.tool_separator);
        (gateway.naming.tool_names())
            .set_modes(crate::control::desired::prefix_modes(config, &stored));
        let observer: Arc<dyn UpstreamObserver> = Arc::new(GatewayObserver::new(&gateway, cache));
        let tokens = registry.tokens.clone();
        let (root, _) = Actor::spawn(
            None,
            RootSupervisor,
            RootArgs {
                registry: registry.clone(),
                observer,
            },
        )
        .await?;
        // Last of what can fail: a key made and then lost to a later error
        // would never be shown (the next start finds one and makes none).
        let admin_key = credentials::bootstrap_admin(config, &store, &credentials).await?;
        let control = ControlPlane::new(
            store,
            credentials,
            gateway.clone(),
            root.clone(),
            config,
            sources,
        );
        Ok(Self {
            registry,
            gateway,
            tokens,
            control,
            admin_key,
            telemetry,
            root,
            shutdown_grace: std::time::Duration::from_secs(config.server.shutdown_grace_secs),
        })
    }

    /// Waits (up to `server.shutdown_grace_secs`) for calls in flight to finish.
    pub fn drain(&self) -> impl Future<Output = ()> + Send + 'static {
        let (registry, grace) = (self.registry.clone(), self.shutdown_grace);
        async move { crate::drain::in_flight_calls(&registry, grace).await }
    }

    /// Stops every upstream and waits until their processes are gone.
    pub async fn shutdown(self) {
        root::shutdown(&self.root, &self.registry).await;
        self.control.store.close().await;
        self.telemetry.shutdown().await;
    }
}

/// The `GuardrailActor` as the root starts (and restarts) it.
fn guardrail_actor(guardrails: &Guardrails) -> SharedActor {
    let mailbox = Arc::new(MailboxStats::default());
    let (handle, stats) = (guardrails.clone(), mailbox.clone());
    SharedActor::new(
        "guardrails",
        "guardrail_actor",
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

/// The `TokenActor`: fetches, refreshes and revokes upstream OAuth tokens.
fn token_actor(tokens: &Arc<Tokens>) -> SharedActor {
    let shared = tokens.clone();
    SharedActor::new(
        "oauth",
        "token_actor",
        tokens.mailbox.clone(),
        Arc::new(move |supervisor| {
            let tokens = shared.clone();
            Box::pin(async move { Ok(tokens.spawn(Some(supervisor)).await?.get_cell()) })
        }),
    )
}

/// The `CacheActor`: owns writes, expiry and the Redis connection.
fn cache_actor(cache: &CacheHandle) -> SharedActor {
    let handle = cache.clone();
    SharedActor::new(
        "cache",
        "cache_actor",
        Arc::default(),
        Arc::new(move |supervisor| {
            let args = CacheArgs {
                handle: handle.clone(),
            };
            Box::pin(async move {
                let (actor, _) = Actor::spawn_linked(None, CacheActor, args, supervisor).await?;
                Ok(actor.get_cell())
            })
        }),
    )
}

/// The `EscalationActor`: warns, cancels and has hung upstreams restarted.
fn escalation_actor(deadlines: &Escalation, probe: Arc<dyn InstanceProbe>) -> SharedActor {
    let handle = deadlines.clone();
    SharedActor::new(
        "escalation",
        "escalation_actor",
        Arc::default(),
        Arc::new(move |supervisor| {
            let args = EscalationArgs::new(handle.clone(), probe.clone());
            Box::pin(async move {
                let (actor, _) =
                    Actor::spawn_linked(None, EscalationActor, args, supervisor).await?;
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
