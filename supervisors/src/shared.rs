//! Shared actors (guardrails, cache, deadlines): one of each under the root,
//! started before any upstream and restarted by the root when they die.
//!
//! Their state that matters (policies, cache handles, in-flight deadlines)
//! lives in handles shared with the request path, so a restarted actor picks
//! up where the old one stopped; the root only needs a way to spawn one.
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bulwark_actors::mailbox::MailboxStats;
use futures::future::BoxFuture;
use ractor::{ActorCell, SpawnErr};
use tokio::time::Instant;

/// Spawns the actor linked to the given supervisor cell.
pub type SpawnLinked =
    Arc<dyn Fn(ActorCell) -> BoxFuture<'static, Result<ActorCell, SpawnErr>> + Send + Sync>;

/// One shared actor the root keeps running.
#[derive(Clone)]
pub struct SharedActor {
    /// Name in the supervision tree (`oauth`, `guardrails`, `cache`, `escalation`).
    pub name: &'static str,
    /// What it is (`token_actor`, `guardrail_actor`, …), for operators.
    pub kind: &'static str,
    /// Its mailbox counters, kept across restarts.
    pub mailbox: Arc<MailboxStats>,
    /// Restarts since the gateway started.
    pub restarts: Arc<AtomicU32>,
    /// When the running instance started, for its uptime (`None` before the
    /// first start).
    started: Arc<Mutex<Option<Instant>>>,
    spawn: SpawnLinked,
}

impl std::fmt::Debug for SharedActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedActor")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl SharedActor {
    /// A shared actor started by `spawn`, which receives the root's cell to link to.
    pub fn new(
        name: &'static str,
        kind: &'static str,
        mailbox: Arc<MailboxStats>,
        spawn: SpawnLinked,
    ) -> Self {
        Self {
            name,
            kind,
            mailbox,
            restarts: Arc::default(),
            started: Arc::default(),
            spawn,
        }
    }

    /// Starts an instance linked to `supervisor`.
    pub(crate) async fn start(&self, supervisor: ActorCell) -> Result<ActorCell, SpawnErr> {
        let cell = (self.spawn)(supervisor).await?;
        *self.started.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        Ok(cell)
    }

    /// How long the running instance has been up (`None` before it started).
    pub fn uptime(&self) -> Option<Duration> {
        let started = *self.started.lock().unwrap_or_else(PoisonError::into_inner);
        started.map(|at| at.elapsed())
    }

    /// Counts one restart.
    pub(crate) fn count_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// Restarts since the gateway started.
    pub fn restart_count(&self) -> u32 {
        self.restarts.load(Ordering::Relaxed)
    }
}
