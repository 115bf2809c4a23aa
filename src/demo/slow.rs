//! The `slow` demo server: the echo server plus a `slow` tool that sleeps,
//! reports progress every 100 ms and stops as soon as the call is cancelled.

use std::time::Duration;

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

/// The `slow` kind's extra tool.
#[derive(Debug, Clone, Copy)]
pub struct SlowTool {
    default_delay: Duration,
}

/// The `slow` demo server.
pub type SlowServer = EchoServer<SlowTool>;

impl SlowServer {
    /// A slow server whose `slow` tool sleeps `delay_ms` unless told otherwise.
    pub fn with_delay_ms(delay_ms: u64) -> Self {
        EchoServer::with_extras(SlowTool {
            default_delay: Duration::from_millis(delay_ms),
        })
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
        }]))
    }

    async fn call(
        &self,
        request: &CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Option<Result<CallToolResult, McpError>> {
        if request.name != "slow" {
            return None;
        }
        let delay = match arguments(request).get("ms") {
            None | Some(Value::Null) => self.default_delay,
            Some(ms) => match ms.as_u64() {
                Some(ms) => Duration::from_millis(ms),
                None => {
                    return Some(Err(McpError::invalid_params(
                        "argument `ms` must be a non-negative integer",
                        None,
                    )));
                }
            },
        };
        Some(sleep_with_progress(delay, context).await)
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
