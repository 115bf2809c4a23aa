//! The gateway's MCP client role towards one upstream: it receives what the
//! upstream sends on its own (notifications, server-to-client requests) and
//! routes it to the client call that caused it, or to the observer.
// Roots and sampling are deprecated by SEP-2577, yet the clients we serve still use them.
#![allow(deprecated)]

use std::sync::Arc;

use rmcp::model::{
    ClientCapabilities, ClientConfig, ClientResult, ErrorData, GetExtensions, Implementation,
    ListRootsResult, MetaObject, ProgressToken, RequestId, RequestMetaObject, ServerNotification,
    ServerRequest,
};
use rmcp::service::{
    InboundStreamOrigin, NotificationContext, RequestContext, RoleClient, Service,
};

use super::link::{CallRegistry, RouteHint, Routed};

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

/// The `_meta` an upstream sent with a server-to-client request, kept in the
/// request's extensions for the [`Caller`](super::Caller): rmcp lifts it
/// into the handler's context, out of the request.
#[derive(Debug, Clone)]
pub struct UpstreamRequestMeta(pub RequestMetaObject);

/// `Service<RoleClient>` for one upstream session.
#[derive(Clone)]
pub struct UpstreamClient {
    pub(crate) server: Arc<str>,
    pub(crate) calls: Arc<CallRegistry>,
    pub(crate) observer: Arc<dyn UpstreamObserver>,
}

impl Service<RoleClient> for UpstreamClient {
    async fn handle_request(
        &self,
        mut request: ServerRequest,
        context: RequestContext<RoleClient>,
    ) -> Result<ClientResult, ErrorData> {
        let mut hint = hint_from_meta(&context.meta.0);
        request
            .extensions_mut()
            .insert(UpstreamRequestMeta(context.meta.clone()));
        let origin = request
            .extensions()
            .get::<InboundStreamOrigin>()
            .or_else(|| context.extensions.get::<InboundStreamOrigin>());
        if let Some(InboundStreamOrigin::OutboundRequest(id)) = origin {
            hint.upstream_id = Some(id.clone());
        }
        match self.calls.route_named(&hint).await {
            Routed::Call(caller) => return caller.request(request).await,
            Routed::Ambiguous => {
                tracing::warn!(server = %self.server, "mid-call request dropped: calls of several tenants in flight and none named");
                return Err(ErrorData::invalid_request(
                    "the gateway cannot tell which client call this request belongs to; \
                     send it on the call's own stream or with its progress token",
                    None,
                ));
            }
            Routed::Idle => {}
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
        context: NotificationContext<RoleClient>,
    ) -> Result<(), ErrorData> {
        match notification {
            // Progress of calls in flight is routed in read order by the
            // transport (`progress_order`); what reaches here belongs to none.
            ServerNotification::ProgressNotification(_) => {}
            ServerNotification::LoggingMessageNotification(ref log) => {
                // rmcp lifts a notification's `_meta` into its context.
                let hint = log
                    .params
                    .meta
                    .as_ref()
                    .map(|meta| hint_from_meta(&meta.0))
                    .filter(RouteHint::names_a_call)
                    .unwrap_or_else(|| hint_from_meta(&context.meta.0));
                match self.calls.route_named(&hint).await {
                    Routed::Call(caller) => caller.notify(notification).await,
                    Routed::Idle => self.observer.notification(&self.server, notification),
                    Routed::Ambiguous => {
                        tracing::debug!(server = %self.server, "log message dropped: calls of several tenants in flight");
                    }
                }
            }
            ServerNotification::CancelledNotification(_) => {}
            other => self.observer.notification(&self.server, other),
        }
        Ok(())
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            client_capabilities(),
            Implementation::new("bulwark", env!("CARGO_PKG_VERSION")),
        )
    }
}

/// What the gateway declares to every upstream session: it relays roots,
/// sampling and elicitation for its clients.
pub fn client_capabilities() -> ClientCapabilities {
    ClientCapabilities::builder()
        .enable_roots()
        .enable_roots_list_changed()
        .enable_sampling()
        .enable_elicitation()
        .build()
}

/// `_meta` keys by which an upstream may name the call a message belongs to.
const RELATED_ID_KEYS: [&str; 2] = [
    "io.modelcontextprotocol/related-request-id",
    "relatedRequestId",
];

/// The progress token or related request id an upstream put in `_meta`.
fn hint_from_meta(meta: &MetaObject) -> RouteHint {
    let id = |value: &serde_json::Value| match value {
        serde_json::Value::String(id) => Some(RequestId::String(id.as_str().into())),
        serde_json::Value::Number(id) => id.as_i64().map(RequestId::Number),
        _ => None,
    };
    RouteHint {
        upstream_id: None,
        meta_token: meta.get("progressToken").and_then(id).map(ProgressToken),
        related_id: RELATED_ID_KEYS.iter().find_map(|key| id(meta.get(*key)?)),
    }
}
