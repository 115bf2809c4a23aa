//! Direct posts (patch): a caller posts a request of an established session
//! from its own task, beside the worker, and reads the response there.
//!
//! Through the worker, a request crosses the service loop and the worker on
//! its way out and again on its way back: four task hand-offs per call on
//! top of the HTTP connection's own. A direct post skips them. The worker
//! stays in charge of the session: it publishes what a post needs once the
//! session is established (and withdraws it while it recovers an expired
//! session or has stopped), and everything but the response that arrives on
//! a direct post's stream (server requests, logging) is handed to it, so the
//! service handles it as if the worker had read it.
//!
//! Only sessions of protocol versions before
//! [`ProtocolVersion::STANDARD_HEADERS`] are published: later ones derive
//! headers from each message (`Mcp-Param-*`) and keep a tool cache the
//! worker owns.
use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use futures::{FutureExt, StreamExt, stream::BoxStream};
use http::{HeaderName, HeaderValue};

use super::{
    StreamableHttpClient, StreamableHttpClientWorker, StreamableHttpError,
    StreamableHttpPostResponse,
};
use crate::{
    model::{
        ClientJsonRpcMessage, GetExtensions, GetMeta, ProtocolVersion, RequestId,
        ServerJsonRpcMessage,
    },
    service::InboundStreamOrigin,
    transport::common::client_side_sse::SseRetryPolicy,
};

/// How long a stream that delivered its response may take to end, so its
/// connection goes back to the pool (the worker waits as long).
const DRAIN: Duration = Duration::from_millis(50);

/// Where the worker publishes the session direct posts use. Cloned into
/// [`super::StreamableHttpClientTransportConfig::direct`] and kept by the
/// caller; both ends share one slot.
#[derive(Clone, Default)]
pub struct DirectPosts {
    session: Arc<RwLock<Option<Arc<DirectSession>>>>,
}

impl std::fmt::Debug for DirectPosts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectPosts")
            .field("published", &self.session().is_some())
            .finish()
    }
}

impl DirectPosts {
    /// The established session, if the worker has one that direct posts
    /// may use now.
    pub fn session(&self) -> Option<Arc<DirectSession>> {
        self.session
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(super) fn publish(&self, session: Option<DirectSession>) {
        *self.session.write().unwrap_or_else(|e| e.into_inner()) = session.map(Arc::new);
    }
}

/// One established session, as the worker published it.
pub struct DirectSession {
    pub(super) uri: Arc<str>,
    pub(super) session_id: Option<Arc<str>>,
    pub(super) auth_header: Option<String>,
    pub(super) headers: HashMap<HeaderName, HeaderValue>,
    pub(super) version: ProtocolVersion,
    pub(super) max_sse_event_size: usize,
    pub(super) retry_config: Arc<dyn SseRetryPolicy>,
    /// The worker's queue of messages read from the server.
    pub(super) inbound: tokio::sync::mpsc::Sender<ServerJsonRpcMessage>,
}

/// What the server answered a direct post with.
pub enum DirectReply<E: std::error::Error + Send + Sync + 'static> {
    /// The response itself (a JSON body).
    Message(ServerJsonRpcMessage),
    /// A stream that carries the response, possibly after other messages;
    /// it resumes with `Last-Event-ID` when it drops early.
    Stream(BoxStream<'static, Result<ServerJsonRpcMessage, StreamableHttpError<E>>>),
}

/// Why a request was not posted directly, or its post failed.
#[derive(Debug, thiserror::Error)]
pub enum DirectError<E: std::error::Error + Send + Sync + 'static> {
    /// The request cannot go directly (it names another protocol version),
    /// or the server said the session expired before reading it: send it
    /// through the worker, which re-initialises the session.
    #[error("the request must go through the transport worker")]
    UseWorker,
    /// The exchange failed.
    #[error(transparent)]
    Http(StreamableHttpError<E>),
    /// The server accepted a request without answering it.
    #[error("the server accepted the request without a response")]
    NoResponse,
}

impl DirectSession {
    /// Posts `message` (a request) on this session with `client`.
    pub async fn post<C: StreamableHttpClient>(
        &self,
        client: &C,
        message: ClientJsonRpcMessage,
    ) -> Result<DirectReply<C::Error>, DirectError<C::Error>> {
        if let ClientJsonRpcMessage::Request(request) = &message
            && request
                .request
                .get_meta()
                .protocol_version()
                .is_some_and(|version| version != self.version)
        {
            return Err(DirectError::UseWorker);
        }
        let response = client
            .post_message_with_max_sse_event_size(
                self.uri.clone(),
                message,
                self.session_id.clone(),
                self.auth_header.clone(),
                self.headers.clone(),
                self.max_sse_event_size,
            )
            .await;
        match response {
            Ok(StreamableHttpPostResponse::Json(message, _)) => Ok(DirectReply::Message(message)),
            Ok(StreamableHttpPostResponse::Sse(stream, _)) => Ok(DirectReply::Stream(
                StreamableHttpClientWorker::<C>::response_sse_to_jsonrpc(
                    stream,
                    self.session_id.clone(),
                    client.clone(),
                    self.uri.clone(),
                    self.auth_header.clone(),
                    self.headers.clone(),
                    self.max_sse_event_size,
                    self.retry_config.clone(),
                ),
            )),
            Ok(StreamableHttpPostResponse::Accepted) => Err(DirectError::NoResponse),
            Err(StreamableHttpError::SessionExpired) => Err(DirectError::UseWorker),
            Err(err) => Err(DirectError::Http(err)),
        }
    }

    /// Hands a message read on the stream of request `origin` (anything
    /// but its response) to the worker, marked with the stream it came on;
    /// false when the worker has stopped.
    pub async fn forward(&self, mut message: ServerJsonRpcMessage, origin: &RequestId) -> bool {
        if let ServerJsonRpcMessage::Request(request) = &mut message {
            request
                .request
                .extensions_mut()
                .insert(InboundStreamOrigin::OutboundRequest(origin.clone()));
        }
        self.inbound.send(message).await.is_ok()
    }
}

/// Lets a stream that delivered its response end, so its HTTP/1.1
/// connection returns to the pool: at once when its end is already read,
/// else in the background for at most [`DRAIN`].
pub fn release<T: Send + 'static>(mut stream: BoxStream<'static, T>) {
    loop {
        match stream.next().now_or_never() {
            Some(Some(_)) => continue,
            Some(None) => return,
            None => break,
        }
    }
    tokio::spawn(async move {
        let _ = tokio::time::timeout(DRAIN, async { while stream.next().await.is_some() {} }).await;
    });
}
