//! The legacy HTTP+SSE transport of MCP 2024-11-05, client side (rmcp has
//! none): one long `GET` of the server's SSE endpoint, whose first `endpoint`
//! event names the URL that every client message is then `POST`ed to; the
//! server's messages (responses included) arrive as `message` events on the
//! stream.
//!
//! Requests go through the same [`RemoteClient`] as streamable HTTP (shared
//! connection pool, OAuth token with one retry on `401`, connection loss
//! reported to the actor, SSE events bounded in size). The protocol has no
//! resumption: when the stream ends the session is gone, so the transport
//! reports the loss and closes, and the supervisor reconnects with a fresh
//! session under the restart policy, as for any other upstream.
//!
//! The `endpoint` event must stay on the stream's origin: a server cannot
//! send the gateway's headers and token elsewhere.
use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use http::{HeaderName, HeaderValue};
use rmcp::RoleClient;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::transport::streamable_http_client::{StreamableHttpClient, StreamableHttpPostResponse};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::remote::{self, LostHook, RemoteClient};
use super::spec::HttpSpec;
use crate::oauth::TokenSource;

/// Server messages read but not yet taken by the session; past this the
/// stream is not read, so a flood backs up into the server's connection.
const INBOUND: usize = 64;

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SseError {
    /// The stream ended (or was refused) before its `endpoint` event.
    #[error("the server's SSE stream ended before it named its message endpoint")]
    NoEndpoint,
    /// The POST failed (connection, status, token).
    #[error("posting to the message endpoint failed: {0}")]
    Post(String),
}

/// One session over the legacy transport.
pub struct SseTransport {
    inbound: mpsc::Receiver<ServerJsonRpcMessage>,
    poster: Arc<Poster>,
    reader: CancellationToken,
    /// Stops the stream reader when the transport is dropped without `close`.
    _reader_guard: DropGuard,
}

/// What sending a message needs; shared by the concurrent sends.
struct Poster {
    client: RemoteClient,
    headers: HashMap<HeaderName, HeaderValue>,
    /// The message endpoint, once the stream has named it.
    endpoint: watch::Receiver<Option<Arc<str>>>,
    /// Where an answer a server puts in the POST's body goes (weak: the
    /// stream reader alone decides when the session's inbound ends).
    inbound: mpsc::WeakSender<ServerJsonRpcMessage>,
}

/// Builds the transport for one session to `spec`; the stream is opened at once.
pub fn transport(
    spec: &HttpSpec,
    tokens: Option<TokenSource>,
    lost: LostHook,
) -> Result<SseTransport, String> {
    let stream_url =
        url::Url::parse(&spec.url).map_err(|err| format!("url {:?}: {err}", spec.url))?;
    let headers = remote::headers(spec)?;
    let client = RemoteClient::new(tokens, lost.clone())?;
    let (inbound_tx, inbound) = mpsc::channel(INBOUND);
    let (endpoint_tx, endpoint) = watch::channel(None);
    let reader = CancellationToken::new();
    let poster = Arc::new(Poster {
        client: client.clone(),
        headers: headers.clone(),
        endpoint,
        inbound: inbound_tx.downgrade(),
    });
    let stream = Stream {
        url: stream_url,
        client,
        headers,
        inbound: inbound_tx,
        endpoint: endpoint_tx,
    };
    let stop = reader.clone();
    tokio::spawn(async move {
        tokio::select! {
            reason = stream.read() => {
                tracing::debug!(%reason, "legacy SSE stream ended");
                // Told before the session sees its inbound end, so the
                // instance ends for this reason rather than "session closed".
                lost(reason);
            }
            () = stop.cancelled() => {}
        }
        drop(stream);
    });
    Ok(SseTransport {
        inbound,
        poster,
        _reader_guard: reader.clone().drop_guard(),
        reader,
    })
}

/// The reading side: the `GET` and what arrives on it.
struct Stream {
    url: url::Url,
    client: RemoteClient,
    headers: HashMap<HeaderName, HeaderValue>,
    inbound: mpsc::Sender<ServerJsonRpcMessage>,
    endpoint: watch::Sender<Option<Arc<str>>>,
}

impl Stream {
    /// Reads the stream until it ends; returns why it ended.
    async fn read(&self) -> String {
        let opened = self
            .client
            .get_stream(
                self.url.as_str().into(),
                None,
                None,
                None,
                self.headers.clone(),
            )
            .await;
        let mut events = match opened {
            Ok(events) => events,
            Err(err) => return format!("SSE stream refused: {err}"),
        };
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(err) => return format!("SSE stream broke: {err}"),
            };
            let data = event.data.unwrap_or_default();
            match event.event.as_deref() {
                Some("endpoint") => match message_endpoint(&self.url, data.trim()) {
                    Ok(at) => {
                        self.endpoint.send_replace(Some(at.as_str().into()));
                    }
                    Err(reason) => return reason,
                },
                None | Some("message") if !data.is_empty() => {
                    match serde_json::from_str::<ServerJsonRpcMessage>(&data) {
                        Ok(message) => {
                            if self.inbound.send(message).await.is_err() {
                                return "session closed".into();
                            }
                        }
                        Err(err) => {
                            tracing::warn!(%err, "SSE upstream sent a message that is not JSON-RPC; skipped");
                        }
                    }
                }
                _ => {} // comments, keep-alives, unknown events
            }
        }
        "the server closed its SSE stream".into()
    }
}

/// Resolves the `endpoint` event's URI against the stream's URL; it must
/// keep the stream's origin.
fn message_endpoint(stream: &url::Url, data: &str) -> Result<url::Url, String> {
    let at = stream
        .join(data)
        .map_err(|err| format!("SSE endpoint event {data:?} is not a URI: {err}"))?;
    if at.origin() != stream.origin() {
        return Err(format!(
            "SSE endpoint event names another origin ({}); refused",
            at.origin().ascii_serialization()
        ));
    }
    Ok(at)
}

impl Poster {
    async fn post(&self, message: ClientJsonRpcMessage) -> Result<(), SseError> {
        let mut endpoint = self.endpoint.clone();
        let at = endpoint
            .wait_for(Option::is_some)
            .await
            .map(|at| at.clone())
            .map_err(|_| SseError::NoEndpoint)?
            .ok_or(SseError::NoEndpoint)?;
        let answer = self
            .client
            .post_message(at, message, None, None, self.headers.clone())
            .await
            .map_err(|err| SseError::Post(err.to_string()))?;
        match answer {
            StreamableHttpPostResponse::Accepted => Ok(()),
            // Not the protocol, but harmless: the answer is the session's.
            StreamableHttpPostResponse::Json(answer, _) => {
                if let Some(inbound) = self.inbound.upgrade() {
                    let _ = inbound.send(answer).await;
                }
                Ok(())
            }
            _ => Err(SseError::Post(
                "the server answered with an event stream; is this a streamable HTTP endpoint? (set type = \"http\")".into(),
            )),
        }
    }
}

impl Transport<RoleClient> for SseTransport {
    type Error = SseError;

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let poster = self.poster.clone();
        async move { poster.post(item).await }
    }

    async fn receive(&mut self) -> Option<ServerJsonRpcMessage> {
        self.inbound.recv().await
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.reader.cancel();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::message_endpoint;

    #[test]
    fn the_endpoint_resolves_relative_to_the_stream_and_keeps_its_origin() {
        let stream = url::Url::parse("http://127.0.0.1:9000/sse").unwrap();
        let at = message_endpoint(&stream, "/messages/?session_id=ab12").unwrap();
        assert_eq!(
            at.as_str(),
            "http://127.0.0.1:9000/messages/?session_id=ab12"
        );
        let at = message_endpoint(&stream, "http://127.0.0.1:9000/m?s=1").unwrap();
        assert_eq!(at.path(), "/m");
        let refused = message_endpoint(&stream, "https://evil.example/collect").unwrap_err();
        assert!(refused.contains("another origin"), "{refused}");
        assert!(message_endpoint(&stream, "http://127.0.0.1:9001/m").is_err());
    }
}
