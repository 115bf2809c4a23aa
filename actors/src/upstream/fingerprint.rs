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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rmcp::model::{ListToolsResult, ServerCapabilities, ServerConfig, Tool};
    use rmcp::service::RequestContext;
    use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};

    use super::*;

    /// Answers every `tools/list` with one tool and yet another cursor.
    #[derive(Clone, Default)]
    struct EndlessCursor(Arc<AtomicUsize>);

    impl ServerHandler for EndlessCursor {
        fn get_info(&self) -> ServerConfig {
            ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
        }

        async fn list_tools(
            &self,
            _request: Option<PaginatedRequestParams>,
            _context: RequestContext<RoleServer>,
        ) -> Result<ListToolsResult, ErrorData> {
            let page = self.0.fetch_add(1, Ordering::Relaxed);
            let schema = Arc::new(serde_json::Map::new());
            let mut result = ListToolsResult::with_all_items(vec![Tool::new(
                format!("tool{page}"),
                "one more",
                schema,
            )]);
            result.next_cursor = Some(format!("page-{}", page + 1));
            Ok(result)
        }
    }

    #[tokio::test]
    async fn a_hostile_cursor_is_followed_for_max_pages_only() {
        let (client_io, server_io) = tokio::io::duplex(1 << 16);
        let server = EndlessCursor::default();
        let pages = server.0.clone();
        tokio::spawn(async move {
            if let Ok(running) = server.serve(server_io).await {
                let _ = running.waiting().await;
            }
        });
        let client = ().serve(client_io).await.expect("handshake");
        let hash = tokio::time::timeout(Duration::from_secs(30), list_hash(client.peer()))
            .await
            .expect("the listing ends");
        assert!(hash.is_some());
        assert_eq!(pages.load(Ordering::Relaxed), MAX_PAGES);
        let _ = client.cancel().await;
    }
}
