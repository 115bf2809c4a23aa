//! The remote side of an upstream: rmcp's streamable HTTP client transport
//! over our own [`StreamableHttpClient`], which adds three things rmcp's
//! plain reqwest client lacks:
//!
//! - the current OAuth token on every request, read from the token cache
//!   (no actor hop); a `401` drops that token and the request is sent once
//!   more with a fresh one;
//! - connection loss reported to the `UpstreamActor` (a refused or broken
//!   connection means the server is gone, the way EOF does for a process),
//!   so it stops and its supervisor reconnects under the restart policy;
//! - errors that never carry a token.
//!
//! Session expiry (`404` on a session request) is rmcp's: it re-initialises
//! transparently and retries the request once
//! (`reinit_on_expired_session`).
//!
//! Once the session is established, calls are posted from the caller's own
//! task ([`DirectRoute`]); rmcp's worker keeps the session, its GET stream,
//! re-initialisation, and the server's requests read on a call's stream.
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::model::{ClientJsonRpcMessage, ClientRequest};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::common::client_side_sse::{DEFAULT_MAX_SSE_EVENT_SIZE, SseRetryPolicy};
use rmcp::transport::common::{PostParts, post_message_to, post_message_with};
use rmcp::transport::streamable_http_client::{
    DirectPosts, DirectSession, SseError, StreamableHttpClient,
    StreamableHttpClientTransportConfig, StreamableHttpError, StreamableHttpPostResponse,
};
use sse_stream::Sse;

use tracing::Instrument;

use super::caller_conns::CallerConns;
use super::spec::HttpSpec;
use crate::oauth::{TokenError, TokenSource, describe_network_error};
use crate::trace_context;

/// Called with a reason when the connection to the upstream is lost.
pub type LostHook = Arc<dyn Fn(String) + Send + Sync>;

/// Why a request to a remote upstream failed, without secrets.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The HTTP exchange failed (connection, timeout, body).
    #[error("{0}")]
    Http(String),
    /// No token could be had for the upstream.
    #[error(transparent)]
    Token(#[from] TokenError),
}

type HttpResult<T> = Result<T, StreamableHttpError<RemoteError>>;

/// A reqwest client that injects the upstream's token and reports loss.
#[derive(Clone)]
pub struct RemoteClient {
    http: reqwest::Client,
    tokens: Option<TokenSource>,
    lost: LostHook,
    /// The endpoint posted to, parsed once: reqwest parses a URL given as
    /// text on every request (~6k instructions of a remote `tools/call`).
    endpoint: Arc<std::sync::OnceLock<(Arc<str>, reqwest::Url)>>,
    /// Connections the posting task drives itself (plain `http` only).
    conns: Option<Arc<CallerConns>>,
    /// What a session's `initialize` POST was answered with: to tell a
    /// legacy HTTP+SSE server by its refusal.
    posted: PostStatus,
}

/// The status a session's `initialize` POST was answered with (0 before
/// any answer).
#[derive(Clone, Debug, Default)]
pub struct PostStatus(Arc<AtomicU16>);

impl PostStatus {
    fn note(&self, status: u16) {
        self.0.store(status, Ordering::Relaxed);
    }

    /// The status, if the `initialize` POST was answered.
    pub fn last(&self) -> Option<u16> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            status => Some(status),
        }
    }
}

/// Reconnect attempts of the standalone SSE stream: quick, and few, since a
/// refused reconnect already tells the actor the server is gone.
#[derive(Debug)]
struct QuickRetry;

impl SseRetryPolicy for QuickRetry {
    fn retry(&self, current_times: usize) -> Option<Duration> {
        (current_times < 3).then(|| Duration::from_millis(100 << current_times.min(4)))
    }
}

/// Posts a session's requests from the caller's own task, beside rmcp's
/// transport worker (see rmcp's `DirectPosts`, a patch): a call then skips
/// four task hand-offs (the service loop and the worker, both ways).
#[derive(Clone)]
pub struct DirectRoute {
    posts: DirectPosts,
    client: RemoteClient,
    /// Bounds the direct posts in flight as rmcp's worker bounds its own
    /// (`max_concurrent_requests`); calls past it go through the worker,
    /// which queues them. Without it a burst of calls, or an upstream
    /// that stops answering, would open a connection per call.
    slots: Arc<tokio::sync::Semaphore>,
}

/// A session to post on directly, and the slot the post holds.
pub(super) struct DirectTurn {
    pub(super) session: Arc<DirectSession>,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl DirectRoute {
    /// The session as the worker published it, while direct posts may use
    /// it and a slot is free.
    pub(super) fn turn(&self) -> Option<DirectTurn> {
        let session = self.posts.session()?;
        let slot = self.slots.clone().try_acquire_owned().ok()?;
        Some(DirectTurn {
            session,
            _slot: slot,
        })
    }

    /// The client that posts (tokens, loss reports).
    pub(super) fn client(&self) -> &RemoteClient {
        &self.client
    }
}

/// One streamable HTTP session's transport, the route that posts its
/// calls directly once it is established, and what its POSTs are answered
/// with.
pub struct Streamable {
    /// For rmcp's client.
    pub transport: StreamableHttpClientTransport<RemoteClient>,
    /// Direct posts, once the session is established.
    pub direct: DirectRoute,
    /// What the `initialize` POST was answered with.
    pub posted: PostStatus,
}

/// Builds the transport for one session to `spec`, and the route that
/// posts the session's calls directly once it is established.
pub fn transport(
    spec: &HttpSpec,
    tokens: Option<TokenSource>,
    lost: LostHook,
) -> Result<Streamable, String> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(spec.url.as_str())
        .custom_headers(headers(spec)?)
        .reinit_on_expired_session(true);
    config.retry_config = Arc::new(QuickRetry);
    let conns = url::Url::parse(&spec.url)
        .ok()
        .and_then(|url| CallerConns::for_url(&url));
    let client = RemoteClient::new(tokens, lost)?.with_caller_conns(conns);
    let direct = DirectRoute {
        posts: config.direct.clone(),
        client: client.clone(),
        slots: Arc::new(tokio::sync::Semaphore::new(config.max_concurrent_requests)),
    };
    let posted = client.posted.clone();
    Ok(Streamable {
        transport: StreamableHttpClientTransport::with_client(client, config),
        direct,
        posted,
    })
}

/// The configured static headers of `spec`, marked sensitive.
pub(super) fn headers(spec: &HttpSpec) -> Result<HashMap<HeaderName, HeaderValue>, String> {
    let mut headers = HashMap::new();
    for (name, value) in &spec.headers {
        let name =
            HeaderName::try_from(name.as_str()).map_err(|err| format!("header {name:?}: {err}"))?;
        let mut value = HeaderValue::try_from(value.as_str())
            .map_err(|_| format!("header {name}: the value is not a valid header value"))?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    Ok(headers)
}

/// The HTTP client remote upstreams share. Building a client loads and
/// parses the system's root certificates (milliseconds of CPU), which a
/// client per session would pay on every add, restart and reconnect, and
/// nothing in it is specific to one upstream (headers and tokens travel per
/// request). One per thread, not per process: a client's connections run
/// on the runtime that opened them, and a thread belongs to one runtime.
fn shared_http() -> Result<reqwest::Client, String> {
    thread_local! {
        static HTTP: std::cell::OnceCell<reqwest::Client> = const { std::cell::OnceCell::new() };
    }
    HTTP.with(|cell| {
        if let Some(http) = cell.get() {
            return Ok(http.clone());
        }
        let http = reqwest::Client::builder()
            // Connections are pooled: a fresh TCP (and TLS) handshake per call
            // would cost more than the call. Servers must set TCP_NODELAY (ours
            // do), or a keep-alive connection stalls on delayed ACKs.
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            // Never replay headers or tokens to another origin.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| format!("HTTP client: {err}"))?;
        Ok(cell.get_or_init(|| http).clone())
    })
}

impl RemoteClient {
    /// A client over the shared HTTP client, with `tokens` injected and
    /// connection loss reported to `lost`.
    pub(super) fn new(tokens: Option<TokenSource>, lost: LostHook) -> Result<Self, String> {
        Ok(Self {
            http: shared_http()?,
            tokens,
            lost,
            endpoint: Arc::default(),
            conns: None,
            posted: PostStatus::default(),
        })
    }

    /// Posts on `conns` where they serve the endpoint (see [`CallerConns`]).
    pub(super) fn with_caller_conns(mut self, conns: Option<Arc<CallerConns>>) -> Self {
        self.conns = conns;
        self
    }

    /// Sends a request reqwest built: on a connection this task drives
    /// where there is one for its origin, else with reqwest. A connection
    /// refused or broken is reported as lost, as reqwest's errors are; a
    /// kept connection that fails only fails the post.
    async fn send(
        &self,
        request: reqwest::Request,
    ) -> Result<reqwest::Response, StreamableHttpError<reqwest::Error>> {
        match &self.conns {
            Some(conns) if conns.serves(request.url()) => {
                conns.send(request).await.map_err(|err| {
                    let reason = err.to_string();
                    if err.means_lost() {
                        (self.lost)(reason.clone());
                    }
                    StreamableHttpError::Io(std::io::Error::other(reason))
                })
            }
            _ => Ok(self.http.execute(request).await?),
        }
    }

    /// [`Self::send`], noting the answer's status when it is a session's
    /// `initialize` (see [`PostStatus`]).
    async fn send_noting(
        &self,
        request: reqwest::Request,
        initialize: bool,
    ) -> Result<reqwest::Response, StreamableHttpError<reqwest::Error>> {
        let response = self.send(request).await?;
        if initialize {
            self.posted.note(response.status().as_u16());
        }
        Ok(response)
    }

    /// `uri` parsed: the one remembered when it is the endpoint, else
    /// parsed now (an unparsable one is left to reqwest to refuse).
    fn url(&self, uri: &Arc<str>) -> Result<reqwest::Url, Arc<str>> {
        if let Some((text, url)) = self.endpoint.get()
            && text == uri
        {
            return Ok(url.clone());
        }
        let url = reqwest::Url::parse(uri).map_err(|_| uri.clone())?;
        // The first endpoint posted to is the one a session keeps.
        let _ = self.endpoint.set((uri.clone(), url.clone()));
        Ok(url)
    }

    async fn token(&self) -> HttpResult<Option<Arc<str>>> {
        match &self.tokens {
            None => Ok(None),
            Some(tokens) => tokens
                .bearer()
                .await
                .map(Some)
                .map_err(|err| StreamableHttpError::Client(RemoteError::Token(err))),
        }
    }

    /// Runs `op` on the request's `parts` with the current token; on a
    /// `401`, once more with a new one.
    async fn authorized<P, T, F, Fut>(&self, parts: P, op: F) -> HttpResult<T>
    where
        P: Clone,
        F: Fn(Option<String>, P) -> Fut,
        Fut: Future<Output = Result<T, StreamableHttpError<reqwest::Error>>>,
    {
        let token = self.token().await?;
        // Only a token can be refused and the request sent again: without
        // one, its parts (a call's arguments, deep) are not copied.
        let resend = token.as_ref().map(|_| parts.clone());
        let mut result = op(token.as_deref().map(str::to_owned), parts).await;
        if let (Some(tokens), Some(stale), Some(parts)) = (&self.tokens, &token, resend)
            && is_unauthorized(&result)
        {
            tokens.invalidate(stale);
            let fresh = self.token().await?;
            result = op(fresh.as_deref().map(str::to_owned), parts).await;
        }
        result.map_err(|err| self.convert(err))
    }

    /// Converts reqwest's error, reporting a lost connection on the way.
    fn convert(
        &self,
        err: StreamableHttpError<reqwest::Error>,
    ) -> StreamableHttpError<RemoteError> {
        use StreamableHttpError as E;
        match err {
            E::Client(err) => {
                let reason = describe_network_error(&err);
                if err.is_connect() || err.is_request() {
                    (self.lost)(reason.clone());
                }
                E::Client(RemoteError::Http(reason))
            }
            E::Sse(err) => E::Sse(err),
            E::Io(err) => E::Io(err),
            E::HttpStatus(err) => E::HttpStatus(err),
            E::UnexpectedEndOfStream => E::UnexpectedEndOfStream,
            E::UnexpectedServerResponse(text) => E::UnexpectedServerResponse(text),
            E::ResponseBodyTooLarge { max_size } => E::ResponseBodyTooLarge { max_size },
            E::UnexpectedContentType(kind) => E::UnexpectedContentType(kind),
            E::ServerDoesNotSupportSse => E::ServerDoesNotSupportSse,
            E::ServerDoesNotSupportDeleteSession => E::ServerDoesNotSupportDeleteSession,
            E::TokioJoinError(err) => E::TokioJoinError(err),
            E::Deserialize(err) => E::Deserialize(err),
            E::TransportChannelClosed => E::TransportChannelClosed,
            E::MissingSessionIdInResponse => E::MissingSessionIdInResponse,
            E::AuthRequired(err) => E::AuthRequired(err),
            E::InsufficientScope(err) => E::InsufficientScope(err),
            E::ReservedHeaderConflict(name) => E::ReservedHeaderConflict(name),
            E::SessionExpired => E::SessionExpired,
            E::SessionRecoveryTimeout => E::SessionRecoveryTimeout,
            E::ReinitializationFailed(err) => E::ReinitializationFailed(err),
            E::ControlRequestTimeout => E::ControlRequestTimeout,
            other => E::UnexpectedServerResponse(other.to_string().into()),
        }
    }
}

/// The trace context a request to be posted carries in its `_meta`.
fn trace_parent(message: &ClientJsonRpcMessage) -> Option<trace_context::TraceContext> {
    use rmcp::model::{GetMeta, JsonRpcMessage};
    match message {
        JsonRpcMessage::Request(request) => trace_context::from_meta(request.request.get_meta()),
        _ => None,
    }
}

/// A `401`, with or without a challenge.
fn is_unauthorized<T>(result: &Result<T, StreamableHttpError<reqwest::Error>>) -> bool {
    match result {
        Err(StreamableHttpError::AuthRequired(_)) => true,
        Err(StreamableHttpError::UnexpectedServerResponse(text)) => text.starts_with("HTTP 401"),
        _ => false,
    }
}

impl StreamableHttpClient for RemoteClient {
    type Error = RemoteError;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        mut custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> HttpResult<StreamableHttpPostResponse> {
        // rmcp posts from its own task: the span of the call is not current
        // here, but the call's context rides in `_meta.traceparent`.
        let span = tracing::debug_span!(
            "upstream.http",
            otel.kind = "client",
            http.request.method = "POST"
        );
        if let Some(cx) = trace_parent(&message) {
            trace_context::set_parent(&span, cx);
            trace_context::to_headers(&span, &mut custom_headers);
        }
        let target = self.url(&uri);
        // Only a session's `initialize` tells a legacy server apart; later
        // posts (its `initialized` notification, calls) must not.
        let initialize = session_id.is_none()
            && matches!(
                &message,
                ClientJsonRpcMessage::Request(request)
                    if matches!(request.request, ClientRequest::InitializeRequest(_))
            );
        self.authorized((message, custom_headers), |token, (message, headers)| {
            let parts = PostParts {
                message,
                session_id: session_id.clone(),
                auth_token: token,
                custom_headers: headers,
            };
            let target = target.clone();
            async move {
                match target {
                    Ok(url) => {
                        post_message_with(
                            &self.http,
                            url,
                            parts,
                            DEFAULT_MAX_SSE_EVENT_SIZE,
                            |request| self.send_noting(request, initialize),
                        )
                        .await
                    }
                    Err(text) => {
                        post_message_to(&self.http, &*text, parts, DEFAULT_MAX_SSE_EVENT_SIZE).await
                    }
                }
            }
        })
        .instrument(span)
        .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> HttpResult<()> {
        // A session being deleted is ending anyway: no token fetch for it,
        // and a refused connection is not news.
        let token = match &self.tokens {
            Some(tokens) => tokens.bearer().await.ok().map(|t| t.to_string()),
            None => None,
        };
        self.http
            .delete_session(uri, session_id, token, custom_headers)
            .await
            .map_err(|err| match err {
                StreamableHttpError::Client(err) => {
                    StreamableHttpError::Client(RemoteError::Http(describe_network_error(&err)))
                }
                other => self.convert(other),
            })
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> HttpResult<BoxStream<'static, Result<Sse, SseError>>> {
        self.authorized((last_event_id, custom_headers), |token, (last, headers)| {
            self.http
                .get_stream(uri.clone(), session_id.clone(), last, token, headers)
        })
        .await
    }
}
