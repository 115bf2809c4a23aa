//! `ServerSupervisor`: supervises the instances of one upstream.
//!
//! Supervision: it runs one `UpstreamActor` per instance of the upstream's
//! pool (one unless `instances`/`urls` say more), each linked to itself and
//! each with its own restart history. When an instance dies (process exit,
//! broken session, failed start) it asks that instance's [`RestartTracker`]:
//! restart after a backoff, or, past the limit, mark the instance `failed`
//! (circuit open: no call goes to it) and probe it every
//! `probe_interval_secs` (half-open). A probe that reaches `ready` closes the
//! circuit and clears the failure history. An instance's death touches
//! neither its siblings (their calls go on) nor other upstreams.
use std::sync::Arc;

use bulwark_actors::mailbox::MailboxStats;
use bulwark_actors::oauth::Tokens;
use bulwark_actors::upstream::{
    ExitReason, Pool, UpstreamActor, UpstreamArgs, UpstreamMsg, UpstreamObserver, UpstreamSpec,
    UpstreamState, UpstreamStatus,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::time::Instant;

use crate::policy::{Decision, RestartPolicy, RestartTracker};

/// How long a stopping instance gets to stop before we stop waiting.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What a `ServerSupervisor` starts with.
pub struct ServerArgs {
    /// How to launch the upstream.
    pub spec: UpstreamSpec,
    /// When and how often to restart it.
    pub policy: RestartPolicy,
    /// The instances' statuses, shared with the instances and readers.
    pub pool: Arc<Pool>,
    /// This supervisor's own mailbox counters.
    pub mailbox: Arc<MailboxStats>,
    /// Where upstream announcements go.
    pub observer: Arc<dyn UpstreamObserver>,
    /// The shared token cache, for upstreams with OAuth.
    pub tokens: Option<Arc<Tokens>>,
}

/// Messages of the server supervisor.
pub enum ServerMsg {
    /// Start instance N (first start, or a restart after its backoff).
    Start(usize),
    /// Try failed instance N again (half-open).
    Probe(usize),
    /// Stop every instance and report when they are gone.
    Shutdown(RpcReplyPort<()>),
    /// The instance stopped answering (the escalation actor's verdict): kill
    /// it and restart under the policy, as if it had crashed.
    Hung {
        /// Why it was declared hung.
        reason: String,
        /// The session the verdict is about ([`UpstreamLink::session`]); a
        /// later instance, or a sibling, is left alone.
        ///
        /// [`UpstreamLink::session`]: bulwark_actors::upstream::UpstreamLink::session
        session: u64,
    },
}

/// The registered name of `server`'s supervisor, so the escalation actor can
/// reach it without holding a handle that a restart would make stale.
pub fn actor_name(server: &str) -> String {
    format!("bulwark.server.{server}")
}

/// State of a server supervisor.
pub struct ServerState {
    spec: UpstreamSpec,
    mailbox: Arc<MailboxStats>,
    observer: Arc<dyn UpstreamObserver>,
    tokens: Option<Arc<Tokens>>,
    /// One per instance of the pool, in pool order.
    slots: Vec<Slot>,
    stopping: bool,
}

/// One instance of the pool: its status, its actor and its own history.
struct Slot {
    status: Arc<UpstreamStatus>,
    tracker: RestartTracker,
    instance: Option<ActorRef<UpstreamMsg>>,
    /// Why the running instance is being killed as hung, until it is gone.
    hung: Option<String>,
    /// The running instance is a probe of a failed instance.
    probing: bool,
}

/// Supervises the instances of one upstream.
pub struct ServerSupervisor;

/// Casts to a server supervisor, counting its mailbox depth.
pub fn send(to: &ActorRef<ServerMsg>, mailbox: &MailboxStats, msg: ServerMsg) {
    mailbox.enqueued();
    if to.cast(msg).is_err() {
        mailbox.undelivered();
    }
}

impl Actor for ServerSupervisor {
    type Msg = ServerMsg;
    type State = ServerState;
    type Arguments = ServerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ServerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let slots: Vec<Slot> = args
            .pool
            .instances()
            .iter()
            .map(|status| Slot {
                status: status.clone(),
                tracker: RestartTracker::new(args.policy.clone()),
                instance: None,
                hung: None,
                probing: false,
            })
            .collect();
        for index in 0..slots.len() {
            send(&myself, &args.mailbox, ServerMsg::Start(index));
        }
        Ok(ServerState {
            spec: args.spec,
            mailbox: args.mailbox,
            observer: args.observer,
            tokens: args.tokens,
            slots,
            stopping: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.mailbox.handled();
        match message {
            ServerMsg::Start(index) | ServerMsg::Probe(index)
                if state.stopping
                    || state
                        .slots
                        .get(index)
                        .is_none_or(|slot| slot.instance.is_some()) => {}
            ServerMsg::Start(index) => start_instance(&myself, state, index).await,
            ServerMsg::Probe(index) => {
                tracing::info!(server = %state.spec.name, instance = index, "probing failed upstream");
                state.slots[index].probing = true;
                start_instance(&myself, state, index).await;
            }
            ServerMsg::Hung { reason, session } => {
                let slot = state
                    .slots
                    .iter_mut()
                    .find(|slot| slot.status.link().map(|link| link.session()) == Some(session));
                match slot {
                    None => {
                        tracing::info!(server = %state.spec.name, %reason, "hung verdict about a previous instance; ignored");
                    }
                    Some(slot) => {
                        if let Some(instance) = &slot.instance
                            && slot.hung.is_none()
                        {
                            tracing::error!(server = %state.spec.name, instance = slot.status.index(), %reason, "killing hung upstream");
                            slot.hung = Some(reason);
                            instance.stop(Some("hung".into()));
                        }
                    }
                }
            }
            ServerMsg::Shutdown(reply) => {
                state.stopping = true;
                let stops = state
                    .slots
                    .iter_mut()
                    .filter_map(|slot| slot.instance.take());
                futures::future::join_all(stops.map(|instance| async move {
                    let _ = instance.stop_and_wait(None, Some(STOP_WAIT)).await;
                }))
                .await;
                for slot in &state.slots {
                    slot.status.set_state(UpstreamState::Stopped);
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
        // An instance that stops records its own exit reason first; one that
        // panicked could not, so its panic is the reason.
        let (cell, panic) = match event {
            SupervisionEvent::ActorTerminated(cell, ..) => (cell, None),
            SupervisionEvent::ActorFailed(cell, err) => (cell, Some(format!("panicked: {err}"))),
            _ => return Ok(()),
        };
        let Some(index) = state.slots.iter().position(|slot| {
            slot.instance
                .as_ref()
                .is_some_and(|instance| instance.get_id() == cell.get_id())
        }) else {
            return Ok(());
        };
        let slot = &mut state.slots[index];
        slot.instance = None;
        if state.stopping {
            return Ok(());
        }
        if let Some(reason) = slot.hung.take() {
            slot.status.set_exit(ExitReason::Hung(reason));
        } else if let Some(panic) = panic {
            slot.status.set_exit(ExitReason::SessionFailed(panic));
        }
        on_instance_failed(&myself, state, index);
        Ok(())
    }
}

async fn start_instance(myself: &ActorRef<ServerMsg>, state: &mut ServerState, index: usize) {
    let slot = &state.slots[index];
    let args = UpstreamArgs {
        spec: state.spec.instance(index),
        status: slot.status.clone(),
        observer: state.observer.clone(),
        tokens: state.tokens.clone(),
        handshake_timeout: slot.tracker.policy().handshake_timeout(),
    };
    match Actor::spawn_linked(None, UpstreamActor, args, myself.get_cell()).await {
        Ok((instance, _)) => state.slots[index].instance = Some(instance),
        // The instance recorded why in the status (e.g. the command is missing).
        Err(err) => {
            tracing::debug!(server = %state.spec.name, instance = index, %err, "upstream instance did not start");
            on_instance_failed(myself, state, index);
        }
    }
}

fn on_instance_failed(myself: &ActorRef<ServerMsg>, state: &mut ServerState, index: usize) {
    let name = &state.spec.name;
    let mailbox = &state.mailbox;
    let slot = &mut state.slots[index];
    let status = &slot.status;
    if matches!(status.last_exit(), Some(ExitReason::TokenRotated)) {
        // Planned: not a crash, so neither the limit nor the backoff apply.
        tracing::info!(server = %name, instance = index, "starting upstream with its new token");
        status.set_state(UpstreamState::Restarting);
        status.count_restart();
        send(myself, mailbox, ServerMsg::Start(index));
        return;
    }
    // The instance's last state tells whether it ever served.
    let reached_ready = status.state() == UpstreamState::Ready;
    if slot.probing && !reached_ready {
        open_circuit(myself, mailbox, slot, index);
        return;
    }
    if slot.probing {
        slot.probing = false;
        slot.tracker.reset();
    }
    match slot.tracker.on_failure(Instant::now()) {
        Decision::Restart(delay) => {
            tracing::warn!(server = %name, instance = index, ?delay, reason = ?status.last_exit().map(|r| r.to_string()), "restarting upstream");
            status.set_state(UpstreamState::Restarting);
            status.count_restart();
            if delay.is_zero() {
                send(myself, mailbox, ServerMsg::Start(index));
            } else {
                schedule(myself, mailbox, ServerMsg::Start(index), delay);
            }
        }
        Decision::GiveUp => {
            tracing::error!(server = %name, instance = index, "upstream exceeded its restart limit; circuit open");
            open_circuit(myself, mailbox, slot, index);
        }
    }
}

/// Marks the instance `failed` (no call goes to it) and schedules its next probe.
fn open_circuit(
    myself: &ActorRef<ServerMsg>,
    mailbox: &Arc<MailboxStats>,
    slot: &Slot,
    index: usize,
) {
    slot.status.set_state(UpstreamState::Failed);
    let interval = slot.tracker.policy().probe_interval();
    schedule(myself, mailbox, ServerMsg::Probe(index), interval);
}

fn schedule(
    myself: &ActorRef<ServerMsg>,
    mailbox: &Arc<MailboxStats>,
    msg: ServerMsg,
    delay: std::time::Duration,
) {
    let (to, mailbox) = (myself.clone(), mailbox.clone());
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        send(&to, &mailbox, msg);
    });
}
