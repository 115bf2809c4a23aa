//! `UpstreamActor`: owns one upstream MCP server — a child process or a
//! remote session (streamable HTTP, or the legacy HTTP+SSE transport) — and
//! the one MCP client session to it.
//!
//! Lifecycle: `pre_start` spawns the process or builds the HTTP transport (a
//! missing command fails the start, which the supervisor counts like a
//! crash); the MCP handshake runs in a task and reports back, so the actor
//! never awaits a slow thing in a handler. When ready it publishes an
//! [`UpstreamLink`] in the shared [`UpstreamStatus`]; calls then go straight
//! to the session. When the process exits, the connection to a remote server
//! is lost or the session breaks, the actor records why, wakes every call in
//! flight with that reason (the same exit watch for both transports), and
//! stops; its supervisor decides what next. A handshake that does not finish
//! within its deadline fails the instance like a crash.
//!
//! Stopping withdraws the link first, so no new call reaches a dying
//! session, then closes the session and ends the process group: SIGTERM,
//! SIGKILL only if it has not exited within the grace. The process group
//! lives in a guard whose drop kills it, for the stops that skip `post_stop`.
mod caller_conns;
mod client;
mod exit;
mod fingerprint;
mod health;
pub mod launcher;
mod line_rate;
mod link;
pub mod pool;
mod process;
mod progress_order;
pub mod remote;
mod spec;
mod sse;
mod status;
mod stderr_tail;
#[cfg(test)]
mod tests;
mod watchdog;

use std::sync::Arc;

use nix::sys::signal::Signal;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use rmcp::service::{RoleClient, RunningService, RunningServiceCancellationToken, serve_client};
use tokio::sync::watch;

pub use client::{NoObserver, UpstreamObserver, UpstreamRequestMeta, client_capabilities};
pub use exit::ExitReason;
pub use health::HealthSpec;
pub use link::{CallError, Caller, UpstreamLink};
pub use pool::{Affinity, Pool, PoolSpec, Strategy};
pub use spec::{HttpProtocol, HttpSpec, StdioSpec, Transport, UpstreamSpec};
pub use status::{RESTART_REASONS, UpstreamState, UpstreamStatus};
pub use stderr_tail::TAIL_LINES;

use crate::mailbox::InstanceMailbox;
use crate::oauth::{TokenError, TokenSource, Tokens};
use client::UpstreamClient;
use link::CallRegistry;
use process::{ProcessGroup, TERM_GRACE};

/// What an `UpstreamActor` starts with.
pub struct UpstreamArgs {
    /// How to launch the server.
    pub spec: UpstreamSpec,
    /// Status shared with the supervisor and the front doors.
    pub status: Arc<UpstreamStatus>,
    /// Where announcements for everyone go.
    pub observer: Arc<dyn UpstreamObserver>,
    /// The shared token cache, for upstreams with OAuth.
    pub tokens: Option<Arc<Tokens>>,
    /// How long the MCP handshake may take before the instance fails.
    pub handshake_timeout: std::time::Duration,
}

/// Messages of the upstream actor. All are events from its own tasks.
pub enum UpstreamMsg {
    /// The MCP handshake finished.
    Connected(Box<RunningService<RoleClient, UpstreamClient>>),
    /// The MCP handshake failed.
    HandshakeFailed(String),
    /// The MCP session ended (EOF or protocol error).
    SessionClosed,
    /// The session closed a while ago and the process still lives: end it.
    SessionGraceOver,
    /// The process was reaped.
    ProcessExited(ExitReason),
    /// The connection to a remote upstream broke or was refused.
    ConnectionLost(String),
    /// The token a stdio upstream starts with is here (or could not be had).
    TokenReady(Result<Arc<str>, TokenError>),
    /// A new token replaced the one the process was started with.
    TokenRotated,
    /// The calls in flight when the token rotated are done (or took too long).
    RotationDrained,
}

/// How long a process whose session closed gets to exit on its own, so the
/// reason reported is its real exit status or signal, not our SIGKILL.
const SESSION_CLOSE_GRACE: std::time::Duration = std::time::Duration::from_millis(250);

/// How long calls in flight may keep a process whose token rotated.
const ROTATION_DRAIN: std::time::Duration = std::time::Duration::from_secs(30);

/// What the instance runs on.
enum Backend {
    /// A stdio upstream waiting for its token before its process starts.
    AwaitingToken(Box<AwaitingToken>),
    /// A child process: its process group, and whether it has been reaped.
    Process(ProcessGroup, watch::Receiver<bool>),
    /// A remote session: nothing to reap; the route that posts its calls
    /// directly (streamable HTTP only).
    Remote(Option<remote::DirectRoute>),
}

/// What a stdio upstream with OAuth needs to start once its token is here.
struct AwaitingToken {
    stdio: StdioSpec,
    client: UpstreamClient,
    tokens: TokenSource,
    handshake_timeout: std::time::Duration,
}

/// State of one running instance.
pub struct Instance {
    server: Arc<str>,
    backend: Backend,
    status: Arc<UpstreamStatus>,
    /// This instance's mailbox depth (the status keeps the totals).
    mailbox: Arc<InstanceMailbox>,
    calls: Arc<CallRegistry>,
    observer: Arc<dyn UpstreamObserver>,
    exit_tx: watch::Sender<Option<ExitReason>>,
    session: Option<RunningServiceCancellationToken>,
    /// Why the session ended, when it ended before the process did.
    session_error: Option<String>,
    /// We killed the process because its session broke: report the session
    /// error rather than our own SIGKILL.
    session_is_cause: bool,
    /// The handshake failed: a process that then exits cleanly (on stdin
    /// EOF) is reported by that failure, one that crashed by its status.
    handshake_failed: bool,
    /// We are ending the process because its token rotated.
    rotating: bool,
    /// Active health checks of each session, when configured.
    health: Option<HealthSpec>,
}

/// The actor; stateless itself, everything lives in [`Instance`].
pub struct UpstreamActor;

impl UpstreamActor {
    fn cast(myself: &ActorRef<UpstreamMsg>, mailbox: &InstanceMailbox, msg: UpstreamMsg) {
        mailbox.enqueued();
        // Fails only when the actor is gone, and then nobody needs the news.
        if myself.cast(msg).is_err() {
            mailbox.undelivered();
        }
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
            tokens,
            handshake_timeout,
        } = args;
        status.set_state(UpstreamState::Starting);
        let mailbox = status.mailbox.instance();
        let server: Arc<str> = spec.name.as_str().into();
        let calls = Arc::new(CallRegistry::default());
        let client = UpstreamClient {
            server: server.clone(),
            calls: calls.clone(),
            observer: observer.clone(),
        };
        let fail = |reason: ExitReason| -> ActorProcessingErr {
            tracing::warn!(server = %spec.name, %reason, "upstream failed to start");
            status.set_exit(reason.clone());
            reason.to_string().into()
        };
        let backend = match &spec.transport {
            Transport::Stdio(stdio) => match (&spec.oauth, &tokens, &stdio.token_env) {
                (Some(oauth), Some(tokens), Some(_)) => {
                    // The process starts once its token is here, off the actor.
                    let source = tokens
                        .source(&spec.name, oauth.clone(), None)
                        .map_err(|err| fail(ExitReason::SessionFailed(err.to_string())))?;
                    let (to, to_mailbox, fetch) = (myself.clone(), mailbox.clone(), source.clone());
                    tokio::spawn(async move {
                        let token = fetch.bearer().await;
                        Self::cast(&to, &to_mailbox, UpstreamMsg::TokenReady(token));
                    });
                    Backend::AwaitingToken(Box::new(AwaitingToken {
                        stdio: stdio.clone(),
                        client,
                        tokens: source,
                        handshake_timeout,
                    }))
                }
                _ => {
                    let spawned = process::spawn(stdio).await.map_err(fail)?;
                    watch_process(
                        &myself,
                        &status,
                        &mailbox,
                        &server,
                        spawned,
                        client,
                        handshake_timeout,
                    )
                }
            },
            Transport::Http(http) => {
                let token_source = match (&spec.oauth, &tokens) {
                    (Some(oauth), Some(tokens)) => Some(
                        tokens
                            .source(&spec.name, oauth.clone(), Some(http.url.clone()))
                            .map_err(|err| fail(ExitReason::SessionFailed(err.to_string())))?,
                    ),
                    (Some(_), None) => {
                        return Err(fail(ExitReason::SessionFailed(
                            "OAuth is configured but no token service runs".into(),
                        )));
                    }
                    _ => None,
                };
                let (lost_ref, lost_mailbox) = (myself.clone(), mailbox.clone());
                let lost: remote::LostHook = Arc::new(move |reason| {
                    Self::cast(
                        &lost_ref,
                        &lost_mailbox,
                        UpstreamMsg::ConnectionLost(reason),
                    );
                });
                tracing::info!(server = %server, url = %http.masked_url(), protocol = ?http.protocol, "connecting to remote upstream");
                match http.protocol {
                    HttpProtocol::Streamable | HttpProtocol::Detect => {
                        let streamable =
                            remote::transport(http, token_source.clone(), lost.clone())
                                .map_err(|err| fail(ExitReason::SessionFailed(err)))?;
                        let transport = streamable.transport;
                        if http.protocol == HttpProtocol::Detect {
                            let legacy = Legacy {
                                http: http.clone(),
                                tokens: token_source,
                                lost,
                                posted: streamable.posted,
                            };
                            let detecting = detect(client, transport, legacy, handshake_timeout);
                            handshake(&myself, &mailbox, detecting);
                        } else {
                            let initializing = initialize(client, transport, handshake_timeout);
                            handshake(&myself, &mailbox, initializing);
                        }
                        // Unused when detection settles on the legacy
                        // transport: that session is never published for
                        // direct posts.
                        Backend::Remote(Some(streamable.direct))
                    }
                    HttpProtocol::Sse => {
                        let transport = sse::transport(http, token_source, lost)
                            .map_err(|err| fail(ExitReason::SessionFailed(err)))?;
                        let initializing = initialize(client, transport, handshake_timeout);
                        handshake(&myself, &mailbox, initializing);
                        Backend::Remote(None)
                    }
                }
            }
        };
        let (exit_tx, _) = watch::channel(None);
        Ok(Instance {
            server,
            backend,
            status,
            mailbox,
            calls,
            observer,
            exit_tx,
            session: None,
            session_error: None,
            session_is_cause: false,
            handshake_failed: false,
            rotating: false,
            health: spec.pool.health.clone(),
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
                let err = format!("handshake failed: {err}");
                state.session_error = Some(err.clone());
                state.handshake_failed = true;
                match state.backend {
                    Backend::Remote(_) => finish(&myself, state, ExitReason::SessionFailed(err)),
                    _ => schedule_grace(&myself, &state.mailbox, SESSION_CLOSE_GRACE),
                }
            }
            UpstreamMsg::SessionClosed => {
                if state.session_error.is_none() {
                    state.session_error = Some("session closed".into());
                }
                match state.backend {
                    Backend::AwaitingToken(_) | Backend::Process(..) => {
                        schedule_grace(&myself, &state.mailbox, SESSION_CLOSE_GRACE);
                    }
                    Backend::Remote(_) => {
                        let err = state.session_error.clone().unwrap_or_default();
                        finish(&myself, state, ExitReason::SessionFailed(err));
                    }
                }
            }
            UpstreamMsg::SessionGraceOver => {
                // The process lingers without its session: end it; the reaper
                // then reports and we stop.
                if let Backend::Process(group, _) = &state.backend {
                    state.session_is_cause = true;
                    group.signal(Signal::SIGKILL);
                }
            }
            UpstreamMsg::ProcessExited(reason) => {
                let reason = match state.session_error.take() {
                    _ if state.rotating => ExitReason::TokenRotated,
                    Some(err)
                        if state.session_is_cause
                            || (state.handshake_failed
                                && matches!(reason, ExitReason::Exited(0))) =>
                    {
                        ExitReason::SessionFailed(err)
                    }
                    _ => reason,
                };
                finish(&myself, state, reason);
            }
            UpstreamMsg::TokenReady(token) => start_with_token(&myself, state, token).await,
            UpstreamMsg::TokenRotated => {
                if let Backend::Process(..) = &state.backend {
                    tracing::info!(server = %state.server, "upstream token rotated; restarting the process once its calls are done");
                    state.rotating = true;
                    // New calls wait for the next instance; those in flight finish first.
                    state.status.withdraw_link();
                    let (to, status, mailbox) =
                        (myself.clone(), state.status.clone(), state.mailbox.clone());
                    tokio::spawn(async move {
                        let deadline = tokio::time::Instant::now() + ROTATION_DRAIN;
                        while status.in_flight() > 0 && tokio::time::Instant::now() < deadline {
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        }
                        UpstreamActor::cast(&to, &mailbox, UpstreamMsg::RotationDrained);
                    });
                }
            }
            UpstreamMsg::RotationDrained => {
                if let Backend::Process(group, _) = &state.backend {
                    group.signal(Signal::SIGTERM);
                    schedule_grace(&myself, &state.mailbox, TERM_GRACE);
                }
            }
            UpstreamMsg::ConnectionLost(reason) => {
                finish(&myself, state, ExitReason::ConnectionLost(reason));
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Before anything else: no new call may reach this session.
        state.status.withdraw_link();
        let running = state.exit_tx.borrow().is_none();
        // Closing the session closes the process's stdin (most servers exit
        // on EOF) or deletes the remote session.
        if let Some(session) = state.session.take() {
            session.cancel();
        }
        if let Backend::Process(group, reaped) = &mut state.backend {
            if running && !*reaped.borrow() {
                group.signal(Signal::SIGTERM);
                let exited =
                    tokio::time::timeout(TERM_GRACE, reaped.wait_for(|reaped| *reaped)).await;
                if exited.is_err() {
                    tracing::warn!(server = %state.server, "upstream ignored SIGTERM; killing its group");
                }
            }
            // Always: grandchildren may outlive the group leader.
            group.signal(Signal::SIGKILL);
        }
        if running {
            state.status.set_exit(ExitReason::Stopped);
            state.exit_tx.send_replace(Some(ExitReason::Stopped));
        }
        // What is still queued dies with this mailbox.
        state.status.mailbox.instance();
        Ok(())
    }
}

/// Records why the instance ended, wakes its calls in flight, and stops.
fn finish(myself: &ActorRef<UpstreamMsg>, state: &mut Instance, reason: ExitReason) {
    if state.exit_tx.borrow().is_some() {
        return;
    }
    tracing::warn!(server = %state.server, %reason, "upstream instance ended");
    state.status.set_exit(reason.clone());
    state.exit_tx.send_replace(Some(reason.clone()));
    myself.stop(Some(reason.to_string()));
}

/// Starts a stdio upstream's process with its token in the configured
/// variable, and restarts it when the token rotates.
async fn start_with_token(
    myself: &ActorRef<UpstreamMsg>,
    state: &mut Instance,
    token: Result<Arc<str>, TokenError>,
) {
    // Nothing to kill until a process runs; `Remote` holds no resource.
    let Backend::AwaitingToken(waiting) =
        std::mem::replace(&mut state.backend, Backend::Remote(None))
    else {
        return;
    };
    let AwaitingToken {
        mut stdio,
        client,
        tokens,
        handshake_timeout,
    } = *waiting;
    let token = match token {
        Ok(token) => token,
        Err(err) => return finish(myself, state, ExitReason::SessionFailed(err.to_string())),
    };
    if let Some(var) = &stdio.token_env {
        stdio.env.insert(var.clone(), token.to_string());
    }
    // Subscribe before spawning, so a rotation in between is not missed.
    let mut rotations = tokens.rotations();
    rotations.mark_unchanged();
    let spawned = match process::spawn(&stdio).await {
        Ok(spawned) => spawned,
        Err(reason) => return finish(myself, state, reason),
    };
    state.backend = watch_process(
        myself,
        &state.status,
        &state.mailbox,
        &state.server,
        spawned,
        client,
        handshake_timeout,
    );
    let (to, mailbox) = (myself.clone(), state.mailbox.clone());
    tokio::spawn(async move {
        if rotations.changed().await.is_ok() {
            UpstreamActor::cast(&to, &mailbox, UpstreamMsg::TokenRotated);
        }
    });
}

/// Tails stderr, reaps the process, and starts the handshake over its pipes.
fn watch_process(
    myself: &ActorRef<UpstreamMsg>,
    status: &Arc<UpstreamStatus>,
    mailbox: &Arc<InstanceMailbox>,
    server: &Arc<str>,
    spawned: process::Spawned,
    client: UpstreamClient,
    handshake_timeout: std::time::Duration,
) -> Backend {
    tracing::info!(server = %server, pid = spawned.group.id(), "upstream process started");
    let tail_status = status.clone();
    let tail_server = server.clone();
    let stderr = spawned.stderr;
    tokio::spawn(async move { tail_status.stderr.capture(&tail_server, stderr).await });

    let mut child = spawned.child;
    let (reap_ref, reap_mailbox) = (myself.clone(), mailbox.clone());
    // Told straight to `post_stop` too: a stopping actor handles no messages.
    let (reaped_tx, reaped) = watch::channel(false);
    tokio::spawn(async move {
        let reason = match child.wait().await {
            Ok(exit) => ExitReason::from_status(exit),
            Err(err) => ExitReason::SessionFailed(format!("could not wait for process: {err}")),
        };
        reaped_tx.send_replace(true);
        UpstreamActor::cast(&reap_ref, &reap_mailbox, UpstreamMsg::ProcessExited(reason));
    });
    let transport = line_rate::rationed(spawned.stdout, spawned.stdin);
    handshake(
        myself,
        mailbox,
        initialize(client, transport, handshake_timeout),
    );
    Backend::Process(spawned.group, reaped)
}

/// Runs a handshake ([`initialize`] or [`detect`]) in a task that reports
/// its outcome to the instance.
fn handshake(
    myself: &ActorRef<UpstreamMsg>,
    mailbox: &Arc<InstanceMailbox>,
    handshake: impl std::future::Future<Output = UpstreamMsg> + Send + 'static,
) {
    let (hs_ref, hs_mailbox) = (myself.clone(), mailbox.clone());
    tokio::spawn(async move {
        UpstreamActor::cast(&hs_ref, &hs_mailbox, handshake.await);
    });
}

/// Runs the MCP handshake over `transport`; one that does not finish within
/// `deadline` fails (a server that never answers `initialize` would
/// otherwise stay `starting` for ever).
async fn initialize<T, E, A>(
    client: UpstreamClient,
    transport: T,
    deadline: std::time::Duration,
) -> UpstreamMsg
where
    T: rmcp::transport::IntoTransport<RoleClient, E, A> + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let transport = progress_order::ProgressRouting {
        inner: rmcp::transport::IntoTransport::into_transport(transport),
        calls: client.calls.clone(),
    };
    match tokio::time::timeout(deadline, serve_client(client, transport)).await {
        Ok(Ok(service)) => UpstreamMsg::Connected(Box::new(service)),
        Ok(Err(err)) => UpstreamMsg::HandshakeFailed(handshake_error(&err)),
        Err(_) => UpstreamMsg::HandshakeFailed(format!(
            "no answer to initialize within {}s",
            deadline.as_secs_f32()
        )),
    }
}

/// A failed handshake as an operator reads it. rmcp's transport errors name
/// the transport by its Rust type (`Transport [ProgressRouting<WorkerTransport<…>>]`),
/// which tells an operator nothing; the cause and the step stay.
pub(crate) fn handshake_error(err: &rmcp::service::ClientInitializeError) -> String {
    use rmcp::service::ClientInitializeError as E;
    match err {
        E::TransportError { error, context } => format!("{}, when {context}", error.error),
        E::LegacyFallbackFailed { discover, fallback } => format!(
            "discover: {}; legacy initialize: {}",
            handshake_error(discover),
            handshake_error(fallback)
        ),
        other => other.to_string(),
    }
}

/// What connecting over the legacy HTTP+SSE transport needs, should the
/// URL turn out to serve it.
struct Legacy {
    http: HttpSpec,
    tokens: Option<TokenSource>,
    lost: remote::LostHook,
    /// What the streamable attempt's POSTs were answered with.
    posted: remote::PostStatus,
}

/// The handshake of an upstream whose configuration names no `type`:
/// streamable HTTP first; when its `initialize` POST is refused with a 4xx
/// about the transport ([`HttpProtocol::is_legacy_answer`]), the legacy
/// HTTP+SSE transport (as the MCP specification's backwards compatibility
/// section asks of clients), within what is left of `deadline`.
async fn detect(
    client: UpstreamClient,
    transport: rmcp::transport::StreamableHttpClientTransport<remote::RemoteClient>,
    legacy: Legacy,
    deadline: std::time::Duration,
) -> UpstreamMsg {
    let started = tokio::time::Instant::now();
    let again = client.clone();
    let msg = initialize(client, transport, deadline).await;
    let UpstreamMsg::HandshakeFailed(streamable_err) = &msg else {
        return msg;
    };
    let Some(status) = legacy
        .posted
        .last()
        .filter(|&status| HttpProtocol::is_legacy_answer(status))
    else {
        return msg;
    };
    tracing::info!(server = %again.server, url = %legacy.http.masked_url(), status, "initialize POST refused: trying the legacy HTTP+SSE transport");
    let left = deadline.saturating_sub(started.elapsed());
    // Until the legacy session is up, a lost stream is this attempt's
    // failure, reported with the streamable one's, not the instance's end
    // for a reason that hides why the URL was tried that way.
    let attempt = Arc::new(LegacyAttempt::default());
    let hook: remote::LostHook = {
        let (attempt, lost) = (attempt.clone(), legacy.lost.clone());
        Arc::new(move |reason| {
            if let Some(reason) = attempt.hold(reason) {
                lost(reason);
            }
        })
    };
    let failed = |err: &str| {
        let err = match attempt.held() {
            Some(lost) if lost != err => format!("{err} ({lost})"),
            _ => err.to_owned(),
        };
        UpstreamMsg::HandshakeFailed(format!(
            "streamable HTTP: {streamable_err}; legacy HTTP+SSE: {err}"
        ))
    };
    let transport = match sse::transport(&legacy.http, legacy.tokens, hook) {
        Ok(transport) => transport,
        Err(err) => return failed(&err),
    };
    match initialize(again, transport, left).await {
        UpstreamMsg::HandshakeFailed(err) => failed(&err),
        connected => {
            if let Some(reason) = attempt.connected() {
                legacy.lost.as_ref()(reason);
            }
            connected
        }
    }
}

/// A legacy attempt's lost stream: held while the handshake runs, passed
/// on once it has succeeded.
#[derive(Default)]
struct LegacyAttempt(std::sync::Mutex<Attempt>);

#[derive(Default)]
struct Attempt {
    /// The handshake succeeded: losses pass on.
    up: bool,
    /// The first loss while it ran.
    held: Option<String>,
}

impl LegacyAttempt {
    fn state(&self) -> std::sync::MutexGuard<'_, Attempt> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `reason` when it is to be passed on now (the session is up), else
    /// holds it.
    fn hold(&self, reason: String) -> Option<String> {
        let mut state = self.state();
        if state.up {
            return Some(reason);
        }
        state.held.get_or_insert(reason);
        None
    }

    /// The loss held during the handshake, if any.
    fn held(&self) -> Option<String> {
        self.state().held.clone()
    }

    /// The session is up: later losses pass on; returns one held meanwhile.
    fn connected(&self) -> Option<String> {
        let mut state = self.state();
        state.up = true;
        state.held.take()
    }
}

fn schedule_grace(
    myself: &ActorRef<UpstreamMsg>,
    mailbox: &Arc<InstanceMailbox>,
    grace: std::time::Duration,
) {
    let (to, mailbox) = (myself.clone(), mailbox.clone());
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        UpstreamActor::cast(&to, &mailbox, UpstreamMsg::SessionGraceOver);
    });
}

fn on_connected(
    myself: &ActorRef<UpstreamMsg>,
    state: &mut Instance,
    service: RunningService<RoleClient, UpstreamClient>,
) {
    let peer = service.peer().clone();
    state.session = Some(service.cancellation_token());
    let (closed_ref, closed_mailbox) = (myself.clone(), state.mailbox.clone());
    tokio::spawn(async move {
        let _ = service.waiting().await;
        UpstreamActor::cast(&closed_ref, &closed_mailbox, UpstreamMsg::SessionClosed);
    });
    let direct = match &state.backend {
        Backend::Remote(direct) => direct.clone(),
        _ => None,
    };
    let link = UpstreamLink::new(
        peer.clone(),
        state.exit_tx.subscribe(),
        state.status.clone(),
        state.calls.clone(),
        direct,
    );
    state.observer.instance_ready(&state.server, &link);
    if let Some(health) = &state.health {
        health::spawn(health.clone(), link.clone(), state.status.clone());
    }
    state.status.set_ready(link);
    tracing::info!(server = %state.server, instance = state.status.index(), "upstream ready");
    fingerprint::spawn(
        peer,
        state.server.clone(),
        state.status.clone(),
        state.observer.clone(),
    );
}
