//! The tool-list fingerprint of a new instance: a restart that changed the
//! list must tell clients (`notifications/tools/list_changed`). The listing
//! is bounded in pages and time, so a hostile cursor cannot keep it going.
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{PaginatedRequestParams, ServerNotification};
use rmcp::{Peer, RoleClient};

use super::client::UpstreamObserver;
use super::status::UpstreamStatus;

/// Pages followed at most; a list longer than this is fingerprinted as cut.
pub const MAX_PAGES: usize = 64;
/// How long the whole listing may take.
const LIST_TIMEOUT: Duration = Duration::from_secs(30);

/// Fingerprints the instance's tool list off the actor, and tells the
/// observer when it differs from the last instance's.
pub(super) fn spawn(
    peer: Peer<RoleClient>,
    server: Arc<str>,
    status: Arc<UpstreamStatus>,
    observer: Arc<dyn UpstreamObserver>,
) {
    tokio::spawn(async move {
        let has_tools = peer
            .peer_info()
            .is_some_and(|info| info.capabilities.tools.is_some());
        if !has_tools {
            return;
        }
        let Ok(Some(fingerprint)) = tokio::time::timeout(LIST_TIMEOUT, list_hash(&peer)).await
        else {
            return;
        };
        if status.replace_tools_fingerprint(fingerprint) {
            tracing::debug!(server = %server, "tool list changed");
            observer.notification(
                &server,
                ServerNotification::ToolListChangedNotification(Default::default()),
            );
        }
    });
}

/// Hash of up to [`MAX_PAGES`] pages of tools; `None` if listing failed.
async fn list_hash(peer: &Peer<RoleClient>) -> Option<u64> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut cursor = None;
    for _ in 0..MAX_PAGES {
        let page = peer
            .list_tools(Some(PaginatedRequestParams::default().with_cursor(cursor)))
            .await
            .ok()?;
        serde_json::to_string(&page.tools)
            .unwrap_or_default()
            .hash(&mut hasher);
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    Some(hasher.finish().max(1))
}
