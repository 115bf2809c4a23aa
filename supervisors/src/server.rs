//! `ServerSupervisor`: supervises the instance of one upstream.
//!
//! Supervision: it runs one `UpstreamActor` at a time, linked to itself. When
//! that instance dies (process exit, broken session, failed start) it asks the
//! [`RestartTracker`]: restart after a backoff, or, past the limit, mark the
//! server `failed` (circuit open: calls fail fast) and probe it every
//! `probe_interval_secs` (half-open). A probe that reaches `ready` closes the
//! circuit and clears the failure history. Nothing it does touches other
//! upstreams.
use std::sync::Arc;

use bulwark_actors::mailbox::MailboxStats;
use bulwark_actors::oauth::Tokens;
use bulwark_actors::upstream::{
    ExitReason, UpstreamActor, UpstreamArgs, UpstreamMsg, UpstreamObserver, UpstreamSpec,
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
    /// Status shared with instances and readers.
    pub status: Arc<UpstreamStatus>,
    /// This supervisor's own mailbox counters.
    pub mailbox: Arc<MailboxStats>,
    /// Where upstream announcements go.
    pub observer: Arc<dyn UpstreamObserver>,
    /// The shared token cache, for upstreams with OAuth.
    pub tokens: Option<Arc<Tokens>>,
}

/// Messages of the server supervisor.
pub enum ServerMsg {
    /// Start a new instance (first start, or a restart after its backoff).
    Start,
    /// Try a failed server again (half-open).
    Probe,
    /// Stop the instance and report when it is gone.
    Shutdown(RpcReplyPort<()>),
    /// The instance stopped answering (the escalation actor's verdict): kill
    /// it and restart under the policy, as if it had crashed.
    Hung {
        /// Why it was declared hung.
        reason: String,
        /// The session the verdict is about ([`UpstreamLink::session`]); a
        /// later instance is left alone.
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
    status: Arc<UpstreamStatus>,
    mailbox: Arc<MailboxStats>,
    observer: Arc<dyn UpstreamObserver>,
    tokens: Option<Arc<Tokens>>,
    tracker: RestartTracker,
    instance: Option<ActorRef<UpstreamMsg>>,
    /// Why the running instance is being killed as hung, until it is gone.
    hung: Option<String>,
    /// The running instance is a probe of a failed server.
    probing: bool,
    stopping: bool,
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
        send(&myself, &args.mailbox, ServerMsg::Start);
        Ok(ServerState {
            tracker: RestartTracker::new(args.policy),
            spec: args.spec,
            status: args.status,
            mailbox: args.mailbox,
            observer: args.observer,
            tokens: args.tokens,
            instance: None,
            hung: None,
            probing: false,
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
            ServerMsg::Start | ServerMsg::Probe if state.stopping || state.instance.is_some() => {}
            ServerMsg::Start => start_instance(&myself, state).await,
            ServerMsg::Probe => {
                tracing::info!(server = %state.spec.name, "probing failed upstream");
                state.probing = true;
                start_instance(&myself, state).await;
            }
            ServerMsg::Hung { reason, session } => {
                let current = state.status.link().map(|link| link.session());
                if current != Some(session) {
                    tracing::info!(server = %state.spec.name, %reason, "hung verdict about a previous instance; ignored");
                } else if let Some(instance) = &state.instance
                    && state.hung.is_none()
                {
                    tracing::error!(server = %state.spec.name, %reason, "killing hung upstream");
                    state.hung = Some(reason);
                    instance.stop(Some("hung".into()));
                }
            }
            ServerMsg::Shutdown(reply) => {
                state.stopping = true;
                if let Some(instance) = state.instance.take() {
                    let _ = instance.stop_and_wait(None, Some(STOP_WAIT)).await;
                }
                state.status.set_state(UpstreamState::Stopped);
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
        let is_current = state
            .instance
            .as_ref()
            .is_some_and(|instance| instance.get_id() == cell.get_id());
        if !is_current {
            return Ok(());
        }
        state.instance = None;
        if state.stopping {
            return Ok(());
        }
        if let Some(reason) = state.hung.take() {
            state.status.set_exit(ExitReason::Hung(reason));
        } else if let Some(panic) = panic {
            state.status.set_exit(ExitReason::SessionFailed(panic));
        }
        on_instance_failed(&myself, state);
        Ok(())
    }
}

async fn start_instance(myself: &ActorRef<ServerMsg>, state: &mut ServerState) {
    let args = UpstreamArgs {
        spec: state.spec.clone(),
        status: state.status.clone(),
        observer: state.observer.clone(),
        tokens: state.tokens.clone(),
        handshake_timeout: state.tracker.policy().handshake_timeout(),
    };
    match Actor::spawn_linked(None, UpstreamActor, args, myself.get_cell()).await {
        Ok((instance, _)) => state.instance = Some(instance),
        // The instance recorded why in the status (e.g. the command is missing).
        Err(err) => {
            tracing::debug!(server = %state.spec.name, %err, "upstream instance did not start");
            on_instance_failed(myself, state);
        }
    }
}

fn on_instance_failed(myself: &ActorRef<ServerMsg>, state: &mut ServerState) {
    let name = &state.spec.name;
    if matches!(state.status.last_exit(), Some(ExitReason::TokenRotated)) {
        // Planned: not a crash, so neither the limit nor the backoff apply.
        tracing::info!(server = %name, "starting upstream with its new token");
        state.status.set_state(UpstreamState::Restarting);
        state.status.count_restart();
        send(myself, &state.mailbox, ServerMsg::Start);
        return;
    }
    // The instance's last state tells whether it ever served.
    let reached_ready = state.status.state() == UpstreamState::Ready;
    if state.probing && !reached_ready {
        open_circuit(myself, state);
        return;
    }
    if state.probing {
        state.probing = false;
        state.tracker.reset();
    }
    match state.tracker.on_failure(Instant::now()) {
        Decision::Restart(delay) => {
            tracing::warn!(server = %name, ?delay, reason = ?state.status.last_exit().map(|r| r.to_string()), "restarting upstream");
            state.status.set_state(UpstreamState::Restarting);
            state.status.count_restart();
            if delay.is_zero() {
                send(myself, &state.mailbox, ServerMsg::Start);
            } else {
                schedule(myself, state, ServerMsg::Start, delay);
            }
        }
        Decision::GiveUp => {
            tracing::error!(server = %name, "upstream exceeded its restart limit; circuit open");
            open_circuit(myself, state);
        }
    }
}

/// Marks the server `failed` (calls fail fast) and schedules the next probe.
fn open_circuit(myself: &ActorRef<ServerMsg>, state: &ServerState) {
    state.status.set_state(UpstreamState::Failed);
    let interval = state.tracker.policy().probe_interval();
    schedule(myself, state, ServerMsg::Probe, interval);
}

fn schedule(
    myself: &ActorRef<ServerMsg>,
    state: &ServerState,
    msg: ServerMsg,
    delay: std::time::Duration,
) {
    let (to, mailbox) = (myself.clone(), state.mailbox.clone());
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        send(&to, &mailbox, msg);
    });
}
