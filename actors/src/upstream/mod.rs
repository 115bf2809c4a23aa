//! `UpstreamActor`: owns one upstream MCP server process and the one MCP
//! client session to it.
//!
//! Lifecycle: `pre_start` spawns the process (a missing command fails the
//! start, which the supervisor counts like a crash); the MCP handshake runs in
//! a task and reports back, so the actor never awaits a slow thing in a
//! handler. When ready it publishes an [`UpstreamLink`] in the shared
//! [`UpstreamStatus`]; calls then go straight to the session. When the process
//! exits or the session breaks, the actor records why, wakes every call in
//! flight with that reason, and stops; its supervisor decides what next.
//! Stopping always kills the whole process group.
mod client;
mod exit;
mod link;
mod process;
mod spec;
mod status;
mod stderr_tail;

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use nix::sys::signal::Signal;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use rmcp::model::ServerNotification;
use rmcp::service::{RoleClient, RunningService, RunningServiceCancellationToken, serve_client};
use tokio::sync::watch;

pub use client::{NoObserver, UpstreamObserver};
pub use exit::ExitReason;
pub use link::{CallError, Caller, UpstreamLink};
pub use spec::UpstreamSpec;
pub use status::{UpstreamState, UpstreamStatus};
pub use stderr_tail::TAIL_LINES;

use client::UpstreamClient;
use link::CallRegistry;
use process::{TERM_GRACE, signal_group};

/// What an `UpstreamActor` starts with.
pub struct UpstreamArgs {
    /// How to launch the server.
    pub spec: UpstreamSpec,
    /// Status shared with the supervisor and the front doors.
    pub status: Arc<UpstreamStatus>,
    /// Where announcements for everyone go.
    pub observer: Arc<dyn UpstreamObserver>,
}

/// Messages of the upstream actor. All are events from its own tasks.
pub enum UpstreamMsg {
    /// The MCP handshake finished.
    Connected(Box<RunningService<RoleClient, UpstreamClient>>),
    /// The MCP handshake failed.
    HandshakeFailed(String),
    /// The MCP session ended (EOF or protocol error).
    SessionClosed,
    /// The process was reaped.
    ProcessExited(ExitReason),
}

/// State of one running instance.
pub struct Instance {
    server: Arc<str>,
    pgid: i32,
    status: Arc<UpstreamStatus>,
    calls: Arc<CallRegistry>,
    observer: Arc<dyn UpstreamObserver>,
    exit_tx: watch::Sender<Option<ExitReason>>,
    session: Option<RunningServiceCancellationToken>,
    /// Set when the session broke while the process lived on: that is the
    /// reason to report, not the SIGKILL we then send.
    session_error: Option<String>,
}

/// The actor; stateless itself, everything lives in [`Instance`].
pub struct UpstreamActor;

impl UpstreamActor {
    fn cast(myself: &ActorRef<UpstreamMsg>, status: &UpstreamStatus, msg: UpstreamMsg) {
        status.mailbox.enqueued();
        // Fails only when the actor is gone, and then nobody needs the news.
        let _ = myself.cast(msg);
    }
}

impl Actor for UpstreamActor {
    type Msg = UpstreamMsg;
    type State = Instance;
    type Arguments = UpstreamArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: UpstreamArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let UpstreamArgs {
            spec,
            status,
            observer,
        } = args;
        status.set_state(UpstreamState::Starting);
        let spawned = match process::spawn(&spec) {
            Ok(spawned) => spawned,
            Err(reason) => {
                tracing::warn!(server = %spec.name, %reason, "upstream failed to start");
                status.set_exit(reason.clone());
                return Err(reason.to_string().into());
            }
        };
        let server: Arc<str> = spec.name.as_str().into();
        tracing::info!(server = %server, pid = spawned.pgid, "upstream process started");

        let tail_status = status.clone();
        let tail_server = server.clone();
        let stderr = spawned.stderr;
        tokio::spawn(async move { tail_status.stderr.capture(&tail_server, stderr).await });

        let mut child = spawned.child;
        let (reap_ref, reap_status) = (myself.clone(), status.clone());
        tokio::spawn(async move {
            let reason = match child.wait().await {
                Ok(exit) => ExitReason::from_status(exit),
                Err(err) => ExitReason::SessionFailed(format!("could not wait for process: {err}")),
            };
            Self::cast(&reap_ref, &reap_status, UpstreamMsg::ProcessExited(reason));
        });

        let calls = Arc::new(CallRegistry::default());
        let client = UpstreamClient {
            server: server.clone(),
            calls: calls.clone(),
            observer: observer.clone(),
        };
        let transport = (spawned.stdout, spawned.stdin);
        let (hs_ref, hs_status) = (myself.clone(), status.clone());
        tokio::spawn(async move {
            let msg = match serve_client(client, transport).await {
                Ok(service) => UpstreamMsg::Connected(Box::new(service)),
                Err(err) => UpstreamMsg::HandshakeFailed(err.to_string()),
            };
            Self::cast(&hs_ref, &hs_status, msg);
        });

        let (exit_tx, _) = watch::channel(None);
        Ok(Instance {
            server,
            pgid: spawned.pgid,
            status,
            calls,
            observer,
            exit_tx,
            session: None,
            session_error: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.status.mailbox.handled();
        match message {
            UpstreamMsg::Connected(service) => on_connected(&myself, state, *service),
            UpstreamMsg::HandshakeFailed(err) => {
                tracing::warn!(server = %state.server, %err, "upstream MCP handshake failed");
                state.session_error = Some(format!("handshake failed: {err}"));
                signal_group(state.pgid, Signal::SIGKILL);
            }
            UpstreamMsg::SessionClosed => {
                if state.session_error.is_none() {
                    state.session_error = Some("session closed".into());
                }
                // The process may linger without its session: end it; the
                // reaper then reports and we stop.
                signal_group(state.pgid, Signal::SIGKILL);
            }
            UpstreamMsg::ProcessExited(reason) => {
                let reason = match (&reason, state.session_error.take()) {
                    // We killed it because its session broke: report the session error.
                    (ExitReason::Signaled(sig), Some(err)) if sig == "SIGKILL" => {
                        ExitReason::SessionFailed(err)
                    }
                    _ => reason,
                };
                tracing::warn!(server = %state.server, %reason, "upstream instance ended");
                state.status.set_exit(reason.clone());
                state.exit_tx.send_replace(Some(reason.clone()));
                myself.stop(Some(reason.to_string()));
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if state.exit_tx.borrow().is_none() {
            // Stopped from outside while running: close politely, then by force.
            if let Some(session) = state.session.take() {
                session.cancel();
            }
            signal_group(state.pgid, Signal::SIGTERM);
            let mut exit = state.exit_tx.subscribe();
            let exited = tokio::time::timeout(TERM_GRACE, exit.wait_for(Option::is_some)).await;
            if exited.is_err() {
                tracing::warn!(server = %state.server, "upstream ignored SIGTERM; killing its group");
            }
            state.status.set_exit(ExitReason::Stopped);
            state.exit_tx.send_replace(Some(ExitReason::Stopped));
        }
        // Always: grandchildren may outlive the group leader.
        signal_group(state.pgid, Signal::SIGKILL);
        if let Some(session) = state.session.take() {
            session.cancel();
        }
        Ok(())
    }
}

fn on_connected(
    myself: &ActorRef<UpstreamMsg>,
    state: &mut Instance,
    service: RunningService<RoleClient, UpstreamClient>,
) {
    let peer = service.peer().clone();
    state.session = Some(service.cancellation_token());
    let (closed_ref, closed_status) = (myself.clone(), state.status.clone());
    tokio::spawn(async move {
        let _ = service.waiting().await;
        UpstreamActor::cast(&closed_ref, &closed_status, UpstreamMsg::SessionClosed);
    });
    let link = UpstreamLink::new(
        peer.clone(),
        state.exit_tx.subscribe(),
        state.status.clone(),
        state.calls.clone(),
    );
    state.status.set_ready(link);
    tracing::info!(server = %state.server, "upstream ready");
    let (server, status) = (state.server.clone(), state.status.clone());
    let observer = state.observer.clone();
    // Fingerprint the tool list off the actor: a restart that changed it must
    // tell clients (`notifications/tools/list_changed`).
    tokio::spawn(async move {
        let has_tools = peer
            .peer_info()
            .is_some_and(|info| info.capabilities.tools.is_some());
        if !has_tools {
            return;
        }
        let Ok(tools) = peer.list_all_tools().await else {
            return;
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        serde_json::to_string(&tools).unwrap_or_default().hash(&mut hasher);
        let fingerprint = hasher.finish().max(1);
        if status.replace_tools_fingerprint(fingerprint) {
            tracing::info!(server = %server, "tool list changed across restart");
            observer.notification(
                &server,
                ServerNotification::ToolListChangedNotification(Default::default()),
            );
        }
    });
}
