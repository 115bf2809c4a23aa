//! The control plane's own thread: management requests (`/api`, `/ui`,
//! `/metrics`), and the reconciles they start, run on a single-threaded
//! runtime at a lower CPU priority than the workers that serve MCP calls.
//!
//! Why: a reconcile is bursts of synchronous work (reading and diffing
//! every stored upstream, building specs, notifying sessions). On the
//! shared runtime that work sits in a worker's queue ahead of calls, and a
//! call's latency grows by it; upstreams being added and removed moved the
//! p99 of calls to a busy upstream by 0.25–0.5 ms (benches/control_plane.rs).
//! On its own thread the kernel schedules it beside the workers, and its
//! nice value makes the workers win when both want a CPU. Upstream actors
//! still start on the shared runtime (the root supervisor spawns them):
//! they serve calls once ready.
use std::future::Future;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::runtime::Handle;
use tracing::Instrument;

/// The nice value of the control thread (the workers keep the process's).
const NICE: i32 = 10;

/// A handle to the control thread's runtime.
#[derive(Clone, Debug)]
pub struct ControlThread {
    handle: Handle,
}

impl ControlThread {
    /// Starts the thread; it runs for the rest of the process. With
    /// `BULWARK_CONTROL_THREAD=shared` (to compare) the control plane runs
    /// on the calling, shared runtime instead.
    pub fn start() -> std::io::Result<Self> {
        if std::env::var_os("BULWARK_CONTROL_THREAD").is_some_and(|how| how == "shared") {
            return Ok(Self {
                handle: Handle::try_current().map_err(std::io::Error::other)?,
            });
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("bulwark-control".into())
            .spawn(move || {
                lower_priority();
                runtime.block_on(std::future::pending::<()>());
            })?;
        Ok(Self { handle })
    }

    /// Makes `tokio::spawn` place tasks on the control thread while the
    /// guard lives (for code that spawns its own background tasks).
    pub fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.handle.enter()
    }

    /// Runs `work` on the control thread.
    pub fn spawn<F>(&self, work: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(work)
    }
}

/// Middleware: the rest of the request's handling runs on the control thread.
pub async fn layer(State(thread): State<ControlThread>, request: Request, next: Next) -> Response {
    // In the request's span, so its log lines keep the request id.
    let work = next.run(request).instrument(tracing::Span::current());
    match thread.spawn(work).await {
        Ok(response) => response,
        // The handler panicked (or the thread is gone): a 500, as hyper
        // would answer for a panic on the worker.
        Err(err) => {
            tracing::error!(%err, "management request failed on the control thread");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Raises the calling thread's nice value to [`NICE`]. On Linux,
/// `setpriority(PRIO_PROCESS, 0, …)` applies to the calling thread alone.
#[allow(unsafe_code)]
fn lower_priority() {
    // SAFETY: a plain system call on the calling thread; no memory is shared.
    let failed = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICE) } != 0;
    if failed {
        tracing::debug!(
            err = %std::io::Error::last_os_error(),
            "control thread keeps the default priority"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_the_control_thread_at_lower_priority() {
        let thread = ControlThread::start().unwrap();
        let (name, nice) = thread
            .spawn(async {
                let name = std::thread::current().name().map(str::to_owned);
                // SAFETY: reads the calling thread's nice value.
                #[allow(unsafe_code)]
                let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
                (name, nice)
            })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("bulwark-control"));
        assert!(nice >= NICE, "nice {nice}");
    }
}
