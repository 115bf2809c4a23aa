//! What the request path records per operation: which method, which
//! upstream and tool (only names the gateway knows), how long, how it ended.
use std::sync::Arc;

use rmcp::ErrorData;

use super::gateway_tools;
use super::handler::GatewayHandler;
use super::sessions::Scope;
use crate::telemetry::metrics::{Outcome, Target};

impl GatewayHandler {
    /// `server` as a metric label, when it is configured.
    pub(super) fn known_upstream(&self, server: Option<&str>) -> Option<Arc<str>> {
        let entry = self.gateway().registry.get(server?)?;
        Some(entry.pool.name_arc())
    }

    /// The upstream a server scope proxies to (none when federated).
    pub(super) fn scope_upstream(&self) -> Option<Arc<str>> {
        match self.scope() {
            Scope::Server(server) => self.known_upstream(Some(&**server)),
            Scope::Federated => None,
        }
    }

    /// Runs `operation` and records its duration and outcome as `method`.
    pub(super) async fn measured<T>(
        &self,
        method: &'static str,
        upstream: Option<Arc<str>>,
        operation: impl Future<Output = Result<T, ErrorData>>,
    ) -> Result<T, ErrorData> {
        let started = tokio::time::Instant::now();
        let result = operation.await;
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(err) => Outcome::Error(err),
        };
        let target = Target {
            upstream,
            tool: None,
        };
        (self.gateway().metrics).record(method, target, started, outcome);
        result
    }

    /// The upstream and tool a federated or proxied tool name aims at, for
    /// metric labels: each only when the gateway knows it (the tool: its
    /// server listed it lately, or just `answered` a call of it with a result).
    pub(super) fn metric_target(&self, name: &str, answered: bool) -> Target {
        let Ok((server, tool)) = self.route_tool_now(name) else {
            return Target::default();
        };
        let server = &*server;
        if server == gateway_tools::SERVER {
            let known = self.gateway_tool(server, tool).is_some();
            return Target {
                upstream: None,
                tool: known.then(|| Arc::from(tool)),
            };
        }
        let Some(entry) = self.gateway().registry.get(server) else {
            return Target::default();
        };
        Target {
            tool: (answered || self.gateway().knows_tool(server, tool)).then(|| Arc::from(tool)),
            upstream: Some(entry.pool.name_arc()),
        }
    }
}
