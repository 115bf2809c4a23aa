//! A client call as the upstream link sees it: where mid-call traffic from the
//! upstream (progress, logs, sampling, elicitation, roots) is delivered.
use std::sync::Arc;

use bulwark_actors::timeout::OpGuard;
use futures::FutureExt;
use futures::future::BoxFuture;
use rmcp::model::{
    ClientResult, ErrorData, GetExtensions, ProgressToken, RequestId, ServerNotification,
    ServerRequest,
};
use rmcp::service::OriginatingRequestId;
use rmcp::{Peer, RoleServer};

use bulwark_actors::upstream::Caller;

/// The client session and request a call came from.
pub struct SessionCaller {
    /// The client session.
    pub peer: Peer<RoleServer>,
    /// The client's request id: server requests ride that request's stream.
    pub request_id: RequestId,
    /// The client's progress token, if it asked for progress.
    pub progress_token: Option<ProgressToken>,
    /// The call's deadline: upstream progress may push it back.
    pub op: Option<Arc<OpGuard>>,
}

impl Caller for SessionCaller {
    fn request(
        &self,
        mut request: ServerRequest,
    ) -> BoxFuture<'static, Result<ClientResult, ErrorData>> {
        request
            .extensions_mut()
            .insert(OriginatingRequestId(self.request_id.clone()));
        let peer = self.peer.clone();
        async move {
            peer.send_request(request).await.map_err(|err| match err {
                rmcp::service::ServiceError::McpError(error) => error,
                other => ErrorData::internal_error(
                    format!("the client session could not answer: {other}"),
                    None,
                ),
            })
        }
        .boxed()
    }

    fn notify(&self, notification: ServerNotification) -> BoxFuture<'static, ()> {
        if let (Some(op), ServerNotification::ProgressNotification(_)) = (&self.op, &notification) {
            op.progress();
        }
        let peer = self.peer.clone();
        async move {
            let _ = peer.send_notification(notification).await;
        }
        .boxed()
    }

    fn progress_token(&self) -> Option<ProgressToken> {
        self.progress_token.clone()
    }
}
