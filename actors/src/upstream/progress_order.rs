//! Keeps an upstream's progress in order and ahead of its response.
//!
//! rmcp reads a session's messages in order but hands each notification to
//! its own task, while a response wakes the caller directly: progress could
//! reach the client out of order, or after the result (and be lost with the
//! closed request stream). This transport wrapper takes each progress
//! notification of a call in flight off the session as it is read and queues
//! it on that call; the call forwards its queue in order and drains it
//! before returning its result.
use std::sync::Arc;

use rmcp::model::{JsonRpcMessage, ServerNotification};
use rmcp::service::{RoleClient, RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;

use super::link::CallRegistry;

/// An upstream transport that routes progress to the calls' queues.
pub(crate) struct ProgressRouting<T> {
    pub(crate) inner: T,
    pub(crate) calls: Arc<CallRegistry>,
}

impl<T> Transport<RoleClient> for ProgressRouting<T>
where
    T: Transport<RoleClient>,
{
    type Error = T::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    fn feed(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.feed(item)
    }

    fn flush(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.flush()
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        loop {
            let message = self.inner.receive().await;
            if let Some(JsonRpcMessage::Notification(notification)) = &message
                && let ServerNotification::ProgressNotification(progress) =
                    &notification.notification
                && self.calls.route_progress(&progress.params)
            {
                continue;
            }
            return message;
        }
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}
