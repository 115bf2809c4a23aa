//! Resource subscriptions towards upstreams. One upstream session serves
//! every client session, so the upstream holds one subscription per URI
//! while any client session wants it: sent when the first subscribes,
//! withdrawn when the last one leaves (unsubscribes or goes away), and sent
//! again to every new instance of the upstream, which knows nothing of its
//! predecessor's.
// Subscriptions are deprecated by SEP-2577; clients still use them.
#![allow(deprecated)]
use std::sync::Arc;

use bulwark_actors::upstream::UpstreamLink;
use bulwark_supervisors::registry::Registry;
use rmcp::model::{ClientRequest, Request, SubscribeRequestParams, UnsubscribeRequestParams};
use tokio_util::sync::CancellationToken;

use super::sessions::Sessions;

/// How long one (un)subscribe sent on the gateway's own behalf may take.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Subscribes a new instance of `server` to every URI a session still wants.
pub fn replay(sessions: &Sessions, server: &str, link: &UpstreamLink) {
    let uris = sessions.subscribed_uris(server);
    if uris.is_empty() {
        return;
    }
    tracing::info!(
        server,
        count = uris.len(),
        "replaying resource subscriptions"
    );
    let link = link.clone();
    tokio::spawn(async move {
        for uri in uris {
            let request =
                ClientRequest::SubscribeRequest(Request::new(SubscribeRequestParams::new(uri)));
            send(&link, request).await;
        }
    });
}

/// Withdraws upstream subscriptions that a closed session was the last to hold.
pub fn session_closed(sessions: &Sessions, registry: &Arc<Registry>, id: u64) {
    let orphaned = sessions.remove(id);
    if orphaned.is_empty() {
        tracing::debug!(
            session = id,
            "session closed; no upstream subscription to withdraw"
        );
        return;
    }
    tracing::debug!(
        session = id,
        count = orphaned.len(),
        "session closed; withdrawing upstream subscriptions"
    );
    let registry = registry.clone();
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        for (server, uri) in orphaned {
            let Some(link) = registry.get(&server).and_then(|entry| entry.pool.link()) else {
                continue; // not running: its next instance is not subscribed
            };
            let request =
                ClientRequest::UnsubscribeRequest(Request::new(UnsubscribeRequestParams::new(uri)));
            send(&link, request).await;
        }
    });
}

async fn send(link: &UpstreamLink, request: ClientRequest) {
    let cancel = CancellationToken::new();
    let sent = tokio::time::timeout(REQUEST_TIMEOUT, link.request(request, None, &cancel)).await;
    match sent {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => {
            tracing::warn!(server = link.server(), %err, "resource (un)subscribe failed")
        }
        Err(_) => {
            cancel.cancel();
            tracing::warn!(server = link.server(), "resource (un)subscribe timed out");
        }
    }
}
