//! The `slow` demo server: the echo server plus
//! - `slow`: sleeps, reports progress every 100 ms and stops as soon as the
//!   call is cancelled;
//! - `hang`: makes the whole server hang, as a deadlocked process would: from
//!   then on no request (`ping` included) is answered, cancellation is
//!   ignored, and only a kill ends it (or, with `ms`, the time running out);
//! - `whoami`: the process id and the tool calls it has answered, so pool
//!   tests can tell instances apart and count what each got.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use rmcp::{
    ErrorData as McpError, RoleServer,
    model::{CallToolRequestParams, CallToolResult, ProgressNotificationParam, Tool},
    service::RequestContext,
};
use serde_json::{Value, json};

use super::{
    common::{arguments, from_json, text_result},
    echo::{EchoServer, ExtraTools},
};

/// How often the `slow` tool reports progress.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// The `slow` kind's extra tools.
#[derive(Debug, Clone)]
pub struct SlowTool {
    default_delay: Duration,
    /// Set by `hang`; shared by every session of the server.
    hang: Arc<Mutex<Hang>>,
    /// Tool calls answered (counted before dispatch), for `whoami`.
    calls: Arc<AtomicU64>,
    /// With `--serial`: held while a `slow` call sleeps, so calls queue.
    serial: Option<Arc<tokio::sync::Mutex<()>>>,
}

/// Whether the server hangs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hang {
    Responsive,
    Until(Instant),
    Forever,
}

impl SlowTool {
    fn hang_state(&self) -> Hang {
        *self.hang.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks while the server hangs.
    async fn wait_while_hung(&self) {
        match self.hang_state() {
            Hang::Responsive => {}
            Hang::Until(until) => tokio::time::sleep_until(until).await,
            Hang::Forever => std::future::pending().await,
        }
    }
}

/// The `slow` demo server.
pub type SlowServer = EchoServer<SlowTool>;

impl SlowServer {
    /// A slow server whose `slow` tool sleeps `delay_ms` unless told otherwise.
    pub fn with_delay_ms(delay_ms: u64) -> Self {
        EchoServer::with_extras(SlowTool {
            default_delay: Duration::from_millis(delay_ms),
            hang: Arc::new(Mutex::new(Hang::Responsive)),
            calls: Arc::default(),
            serial: None,
        })
    }

    /// The same server running one `slow` call at a time.
    pub fn serial(self) -> Self {
        let mut extras = self.extras().clone();
        extras.serial = Some(Arc::default());
        EchoServer::with_extras(extras)
    }
}

impl ExtraTools for SlowTool {
    fn server_name(&self) -> &'static str {
        "bulwark-demo-slow"
    }

    fn tools(&self) -> Result<Vec<Tool>, McpError> {
        from_json(json!([{
            "name": "slow",
            "description": "Sleeps, reporting progress every 100 ms; stops when cancelled",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "ms": { "type": "integer", "minimum": 0, "description": "Sleep time in milliseconds" }
                }
            }
        }, {
            "name": "whoami",
            "description": "This process's id and how many tool calls it has answered (pool tests count calls per instance)",
            "inputSchema": { "type": "object", "properties": {} }
        }, {
            "name": "hang",
            "description": "Hangs the whole server: no request, ping included, is answered again (for `ms` milliseconds, or until killed)",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "ms": { "type": "integer", "minimum": 0, "description": "Hang this long; forever when absent" }
                }
            }
        }]))
    }

    async fn gate(&self) {
        self.wait_while_hung().await;
    }

    fn before_call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    async fn call(
        &self,
        request: &CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Option<Result<CallToolResult, McpError>> {
        let ms = match ms_argument(request) {
            Ok(ms) => ms,
            Err(error) => return Some(Err(error)),
        };
        match &*request.name {
            "slow" => {
                let delay = ms.unwrap_or(self.default_delay);
                let _turn = match &self.serial {
                    Some(serial) => Some(serial.lock().await),
                    None => None,
                };
                Some(sleep_with_progress(delay, context).await)
            }
            "hang" => Some(self.hang(ms).await),
            "whoami" => Some(Ok(text_result(
                json!({"pid": std::process::id(), "calls": self.calls.load(Ordering::Relaxed)})
                    .to_string(),
            ))),
            _ => None,
        }
    }
}

impl SlowTool {
    /// Hangs the server for `ms` (or forever), then answers this call.
    async fn hang(&self, ms: Option<Duration>) -> Result<CallToolResult, McpError> {
        let state = match ms {
            Some(ms) => Hang::Until(Instant::now() + ms),
            None => Hang::Forever,
        };
        *self.hang.lock().unwrap_or_else(PoisonError::into_inner) = state;
        // Tests look for this line in the gateway's stderr tail.
        eprintln!("demo-server slow: hanging ({state:?})");
        self.wait_while_hung().await;
        *self.hang.lock().unwrap_or_else(PoisonError::into_inner) = Hang::Responsive;
        eprintln!("demo-server slow: responsive again");
        Ok(text_result("hung, now responsive"))
    }
}

/// The optional `ms` argument of both tools.
fn ms_argument(request: &CallToolRequestParams) -> Result<Option<Duration>, McpError> {
    match arguments(request).get("ms") {
        None | Some(Value::Null) => Ok(None),
        Some(ms) => ms
            .as_u64()
            .map(|ms| Some(Duration::from_millis(ms)))
            .ok_or_else(|| {
                McpError::invalid_params("argument `ms` must be a non-negative integer", None)
            }),
    }
}

/// Sleeps `delay`, sending `notifications/progress` when the caller asked for it.
async fn sleep_with_progress(
    delay: Duration,
    context: &RequestContext<RoleServer>,
) -> Result<CallToolResult, McpError> {
    let token = context.meta.get_progress_token();
    let total_ms = delay.as_millis() as f64;
    let start = tokio::time::Instant::now();
    let deadline = start + delay;
    let mut ticker = tokio::time::interval_at(start + PROGRESS_INTERVAL, PROGRESS_INTERVAL);
    loop {
        tokio::select! {
            () = context.ct.cancelled() => {
                eprintln!("demo-server slow: call cancelled after {:?}", start.elapsed());
                return Err(McpError::internal_error("cancelled", None));
            }
            () = tokio::time::sleep_until(deadline) => break,
            _ = ticker.tick() => {
                if let Some(token) = &token {
                    let done = start.elapsed().as_millis() as f64;
                    let param = ProgressNotificationParam::new(token.clone(), done.min(total_ms))
                        .with_total(total_ms);
                    // A client that went away will also cancel us; nothing to do here.
                    let _ = context.peer.notify_progress(param).await;
                }
            }
        }
    }
    Ok(text_result(format!("slept {} ms", delay.as_millis())))
}

#[cfg(test)]
mod tests {
    use rmcp::model::CallToolRequestParams;
    use serde_json::json;

    use super::*;
    use crate::demo::echo::tests::connect;

    #[tokio::test]
    async fn slow_honours_ms_argument() {
        let client = connect(SlowServer::with_delay_ms(60_000)).await;
        let started = std::time::Instant::now();
        let result = client
            .call_tool(
                CallToolRequestParams::new("slow")
                    .with_arguments(json!({"ms": 50}).as_object().unwrap().clone()),
            )
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(result.is_error, Some(false));
        client.cancel().await.unwrap();
    }

    fn hang_for(ms: Option<u64>) -> CallToolRequestParams {
        let request = CallToolRequestParams::new("hang");
        match ms {
            Some(ms) => request.with_arguments(json!({ "ms": ms }).as_object().unwrap().clone()),
            None => request,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn hang_stops_every_answer_ping_included_and_ignores_cancellation() {
        let client = connect(SlowServer::with_delay_ms(10)).await;
        let hang = client
            .send_cancellable_request(
                rmcp::model::ClientRequest::CallToolRequest(rmcp::model::Request::new(hang_for(
                    None,
                ))),
                rmcp::service::PeerRequestOptions::no_options(),
            )
            .await
            .unwrap();
        // Paused time only moves once every task is idle: the hang is in place.
        tokio::time::sleep(Duration::from_millis(10)).await;
        hang.cancel(Some("test".into())).await.unwrap();

        let ping = tokio::time::timeout(
            Duration::from_secs(600),
            client.send_request(rmcp::model::ClientRequest::PingRequest(Default::default())),
        )
        .await;
        assert!(ping.is_err(), "a hung server must not answer ping");
        let call = tokio::time::timeout(
            Duration::from_secs(600),
            client.call_tool(
                CallToolRequestParams::new("echo")
                    .with_arguments(json!({"message": "hi"}).as_object().unwrap().clone()),
            ),
        )
        .await;
        assert!(call.is_err(), "a hung server must not answer calls");
    }

    #[tokio::test(start_paused = true)]
    async fn a_timed_hang_ends_and_the_server_answers_again() {
        let client = connect(SlowServer::with_delay_ms(10)).await;
        let peer = client.peer().clone();
        let started = Instant::now();
        let hung = tokio::spawn(async move { peer.call_tool(hang_for(Some(5_000))).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        // Queued behind the hang, answered once it ends.
        client.list_tools(None).await.unwrap();
        assert!(started.elapsed() >= Duration::from_secs(5));
        let result = hung.await.unwrap().unwrap();
        assert_eq!(result.is_error, Some(false));
        client.cancel().await.unwrap();
    }
}
