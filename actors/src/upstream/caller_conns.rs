//! HTTP/1.1 connections to a plain-`http` remote upstream, each driven by
//! the task that posts on it.
//!
//! reqwest runs every connection in a task of its own: a post hands the
//! request to that task and gets the response (and every chunk of its
//! body) back, hand-offs that at c=1 woke the runtime's other worker
//! thread several times a call. An HTTP/1.1 connection carries one
//! exchange at a time anyway, so the calling task takes one, drives it
//! while it sends the request and reads the response to its end, and then
//! parks it idle here. Nothing polls an idle connection: taking one out
//! first polls it once, which finds a close the server sent meanwhile. A
//! post that fails on a kept connection after it was sent fails alone: it
//! does not say the upstream is gone, as a refused connection does.
//!
//! Used only where reqwest would connect directly: `http` URLs with no
//! proxy in the environment (TLS and proxies stay with reqwest).
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

type Conn = Pin<Box<Connection<TokioIo<TcpStream>, reqwest::Body>>>;

/// An idle connection is dropped past this age: under the 5 s keep-alive
/// timeout of uvicorn and Node's HTTP server, so a post does not race the
/// server closing the connection it was sent on.
const IDLE_FOR_AT_MOST: Duration = Duration::from_secs(4);
/// Idle connections kept at most; more than the calls in flight is waste.
const IDLE_KEPT: usize = 64;

/// Environment variables through which reqwest would send `http` requests
/// to a proxy.
const PROXY_VARIABLES: [&str; 4] = ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"];

/// Why a post on a caller-driven connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// No connection could be opened.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// The address dialled.
        addr: Arc<str>,
        /// Why it failed.
        source: io::Error,
    },
    /// The exchange failed after the connection was open.
    #[error("{0}")]
    Exchange(#[from] hyper::Error),
    /// The exchange failed on a connection kept from an earlier post,
    /// after the request was sent: the server may have closed it just then.
    #[error("the upstream closed a kept connection: {0}")]
    Kept(hyper::Error),
    /// The request could not be turned into an HTTP/1.1 request.
    #[error("request: {0}")]
    Request(#[from] http::Error),
}

impl ConnError {
    /// Whether the failure says the upstream is gone (as a refused or
    /// broken connection does), rather than that one kept connection was.
    pub fn means_lost(&self) -> bool {
        !matches!(self, Self::Kept(_))
    }
}

/// The idle connections to one upstream origin.
pub struct CallerConns {
    /// `host:port`, dialled as given.
    addr: Arc<str>,
    /// The `Host` header every request carries.
    host: http::HeaderValue,
    /// The origin reqwest's requests are checked against.
    origin: (String, u16),
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    send: SendRequest<reqwest::Body>,
    conn: Conn,
    since: Instant,
}

impl CallerConns {
    /// Connections for the upstream at `url`, when reqwest would connect to
    /// it directly over plain TCP.
    pub fn for_url(url: &url::Url) -> Option<Arc<Self>> {
        if url.scheme() != "http" || proxy_configured() {
            return None;
        }
        let host = url.host_str()?;
        let port = url.port_or_known_default()?;
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        Some(Arc::new(Self {
            // An IPv6 literal keeps its brackets: `[::1]:80` parses as an
            // address, with no name lookup.
            addr: format!("{host}:{port}").into(),
            host: http::HeaderValue::try_from(authority).ok()?,
            origin: (host.to_owned(), port),
            idle: Mutex::new(Vec::new()),
        }))
    }

    /// Whether `url` is this upstream's origin.
    pub fn serves(&self, url: &url::Url) -> bool {
        url.scheme() == "http"
            && url.host_str() == Some(self.origin.0.as_str())
            && url.port_or_known_default() == Some(self.origin.1)
    }

    /// Sends `request` (for this origin, see [`Self::serves`]) on an idle
    /// connection or a new one and returns the response, whose body drives
    /// the connection until it is read to its end; the connection is then
    /// parked for the next post.
    pub async fn send(
        self: &Arc<Self>,
        request: reqwest::Request,
    ) -> Result<reqwest::Response, ConnError> {
        let mut request = self.http_request(request)?;
        // A parked connection the server closed just now refuses the request
        // unsent and hands it back: then once more on a new connection.
        let (response, send, conn) = loop {
            let (send, conn, reused) = match self.checkout() {
                Some((send, conn)) => (send, conn, true),
                None => {
                    let (send, conn) = self.dial().await?;
                    (send, conn, false)
                }
            };
            match round_trip(send, conn, request).await {
                Ok(done) => break done,
                Err(mut err) => match err.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ if reused => return Err(ConnError::Kept(err.into_error())),
                    _ => return Err(err.into_error().into()),
                },
            }
        };
        let (parts, incoming) = response.into_parts();
        let body = DrivenBody {
            incoming,
            conn,
            send: Some(send),
            home: Arc::downgrade(self),
        };
        Ok(reqwest::Response::from(http::Response::from_parts(
            parts,
            reqwest::Body::wrap(body),
        )))
    }

    /// `request` in origin form with its `Host`, as HTTP/1.1 sends it.
    fn http_request(
        &self,
        mut request: reqwest::Request,
    ) -> Result<http::Request<reqwest::Body>, ConnError> {
        let url = request.url();
        let target = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let mut headers = std::mem::take(request.headers_mut());
        headers.insert(http::header::HOST, self.host.clone());
        let body = request
            .body_mut()
            .take()
            .unwrap_or_else(|| reqwest::Body::from(Bytes::new()));
        let mut http = http::Request::builder()
            .method(request.method().clone())
            .uri(target)
            .body(body)?;
        *http.headers_mut() = headers;
        Ok(http)
    }

    /// The most recently parked connection that is still open.
    fn checkout(&self) -> Option<(SendRequest<reqwest::Body>, Conn)> {
        loop {
            let mut idle = self
                .idle
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .pop()?;
            if idle.since.elapsed() > IDLE_FOR_AT_MOST {
                continue;
            }
            // A close or stray bytes from the server end the connection here.
            if open_and_idle(&mut idle.conn, &idle.send) {
                return Some((idle.send, idle.conn));
            }
        }
    }

    async fn dial(&self) -> Result<(SendRequest<reqwest::Body>, Conn), ConnError> {
        let connect = |source| ConnError::Connect {
            addr: self.addr.clone(),
            source,
        };
        let stream = TcpStream::connect(&*self.addr).await.map_err(connect)?;
        // Servers delay their ACKs; without this a keep-alive post stalls.
        stream.set_nodelay(true).map_err(connect)?;
        let (send, conn) = http1::handshake(TokioIo::new(stream)).await?;
        Ok((send, Box::pin(conn)))
    }

    fn park(&self, send: SendRequest<reqwest::Body>, conn: Conn) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < IDLE_KEPT {
            idle.push(Idle {
                send,
                conn,
                since: Instant::now(),
            });
        }
    }
}

/// Whether reqwest would send `http` requests through a proxy.
fn proxy_configured() -> bool {
    PROXY_VARIABLES
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
}

/// Polls `conn` once, with no task to wake: whether it is still open and
/// ready for a request on `send`. A parked connection is polled by no one,
/// so this is where it reads what arrived meanwhile (a close, stray bytes).
fn open_and_idle(conn: &mut Conn, send: &SendRequest<reqwest::Body>) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    conn.as_mut().poll(&mut cx).is_pending() && send.is_ready()
}

type RoundTrip = (
    http::Response<Incoming>,
    SendRequest<reqwest::Body>,
    Option<Conn>,
);

/// Sends `request` on `send` while driving `conn`, until the response's
/// head is in.
async fn round_trip(
    mut send: SendRequest<reqwest::Body>,
    conn: Conn,
    request: http::Request<reqwest::Body>,
) -> Result<RoundTrip, hyper::client::conn::TrySendError<http::Request<reqwest::Body>>> {
    let mut conn = Some(conn);
    let head = {
        let mut response = std::pin::pin!(send.try_send_request(request));
        std::future::poll_fn(|cx| {
            loop {
                if let Poll::Ready(head) = response.as_mut().poll(cx) {
                    return Poll::Ready(head);
                }
                let Some(driven) = conn.as_mut() else {
                    // Dropping the connection resolves the response with an error.
                    return Poll::Pending;
                };
                match driven.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    // Closed or failed: the response now resolves (with an error
                    // unless it was read in full).
                    Poll::Ready(_) => conn = None,
                }
            }
        })
        .await?
    };
    Ok((head, send, conn))
}

/// A response body that drives its connection while it is read, and parks
/// the connection once it is read to its end.
struct DrivenBody {
    incoming: Incoming,
    conn: Option<Conn>,
    send: Option<SendRequest<reqwest::Body>>,
    home: Weak<CallerConns>,
}

impl DrivenBody {
    fn park(&mut self) {
        let (Some(send), Some(mut conn), Some(home)) =
            (self.send.take(), self.conn.take(), self.home.upgrade())
        else {
            return;
        };
        // Lets the connection see the message's end and turn idle.
        if open_and_idle(&mut conn, &send) {
            home.park(send, conn);
        }
    }
}

impl Body for DrivenBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let mut frame = Pin::new(&mut this.incoming).poll_frame(cx);
        if frame.is_pending()
            && let Some(conn) = this.conn.as_mut()
        {
            if conn.as_mut().poll(cx).is_ready() {
                this.conn = None;
            }
            // What the connection just read is in the body's channel.
            frame = Pin::new(&mut this.incoming).poll_frame(cx);
        }
        if let Poll::Ready(None) = frame {
            this.park();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

impl Drop for DrivenBody {
    fn drop(&mut self) {
        // A body with nothing to read (a `202`) is complete unread.
        if self.incoming.is_end_stream() {
            self.park();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conns(url: &str) -> Option<Arc<CallerConns>> {
        CallerConns::for_url(&url::Url::parse(url).unwrap())
    }

    #[test]
    fn plain_http_gets_caller_driven_connections_and_tls_stays_with_reqwest() {
        assert!(conns("https://mcp.example.com/mcp").is_none());
        let local = conns("http://127.0.0.1:8080/mcp").unwrap();
        assert_eq!(&*local.addr, "127.0.0.1:8080");
        assert_eq!(local.host, "127.0.0.1:8080");
        assert!(local.serves(&url::Url::parse("http://127.0.0.1:8080/other").unwrap()));
        assert!(!local.serves(&url::Url::parse("http://127.0.0.1:8081/mcp").unwrap()));
        assert!(!local.serves(&url::Url::parse("https://127.0.0.1:8080/mcp").unwrap()));
    }

    #[test]
    fn an_ipv6_literal_dials_as_an_address_and_a_default_port_is_not_in_host() {
        let v6 = conns("http://[::1]/mcp").unwrap();
        assert_eq!(&*v6.addr, "[::1]:80");
        assert!(v6.addr.parse::<std::net::SocketAddr>().is_ok());
        assert_eq!(v6.host, "[::1]");
    }

    /// Reads one request of `socket` (headers and a 2-byte body).
    async fn read_request(socket: &mut TcpStream) {
        use tokio::io::AsyncReadExt;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let complete = |seen: &[u8]| {
            seen.windows(4)
                .position(|w| w == b"\r\n\r\n")
                .is_some_and(|end| seen.len() >= end + 4 + 2)
        };
        while !complete(&seen) {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "the client closed before its request was in");
            seen.extend_from_slice(&buf[..n]);
        }
    }

    #[tokio::test]
    async fn a_kept_connection_the_server_drops_mid_request_fails_only_that_post() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        // One connection only: a second post that dialled anew would hang.
        let server = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let (mut socket, _) = listener.accept().await.unwrap();
            read_request(&mut socket).await;
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                .await
                .unwrap();
            read_request(&mut socket).await;
        });
        let conns = conns(&url).unwrap();
        let post = || {
            reqwest::Client::new()
                .post(url.as_str())
                .body("{}")
                .build()
                .unwrap()
        };
        let wait = Duration::from_secs(10);
        let first = tokio::time::timeout(wait, conns.send(post()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.text().await.unwrap(), "{}");
        let err = tokio::time::timeout(wait, conns.send(post()))
            .await
            .expect("the second post reuses the kept connection")
            .unwrap_err();
        assert!(matches!(err, ConnError::Kept(_)), "{err}");
        assert!(!err.means_lost(), "{err}");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_refused_connection_names_the_address() {
        // A port just released: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conns = conns(&format!("http://127.0.0.1:{port}/mcp")).unwrap();
        let request = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/mcp"))
            .body("{}")
            .build()
            .unwrap();
        let err = conns.send(request).await.unwrap_err();
        assert!(matches!(err, ConnError::Connect { .. }), "{err}");
        assert!(err.means_lost(), "{err}");
        assert!(
            err.to_string().contains(&format!("127.0.0.1:{port}")),
            "{err}"
        );
    }
}
