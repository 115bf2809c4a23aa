//! `RootSupervisor`: the top of the tree.
//!
//! Supervision: it starts the shared actors (guardrails, cache, deadlines,
//! and the `TokenActor`) first, then one `ServerSupervisor` per configured
//! upstream. A shared actor or a server supervisor only dies by a bug (a
//! panic); the root then starts a fresh one in its place on the same shared
//! state, and the others never notice. `Shutdown` stops every server
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
                let cell = actor.start(myself.get_cell()).await?;
                state.shared.push((cell, actor));
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
        entry.status.set_state(UpstreamState::Restarting);
        spawn_server(&myself, state, entry).await
    }
}

pub(crate) async fn spawn_server(
    myself: &ActorRef<RootMsg>,
    state: &mut RootState,
    entry: Arc<ServerEntry>,
) -> Result<(), ActorProcessingErr> {
    let args = ServerArgs {
        spec: entry.spec.clone(),
        policy: entry.policy.clone(),
        status: entry.status.clone(),
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
        registry.root_mailbox.handled();
    }
    sent
}

/// Asks the root to stop everything and waits until it has.
pub async fn shutdown(root: &ActorRef<RootMsg>, registry: &Registry) {
    registry.root_mailbox.enqueued();
    let _ = ractor::call!(root, RootMsg::Shutdown);
    root.stop(None);
}
