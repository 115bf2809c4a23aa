//! The accept loop: hyper's HTTP/1.1 server with a timer, so a connection
//! that does not send its headers in time (slowloris) or idles between
//! requests is closed, a cap on open connections that fits the process's
//! file-descriptor limit, and `TCP_NODELAY` on every accepted socket.
//!
//! `axum::serve` sets no timer (hyper's header timeout never fires there)
//! and accepts until the process runs out of descriptors.
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::limits::FrontLimits;
use super::repoll::Repoll;

/// How long open connections may take to finish after shutdown begins.
const DRAIN: Duration = Duration::from_secs(10);
/// Pause after an accept error (e.g. out of descriptors) before retrying.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` until `shutdown` resolves, then lets open
/// connections finish (at most [`DRAIN`]).
///
/// The accept loop runs as a task on the runtime's workers, not in the
/// caller's future: `main`'s `block_on` runs on a thread of its own, which
/// the worker that saw the listener readable had to wake for every accept,
/// and whose spawned connection task then had to wake a worker in turn.
/// For a client that connects per request (rmcp's default client, curl)
/// that was three thread switches added to every call.
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    limits: &FrontLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    S: App,
{
    let accepting = tokio::spawn(accept_loop(listener, app, limits.clone(), shutdown));
    if let Err(err) = accepting.await {
        tracing::error!(error = %err, "the accept loop failed");
    }
}

/// What the listener serves: the app as one service over axum requests.
pub trait App:
    tower::Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + 'static
{
}

impl<S> App for S where
    S: tower::Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
        + Clone
        + Send
        + 'static
{
}

async fn accept_loop<S: App>(
    listener: TcpListener,
    app: S,
    limits: FrontLimits,
    shutdown: impl Future<Output = ()>,
) {
    let cap = connection_cap(limits.max_connections);
    tracing::info!(max_connections = cap, "accepting connections");
    let slots = Arc::new(Semaphore::new(cap));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout())
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(error = %err, "accept failed; retrying shortly");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "TCP_NODELAY not set");
        }
        // The peer address, for handlers that record who called (the audit
        // trail); the arrival instant, which deadlines count from.
        let service = TowerToHyperService::new(app.clone().map_request(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(super::arrival::Arrival::now());
                request.extensions_mut().insert(ConnectInfo(peer));
                request.map(Body::new)
            },
        ));
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(Repoll::new(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
            drop(slot);
        }));
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("open connections did not finish in time; closing them");
    }
}

/// `configured`, lowered to leave a quarter of the descriptor limit (at least
/// 32) for upstream processes, pipes and files.
fn connection_cap(configured: usize) -> usize {
    let Ok((soft, _)) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    else {
        return configured.max(1);
    };
    let soft = usize::try_from(soft).unwrap_or(usize::MAX);
    let reserve = (soft / 4).max(32);
    configured.min(soft.saturating_sub(reserve)).max(8)
}
