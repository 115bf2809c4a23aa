//! `UpstreamLink`: the shared handle the request path uses to call a ready
//! upstream directly over its one MCP session, without a hop through the
//! actor. Many calls run at once; the session multiplexes them by JSON-RPC id.
//!
//! The link also remembers which client call is waiting on which upstream
//! request, so that progress, logging and server-to-client requests (sampling,
//! elicitation, roots) that the upstream sends mid-call reach the right client.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use rmcp::model::{
    CancelledNotification, CancelledNotificationParam, ClientJsonRpcMessage, ClientRequest,
    ClientResult, ErrorData, ProgressNotification, ProgressNotificationParam, ProgressToken,
    RequestId, ServerJsonRpcMessage, ServerNotification, ServerRequest, ServerResult,
};
use rmcp::service::{PeerRequestOptions, ServiceError};
use rmcp::transport::streamable_http_client::{DirectError, DirectReply, DirectSession, release};
use rmcp::{Peer, RoleClient};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::exit::ExitReason;
use super::remote::DirectRoute;
use super::status::UpstreamStatus;

/// How long a call whose session just closed waits to learn the exit status,
/// so its error can say why the upstream died rather than just "closed".
const EXIT_REASON_WAIT: Duration = Duration::from_millis(250);
/// How long the background `notifications/cancelled` of a withdrawn call
/// may wait for the upstream's pipe before it is given up.
const CANCEL_NOTICE_WAIT: Duration = Duration::from_secs(5);

/// Progress notifications queued per call while its client is slow to take
/// them; past this, newer ones are dropped (progress is advisory, and an
/// upstream flooding it must not grow the gateway's memory).
pub const PROGRESS_QUEUE: usize = 256;

/// The client side of a call in flight: where the upstream's mid-call traffic
/// goes. Implemented by the front door for each client session.
pub trait Caller: Send + Sync + 'static {
    /// Forwards a server-to-client request and returns the client's answer.
    fn request(
        &self,
        request: ServerRequest,
    ) -> BoxFuture<'static, Result<ClientResult, ErrorData>>;
    /// Forwards a notification; progress has already been rewritten to the
    /// client's own token.
    fn notify(&self, notification: ServerNotification) -> BoxFuture<'static, ()>;
    /// The progress token the client put on its request, if any.
    fn progress_token(&self) -> Option<ProgressToken>;
    /// The tenant (project) the call was made for: traffic that cannot be
    /// tied to one call goes only to calls of a single tenant.
    fn tenant(&self) -> Option<Arc<str>> {
        None
    }
}

/// A failed upstream call.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The upstream answered with a JSON-RPC error; passed on unchanged.
    #[error("{0}")]
    Upstream(ErrorData),
    /// The upstream died or its session broke while the call was in flight.
    #[error("upstream '{server}' failed during the call: {reason}")]
    Lost {
        /// Server name.
        server: Arc<str>,
        /// Exit status, signal or session error.
        reason: String,
    },
    /// The client cancelled the call; the upstream was told.
    #[error("call to upstream '{server}' was cancelled")]
    Cancelled {
        /// Server name.
        server: Arc<str>,
    },
}

struct InFlight {
    seq: u64,
    /// The id of the request sent upstream (remote upstreams tie their
    /// mid-call requests to it) and its progress token. Known once the
    /// request is sent; the call is registered before, so the upstream's
    /// requests and logs find their caller at once.
    upstream_id: Option<RequestId>,
    upstream_token: Option<ProgressToken>,
    caller: Arc<dyn Caller>,
    /// The call's progress, in the order it was read (see `progress_order`);
    /// `None` when the client asked for none (it would be dropped anyway).
    progress: Option<mpsc::Sender<ProgressNotificationParam>>,
}

/// The calls in flight on one session that have a client to route traffic to.
/// Shared by the link (which registers calls) and the session's client
/// handler (which routes the upstream's mid-call traffic).
#[derive(Default)]
pub(crate) struct CallRegistry {
    calls: Mutex<Vec<InFlight>>,
    next_seq: AtomicU64,
    /// Mid-call messages that could not be tied to one tenant's call.
    unrouted: AtomicU64,
    /// Rung when a call learns its upstream request id (see [`Self::sent`]).
    sent: tokio::sync::Notify,
    /// Progress read while some call had not recorded its token yet (see
    /// [`Self::route_progress`]); always locked after `calls`.
    early: Mutex<Vec<ProgressNotificationParam>>,
}

/// Most progress notifications kept for calls still being sent.
const EARLY_PROGRESS: usize = 32;

/// Whether some call has not recorded what it sent yet.
fn sending(calls: &[InFlight]) -> bool {
    calls.iter().any(|call| call.upstream_id.is_none())
}

/// Queues `progress` on `call`: false only when the call no longer reads
/// its queue. A full queue drops it; a call whose client wants no progress
/// takes it and drops it.
fn queue_progress(call: &InFlight, progress: ProgressNotificationParam) -> bool {
    match &call.progress {
        None => true,
        Some(queue) => match queue.try_send(progress) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        },
    }
}

/// How long a mid-call message that names a call waits for a call still
/// being sent to learn its id: the upstream may answer before the sender
/// has recorded what it sent.
const NAMED_CALL_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// What an upstream's mid-call message says about the call it belongs to.
#[derive(Debug, Default, Clone)]
pub(crate) struct RouteHint {
    /// The upstream request whose response stream carried it (remote).
    pub(crate) upstream_id: Option<RequestId>,
    /// A progress token or related request id in its `_meta`.
    pub(crate) meta_token: Option<ProgressToken>,
    /// A related request id in its `_meta`.
    pub(crate) related_id: Option<RequestId>,
}

impl RouteHint {
    /// Whether it names a call at all.
    pub(crate) fn names_a_call(&self) -> bool {
        self.upstream_id.is_some() || self.related_id.is_some() || self.meta_token.is_some()
    }
}

impl CallRegistry {
    fn register(
        &self,
        caller: Arc<dyn Caller>,
    ) -> (u64, Option<mpsc::Receiver<ProgressNotificationParam>>) {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed) + 1;
        let (progress, queue) = match caller.progress_token() {
            Some(_) => {
                let (progress, queue) = mpsc::channel(PROGRESS_QUEUE);
                (Some(progress), Some(queue))
            }
            None => (None, None),
        };
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.push(InFlight {
            seq,
            upstream_id: None,
            upstream_token: None,
            caller,
            progress,
        });
        (seq, queue)
    }

    /// Records the id and progress token the call's upstream request carries,
    /// and hands it the progress for that token read before.
    fn sent(&self, seq: u64, upstream_id: RequestId, upstream_token: ProgressToken) {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(call) = calls.iter_mut().rev().find(|call| call.seq == seq) {
            call.upstream_id = Some(upstream_id);
            call.upstream_token = Some(upstream_token);
            let mut early = self.early.lock().unwrap_or_else(|e| e.into_inner());
            let token = call.upstream_token.as_ref();
            for progress in early.extract_if(.., |p| Some(&p.progress_token) == token) {
                queue_progress(call, progress);
            }
        }
        self.forget_early_unless_sending(&calls);
        drop(calls);
        self.sent.notify_waiters();
    }

    fn remove(&self, seq: u64) {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        // Calls mostly end in the order they started: search from the newest.
        if let Some(at) = calls.iter().rposition(|call| call.seq == seq) {
            calls.remove(at);
        }
        self.forget_early_unless_sending(&calls);
    }

    /// Early progress can only be for a call still being sent (a call
    /// registered later gets a newer token): with none, it is dropped.
    fn forget_early_unless_sending(&self, calls: &[InFlight]) {
        if !sending(calls) {
            self.early.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }

    /// Queues progress on the call whose upstream request carries its token;
    /// false when no call in flight does. Progress no call takes while some
    /// call has not recorded its token yet is kept (up to [`EARLY_PROGRESS`])
    /// for that call: a remote upstream's first progress can be read before
    /// the caller's thread, preempted right after queuing the request,
    /// records what it sent. Never waits: this runs in the session's read loop.
    pub(crate) fn route_progress(&self, progress: &ProgressNotificationParam) -> bool {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(call) = calls
            .iter()
            .find(|call| call.upstream_token.as_ref() == Some(&progress.progress_token))
        {
            return queue_progress(call, progress.clone());
        }
        if !sending(&calls) {
            return false;
        }
        let mut early = self.early.lock().unwrap_or_else(|e| e.into_inner());
        if early.len() < EARLY_PROGRESS {
            early.push(progress.clone());
        }
        true
    }

    /// The call a mid-call message belongs to: the one `hint` names, else
    /// the newest call when every call in flight is one tenant's, else none
    /// (counted in [`Self::unrouted`]): a message is never delivered to a
    /// tenant that may not have caused it. A message that names a call while
    /// some call is still being sent waits (up to [`NAMED_CALL_WAIT`]) for
    /// that call to record its id before it is given up.
    pub(crate) async fn route_named(&self, hint: &RouteHint) -> Routed {
        let deadline = tokio::time::Instant::now() + NAMED_CALL_WAIT;
        loop {
            let sent = self.sent.notified();
            tokio::pin!(sent);
            sent.as_mut().enable();
            match self.try_route(hint) {
                Err(Pending) if tokio::time::Instant::now() < deadline => {
                    // Woken by `sent`, or re-checked at the deadline.
                    let _ = tokio::time::timeout_at(deadline, sent).await;
                }
                Err(Pending) => return self.route(hint),
                Ok(routed) => return routed,
            }
        }
    }

    /// Like [`Self::route_named`] without waiting: a named call not yet sent
    /// is not waited for.
    pub(crate) fn route(&self, hint: &RouteHint) -> Routed {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        // A request id names one call for sure; a progress token in `_meta`
        // may be the upstream's own token for its request, which can equal
        // another call's token, so it only counts when no id names a call.
        let named = (calls.iter())
            .find(|call| {
                same(&hint.upstream_id, &call.upstream_id)
                    || same(&hint.related_id, &call.upstream_id)
            })
            .or_else(|| (calls.iter()).find(|call| same(&hint.meta_token, &call.upstream_token)));
        if let Some(call) = named {
            return Routed::Call(call.caller.clone());
        }
        let Some(newest) = calls.last() else {
            return Routed::Idle;
        };
        let tenant = newest.caller.tenant();
        if calls.iter().all(|call| call.caller.tenant() == tenant) {
            return Routed::Call(newest.caller.clone());
        }
        drop(calls);
        self.unrouted.fetch_add(1, Ordering::Relaxed);
        Routed::Ambiguous
    }

    /// [`Self::route`], except that a hint naming a call while some call has
    /// not recorded its id yet is `Pending` rather than decided.
    fn try_route(&self, hint: &RouteHint) -> Result<Routed, Pending> {
        if hint.names_a_call() {
            let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            let named = calls.iter().any(|call| {
                same(&hint.upstream_id, &call.upstream_id)
                    || same(&hint.related_id, &call.upstream_id)
                    || same(&hint.meta_token, &call.upstream_token)
            });
            if !named && sending(&calls) {
                return Err(Pending);
            }
        }
        Ok(self.route(hint))
    }

    /// Mid-call messages dropped because calls of several tenants were in
    /// flight and nothing tied the message to one.
    pub(crate) fn unrouted(&self) -> u64 {
        self.unrouted.load(Ordering::Relaxed)
    }
}

/// A named call may still be recording its id.
struct Pending;

/// Both known and equal (an unknown id never matches another unknown one).
fn same<T: PartialEq>(a: &Option<T>, b: &Option<T>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if a == b)
}

/// Where [`CallRegistry::route`] sends a mid-call message.
pub(crate) enum Routed {
    /// To this call's client.
    Call(Arc<dyn Caller>),
    /// No call is in flight.
    Idle,
    /// Calls of several tenants are in flight and none was named: dropped.
    Ambiguous,
}

struct LinkInner {
    peer: Peer<RoleClient>,
    exit: watch::Receiver<Option<ExitReason>>,
    status: Arc<UpstreamStatus>,
    server: Arc<str>,
    calls: Arc<CallRegistry>,
    /// Which instance's session this is (see [`UpstreamLink::session`]).
    session: u64,
    /// Posts calls from the caller's task (remote streamable HTTP only).
    direct: Option<DirectRoute>,
}

/// Cheap-to-clone handle on one ready upstream session.
#[derive(Clone)]
pub struct UpstreamLink {
    inner: Arc<LinkInner>,
}

impl std::fmt::Debug for UpstreamLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamLink")
            .field("server", &self.inner.server)
            .finish_non_exhaustive()
    }
}

/// Removes a call from the in-flight set however the call ends, and
/// withdraws it upstream when it ends dropped while sent and unanswered.
struct InFlightGuard<'a> {
    link: &'a LinkInner,
    seq: u64,
    /// The upstream's id of the call while the upstream holds it unanswered.
    /// A call future dropped then (a stateless client's HTTP request ended,
    /// say: nothing cancels its token first) must still tell the upstream,
    /// which would otherwise run it to the end for nobody.
    unanswered: Option<RequestId>,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.link
            .status
            .in_flight_counter()
            .fetch_sub(1, Ordering::Relaxed);
        if self.seq != 0 {
            self.link.calls.remove(self.seq);
        }
        if let Some(id) = self.unanswered.take() {
            self.link.send_withdrawal(id);
        }
    }
}

impl LinkInner {
    /// Tells the upstream that the call `id` was withdrawn, in the
    /// background and best effort (the upstream may be gone): an upstream
    /// not reading its stdin would otherwise hold the caller past its
    /// deadline.
    fn send_withdrawal(&self, id: RequestId) {
        // Dropped outside a runtime (at shutdown), there is nobody to tell.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let peer = self.peer.clone();
        runtime.spawn(async move {
            let notice = peer.send_notification(
                CancelledNotification::new(CancelledNotificationParam::new(
                    Some(id),
                    Some("cancelled by the client".into()),
                ))
                .into(),
            );
            let _ = tokio::time::timeout(CANCEL_NOTICE_WAIT, notice).await;
        });
    }
}

impl UpstreamLink {
    pub(crate) fn new(
        peer: Peer<RoleClient>,
        exit: watch::Receiver<Option<ExitReason>>,
        status: Arc<UpstreamStatus>,
        calls: Arc<CallRegistry>,
        direct: Option<DirectRoute>,
    ) -> Self {
        Self {
            inner: Arc::new(LinkInner {
                peer,
                exit,
                server: status.name_arc(),
                session: status.next_session(),
                status,
                calls,
                direct,
            }),
        }
    }

    /// The server's name.
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    /// Mid-call messages of this session dropped as not attributable to one
    /// tenant's call.
    pub fn unrouted(&self) -> u64 {
        self.inner.calls.unrouted()
    }

    /// The number of the instance session behind this link, unique per
    /// upstream: a verdict about one instance must not hit its successor.
    pub fn session(&self) -> u64 {
        self.inner.session
    }

    /// Resolves when this session's instance has ended.
    pub(crate) async fn ended(&self) {
        let _ = wait_for_exit(self.inner.exit.clone()).await;
    }

    /// What the upstream said about itself at initialisation.
    pub fn peer_info(&self) -> Option<Arc<rmcp::model::ServerPeerInfo>> {
        self.inner.peer.peer_info()
    }

    /// Sends `request` upstream and waits for its result. Fails at once when
    /// the upstream dies, and tells the upstream when `cancel` fires.
    pub async fn request(
        &self,
        request: ClientRequest,
        caller: Option<Arc<dyn Caller>>,
        cancel: &CancellationToken,
    ) -> Result<ServerResult, CallError> {
        let link = &*self.inner;
        link.status
            .in_flight_counter()
            .fetch_add(1, Ordering::Relaxed);
        let mut guard = InFlightGuard {
            link,
            seq: 0,
            unanswered: None,
        };
        let mut progress = caller.and_then(|caller| {
            let (seq, queue) = link.calls.register(caller.clone());
            guard.seq = seq;
            queue.map(|queue| (caller, queue))
        });
        let direct = link
            .direct
            .as_ref()
            .and_then(|route| route.turn().map(|turn| (route, turn)));
        let request = match direct {
            None => request,
            Some((route, turn)) => {
                // Boxed: inline, the direct exchange's state (2.5 KB in a
                // debug build) made every call's future that much larger,
                // stdio ones too, and each move of it copied that much.
                let direct = Box::pin(self.request_direct(
                    route,
                    &turn.session,
                    request,
                    &mut progress,
                    &mut guard,
                    cancel,
                ))
                .await;
                // Answered, failed, withdrawn or handed back unsent.
                guard.unanswered = None;
                match direct {
                    Direct::UseWorker(request) => request,
                    Direct::Done(result) => {
                        drain_progress(&mut progress).await;
                        return result;
                    }
                }
            }
        };
        // Queuing the request waits on the session's loop; a deadline or a
        // client's cancel must not wait with it.
        let sent = tokio::select! {
            biased;
            sent = link.peer.send_request_with_option(request, PeerRequestOptions::no_options()) => sent,
            () = cancel.cancelled() => {
                return Err(CallError::Cancelled { server: link.server.clone() });
            }
        };
        let mut handle = sent.map_err(|err| self.lost(err))?;
        if guard.seq != 0 {
            link.calls
                .sent(guard.seq, handle.id.clone(), handle.progress_token.clone());
        }
        guard.unanswered = Some(handle.id.clone());
        let result = loop {
            tokio::select! {
                biased;
                response = &mut handle.rx => {
                    break response.unwrap_or(Err(ServiceError::TransportClosed));
                }
                Some((caller, params)) = next_progress(&mut progress) => {
                    forward_progress(&caller, params).await;
                }
                reason = wait_for_exit(link.exit.clone()) => {
                    guard.unanswered = None;
                    return Err(self.exited(reason));
                }
                () = cancel.cancelled() => {
                    guard.unanswered = None;
                    return Err(self.withdraw(handle.id));
                }
            }
        };
        guard.unanswered = None;
        drain_progress(&mut progress).await;
        drop(guard);
        match result {
            Ok(result) => Ok(result),
            Err(ServiceError::McpError(error)) => Err(CallError::Upstream(error)),
            Err(err) => Err(self.lost_after_wait(err).await),
        }
    }

    /// Posts `request` from this task (see [`DirectRoute`]) and reads its
    /// response, forwarding its progress on the way; hands it back when it
    /// must go through the session's worker after all (an expired session,
    /// which the worker re-initialises).
    async fn request_direct(
        &self,
        route: &DirectRoute,
        session: &DirectSession,
        mut request: ClientRequest,
        progress: &mut Progress,
        call: &mut InFlightGuard<'_>,
        cancel: &CancellationToken,
    ) -> Direct {
        let link = &*self.inner;
        let (id, token) = match link.peer.prepare_request(&mut request) {
            Ok(prepared) => prepared,
            Err(err) => return Direct::Done(Err(self.lost(err))),
        };
        if call.seq != 0 {
            link.calls.sent(call.seq, id.clone(), token);
        }
        // From here the upstream may hold it (the caller clears this when
        // this returns: only a drop mid-way leaves it).
        call.unanswered = Some(id.clone());
        // rmcp's worker copies every request it posts, for the same retry.
        let retry = request.clone();
        let message = ClientJsonRpcMessage::request(request, id.clone());
        let posted = tokio::select! {
            biased;
            // Boxed: the HTTP exchange's future is kilobytes, and the call's
            // future (moved a few times on its way to the handler's task)
            // would otherwise carry it for every call, stdio ones too.
            posted = Box::pin(session.post(route.client(), message)) => posted,
            reason = wait_for_exit(link.exit.clone()) => {
                return Direct::Done(Err(self.exited(reason)));
            }
            () = cancel.cancelled() => return Direct::Done(Err(self.withdraw(id))),
        };
        let mut stream = match posted {
            Ok(DirectReply::Message(message)) => return Direct::Done(self.answer(message, &id)),
            Ok(DirectReply::Stream(stream)) => stream,
            Err(DirectError::UseWorker) => return Direct::UseWorker(retry),
            Err(DirectError::NoResponse) => {
                return Direct::Done(Err(
                    self.broken("the upstream accepted the call without answering it".into())
                ));
            }
            Err(DirectError::Http(err)) => {
                return Direct::Done(Err(self.lost_after_wait(err.to_string()).await));
            }
        };
        let result = loop {
            tokio::select! {
                biased;
                message = stream.next() => {
                    let message = match message {
                        Some(Ok(message)) => message,
                        Some(Err(err)) => break Err(self.lost_after_wait(err.to_string()).await),
                        None => break Err(self.broken(
                            "the upstream closed the call's stream without answering".into(),
                        )),
                    };
                    if answers(&message, &id) {
                        break Ok(message);
                    }
                    if let ServerJsonRpcMessage::Notification(notification) = &message
                        && let ServerNotification::ProgressNotification(note) =
                            &notification.notification
                    {
                        // Queued behind the progress read before, as the
                        // session's loop would.
                        link.calls.route_progress(&note.params);
                        continue;
                    }
                    if !session.forward(message, &id).await {
                        break Err(self.lost_after_wait("session closed").await);
                    }
                }
                Some((caller, params)) = next_progress(progress) => {
                    forward_progress(&caller, params).await;
                }
                reason = wait_for_exit(link.exit.clone()) => {
                    return Direct::Done(Err(self.exited(reason)));
                }
                () = cancel.cancelled() => return Direct::Done(Err(self.withdraw(id))),
            }
        };
        release(stream);
        Direct::Done(result.and_then(|message| self.answer(message, &id)))
    }

    /// The result or error `message` carries for request `id`.
    fn answer(
        &self,
        message: ServerJsonRpcMessage,
        id: &RequestId,
    ) -> Result<ServerResult, CallError> {
        match message {
            ServerJsonRpcMessage::Response(response) if &response.id == id => Ok(response.result),
            ServerJsonRpcMessage::Error(error) if error.id.as_ref() == Some(id) => {
                Err(CallError::Upstream(error.error))
            }
            _ => Err(self.broken("the upstream answered another request".into())),
        }
    }

    /// Withdraws the call `id` upstream (see [`LinkInner::send_withdrawal`]):
    /// the error its cancelled caller gets.
    fn withdraw(&self, id: RequestId) -> CallError {
        self.inner.send_withdrawal(id);
        CallError::Cancelled {
            server: self.inner.server.clone(),
        }
    }

    /// The session ended under the call, for `reason` when it is known.
    fn exited(&self, reason: Option<ExitReason>) -> CallError {
        CallError::Lost {
            server: self.inner.server.clone(),
            reason: reason.map_or_else(|| "session closed".into(), |r| r.to_string()),
        }
    }

    /// The upstream broke the protocol on a live session.
    fn broken(&self, reason: String) -> CallError {
        CallError::Lost {
            server: self.inner.server.clone(),
            reason,
        }
    }

    fn lost(&self, err: ServiceError) -> CallError {
        let reason = self.inner.exit.borrow().clone();
        CallError::Lost {
            server: self.inner.server.clone(),
            reason: reason.map_or_else(|| err.to_string(), |r| r.to_string()),
        }
    }

    /// A transport error usually means the process just died; give the actor
    /// a moment to reap it so the error names the exit status or signal.
    async fn lost_after_wait(&self, err: impl ToString) -> CallError {
        let reason = tokio::time::timeout(EXIT_REASON_WAIT, wait_for_exit(self.inner.exit.clone()))
            .await
            .ok()
            .flatten();
        CallError::Lost {
            server: self.inner.server.clone(),
            reason: reason.map_or_else(|| err.to_string(), |r| r.to_string()),
        }
    }
}

/// Whether `message` is the response (or error) to request `id`.
fn answers(message: &ServerJsonRpcMessage, id: &RequestId) -> bool {
    match message {
        ServerJsonRpcMessage::Response(response) => &response.id == id,
        ServerJsonRpcMessage::Error(error) => error.id.as_ref() == Some(id),
        _ => false,
    }
}

/// How a direct post ended.
enum Direct {
    Done(Result<ServerResult, CallError>),
    /// Send it through the session's worker instead.
    UseWorker(ClientRequest),
}

/// A call's client and its queue of progress, when the client wants it.
type Progress = Option<(Arc<dyn Caller>, mpsc::Receiver<ProgressNotificationParam>)>;

/// Forwards the progress still queued: progress read before the response
/// reaches the client before the result.
async fn drain_progress(progress: &mut Progress) {
    if let Some((caller, queue)) = progress {
        while let Ok(params) = queue.try_recv() {
            forward_progress(caller, params).await;
        }
    }
}

/// The next queued progress of a call, with its caller; never resolves for a
/// call without a client.
async fn next_progress(
    progress: &mut Progress,
) -> Option<(Arc<dyn Caller>, ProgressNotificationParam)> {
    match progress {
        Some((caller, queue)) => queue.recv().await.map(|params| (caller.clone(), params)),
        None => std::future::pending().await,
    }
}

/// Sends the upstream's progress to the client under the client's own token,
/// and only when the client asked for progress.
async fn forward_progress(caller: &Arc<dyn Caller>, mut params: ProgressNotificationParam) {
    if let Some(token) = caller.progress_token() {
        params.progress_token = token;
        caller
            .notify(ServerNotification::ProgressNotification(
                ProgressNotification::new(params),
            ))
            .await;
    }
}

/// Resolves once the instance has an exit reason; `None` if the actor is gone.
async fn wait_for_exit(mut exit: watch::Receiver<Option<ExitReason>>) -> Option<ExitReason> {
    match exit.wait_for(Option::is_some).await {
        Ok(reason) => reason.clone(),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tenant(&'static str);

    impl Caller for Tenant {
        fn request(&self, _: ServerRequest) -> BoxFuture<'static, Result<ClientResult, ErrorData>> {
            Box::pin(async { Err(ErrorData::internal_error("unused", None)) })
        }
        fn notify(&self, _: ServerNotification) -> BoxFuture<'static, ()> {
            Box::pin(async {})
        }
        fn progress_token(&self) -> Option<ProgressToken> {
            // The "progress" tenant is a client that asked for progress.
            (self.0 == "progress").then(|| token(-1))
        }
        fn tenant(&self) -> Option<Arc<str>> {
            Some(self.0.into())
        }
    }

    fn token(n: i64) -> ProgressToken {
        ProgressToken(RequestId::Number(n))
    }

    #[test]
    fn a_call_queues_at_most_progress_queue_notifications() {
        let calls = CallRegistry::default();
        let (seq, queue) = calls.register(Arc::new(Tenant("progress")));
        let Some(mut queue) = queue else {
            panic!("a client asking for progress gets a queue");
        };
        calls.sent(seq, RequestId::Number(1), token(7));
        for i in 0..PROGRESS_QUEUE * 4 {
            let params = ProgressNotificationParam::new(token(7), i as f64);
            // Taken (and past the bound dropped) while the client is slow.
            assert!(calls.route_progress(&params));
        }
        let mut queued = 0;
        while queue.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(queued, PROGRESS_QUEUE);
        // Progress for no call in flight is not taken.
        assert!(!calls.route_progress(&ProgressNotificationParam::new(token(8), 1.0)));
    }

    #[test]
    fn progress_read_before_its_call_recorded_its_token_is_kept_for_it() {
        let calls = CallRegistry::default();
        let (seq, queue) = calls.register(Arc::new(Tenant("progress")));
        let mut queue = queue.unwrap();
        // The upstream's first progress is read while the call is still
        // being sent: it is kept, and reaches the call once it is recorded.
        assert!(calls.route_progress(&ProgressNotificationParam::new(token(7), 0.0)));
        assert!(queue.try_recv().is_err());
        calls.sent(seq, RequestId::Number(1), token(7));
        assert_eq!(queue.try_recv().unwrap().progress, 0.0);
        // With every call recorded, unknown progress is refused, and nothing
        // kept for a call still being sent outlives the last one.
        assert!(!calls.route_progress(&ProgressNotificationParam::new(token(8), 1.0)));
        assert!(calls.early.lock().unwrap().is_empty());
    }

    #[test]
    fn routes_by_id_then_single_tenant_else_drops_and_counts() {
        let calls = CallRegistry::default();
        assert!(matches!(calls.route(&RouteHint::default()), Routed::Idle));
        let call = |id: i64, progress: i64, tenant: &'static str| {
            let (seq, _) = calls.register(Arc::new(Tenant(tenant)));
            calls.sent(seq, RequestId::Number(id), token(progress));
        };
        call(1, 10, "a");
        call(2, 11, "a");
        let routed = |hint: &RouteHint| match calls.route(hint) {
            Routed::Call(caller) => caller.tenant().map(|t| t.to_string()),
            Routed::Idle => Some("idle".into()),
            Routed::Ambiguous => None,
        };
        assert_eq!(routed(&RouteHint::default()).as_deref(), Some("a"));
        call(3, 12, "b");
        assert_eq!(routed(&RouteHint::default()), None);
        assert_eq!(calls.unrouted(), 1);
        let by_origin = RouteHint {
            upstream_id: Some(RequestId::Number(1)),
            ..RouteHint::default()
        };
        assert_eq!(routed(&by_origin).as_deref(), Some("a"));
        let by_related = RouteHint {
            related_id: Some(RequestId::Number(3)),
            ..RouteHint::default()
        };
        assert_eq!(routed(&by_related).as_deref(), Some("b"));
        let by_token = RouteHint {
            meta_token: Some(token(11)),
            ..RouteHint::default()
        };
        assert_eq!(routed(&by_token).as_deref(), Some("a"));
    }

    /// An upstream whose one tool runs until its call is cancelled, telling
    /// the test when a call starts and when it is cancelled.
    struct Waits {
        events: mpsc::UnboundedSender<&'static str>,
    }

    impl rmcp::ServerHandler for Waits {
        fn get_info(&self) -> rmcp::model::ServerConfig {
            rmcp::model::ServerConfig::new(
                rmcp::model::ServerCapabilities::builder()
                    .enable_tools()
                    .build(),
            )
        }

        async fn call_tool(
            &self,
            _: rmcp::model::CallToolRequestParams,
            context: rmcp::service::RequestContext<rmcp::RoleServer>,
        ) -> Result<rmcp::model::CallToolResponse, ErrorData> {
            let _ = self.events.send("started");
            context.ct.cancelled().await;
            let _ = self.events.send("cancelled");
            Err(ErrorData::internal_error("cancelled", None))
        }
    }

    /// What a link to [`Waits`] needs kept alive besides the link.
    type Session = (
        rmcp::service::RunningService<rmcp::RoleClient, ()>,
        watch::Sender<Option<ExitReason>>,
    );

    /// A link to a [`Waits`] upstream over an in-memory pipe, and the
    /// upstream's events.
    async fn waiting_link() -> (UpstreamLink, mpsc::UnboundedReceiver<&'static str>, Session) {
        use rmcp::ServiceExt;

        let (events, seen) = mpsc::unbounded_channel();
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            if let Ok(running) = (Waits { events }).serve(server_io).await {
                let _ = running.waiting().await;
            }
        });
        let client = ().serve(client_io).await.unwrap();
        let (exit_tx, exit) = watch::channel(None);
        let link = UpstreamLink::new(
            client.peer().clone(),
            exit,
            UpstreamStatus::new("waits"),
            Arc::new(CallRegistry::default()),
            None,
        );
        (link, seen, (client, exit_tx))
    }

    /// Polls `call` until the upstream reports it started.
    async fn until_started(
        call: std::pin::Pin<&mut impl Future<Output = Result<ServerResult, CallError>>>,
        seen: &mut mpsc::UnboundedReceiver<&'static str>,
    ) {
        tokio::select! {
            result = call => panic!("a call that never ends answered: {result:?}"),
            started = tokio::time::timeout(Duration::from_secs(10), seen.recv()) => {
                assert_eq!(started.unwrap(), Some("started"));
            }
        }
    }

    /// A call future dropped while the upstream holds the call (nothing
    /// cancelled its token: a stateless client's request that ended) still
    /// withdraws it upstream with `notifications/cancelled`.
    #[tokio::test]
    async fn a_call_dropped_unanswered_is_withdrawn_upstream() {
        let (link, mut seen, _session) = waiting_link().await;
        let request = ClientRequest::CallToolRequest(rmcp::model::Request::new(
            rmcp::model::CallToolRequestParams::new("wait"),
        ));
        let cancel = CancellationToken::new();
        let call = link.request(request, Some(Arc::new(Tenant("a"))), &cancel);
        until_started(std::pin::pin!(call), &mut seen).await;
        // The call is dropped, its token never cancelled.
        assert!(!cancel.is_cancelled());
        let cancelled = tokio::time::timeout(Duration::from_secs(10), seen.recv()).await;
        assert_eq!(cancelled.unwrap(), Some("cancelled"));
        assert_eq!(
            link.inner
                .status
                .in_flight_counter()
                .load(Ordering::Relaxed),
            0
        );
    }

    /// A call whose token is cancelled withdraws itself once, and its
    /// caller gets `Cancelled`.
    #[tokio::test]
    async fn a_call_cancelled_is_withdrawn_upstream() {
        let (link, mut seen, _session) = waiting_link().await;
        let request = ClientRequest::CallToolRequest(rmcp::model::Request::new(
            rmcp::model::CallToolRequestParams::new("wait"),
        ));
        let cancel = CancellationToken::new();
        let mut call = std::pin::pin!(link.request(request, None, &cancel));
        until_started(call.as_mut(), &mut seen).await;
        cancel.cancel();
        assert!(matches!(call.await, Err(CallError::Cancelled { .. })));
        assert_eq!(seen.recv().await, Some("cancelled"));
    }
}
