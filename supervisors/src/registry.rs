//! The set of configured upstreams and their live status: what the front
//! doors route by and what `/api/v1/actors` reports.
//!
//! The set changes at run time (the control plane adds and removes
//! upstreams), so it is an immutable snapshot swapped atomically: readers on
//! the request path never take a lock.
use std::sync::Arc;

use arc_swap::ArcSwap;

use bulwark_actors::mailbox::MailboxStats;
use bulwark_actors::oauth::Tokens;
use bulwark_actors::upstream::{Pool, UpstreamSpec};

use crate::policy::RestartPolicy;
use crate::shared::SharedActor;

/// One configured upstream.
#[derive(Debug)]
pub struct ServerEntry {
    /// How it is launched.
    pub spec: UpstreamSpec,
    /// Its restart policy.
    pub policy: RestartPolicy,
    /// Its instances' live statuses (one unless it is a pool), shared with
    /// its actors; calls pick an instance here.
    pub pool: Arc<Pool>,
    /// Mailbox counters of its `ServerSupervisor`.
    pub supervisor_mailbox: Arc<MailboxStats>,
}

impl ServerEntry {
    /// A fresh entry (new status, new counters) for `spec`.
    pub fn new(spec: UpstreamSpec, policy: RestartPolicy) -> Arc<Self> {
        Arc::new(Self {
            pool: Arc::new(Pool::new(&spec.name, &spec.pool)),
            spec,
            policy,
            supervisor_mailbox: Arc::default(),
        })
    }
}

/// One snapshot of the running upstreams, in the order they were added.
#[derive(Debug, Default)]
pub struct Servers {
    list: Vec<Arc<ServerEntry>>,
    by_name: foldhash::HashMap<String, usize>,
}

impl Servers {
    fn from_list(list: Vec<Arc<ServerEntry>>) -> Self {
        let by_name = list
            .iter()
            .enumerate()
            .map(|(i, entry)| (entry.spec.name.clone(), i))
            .collect();
        Self { list, by_name }
    }

    /// The upstream called `name` in this snapshot.
    pub fn get(&self, name: &str) -> Option<&Arc<ServerEntry>> {
        self.by_name.get(name).map(|&i| &self.list[i])
    }
}

impl std::ops::Deref for Servers {
    type Target = [Arc<ServerEntry>];

    fn deref(&self) -> &Self::Target {
        &self.list
    }
}

/// All running upstreams, in the order they were added.
#[derive(Debug, Default)]
pub struct Registry {
    servers: ArcSwap<Servers>,
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
        let list = servers
            .into_iter()
            .map(|(spec, policy)| ServerEntry::new(spec, policy))
            .collect();
        Self {
            servers: ArcSwap::from_pointee(Servers::from_list(list)),
            ..Self::default()
        }
    }

    /// Adds `entry`, replacing a running entry of the same name in place.
    /// Only the root supervisor calls this, so updates never race.
    pub fn insert(&self, entry: Arc<ServerEntry>) {
        let current = self.servers.load();
        let mut list = current.list.clone();
        match current.by_name.get(&entry.spec.name) {
            Some(&i) => list[i] = entry,
            None => list.push(entry),
        }
        self.servers.store(Arc::new(Servers::from_list(list)));
    }

    /// Removes the upstream called `name`: from now on nothing routes to it.
    pub fn remove(&self, name: &str) -> Option<Arc<ServerEntry>> {
        let current = self.servers.load();
        let entry = current.get(name)?.clone();
        let list = current
            .list
            .iter()
            .filter(|e| e.spec.name != name)
            .cloned()
            .collect();
        self.servers.store(Arc::new(Servers::from_list(list)));
        Some(entry)
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
    pub fn get(&self, name: &str) -> Option<Arc<ServerEntry>> {
        self.servers.load().get(name).cloned()
    }

    /// Upstreams still on their way to `ready` or `failed`.
    pub fn pending(&self) -> Vec<String> {
        use bulwark_actors::upstream::UpstreamState;
        self.servers
            .load()
            .iter()
            .filter(|entry| {
                !matches!(
                    entry.pool.state(),
                    UpstreamState::Ready | UpstreamState::Failed
                )
            })
            .map(|entry| entry.spec.name.clone())
            .collect()
    }

    /// True once every upstream is ready or has failed for good.
    pub fn settled(&self) -> bool {
        self.pending().is_empty()
    }

    /// Upstreams that keep the gateway from serving: neither an instance
    /// that takes calls, nor failed for good (circuit open), nor ever ready
    /// before. One that served and now restarts is flapping: it answers
    /// "unavailable" on its own and does not take the gateway out of a load
    /// balancer's rotation.
    pub fn not_serving(&self) -> Vec<String> {
        use bulwark_actors::upstream::UpstreamState;
        self.servers
            .load()
            .iter()
            .filter(|entry| {
                let pool = &entry.pool;
                !(pool.has_routable() || pool.has_served() || pool.state() == UpstreamState::Failed)
            })
            .map(|entry| entry.spec.name.clone())
            .collect()
    }

    /// A snapshot of every running upstream, in the order they were added.
    pub fn servers(&self) -> Arc<Servers> {
        self.servers.load_full()
    }
}
