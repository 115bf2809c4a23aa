//! The `crash` demo server: the echo server plus ways to die on purpose, for
//! the gateway's restart and crash-loop handling.
//!
//! - tool `crash` exits with code 3 at once;
//! - `--crash-after N` exits with code 3 while handling the Nth `tools/call`;
//! - `--die-at-start` (handled in [`super::run`]) exits with code 2 before serving.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use rmcp::{
    ErrorData as McpError, RoleServer,
    model::{CallToolRequestParams, CallToolResult, Tool},
    service::RequestContext,
};
use serde_json::json;

use super::{
    common::from_json,
    echo::{EchoServer, ExtraTools},
};

/// Exit code of a deliberate crash.
pub const CRASH_EXIT_CODE: i32 = 3;

/// The `crash` kind's extra tool and call counter.
#[derive(Debug, Clone)]
pub struct CrashTool {
    crash_after: Option<u64>,
    // Shared by all sessions: the Nth call of the process, not of a session.
    calls: Arc<AtomicU64>,
}

/// The `crash` demo server.
pub type CrashServer = EchoServer<CrashTool>;

impl CrashServer {
    /// A crash server that exits on the `crash_after`th `tools/call`, if set.
    pub fn with_crash_after(crash_after: Option<u64>) -> Self {
        EchoServer::with_extras(CrashTool {
            crash_after,
            calls: Arc::new(AtomicU64::new(0)),
        })
    }
}

fn crash(reason: &str) -> ! {
    eprintln!("demo-server crash: {reason}, exiting with code {CRASH_EXIT_CODE}");
    std::process::exit(CRASH_EXIT_CODE)
}

impl ExtraTools for CrashTool {
    fn server_name(&self) -> &'static str {
        "bulwark-demo-crash"
    }

    fn tools(&self) -> Result<Vec<Tool>, McpError> {
        from_json(json!([{
            "name": "crash",
            "description": "Exits the server process at once with code 3",
            "inputSchema": { "type": "object", "properties": {} }
        }]))
    }

    fn before_call(&self) {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.crash_after.is_some_and(|limit| n >= limit) {
            crash(&format!("tools/call #{n} reached --crash-after"));
        }
    }

    async fn call(
        &self,
        request: &CallToolRequestParams,
        _context: &RequestContext<RoleServer>,
    ) -> Option<Result<CallToolResult, McpError>> {
        if request.name == "crash" {
            crash("`crash` tool called");
        }
        None
    }
}
