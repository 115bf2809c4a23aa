//! How the escalation actor pings an upstream whose call timed out, and how
//! it has a hung one killed and restarted: over the registry's live links and
//! the upstream's `ServerSupervisor`. The verdict names the instance session
//! that was pinged, so an instance started since is never killed for its
//! predecessor's timeout.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use bulwark_actors::timeout::InstanceProbe;
use bulwark_supervisors::registry::Registry;
use bulwark_supervisors::server::{self, ServerMsg};
use futures::future::BoxFuture;
use rmcp::model::{ClientRequest, PingRequest};
use tokio_util::sync::CancellationToken;

/// Probes upstreams through the registry.
pub struct UpstreamProbe {
    /// Weak: the registry holds the escalation actor that holds this probe.
    registry: Weak<Registry>,
    /// The session last pinged per configured upstream (bounded by the registry).
    pinged: Mutex<HashMap<Arc<str>, u64>>,
}

impl UpstreamProbe {
    /// A probe over `registry`'s upstreams.
    pub fn new(registry: Weak<Registry>) -> Self {
        Self {
            registry,
            pinged: Mutex::default(),
        }
    }
}

impl InstanceProbe for UpstreamProbe {
    fn responsive(&self, upstream: Arc<str>) -> BoxFuture<'static, bool> {
        let link = self.registry.upgrade().and_then(|registry| {
            registry
                .get(&upstream)
                .and_then(|entry| entry.status.link())
        });
        if let Some(link) = &link {
            let mut pinged = self.pinged.lock().unwrap_or_else(|e| e.into_inner());
            pinged.insert(upstream, link.session());
        }
        Box::pin(async move {
            let Some(link) = link else {
                // No live session: nothing to kill; the supervisor already acts.
                return true;
            };
            let ping = ClientRequest::PingRequest(PingRequest::default());
            link.request(ping, None, &CancellationToken::new())
                .await
                .is_ok()
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
            pinged.get(upstream).copied()
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
