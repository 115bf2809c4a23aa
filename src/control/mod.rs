//! The control plane: one reconcile path from desired state (config file +
//! store) to the running supervision tree.
//!
//! - [`credentials`]: keys and grants from the file and the store, swapped whole.
//! - [`desired`]: what should run: file upstreams plus enabled stored ones.
//! - [`follow`]: applying writes other replicas made to a shared store.
//! - [`notify`]: telling client sessions that lists changed.
//! - [`pins`]: guardrail pins and approvals kept in the store.
//! - [`watch`]: the config file watch and SIGHUP.
//!
//! Every change (an API write, a saved config file, SIGHUP) ends in
//! [`ControlPlane::reconcile`], which diffs desired against running and
//! sends the root supervisor one typed command per server that differs:
//! add, remove (with drain), or remove+add for an update. Servers that did
//! not change are not touched: same process, same sessions, same caches.
pub mod credentials;
pub mod desired;
pub mod follow;
mod notify;
pub mod pins;
pub mod thread;
pub mod watch;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bulwark_supervisors::control::Command;
use bulwark_supervisors::registry::{Registry, ServerEntry};
use bulwark_supervisors::root::{self, RootMsg};
use ractor::ActorRef;
use ractor::concurrency::oneshot;

use crate::config::{self, Config, ConfigError, Sources};
use crate::mcp::Gateway;
use crate::store::{Store, StoreError};
use credentials::LiveCredentials;

/// How long calls in flight on a removed or updated upstream may finish.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a reconcile waits for added upstreams to come up before it
/// answers (they keep starting afterwards; sessions are told when ready).
const SETTLE_WAIT: Duration = Duration::from_secs(10);

/// Why a change could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The desired configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The root supervisor is gone (shutting down).
    #[error("the supervision tree is not running")]
    TreeGone,
}

/// What one reconcile changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Servers started.
    pub added: Vec<String>,
    /// Servers stopped.
    pub removed: Vec<String>,
    /// Servers restarted with a new definition.
    pub updated: Vec<String>,
}

impl Applied {
    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.updated.is_empty()
    }
}

/// The store, the file's last good config and the running tree.
pub struct ControlPlane {
    /// The management store.
    pub store: Store,
    /// Keys and grants (the request path's credential source).
    pub credentials: Arc<LiveCredentials>,
    /// The MCP front's shared state.
    pub gateway: Arc<Gateway>,
    registry: Arc<Registry>,
    root: ActorRef<RootMsg>,
    file: ArcSwap<Config>,
    sources: Sources,
    /// One reconcile at a time: each sees the previous one's result.
    apply: tokio::sync::Mutex<()>,
}

impl ControlPlane {
    /// The control plane over a started tree.
    pub fn new(
        store: Store,
        credentials: Arc<LiveCredentials>,
        gateway: Arc<Gateway>,
        root: ActorRef<RootMsg>,
        config: &Config,
        sources: Sources,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            credentials,
            registry: gateway.registry.clone(),
            gateway,
            root,
            file: ArcSwap::from_pointee(config.clone()),
            sources,
            apply: tokio::sync::Mutex::new(()),
        })
    }

    /// The config file's last good configuration.
    pub fn file_config(&self) -> Arc<Config> {
        self.file.load_full()
    }

    /// Where the file configuration comes from.
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// The running tree.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Takes a newly loaded file configuration and applies it.
    pub async fn set_file_config(&self, config: Config) -> Result<Applied, ControlError> {
        // Fails on what the file alone gets wrong (say, an unset `${VAR}`).
        config::upstream_specs(&config)?;
        self.file.store(Arc::new(config.clone()));
        (self.gateway.virtual_servers).set(&config.virtual_servers, &config.server.tool_separator);
        self.credentials.set_file(&config.auth, &self.store).await?;
        self.reconcile().await
    }

    /// Brings the running tree to the desired state; see the module docs.
    pub async fn reconcile(&self) -> Result<Applied, ControlError> {
        let _one_at_a_time = self.apply.lock().await;
        let file = self.file.load_full();
        let stored = crate::store::named::UPSTREAMS.all(&self.store).await?;
        let desired = desired::specs(&file, &stored)?;
        (self.gateway.naming.tool_names()).set_modes(desired::prefix_modes(&file, &stored));
        let running = self.registry.servers();
        let mut applied = Applied::default();
        let wanted: BTreeSet<&str> = desired.iter().map(|(s, _)| s.name.as_str()).collect();
        let mut stops = Vec::new();
        for entry in running.iter() {
            if !wanted.contains(entry.spec.name.as_str()) {
                applied.removed.push(entry.spec.name.clone());
                stops.push(self.remove(entry.spec.name.clone()));
            }
        }
        let mut starts = Vec::new();
        for (spec, policy) in desired {
            match running.get(&spec.name) {
                Some(entry) if entry.spec == spec && entry.policy == policy => {}
                Some(_) => {
                    applied.updated.push(spec.name.clone());
                    starts.push(ServerEntry::new(spec, policy));
                }
                None => {
                    applied.added.push(spec.name.clone());
                    starts.push(ServerEntry::new(spec, policy));
                }
            }
        }
        // Removals drain in parallel; an update drains its old instance first.
        let updates = starts
            .iter()
            .filter(|entry| running.get(&entry.spec.name).is_some())
            .map(|entry| self.remove(entry.spec.name.clone()));
        let results = futures::future::join_all(stops.into_iter().chain(updates)).await;
        results.into_iter().collect::<Result<Vec<_>, _>>()?;
        for entry in &starts {
            self.add(entry.clone()).await?;
        }
        for name in applied.removed.iter().chain(&applied.updated) {
            notify::forget(&self.gateway, name).await;
        }
        // Its `/mcp/{server}` is gone: end the sessions still open there.
        for name in &applied.removed {
            self.gateway.server_sessions.forget(name).await;
        }
        if !applied.is_empty() {
            tracing::info!(added = ?applied.added, removed = ?applied.removed, updated = ?applied.updated, "applied upstream changes");
            notify::list_changed(&self.gateway, applied.removed.iter().map(String::as_str));
            notify::when_settled(&self.gateway, starts, SETTLE_WAIT).await;
        }
        Ok(applied)
    }

    /// Restarts one running upstream; false when none runs by that name.
    pub async fn restart(&self, name: &str) -> Result<bool, ControlError> {
        let (tx, rx) = oneshot();
        self.send(Command::Restart(name.to_owned(), tx.into()))?;
        let restarted = rx.await.map_err(|_| ControlError::TreeGone)?;
        if restarted {
            notify::forget(&self.gateway, name).await;
            if let Some(entry) = self.registry.get(name) {
                notify::when_settled(&self.gateway, vec![entry], SETTLE_WAIT).await;
            }
        }
        Ok(restarted)
    }

    async fn add(&self, entry: Arc<ServerEntry>) -> Result<(), ControlError> {
        let (tx, rx) = oneshot();
        self.send(Command::Add(entry, tx.into()))?;
        rx.await.map_err(|_| ControlError::TreeGone)
    }

    async fn remove(&self, name: String) -> Result<bool, ControlError> {
        let (tx, rx) = oneshot();
        self.send(Command::Remove {
            name,
            drain: DRAIN_TIMEOUT,
            reply: tx.into(),
        })?;
        rx.await.map_err(|_| ControlError::TreeGone)
    }

    fn send(&self, command: Command) -> Result<(), ControlError> {
        if root::control(&self.root, &self.registry, command) {
            Ok(())
        } else {
            Err(ControlError::TreeGone)
        }
    }
}
