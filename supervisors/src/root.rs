//! `RootSupervisor`: the top of the tree.
//!
//! Supervision: it starts the shared actors (guardrails, cache, deadlines,
//! and the `TokenActor`) first, then one `ServerSupervisor` per configured
//! upstream. A shared actor or a server supervisor only dies by a bug (a
//! panic); the root then starts a fresh one in its place on the same shared
//! state, and the others never notice. A restart that fails is retried every
//! second: it never takes the root down. `Shutdown` stops every server
//! supervisor in parallel, revokes the upstream tokens where the
//! authorization server supports it, and replies when all upstream
//! processes are gone.
use std::sync::Arc;

use bulwark_actors::upstream::{UpstreamObserver, UpstreamState};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::registry::{Registry, ServerEntry};
use crate::server::{ServerArgs, ServerMsg, ServerSupervisor};
use crate::shared::SharedActor;

/// Pause before restarting a shared actor that died, so a panic loop cannot spin.
const SHARED_RESTART_DELAY: std::time::Duration = std::time::Duration::from_millis(100);
/// Pause before retrying a restart that failed.
const RESTART_RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// What the root starts with.
pub struct RootArgs {
    /// The upstreams to supervise.
    pub registry: Arc<Registry>,
    /// Where upstream announcements go.
    pub observer: Arc<dyn UpstreamObserver>,
}

/// Messages of the root supervisor.
pub enum RootMsg {
    /// Stop every upstream; reply when all are gone.
    Shutdown(RpcReplyPort<()>),
    /// Add, remove or restart one server (the control plane's commands).
    Control(crate::control::Command),
    /// Try again to start a shared actor whose restart failed.
    RestartShared(SharedActor),
    /// Try again to start a server supervisor whose restart failed.
    RestartServer(Arc<ServerEntry>),
}

/// State of the root supervisor.
pub struct RootState {
    pub(crate) registry: Arc<Registry>,
    observer: Arc<dyn UpstreamObserver>,
    pub(crate) children: Vec<(ActorRef<ServerMsg>, Arc<ServerEntry>)>,
    shared: Vec<(ActorCell, SharedActor)>,
    pub(crate) stopping: bool,
}

/// Longest wait for token revocation at shutdown.
const REVOKE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The root of the supervision tree.
pub struct RootSupervisor;

impl Actor for RootSupervisor {
    type Msg = RootMsg;
    type State = RootState;
    type Arguments = RootArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: RootArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut state = RootState {
            registry: args.registry,
            observer: args.observer,
            children: Vec::new(),
            shared: Vec::new(),
            stopping: false,
        };
        for actor in state.registry.shared().to_vec() {
            let cell = actor.start(myself.get_cell()).await?;
            state.shared.push((cell, actor));
        }
        for entry in state.registry.servers().iter().cloned() {
            spawn_server(&myself, &mut state, entry).await?;
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.registry.root_mailbox.handled();
        match message {
            RootMsg::Control(command) => crate::control::handle(&myself, state, command).await?,
            RootMsg::Shutdown(reply) => {
                state.stopping = true;
                let stops = state.children.iter().map(|(child, entry)| {
                    let child = child.clone();
                    let mailbox = entry.supervisor_mailbox.clone();
                    async move {
                        mailbox.enqueued();
                        let _ = ractor::call!(child, ServerMsg::Shutdown);
                        child.stop(None);
                    }
                });
                futures::future::join_all(stops).await;
                let revoke = state.registry.tokens.revoke_all();
                if tokio::time::timeout(REVOKE_WAIT, revoke).await.is_err() {
                    tracing::warn!("token revocation did not finish in time");
                }
                // Shared actors last: upstreams may still have used them while stopping.
                for (cell, _) in &state.shared {
                    cell.stop(None);
                }
                let _ = reply.send(());
            }
            RootMsg::RestartShared(actor) if !state.stopping => {
                restart_shared(&myself, state, actor).await;
            }
            RootMsg::RestartServer(entry)
                if !state.stopping
                    // Not removed meanwhile by the control plane.
                    && state
                        .registry
                        .get(&entry.spec.name)
                        .is_some_and(|current| Arc::ptr_eq(&current, &entry)) =>
            {
                if let Err(err) = spawn_server(&myself, state, entry.clone()).await {
                    tracing::error!(server = %entry.spec.name, %err, "server supervisor did not restart; retrying");
                    retry_later(&myself, &state.registry, RootMsg::RestartServer(entry));
                }
            }
            RootMsg::RestartShared(_) | RootMsg::RestartServer(_) => {}
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let cell = match &event {
            SupervisionEvent::ActorFailed(cell, err) => {
                tracing::error!(%err, "supervised actor panicked");
                cell
            }
            SupervisionEvent::ActorTerminated(cell, ..) => cell,
            _ => return Ok(()),
        };
        if let Some(index) = state
            .shared
            .iter()
            .position(|(shared, _)| shared.get_id() == cell.get_id())
        {
            let (_, actor) = state.shared.swap_remove(index);
            if !state.stopping {
                tracing::warn!(actor = actor.name, "restarting shared actor");
                actor.count_restart();
                tokio::time::sleep(SHARED_RESTART_DELAY).await;
                restart_shared(&myself, state, actor).await;
            }
            return Ok(());
        }
        let Some(index) = state
            .children
            .iter()
            .position(|(child, _)| child.get_id() == cell.get_id())
        else {
            return Ok(());
        };
        let (_, entry) = state.children.swap_remove(index);
        if state.stopping {
            return Ok(());
        }
        tracing::warn!(server = %entry.spec.name, "restarting server supervisor");
        entry.pool.set_state(UpstreamState::Restarting);
        if let Err(err) = spawn_server(&myself, state, entry.clone()).await {
            // Never the root's own failure: the other servers keep running.
            tracing::error!(server = %entry.spec.name, %err, "server supervisor did not restart; retrying");
            retry_later(&myself, &state.registry, RootMsg::RestartServer(entry));
        }
        Ok(())
    }
}

/// Starts a shared actor again; one that fails to start is retried after a
/// pause instead of taking the root, and with it every upstream, down.
async fn restart_shared(myself: &ActorRef<RootMsg>, state: &mut RootState, actor: SharedActor) {
    match actor.start(myself.get_cell()).await {
        Ok(cell) => state.shared.push((cell, actor)),
        Err(err) => {
            tracing::error!(actor = actor.name, %err, "shared actor did not restart; retrying");
            retry_later(myself, &state.registry, RootMsg::RestartShared(actor));
        }
    }
}

fn retry_later(myself: &ActorRef<RootMsg>, registry: &Arc<Registry>, msg: RootMsg) {
    let (to, registry) = (myself.clone(), registry.clone());
    tokio::spawn(async move {
        tokio::time::sleep(RESTART_RETRY_DELAY).await;
        registry.root_mailbox.enqueued();
        // Fails only when the root is gone, and then nothing needs restarting.
        if to.cast(msg).is_err() {
            registry.root_mailbox.undelivered();
        }
    });
}

pub(crate) async fn spawn_server(
    myself: &ActorRef<RootMsg>,
    state: &mut RootState,
    entry: Arc<ServerEntry>,
) -> Result<(), ActorProcessingErr> {
    let args = ServerArgs {
        spec: entry.spec.clone(),
        policy: entry.policy.clone(),
        pool: entry.pool.clone(),
        mailbox: entry.supervisor_mailbox.clone(),
        observer: state.observer.clone(),
        tokens: Some(state.registry.tokens.clone()),
    };
    let name = crate::server::actor_name(&entry.spec.name);
    let (child, _) =
        Actor::spawn_linked(Some(name), ServerSupervisor, args, myself.get_cell()).await?;
    state.children.push((child, entry));
    Ok(())
}

/// Sends the root a control command, counting its mailbox depth.
pub fn control(
    root: &ActorRef<RootMsg>,
    registry: &Registry,
    command: crate::control::Command,
) -> bool {
    registry.root_mailbox.enqueued();
    let sent = root.cast(RootMsg::Control(command)).is_ok();
    if !sent {
        registry.root_mailbox.undelivered();
    }
    sent
}

/// Asks the root to stop everything and waits until it has.
pub async fn shutdown(root: &ActorRef<RootMsg>, registry: &Registry) {
    registry.root_mailbox.enqueued();
    let _ = ractor::call!(root, RootMsg::Shutdown);
    root.stop(None);
}

#[cfg(test)]
#[path = "root_tests.rs"]
mod tests;
