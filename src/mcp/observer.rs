//! What the gateway does with an upstream's announcements: a `list_changed`
//! drops that upstream's cached list of that kind, then every session that
//! can see the upstream is told.
use std::sync::Arc;

use bulwark_actors::cache::{CacheHandle, CacheKind, Scope as CacheScope};
use bulwark_actors::upstream::UpstreamObserver;
use rmcp::model::ServerNotification;

use super::sessions::Sessions;

/// The observer every upstream actor reports to.
pub struct GatewayObserver {
    /// Live client sessions.
    pub sessions: Arc<Sessions>,
    /// The list cache to invalidate.
    pub cache: CacheHandle,
}

impl UpstreamObserver for GatewayObserver {
    fn notification(&self, server: &str, notification: ServerNotification) {
        let kinds: &[CacheKind] = match &notification {
            ServerNotification::ToolListChangedNotification(_) => &[CacheKind::Tools],
            ServerNotification::PromptListChangedNotification(_) => &[CacheKind::Prompts],
            ServerNotification::ResourceListChangedNotification(_) => {
                &[CacheKind::Resources, CacheKind::ResourceTemplates]
            }
            _ => &[],
        };
        for kind in kinds {
            self.cache
                .invalidate(CacheScope::KindOf(*kind, Arc::from(server)));
        }
        self.sessions.notification(server, notification);
    }
}
