//! Deadlines of upstream operations, counted from when the client's request
//! reached the HTTP front ([`Arrival`]), not from when its handler ran: under
//! load a request can wait for CPU in hyper, in the MCP layers and in rmcp's
//! per-session queue, and that wait counts toward its deadline.
use std::sync::Arc;

use bulwark_actors::timeout::{OpGuard, OpKind};
use rmcp::RoleServer;
use rmcp::service::RequestContext;
use tokio::time::Instant;

use super::handler::GatewayHandler;
use crate::front::arrival::Arrival;

/// When the request of `context` arrived: its [`Arrival`] (rmcp hands the
/// HTTP request's parts to the handler in the context's extensions), or now
/// for a request that came another way (stdio).
pub fn arrival(context: &RequestContext<RoleServer>) -> Instant {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Arrival>())
        .map_or_else(Instant::now, |arrival| arrival.0)
}

impl GatewayHandler {
    /// Starts the deadline of an operation of `kind` on `server` (and
    /// `tool`) made for the request of `context`, from its arrival.
    pub(super) fn deadline(
        &self,
        kind: OpKind,
        server: Arc<str>,
        tool: Option<Arc<str>>,
        context: &RequestContext<RoleServer>,
    ) -> Arc<OpGuard> {
        let op = (self.gateway().deadlines).track_from(kind, server, tool, arrival(context));
        Arc::new(op)
    }
}
