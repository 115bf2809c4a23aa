//! What the gateway does with an upstream's announcements: a `list_changed`
//! drops that upstream's cached list of that kind, and only then is every
//! session that can see the upstream told, so a client re-listing at once
//! gets the new list. A new instance drops everything cached of its
//! predecessor and gets the live resource subscriptions replayed.
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use bulwark_actors::cache::{CacheHandle, CacheKind, Scope as CacheScope};
use bulwark_actors::upstream::{UpstreamLink, UpstreamObserver};
use rmcp::model::ServerNotification;

use super::search::ToolIndex;
use super::sessions::Sessions;
use super::subscriptions;

/// The observer every upstream actor reports to.
pub struct GatewayObserver {
    sessions: Arc<Sessions>,
    cache: CacheHandle,
    /// Tool segments go with the cached tool lists they were built from.
    tool_index: Arc<ToolIndex>,
    /// `(server, kinds)` whose invalidation is on its way: a flood of
    /// `list_changed` costs one cache scan and one notice per session at a time.
    pending: Arc<Mutex<HashSet<ListChange>>>,
}

/// An upstream and the cached list kinds one `list_changed` of it drops.
type ListChange = (Arc<str>, &'static [CacheKind]);

impl GatewayObserver {
    /// An observer telling `sessions` and invalidating `cache` and `tool_index`.
    pub fn new(sessions: Arc<Sessions>, cache: CacheHandle, tool_index: Arc<ToolIndex>) -> Self {
        Self {
            sessions,
            cache,
            tool_index,
            pending: Arc::default(),
        }
    }
}

impl UpstreamObserver for GatewayObserver {
    fn notification(&self, server: &str, notification: ServerNotification) {
        let kinds: &'static [CacheKind] = match &notification {
            ServerNotification::ToolListChangedNotification(_) => &[CacheKind::Tools],
            ServerNotification::PromptListChangedNotification(_) => &[CacheKind::Prompts],
            ServerNotification::ResourceListChangedNotification(_) => {
                &[CacheKind::Resources, CacheKind::ResourceTemplates]
            }
            _ => return self.sessions.notification(server, notification),
        };
        if kinds.contains(&CacheKind::Tools) {
            // Now, so no search runs on the old list from here on; again
            // below, since a search in between may re-index the cached one.
            self.tool_index.invalidate(server);
        }
        let key = (Arc::<str>::from(server), kinds);
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if !pending.insert(key.clone()) {
            // The one on its way has not invalidated yet: it covers this one.
            return;
        }
        drop(pending);
        let (sessions, cache, pending, tool_index) = (
            self.sessions.clone(),
            self.cache.clone(),
            self.pending.clone(),
            self.tool_index.clone(),
        );
        tokio::spawn(async move {
            // Before invalidating: a change after this point starts a new round.
            pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
            let (server, kinds) = key;
            for kind in kinds {
                cache
                    .invalidate_now(CacheScope::KindOf(*kind, server.clone()))
                    .await;
                if *kind == CacheKind::Tools {
                    tool_index.invalidate(&server);
                }
            }
            sessions.notification(&server, notification);
        });
    }

    fn instance_ready(&self, server: &str, link: &UpstreamLink) {
        // Tool results and lists of the previous instance are not this one's.
        self.cache.invalidate(CacheScope::Upstream(server.into()));
        self.tool_index.invalidate(server);
        subscriptions::replay(&self.sessions, server, link);
    }
}
