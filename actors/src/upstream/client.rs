//! The gateway's MCP client role towards one upstream: it receives what the
//! upstream sends on its own (notifications, server-to-client requests) and
//! routes it to the client call that caused it, or to the observer.
// Roots and sampling are deprecated by SEP-2577, yet the clients we serve still use them.
#![allow(deprecated)]

use std::sync::Arc;

use rmcp::model::{
    ClientCapabilities, ClientConfig, ClientResult, ErrorData, Implementation, ListRootsResult,
    ServerNotification, ServerRequest,
};
use rmcp::service::{NotificationContext, RequestContext, RoleClient, Service};

use super::link::CallRegistry;

/// Receives what an upstream announces to everyone rather than to one call:
/// list changes, resource updates, and logs sent while no call is in flight.
pub trait UpstreamObserver: Send + Sync + 'static {
    /// An upstream sent a notification that no single call owns.
    fn notification(&self, server: &str, notification: ServerNotification);

    /// A new instance of `server` is ready on `link` (first start or
    /// restart): what the previous one knew (cached results, resource
    /// subscriptions) must be dropped or replayed.
    fn instance_ready(&self, _server: &str, _link: &super::UpstreamLink) {}
}

/// An observer that drops everything; for tools like `bulwark connect`.
#[derive(Debug, Default)]
pub struct NoObserver;

impl UpstreamObserver for NoObserver {
    fn notification(&self, _server: &str, _notification: ServerNotification) {}
}

/// `Service<RoleClient>` for one upstream session.
pub struct UpstreamClient {
    pub(crate) server: Arc<str>,
    pub(crate) calls: Arc<CallRegistry>,
    pub(crate) observer: Arc<dyn UpstreamObserver>,
}

impl Service<RoleClient> for UpstreamClient {
    async fn handle_request(
        &self,
        request: ServerRequest,
        _context: RequestContext<RoleClient>,
    ) -> Result<ClientResult, ErrorData> {
        if let Some(caller) = self.calls.latest_caller() {
            return caller.request(request).await;
        }
        match request {
            ServerRequest::PingRequest(_) => Ok(ClientResult::empty(())),
            ServerRequest::ListRootsRequest(_) => {
                Ok(ClientResult::ListRootsResult(ListRootsResult::default()))
            }
            _ => Err(ErrorData::invalid_request(
                format!(
                    "no client call is in flight on upstream '{}' to answer this request",
                    self.server
                ),
                None,
            )),
        }
    }

    async fn handle_notification(
        &self,
        notification: ServerNotification,
        _context: NotificationContext<RoleClient>,
    ) -> Result<(), ErrorData> {
        match notification {
            // Progress of calls in flight is routed in read order by the
            // transport (`progress_order`); what reaches here belongs to none.
            ServerNotification::ProgressNotification(_) => {}
            ServerNotification::LoggingMessageNotification(_) => match self.calls.latest_caller() {
                Some(caller) => caller.notify(notification).await,
                None => self.observer.notification(&self.server, notification),
            },
            ServerNotification::CancelledNotification(_) => {}
            other => self.observer.notification(&self.server, other),
        }
        Ok(())
    }

    fn get_info(&self) -> ClientConfig {
        let capabilities = ClientCapabilities::builder()
            .enable_roots()
            .enable_roots_list_changed()
            .enable_sampling()
            .enable_elicitation()
            .build();
        ClientConfig::new(
            capabilities,
            Implementation::new("bulwark", env!("CARGO_PKG_VERSION")),
        )
    }
}
