//! The set of configured upstreams and their live status: what the front
//! doors route by and what `/api/v1/actors` reports.
use std::collections::HashMap;
use std::sync::Arc;

use bulwark_actors::mailbox::MailboxStats;
use bulwark_actors::oauth::Tokens;
use bulwark_actors::upstream::{UpstreamSpec, UpstreamStatus};

use crate::policy::RestartPolicy;
use crate::shared::SharedActor;

/// One configured upstream.
#[derive(Debug)]
pub struct ServerEntry {
    /// How it is launched.
    pub spec: UpstreamSpec,
    /// Its restart policy.
    pub policy: RestartPolicy,
    /// Live status, shared with its actors.
    pub status: Arc<UpstreamStatus>,
    /// Mailbox counters of its `ServerSupervisor`.
    pub supervisor_mailbox: Arc<MailboxStats>,
}

/// All configured upstreams, in configuration order.
#[derive(Debug, Default)]
pub struct Registry {
    servers: Vec<Arc<ServerEntry>>,
    by_name: HashMap<String, usize>,
    shared: Vec<SharedActor>,
    /// Mailbox counters of the root supervisor.
    pub root_mailbox: MailboxStats,
    /// Upstream OAuth tokens (the token actor's shared state and counters).
    pub tokens: Arc<Tokens>,
    /// Set at shutdown: calls in flight drain, new ones are refused.
    closing: std::sync::atomic::AtomicBool,
}

impl Registry {
    /// Builds the registry; names must be unique (config validation ensures it).
    pub fn new(servers: impl IntoIterator<Item = (UpstreamSpec, RestartPolicy)>) -> Self {
        let mut registry = Self::default();
        for (spec, policy) in servers {
            let entry = ServerEntry {
                status: UpstreamStatus::new(&spec.name),
                spec,
                policy,
                supervisor_mailbox: Arc::default(),
            };
            registry
                .by_name
                .insert(entry.spec.name.clone(), registry.servers.len());
            registry.servers.push(Arc::new(entry));
        }
        registry
    }

    /// From now on no new upstream call starts (shutdown is draining).
    pub fn begin_closing(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether shutdown has begun.
    pub fn is_closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Adds the shared actors the root starts before any upstream.
    pub fn with_shared(mut self, shared: Vec<SharedActor>) -> Self {
        self.shared = shared;
        self
    }

    /// The shared actors, in start order.
    pub fn shared(&self) -> &[SharedActor] {
        &self.shared
    }

    /// The upstream called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<ServerEntry>> {
        self.by_name.get(name).map(|&i| &self.servers[i])
    }

    /// Upstreams still on their way to `ready` or `failed`.
    pub fn pending(&self) -> Vec<&str> {
        use bulwark_actors::upstream::UpstreamState;
        self.servers
            .iter()
            .filter(|entry| {
                !matches!(
                    entry.status.state(),
                    UpstreamState::Ready | UpstreamState::Failed
                )
            })
            .map(|entry| entry.spec.name.as_str())
            .collect()
    }

    /// True once every upstream is ready or has failed for good.
    pub fn settled(&self) -> bool {
        self.pending().is_empty()
    }

    /// Every upstream, in configuration order.
    pub fn servers(&self) -> &[Arc<ServerEntry>] {
        &self.servers
    }
}
