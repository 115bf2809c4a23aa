//! Calls served in the HTTP request's own task (Bulwark patch: direct
//! calls; see PATCHES.md): a session's `tools/call`, and a stateless
//! request (`DirectCall::stateless`), which otherwise got a serve loop of its
//! own.
//!
//! A session's request otherwise crosses the session worker (which opens
//! the request's stream), the serve loop (which spawns its handler) and both
//! again on the way back: four tasks woken per call. Once a session's
//! handshake is done its service and peer are published here, and a
//! `tools/call` runs its handler in the task that read the request. What the
//! handler sends on the call's behalf (progress for its token, requests to
//! the client marked with its id) comes out of the call's stream before its
//! answer; anything else goes the session's way, through the serve loop, as
//! before. A call that outlasts the head's wait is handed, stream and all,
//! to the session's worker (`SessionManager::adopt_call`).

use std::{
    collections::{HashMap, VecDeque},
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use futures::{Stream, future::BoxFuture};
use tokio_util::sync::CancellationToken;

use crate::{
    RoleServer,
    boxed_mpsc::{Receiver, TrySendError},
    model::{
        ClientJsonRpcMessage, ClientNotification, ClientRequest, ClientResult, ErrorData,
        GetExtensions, GetMeta, JsonRpcMessage, JsonRpcRequest, ProgressToken, RequestId,
        ServerJsonRpcMessage, ServerNotification, ServerResult,
    },
    service::{
        OriginatingRequestId, Peer, PeerSinkMessage, Service, ServiceError, handle_request_scoped,
    },
    transport::common::server_side_http::{ServerSseMessage, SessionId},
};

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type Outbound = PeerSinkMessage<RoleServer>;
type Answer = tokio::sync::oneshot::Sender<Result<ClientResult, ServiceError>>;

/// Room for what a handler sends before its call's stream takes it, as the
/// serve loop's own sink proxy has.
const SIDE_CAPACITY: usize = 64;

/// The sessions whose calls are served directly, by id.
pub(crate) struct DirectSessions<S> {
    sessions: RwLock<Map<SessionId, Arc<DirectSession<S>>>>,
}

impl<S> DirectSessions<S> {
    pub(crate) fn new() -> Self {
        Self {
            sessions: RwLock::new(Map::default()),
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<DirectSession<S>>> {
        let sessions = self.sessions.read().unwrap_or_else(PoisonError::into_inner);
        sessions.get(id).cloned()
    }

    /// Publishes a session whose handshake is done.
    pub(crate) fn publish(
        &self,
        id: SessionId,
        service: Arc<S>,
        peer: Peer<RoleServer>,
        activity: Arc<AtomicU64>,
    ) {
        let session = Arc::new(DirectSession {
            service,
            peer,
            ct: CancellationToken::new(),
            activity,
            calls: Mutex::default(),
        });
        let mut sessions = self
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        sessions.insert(id, session);
    }

    /// Withdraws a session whose serve loop ended, cancelling its calls as
    /// the serve loop's end cancels its handlers.
    pub(crate) fn withdraw(&self, id: &str) {
        let mut sessions = self
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(session) = sessions.remove(id) {
            session.ct.cancel();
        }
    }
}

/// What a published session's calls need of it.
pub(crate) struct DirectSession<S> {
    service: Arc<S>,
    /// The session's peer: its sends go through the serve loop.
    peer: Peer<RoleServer>,
    /// Cancelled when the session ends; each call's token is a child.
    ct: CancellationToken,
    /// Counted per call: the session's idle timeout reads it.
    activity: Arc<AtomicU64>,
    calls: Mutex<Calls>,
}

#[derive(Default)]
struct Calls {
    /// Calls in flight, for the client's `notifications/cancelled`.
    running: Map<RequestId, CancellationToken>,
    /// Requests the calls sent to the client, awaiting its answer.
    asked: Map<RequestId, Answer>,
}

impl<S> DirectSession<S> {
    fn calls(&self) -> std::sync::MutexGuard<'_, Calls> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A client message that is not a request: the answer to a direct
    /// call's request is taken (`None`); anything else is given back for the
    /// session's worker, a cancellation of a direct call once that call's
    /// token is cancelled and its answer dropped, as the serve loop does.
    pub(crate) fn client_message(
        &self,
        message: ClientJsonRpcMessage,
    ) -> Option<ClientJsonRpcMessage> {
        let id = match &message {
            JsonRpcMessage::Response(response) => &response.id,
            JsonRpcMessage::Error(error) => match &error.id {
                Some(id) => id,
                None => return Some(message),
            },
            JsonRpcMessage::Notification(notification) => {
                if let ClientNotification::CancelledNotification(cancelled) =
                    &notification.notification
                    && let Some(id) = &cancelled.params.request_id
                    && let Some(ct) = self.calls().running.remove(id)
                {
                    ct.cancel();
                }
                return Some(message);
            }
            JsonRpcMessage::Request(_) => return Some(message),
        };
        let Some(answer) = self.calls().asked.remove(id) else {
            return Some(message);
        };
        let result = match message {
            JsonRpcMessage::Response(response) => Ok(response.result),
            JsonRpcMessage::Error(error) if error.error.is_transport_closed() => {
                Err(ServiceError::TransportClosed)
            }
            JsonRpcMessage::Error(error) => Err(ServiceError::McpError(error.error)),
            _ => return None,
        };
        let _ = answer.send(result);
        None
    }

    /// Ends call `id`: true unless the client cancelled it.
    fn finish(&self, id: &RequestId) -> bool {
        match self.calls().running.remove(id) {
            Some(ct) => {
                ct.cancel();
                true
            }
            None => false,
        }
    }
}

impl<S: Service<RoleServer>> DirectSession<S> {
    /// Starts `request`'s handler; the call's messages, its answer last,
    /// come out of the returned stream as it is polled.
    pub(crate) fn call(self: &Arc<Self>, request: JsonRpcRequest<ClientRequest>) -> DirectCall<S> {
        self.activity.fetch_add(1, Ordering::Relaxed);
        let ct = self.ct.child_token();
        self.calls().running.insert(request.id.clone(), ct.clone());
        let (side_tx, side) = crate::boxed_mpsc::channel(SIDE_CAPACITY);
        let peer = self.peer.redirected(side_tx);
        DirectCall::start(
            self.service.clone(),
            peer,
            side,
            request,
            ct,
            Some(self.clone()),
        )
    }
}

impl<S: Service<RoleServer>> DirectCall<S> {
    /// A stateless request (2026-07-28) served in the HTTP task, as
    /// `serve_directly_with_ct` served it with a serve loop of its own:
    /// `peer` and `side` are a fresh peer's, everything its handler sends
    /// goes out on the request's response, and dropping the call drops (and
    /// so cancels) its handler.
    pub(crate) fn stateless(
        service: Arc<S>,
        peer: Peer<RoleServer>,
        side: Receiver<Outbound>,
        request: JsonRpcRequest<ClientRequest>,
        ct: CancellationToken,
    ) -> Self {
        Self::start(service, peer, side, request, ct, None)
    }

    fn start(
        service: Arc<S>,
        peer: Peer<RoleServer>,
        side: Receiver<Outbound>,
        request: JsonRpcRequest<ClientRequest>,
        ct: CancellationToken,
        session: Option<Arc<DirectSession<S>>>,
    ) -> Self {
        let JsonRpcRequest { id, request, .. } = request;
        let progress_token = request.get_meta().get_progress_token();
        let handling = handle_request_scoped(service, request, id.clone(), ct, peer);
        DirectCall {
            session,
            id,
            progress_token,
            handling: Some(Box::pin(handling)),
            side: Some(side),
            outbox: VecDeque::new(),
            sending: None,
            asked: Vec::new(),
            held: Vec::new(),
            answer: None,
        }
    }
}

/// One direct call: its handler and what it sends, as a stream of the
/// messages for the call's HTTP response, its answer last. Dropped before
/// its answer (the client went away), the handler still runs to its end in a
/// task of its own: a disconnection is no cancellation.
pub(crate) struct DirectCall<S: Send + Sync + 'static> {
    /// `None` for a stateless request: no session to route anything to.
    session: Option<Arc<DirectSession<S>>>,
    id: RequestId,
    progress_token: Option<ProgressToken>,
    handling: Option<BoxFuture<'static, Result<ServerResult, ErrorData>>>,
    /// What the handler sends through its context's peer.
    side: Option<Receiver<Outbound>>,
    /// Messages for the session's serve loop, in order.
    outbox: VecDeque<Outbound>,
    /// The outbox's head, waiting for room in the serve loop's queue.
    sending: Option<BoxFuture<'static, ()>>,
    /// Requests this call sent the client, awaiting its answer.
    asked: Vec<RequestId>,
    /// A stateless request's requests to the client, which cannot answer
    /// them: held, as the serve loop held them, until the call ends.
    held: Vec<Answer>,
    answer: Option<ServerJsonRpcMessage>,
}

impl<S: Send + Sync + 'static> DirectCall<S> {
    /// A message the handler sent: this call's (returned, for its stream) or
    /// the session's (queued for the serve loop).
    fn take_side(&mut self, message: Outbound) -> Option<ServerSseMessage> {
        let Some(session) = &self.session else {
            // Stateless: the response is the only way out.
            return Some(match message {
                PeerSinkMessage::Notification {
                    notification,
                    responder,
                } => {
                    let _ = responder.send(Ok(()));
                    event(JsonRpcMessage::notification(notification))
                }
                PeerSinkMessage::Request {
                    request,
                    id,
                    responder,
                } => {
                    self.held.push(responder);
                    event(JsonRpcMessage::request(request, id))
                }
            });
        };
        match message {
            PeerSinkMessage::Notification {
                notification: ServerNotification::ProgressNotification(progress),
                responder,
            } if self.progress_token.as_ref() == Some(&progress.params.progress_token) => {
                let _ = responder.send(Ok(()));
                let notification = ServerNotification::ProgressNotification(progress);
                Some(event(JsonRpcMessage::notification(notification)))
            }
            PeerSinkMessage::Request {
                request,
                id,
                responder,
            } if request
                .extensions()
                .get::<OriginatingRequestId>()
                .is_some_and(|origin| origin.0 == self.id) =>
            {
                session.calls().asked.insert(id.clone(), responder);
                self.asked.push(id.clone());
                Some(event(JsonRpcMessage::request(request, id)))
            }
            other => {
                self.outbox.push_back(other);
                None
            }
        }
    }

    /// Hands the outbox to the serve loop, as far as its queue has room.
    fn flush(&mut self, cx: &mut Context<'_>) {
        loop {
            if let Some(sending) = &mut self.sending {
                if sending.as_mut().poll(cx).is_pending() {
                    return;
                }
                self.sending = None;
            }
            let Some(session) = &self.session else {
                return;
            };
            let Some(message) = self.outbox.pop_front() else {
                return;
            };
            let sink = session.peer.sink();
            match sink.try_send(message) {
                Ok(()) => {}
                Err(TrySendError::Full(message)) => {
                    let sink = sink.clone();
                    self.sending = Some(Box::pin(async move {
                        let _ = sink.send(message).await;
                    }));
                }
                // The session ended: its serve loop hears nothing more.
                Err(TrySendError::Closed(_)) => self.outbox.clear(),
            }
        }
    }

    /// The next message the handler sent, if one is ready.
    fn poll_side(&mut self, cx: &mut Context<'_>) -> Option<ServerSseMessage> {
        while let Some(side) = &mut self.side {
            match side.poll_recv(cx) {
                Poll::Ready(Some(message)) => {
                    if let Some(event) = self.take_side(message) {
                        return Some(event);
                    }
                }
                // The handler and every peer it cloned are gone.
                Poll::Ready(None) => self.side = None,
                Poll::Pending => break,
            }
        }
        None
    }
}

impl<S: Send + Sync + 'static> Stream for DirectCall<S> {
    type Item = ServerSseMessage;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        // What the handler sent on the call's behalf goes before its answer.
        if let Some(event) = this.poll_side(cx) {
            return Poll::Ready(Some(event));
        }
        this.flush(cx);
        if let Some(handling) = &mut this.handling {
            let Poll::Ready(result) = handling.as_mut().poll(cx) else {
                return Poll::Pending;
            };
            this.handling = None;
            if this
                .session
                .as_ref()
                .is_none_or(|session| session.finish(&this.id))
            {
                let id = this.id.clone();
                this.answer = Some(match result {
                    Ok(result) => JsonRpcMessage::response(result, id),
                    Err(error) => JsonRpcMessage::error(error, Some(id)),
                });
            }
            // Sent without waiting, just before the handler returned.
            if let Some(event) = this.poll_side(cx) {
                return Poll::Ready(Some(event));
            }
            this.flush(cx);
        }
        Poll::Ready(this.answer.take().map(event))
    }
}

impl<S: Send + Sync + 'static> Drop for DirectCall<S> {
    fn drop(&mut self) {
        // Stateless: dropped, the handler is cancelled (the client went away).
        let Some(session) = &self.session else {
            return;
        };
        if !self.asked.is_empty() {
            // Nobody reads this call's stream: its questions go unanswered.
            let mut calls = session.calls();
            for id in self.asked.drain(..) {
                calls.asked.remove(&id);
            }
        }
        let handling = self.handling.take();
        let side = self.side.take();
        if handling.is_none() && side.is_none() && self.outbox.is_empty() && self.sending.is_none()
        {
            return;
        }
        // The rest runs in a task: the handler to its end, and whatever is
        // still sent on its peer (a clone may outlive the call) goes the
        // session's way.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let session = session.clone();
        let id = self.id.clone();
        let sending = self.sending.take();
        let outbox = std::mem::take(&mut self.outbox);
        runtime.spawn(async move {
            let forwarding = async {
                if let Some(sending) = sending {
                    sending.await;
                }
                let sink = session.peer.sink();
                for message in outbox {
                    let _ = sink.send(message).await;
                }
                if let Some(mut side) = side {
                    while let Some(message) = side.recv().await {
                        let _ = sink.send(message).await;
                    }
                }
            };
            let running = async {
                if let Some(handling) = handling {
                    let _ = handling.await;
                    session.finish(&id);
                }
            };
            futures::join!(forwarding, running);
        });
    }
}

fn event(message: ServerJsonRpcMessage) -> ServerSseMessage {
    ServerSseMessage::from_message(message)
}
