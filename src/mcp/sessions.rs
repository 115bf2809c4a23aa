//! Live client sessions, for traffic no single call owns: list changes and
//! resource updates fan out to every session that can see the upstream.
//! Also the [`UpstreamObserver`] the supervision tree reports to.
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bulwark_actors::upstream::UpstreamObserver;
use dashmap::DashMap;
use rmcp::model::{ResourceUpdatedNotificationParam, ServerNotification};
use rmcp::service::SubscriptionSink;
use rmcp::{Peer, RoleServer};

/// Which list changed, for listen streams.
#[derive(Debug, Clone, Copy)]
enum ListKind {
    Tools,
    Prompts,
    Resources,
}
use tokio::sync::mpsc;

use super::log_levels::{Audience, UpstreamLevels};
use super::naming::Naming;

/// What a session sees: every upstream, or one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `/mcp` (and `bulwark stdio`): all upstreams, names prefixed.
    Federated,
    /// `/mcp/{server}`: one upstream, names unchanged.
    Server(Arc<str>),
}

impl Scope {
    fn sees(&self, server: &str) -> bool {
        match self {
            Self::Federated => true,
            Self::Server(name) => &**name == server,
        }
    }
}

struct Session {
    scope: Scope,
    peer: Peer<RoleServer>,
    /// Notifications on their way to the client, sent by one task per
    /// session; full means the client is not keeping up and it loses some.
    /// Made with its task on the first notification: most sessions (every
    /// stateless call is one) end before any arrives.
    outbox: OnceLock<mpsc::Sender<ServerNotification>>,
}

impl Session {
    fn outbox(&self) -> &mpsc::Sender<ServerNotification> {
        self.outbox.get_or_init(|| {
            let peer = self.peer.clone();
            // A session that went away is dropped on its own.
            spawn_outbox(move |notification| {
                let peer = peer.clone();
                async move {
                    let _ = peer.send_notification(notification).await;
                }
            })
        })
    }
}

/// A queue of at most [`OUTBOX`] items, each handed to `deliver` in order by
/// one task; the task ends when the sender is dropped. Full means the
/// receiving side is not keeping up: senders `try_send` and it loses some.
fn spawn_outbox<T, F>(mut deliver: impl FnMut(T) -> F + Send + 'static) -> mpsc::Sender<T>
where
    T: Send + 'static,
    F: std::future::Future<Output = ()> + Send,
{
    let (outbox, mut queue) = mpsc::channel(OUTBOX);
    tokio::spawn(async move {
        while let Some(item) = queue.recv().await {
            deliver(item).await;
        }
    });
    outbox
}

/// Notifications queued per session (see [`Session::outbox`]).
pub const OUTBOX: usize = 256;

/// One open `subscriptions/listen` stream (2026-07-28).
struct Listener {
    scope: Scope,
    grant: Arc<crate::auth::grants::Grant>,
    /// List changes on their way to the stream, sent by one task per
    /// stream (its sink drops kinds the client did not ask for); full means
    /// the stream is not keeping up and it loses some, as a session's
    /// [`Session::outbox`] does. A task per notice would pile up instead.
    outbox: mpsc::Sender<ListKind>,
}

/// An open listen stream; dropping it (the stream ended) forgets it.
pub struct Listening {
    sessions: Arc<Sessions>,
    id: u64,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.sessions.listeners.remove(&self.id);
    }
}

/// Registry of live sessions and their resource subscriptions.
pub struct Sessions {
    naming: Naming,
    next_id: AtomicU64,
    live: DashMap<u64, Session, foldhash::fast::RandomState>,
    /// (server, upstream URI) → subscribed session ids.
    subscriptions: DashMap<(Arc<str>, String), HashSet<u64>>,
    /// Who may receive log lines sent outside any call, per session.
    audience: DashMap<u64, Audience, foldhash::fast::RandomState>,
    /// The level each upstream runs at.
    pub levels: UpstreamLevels,
    /// Open `subscriptions/listen` streams of stateless clients.
    listeners: DashMap<u64, Listener>,
}

impl Sessions {
    /// An empty registry.
    pub fn new(naming: Naming) -> Arc<Self> {
        Arc::new(Self {
            naming,
            next_id: AtomicU64::new(1),
            live: DashMap::default(),
            subscriptions: DashMap::new(),
            audience: DashMap::default(),
            levels: UpstreamLevels::default(),
            listeners: DashMap::new(),
        })
    }

    /// Sessions registered and not yet closed.
    pub fn open(&self) -> usize {
        self.live.len()
    }

    /// A fresh session id.
    pub fn allocate(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Records the session's peer once it is known (its first request).
    pub fn register(&self, id: u64, peer: Peer<RoleServer>, scope: Scope) {
        self.live.entry(id).or_insert_with(|| Session {
            scope,
            peer,
            outbox: OnceLock::new(),
        });
    }

    /// Records whose grant and log level the session's log lines follow.
    pub fn set_audience(&self, id: u64, audience: Audience) {
        // Called on every request; the grant rarely changes, so skip the write.
        let unchanged = self.audience.get(&id).is_some_and(|known| {
            Arc::ptr_eq(&known.grant, &audience.grant) && Arc::ptr_eq(&known.level, &audience.level)
        });
        if !unchanged {
            self.audience.insert(id, audience);
        }
    }

    /// Forgets a session and its subscriptions; returns the `(server, URI)`
    /// pairs it was the last subscriber of, to withdraw upstream.
    pub fn remove(&self, id: u64) -> Vec<(Arc<str>, String)> {
        self.live.remove(&id);
        self.audience.remove(&id);
        let mut orphaned = Vec::new();
        self.subscriptions.retain(|key, ids| {
            let kept = !(ids.remove(&id) && ids.is_empty());
            if !kept {
                orphaned.push(key.clone());
            }
            kept
        });
        orphaned
    }

    /// URIs of `server` some session is subscribed to.
    pub fn subscribed_uris(&self, server: &str) -> Vec<String> {
        self.subscriptions
            .iter()
            .filter(|entry| &*entry.key().0 == server)
            .map(|entry| entry.key().1.clone())
            .collect()
    }

    /// Subscribes a session; true when it is the first subscriber of the URI,
    /// i.e. the upstream must be asked.
    pub fn subscribe(&self, id: u64, server: &str, uri: &str) -> bool {
        let mut ids = self
            .subscriptions
            .entry((server.into(), uri.to_owned()))
            .or_default();
        let first = ids.is_empty();
        ids.insert(id);
        first
    }

    /// Unsubscribes a session; true when it was the last subscriber.
    pub fn unsubscribe(&self, id: u64, server: &str, uri: &str) -> bool {
        let key = (Arc::<str>::from(server), uri.to_owned());
        let Some(mut ids) = self.subscriptions.get_mut(&key) else {
            return false;
        };
        let removed = ids.remove(&id);
        let last = removed && ids.is_empty();
        drop(ids);
        if last {
            self.subscriptions.remove(&key);
        }
        last
    }

    /// Forgets every subscriber of a URI whose upstream subscribe failed:
    /// sessions that joined while it was on its way are not subscribed either.
    pub fn subscribe_failed(&self, server: &str, uri: &str) {
        self.subscriptions
            .remove(&(Arc::<str>::from(server), uri.to_owned()));
    }

    /// Registers a listen stream; list changes of the upstreams `scope` and
    /// `grant` cover go to `sink` until the returned guard is dropped.
    pub fn listen(
        self: &Arc<Self>,
        scope: Scope,
        grant: Arc<crate::auth::grants::Grant>,
        sink: SubscriptionSink,
    ) -> Listening {
        let id = self.allocate();
        // The sink sends on the stream's own response; a closed one is gone.
        let outbox = spawn_outbox(move |kind| {
            let sink = sink.clone();
            async move {
                let _ = match kind {
                    ListKind::Tools => sink.notify_tool_list_changed().await,
                    ListKind::Prompts => sink.notify_prompt_list_changed().await,
                    ListKind::Resources => sink.notify_resource_list_changed().await,
                };
            }
        });
        self.listeners.insert(
            id,
            Listener {
                scope,
                grant,
                outbox,
            },
        );
        Listening {
            sessions: self.clone(),
            id,
        }
    }

    /// Sends a list change of `server` to the listen streams that see it.
    fn tell_listeners(&self, server: &str, notification: &ServerNotification) {
        let kind = match notification {
            ServerNotification::ToolListChangedNotification(_) => ListKind::Tools,
            ServerNotification::PromptListChangedNotification(_) => ListKind::Prompts,
            ServerNotification::ResourceListChangedNotification(_) => ListKind::Resources,
            _ => return,
        };
        for listener in self.listeners.iter() {
            if !listener.scope.sees(server) || !listener.grant.allows_server(server) {
                continue;
            }
            if listener.outbox.try_send(kind).is_err() {
                tracing::debug!("listen stream not keeping up with list changes; one dropped");
            }
        }
    }

    /// Sends a notification of `server` meant for one session alone (a
    /// task's status), if it is still open and its caller may still see
    /// `server`; false when nothing was sent.
    pub fn deliver_to(&self, id: u64, server: &str, notification: ServerNotification) -> bool {
        let Some(session) = self.live.get(&id) else {
            tracing::debug!(server, "notification for a closed session dropped");
            return false;
        };
        let allowed = session.scope.sees(server)
            && self
                .audience
                .get(&id)
                .is_some_and(|audience| audience.grant.allows_server(server));
        if allowed {
            self.deliver(&session, notification);
        }
        allowed
    }

    fn deliver(&self, session: &Session, notification: ServerNotification) {
        if session.outbox().try_send(notification).is_err() {
            tracing::debug!("session not keeping up with notifications; one dropped");
        }
    }
}

impl UpstreamObserver for Sessions {
    // Logging is deprecated by SEP-2577; clients still use it.
    #[allow(deprecated)]
    fn notification(&self, server: &str, notification: ServerNotification) {
        match notification {
            ServerNotification::ResourceUpdatedNotification(updated) => {
                let key = (Arc::<str>::from(server), updated.params.uri.clone());
                let Some(ids) = self.subscriptions.get(&key).map(|ids| ids.clone()) else {
                    return;
                };
                for id in ids {
                    let Some(session) = self.live.get(&id) else {
                        continue;
                    };
                    let uri = match session.scope {
                        Scope::Federated => self.naming.join_uri(server, &updated.params.uri),
                        Scope::Server(_) => updated.params.uri.clone(),
                    };
                    let mut params = ResourceUpdatedNotificationParam::new(uri);
                    params.meta = updated.params.meta.clone();
                    self.deliver(
                        &session,
                        ServerNotification::ResourceUpdatedNotification(
                            rmcp::model::Notification::new(params),
                        ),
                    );
                }
            }
            ServerNotification::LoggingMessageNotification(log) => {
                // Only sessions whose caller may see the server, at their level.
                for session in self.live.iter() {
                    let admitted = self.audience.get(session.key()).is_some_and(|audience| {
                        audience.grant.allows_server(server)
                            && audience.level.admits(log.params.level)
                    });
                    if admitted && session.scope.sees(server) {
                        self.deliver(
                            &session,
                            ServerNotification::LoggingMessageNotification(log.clone()),
                        );
                    }
                }
            }
            // A task's status is for the session that created it alone,
            // under the client's id and through the output guardrails: the
            // observer routes it (`tasks::relay_status`). Whatever reaches
            // here (not from an upstream) goes to no session.
            ServerNotification::TaskStatusNotification(_) => {
                tracing::debug!(server, "task status notification not relayed");
            }
            other => {
                self.tell_listeners(server, &other);
                for session in self.live.iter() {
                    if session.scope.sees(server) {
                        self.deliver(&session, other.clone());
                    }
                }
            }
        }
    }
}
