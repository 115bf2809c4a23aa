//! `CacheActor`: owns the cache's writes, invalidations, housekeeping and the
//! Redis connection. Reads never come here (see [`CacheHandle`]).
//!
//! On start it connects the backend (a lazy Redis connection manager, so a
//! refusing Redis does not hold up startup) and publishes itself to the
//! handle; on stop it withdraws both. Restarted by the root supervisor: the
//! memory backend lives in the handle and survives the restart.
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::Value;
use tokio::task::JoinHandle;

use super::handle::{Backend, CacheHandle};
use super::key::CacheKey;
use super::scope::Scope;

/// What a `CacheActor` starts with.
pub struct CacheArgs {
    /// The handle it serves; readers keep their clones across restarts.
    pub handle: CacheHandle,
}

/// Messages of the cache actor.
pub enum CacheMsg {
    /// Store a value.
    Put {
        /// Where.
        key: CacheKey,
        /// What.
        value: Arc<Value>,
        /// For how long.
        ttl: Duration,
        /// The invalidation epoch the value was fetched in; a stale one is dropped.
        epoch: Option<u64>,
    },
    /// Remove every entry in a scope; the hold (Redis) keeps reads of the
    /// scope missing until this is applied.
    Invalidate(Scope, Option<super::epochs::Hold>),
    /// Run the memory backend's housekeeping (expiry, eviction counts).
    Housekeep,
    /// Reply once every earlier message is applied.
    Flush(RpcReplyPort<()>),
}

/// State of the running actor.
pub struct CacheState {
    handle: CacheHandle,
    housekeeping: Option<JoinHandle<()>>,
}

/// How often the memory backend's expired entries are swept.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(1);

/// The cache actor.
pub struct CacheActor;

impl Actor for CacheActor {
    type Msg = CacheMsg;
    type State = CacheState;
    type Arguments = CacheArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        CacheArgs { handle }: CacheArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let housekeeping = match &handle.shared().backend {
            Backend::Redis(redis) => {
                redis.connect()?;
                None
            }
            Backend::Memory(_) => {
                Some(myself.send_interval(HOUSEKEEPING_EVERY, || CacheMsg::Housekeep))
            }
        };
        handle.set_actor(Some(myself));
        tracing::info!(backend = ?handle.backend(), "cache started");
        Ok(CacheState {
            handle,
            housekeeping,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(task) = state.housekeeping.take() {
            task.abort();
        }
        state.handle.set_actor(None);
        if let Backend::Redis(redis) = &state.handle.shared().backend {
            redis.disconnect();
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let shared = state.handle.shared();
        match msg {
            CacheMsg::Put {
                key,
                value,
                ttl,
                epoch,
            } => {
                if epoch.is_some_and(|e| e != state.handle.epoch(key.upstream())) {
                    tracing::debug!(kind = %key.kind(), "stale fill dropped after invalidation");
                } else {
                    // Bounded by op_timeout on Redis; instant in memory.
                    shared.store(key, value, ttl).await;
                }
            }
            CacheMsg::Invalidate(scope, hold) => {
                shared.invalidate(&scope).await;
                drop(hold);
                tracing::debug!(%scope, "cache invalidated");
            }
            CacheMsg::Housekeep => {
                if let Backend::Memory(memory) = &shared.backend {
                    memory.run_pending_tasks().await;
                }
            }
            CacheMsg::Flush(reply) => {
                if let Backend::Memory(memory) = &shared.backend {
                    memory.run_pending_tasks().await;
                }
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}
