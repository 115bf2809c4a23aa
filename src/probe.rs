//! How the escalation actor pings an upstream whose call timed out, and how
//! it has a hung one killed and restarted: over the registry's live links and
//! the upstream's `ServerSupervisor`. The verdict names the instance session
//! that was pinged, so an instance started since is never killed for its
//! predecessor's timeout. In a pool every live instance is pinged and the
//! first silent one is the one declared hung; its siblings are left alone.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use bulwark_actors::timeout::InstanceProbe;
use bulwark_actors::upstream::UpstreamLink;
use bulwark_supervisors::registry::Registry;
use bulwark_supervisors::server::{self, ServerMsg};
use futures::future::{BoxFuture, join_all};
use rmcp::model::{ClientRequest, PingRequest};
use tokio_util::sync::CancellationToken;

/// Probes upstreams through the registry.
pub struct UpstreamProbe {
    /// Weak: the registry holds the escalation actor that holds this probe.
    registry: Weak<Registry>,
    /// The instance sessions of the last ping per configured upstream that
    /// have not answered yet (bounded by the registry).
    pinged: Arc<Mutex<HashMap<Arc<str>, Vec<u64>>>>,
}

impl UpstreamProbe {
    /// A probe over `registry`'s upstreams.
    pub fn new(registry: Weak<Registry>) -> Self {
        Self {
            registry,
            pinged: Arc::default(),
        }
    }
}

impl InstanceProbe for UpstreamProbe {
    fn responsive(&self, upstream: Arc<str>) -> BoxFuture<'static, bool> {
        // Every live instance of the pool (one unless it is a pool): the
        // escalation actor knows the upstream, not which instance is stuck.
        let links: Vec<UpstreamLink> = self
            .registry
            .upgrade()
            .and_then(|registry| registry.get(&upstream))
            .map(|entry| {
                entry
                    .pool
                    .instances()
                    .iter()
                    .filter_map(|status| status.link())
                    .collect()
            })
            .unwrap_or_default();
        // Each instance counts as silent until its ping is answered: a hung
        // one never answers, and the escalation actor stops waiting.
        let sessions: Vec<u64> = links.iter().map(UpstreamLink::session).collect();
        self.pinged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(upstream.clone(), sessions);
        let pinged = self.pinged.clone();
        Box::pin(async move {
            // No live session: nothing to kill; the supervisor already acts.
            let answers = join_all(links.iter().map(|link| {
                let (pinged, upstream) = (pinged.clone(), upstream.clone());
                async move {
                    let ping = ClientRequest::PingRequest(PingRequest::default());
                    let ok = link
                        .request(ping, None, &CancellationToken::new())
                        .await
                        .is_ok();
                    if ok
                        && let Some(silent) = pinged
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_mut(&upstream)
                    {
                        silent.retain(|session| *session != link.session());
                    }
                    ok
                }
            }))
            .await;
            answers.into_iter().all(|ok| ok)
        })
    }

    fn declare_hung(&self, upstream: &str, reason: &str) {
        tracing::error!(
            server = upstream,
            reason,
            "upstream declared hung; restarting it"
        );
        let session = {
            let pinged = self.pinged.lock().unwrap_or_else(|e| e.into_inner());
            pinged
                .get(upstream)
                .and_then(|silent| silent.first().copied())
        };
        let supervisor = ractor::registry::where_is(server::actor_name(upstream));
        let registry = self.registry.upgrade();
        match (
            supervisor,
            registry.as_ref().and_then(|r| r.get(upstream)),
            session,
        ) {
            (Some(cell), Some(entry), Some(session)) => server::send(
                &cell.into(),
                &entry.supervisor_mailbox,
                ServerMsg::Hung {
                    reason: reason.to_owned(),
                    session,
                },
            ),
            _ => tracing::warn!(
                server = upstream,
                "no supervisor or instance to restart for a hung upstream"
            ),
        }
    }
}
