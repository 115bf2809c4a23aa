//! Telling client sessions what a reconcile changed: the upstream's cached
//! lists go, then every session that sees it gets `list_changed` for tools,
//! prompts and resources. An added upstream is announced once it is ready,
//! so a `tools/list` right after the notification already shows it.
use std::sync::Arc;
use std::time::Duration;

use bulwark_actors::cache::Scope as CacheScope;
use bulwark_actors::upstream::{UpstreamObserver, UpstreamState};
use bulwark_supervisors::registry::ServerEntry;
use rmcp::model::{
    PromptListChangedNotification, ResourceListChangedNotification, ServerNotification,
    ToolListChangedNotification,
};

use crate::mcp::Gateway;

/// How long an added upstream is watched for readiness.
const READY_WATCH: Duration = Duration::from_secs(120);
/// How often its state is looked at meanwhile.
const READY_POLL: Duration = Duration::from_millis(10);

/// Drops `server`'s cached lists and results before anyone is told.
pub async fn forget(gateway: &Gateway, server: &str) {
    gateway
        .cache
        .invalidate_now(CacheScope::Upstream(Arc::from(server)))
        .await;
    gateway.tool_index.invalidate(server);
    gateway.param_headers.forget(server);
    gateway.naming.tool_names().forget(server);
}

/// Sends `list_changed` (tools, prompts, resources) to every session that
/// sees one of `servers`.
pub fn list_changed<'a>(gateway: &Gateway, servers: impl IntoIterator<Item = &'a str>) {
    for server in servers {
        for notification in [
            ServerNotification::ToolListChangedNotification(ToolListChangedNotification::default()),
            ServerNotification::PromptListChangedNotification(
                PromptListChangedNotification::default(),
            ),
            ServerNotification::ResourceListChangedNotification(
                ResourceListChangedNotification::default(),
            ),
        ] {
            gateway.sessions.notification(server, notification);
        }
    }
}

/// Announces each of `entries` once it is ready (or has failed, or
/// [`READY_WATCH`] passed); waits for that up to `wait`.
pub async fn when_settled(gateway: &Arc<Gateway>, entries: Vec<Arc<ServerEntry>>, wait: Duration) {
    let watches = entries.into_iter().map(|entry| {
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + READY_WATCH;
            while !settled(&entry) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(READY_POLL).await;
            }
            // The cache may have been filled between the change and readiness.
            forget(&gateway, &entry.spec.name).await;
            list_changed(&gateway, [entry.spec.name.as_str()]);
        })
    });
    let all = futures::future::join_all(watches.collect::<Vec<_>>());
    let _ = tokio::time::timeout(wait, all).await;
}

/// Ready, failed for good, or failed once: its state is worth showing
/// (a missing command need not hold up the answer through its backoff).
fn settled(entry: &ServerEntry) -> bool {
    matches!(
        entry.pool.state(),
        UpstreamState::Ready | UpstreamState::Failed
    ) || entry.pool.last_exit().is_some()
}
