//! Typed commands the control plane sends the root supervisor: add, remove
//! (with drain), restart one server. Each touches that server only; every
//! other `ServerSupervisor` and its process keep running as they were.
use std::sync::Arc;
use std::time::Duration;

use bulwark_actors::upstream::UpstreamState;
use ractor::{ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::registry::ServerEntry;
use crate::root::{RootMsg, RootState};
use crate::server::ServerMsg;

/// How often a draining server's calls in flight are counted.
const DRAIN_POLL: Duration = Duration::from_millis(10);
/// Longest wait for a stopped supervisor to end.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// A change to one server of the running tree.
pub enum Command {
    /// Start a supervisor for a new server (or one replacing a removed one).
    /// Replies once it is spawned; the server then starts on its own.
    Add(Arc<ServerEntry>, RpcReplyPort<()>),
    /// Stop routing new calls to `name`, let calls in flight finish for up
    /// to `drain`, then stop it and its process group. Replies `false` for
    /// an unknown server, `true` once it is gone.
    Remove {
        /// The server.
        name: String,
        /// Longest wait for calls in flight.
        drain: Duration,
        /// Answered when the server's processes are gone.
        reply: RpcReplyPort<bool>,
    },
    /// Stop `name`'s supervisor and start a fresh one on the same entry.
    /// Replies `false` for an unknown server.
    Restart(String, RpcReplyPort<bool>),
}

/// Handles one command inside the root.
pub(crate) async fn handle(
    myself: &ActorRef<RootMsg>,
    state: &mut RootState,
    command: Command,
) -> Result<(), ActorProcessingErr> {
    match command {
        Command::Add(entry, reply) => {
            if state.stopping {
                return Ok(());
            }
            state.registry.insert(entry.clone());
            crate::root::spawn_server(myself, state, entry).await?;
            let _ = reply.send(());
        }
        Command::Remove { name, drain, reply } => {
            let removed = state.registry.remove(&name);
            let child = take_child(state, &name);
            match (removed, child) {
                (Some(entry), Some(child)) => {
                    // Off the root's mailbox: a long drain must not hold up other commands.
                    tokio::spawn(async move {
                        drain_calls(&entry, drain).await;
                        stop_child(&child, &entry).await;
                        entry.pool.set_state(UpstreamState::Stopped);
                        let _ = reply.send(true);
                    });
                }
                (removed, _) => {
                    let _ = reply.send(removed.is_some());
                }
            }
        }
        Command::Restart(name, reply) => {
            let Some(entry) = state.registry.get(&name) else {
                let _ = reply.send(false);
                return Ok(());
            };
            let Some(child) = take_child(state, &name) else {
                let _ = reply.send(false);
                return Ok(());
            };
            stop_child(&child, &entry).await;
            entry.pool.set_state(UpstreamState::Restarting);
            entry.pool.count_requested_restart();
            crate::root::spawn_server(myself, state, entry).await?;
            let _ = reply.send(true);
        }
    }
    Ok(())
}

/// Takes `name`'s supervisor out of the root's children, so its end is not
/// mistaken for a crash.
fn take_child(state: &mut RootState, name: &str) -> Option<ActorRef<ServerMsg>> {
    let index = state
        .children
        .iter()
        .position(|(_, entry)| entry.spec.name == name)?;
    Some(state.children.swap_remove(index).0)
}

/// Waits until `entry` has no call in flight, or `drain` has passed.
async fn drain_calls(entry: &ServerEntry, drain: Duration) {
    let deadline = tokio::time::Instant::now() + drain;
    while entry.pool.in_flight() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(DRAIN_POLL).await;
    }
    if entry.pool.in_flight() > 0 {
        tracing::warn!(server = %entry.spec.name, calls = entry.pool.in_flight(), "drain timeout; stopping with calls in flight");
    }
}

/// Stops a server supervisor and its instance (process group included).
async fn stop_child(child: &ActorRef<ServerMsg>, entry: &ServerEntry) {
    entry.supervisor_mailbox.enqueued();
    let _ = ractor::call!(child, ServerMsg::Shutdown);
    // Waits until its registered name is free for a successor.
    let _ = child.stop_and_wait(None, Some(STOP_WAIT)).await;
}
