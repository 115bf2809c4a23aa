//! What the gateway does with an upstream's announcements: a `list_changed`
//! drops that upstream's cached list of that kind, and only then is every
//! session that can see the upstream told, so a client re-listing at once
//! gets the new list. A new instance drops everything cached of its
//! predecessor and gets the live resource subscriptions replayed. A task's
//! status goes to the session that created the task alone
//! ([`tasks::relay_status`](super::tasks::relay_status)).
//!
//! A flood of `list_changed` runs one round (invalidate, then tell) per
//! upstream and kind at a time: changes that arrive during a round ask for
//! one more round, run by the same task once its round is done (see
//! [`Rounds`]). A task per notification would pile up without bound
//! whenever invalidating is slower than the upstream's flood.
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, Weak};

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
    /// The invalidate-then-tell rounds running per `(server, kinds)`: a
    /// flood of `list_changed` costs one cache scan and one notice per
    /// session at a time, and one task.
    rounds: Arc<Rounds<ListChange>>,
    /// Task records and guardrails, for task status notifications; weak,
    /// since the gateway's upstreams hold this observer.
    gateway: Weak<super::Gateway>,
}

/// An upstream and the cached list kinds one `list_changed` of it drops.
type ListChange = (Arc<str>, &'static [CacheKind]);

impl GatewayObserver {
    /// An observer telling `gateway`'s sessions and invalidating `cache`
    /// and its tool index.
    pub fn new(gateway: &Arc<super::Gateway>, cache: CacheHandle) -> Self {
        Self {
            sessions: gateway.sessions.clone(),
            cache,
            tool_index: gateway.tool_index.clone(),
            rounds: Arc::default(),
            gateway: Arc::downgrade(gateway),
        }
    }
}

impl UpstreamObserver for GatewayObserver {
    fn notification(&self, server: &str, notification: ServerNotification) {
        let notification = match notification {
            ServerNotification::TaskStatusNotification(status) => {
                if let Some(gateway) = self.gateway.upgrade() {
                    super::tasks::relay_status(&gateway, server, status);
                }
                return;
            }
            other => other,
        };
        let kinds: &'static [CacheKind] = match &notification {
            ServerNotification::ToolListChangedNotification(_) => &[CacheKind::Tools],
            ServerNotification::PromptListChangedNotification(_) => &[CacheKind::Prompts],
            ServerNotification::ResourceListChangedNotification(_) => {
                &[CacheKind::Resources, CacheKind::ResourceTemplates]
            }
            _ => return self.sessions.notification(server, notification),
        };
        if kinds.contains(&CacheKind::Tools) {
            // Now, so no search runs on the old list and no call is checked
            // against its `x-mcp-header` schemas from here on; again below,
            // since a read in between may record the cached one anew.
            forget_tools(&self.tool_index, &self.gateway, server);
        }
        let (sessions, cache, tool_index, gateway) = (
            self.sessions.clone(),
            self.cache.clone(),
            self.tool_index.clone(),
            self.gateway.clone(),
        );
        let server: Arc<str> = server.into();
        self.rounds.run((server.clone(), kinds), move || {
            let (sessions, cache, tool_index, gateway) = (
                sessions.clone(),
                cache.clone(),
                tool_index.clone(),
                gateway.clone(),
            );
            let (server, notification) = (server.clone(), notification.clone());
            async move {
                for kind in kinds {
                    cache
                        .invalidate_now(CacheScope::KindOf(*kind, server.clone()))
                        .await;
                    if *kind == CacheKind::Tools {
                        forget_tools(&tool_index, &gateway, &server);
                    }
                }
                sessions.notification(&server, notification);
            }
        });
    }

    fn instance_ready(&self, server: &str, link: &UpstreamLink) {
        // Tool results and lists of the previous instance are not this one's.
        self.cache.invalidate(CacheScope::Upstream(server.into()));
        self.tool_index.invalidate(server);
        subscriptions::replay(&self.sessions, server, link);
    }
}

/// Forgets what was learnt from `server`'s tool list: its search segment
/// and its `x-mcp-header` schemas.
fn forget_tools(tool_index: &ToolIndex, gateway: &Weak<super::Gateway>, server: &str) {
    tool_index.invalidate(server);
    if let Some(gateway) = gateway.upgrade() {
        gateway.param_headers.forget(server);
    }
}

/// Rounds of some work, at most one running per key: [`Self::run`] while a
/// round of the key runs asks that task for one more round instead of
/// starting another, however many times it is asked. Memory and tasks stay
/// bounded by the number of keys whatever the rate of requests.
struct Rounds<K> {
    /// Keys with a round running, and whether another was asked for since
    /// it started.
    running: Mutex<HashMap<K, bool>>,
}

impl<K> Default for Rounds<K> {
    fn default() -> Self {
        Self {
            running: Mutex::default(),
        }
    }
}

impl<K: Eq + Hash + Clone + Send + Sync + 'static> Rounds<K> {
    /// Runs `round` in a task, or once more after the round of `key` now
    /// running (which then also covers whatever asked in between).
    fn run<F, Fut>(self: &Arc<Self>, key: K, round: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if !self.start(&key) {
            return;
        }
        let mut running = Running {
            rounds: self.clone(),
            key,
            ended: false,
        };
        tokio::spawn(async move {
            loop {
                round().await;
                if !running.next_round() {
                    break;
                }
            }
        });
    }

    /// True when no round of `key` runs: the caller runs it. Otherwise the
    /// running one is asked for one more round.
    fn start(&self, key: &K) -> bool {
        let mut running = self.lock();
        match running.get_mut(key) {
            Some(again) => {
                *again = true;
                false
            }
            None => {
                running.insert(key.clone(), false);
                true
            }
        }
    }

    /// Called when a round of `key` ends: true when another was asked for
    /// meanwhile (the caller runs it), false when the key is done.
    fn again(&self, key: &K) -> bool {
        let mut running = self.lock();
        match running.get_mut(key) {
            Some(again) if *again => {
                *again = false;
                true
            }
            _ => {
                running.remove(key);
                false
            }
        }
    }

    /// Keys with a round running.
    #[cfg(test)]
    fn running(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, bool>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The task running the rounds of `key`; a task that ends without saying
/// so (its round panicked) frees the key, or no round of it would run again.
struct Running<K: Eq + Hash> {
    rounds: Arc<Rounds<K>>,
    key: K,
    ended: bool,
}

impl<K: Eq + Hash + Clone + Send + Sync + 'static> Running<K> {
    /// Whether another round was asked for; if not, the key is done.
    fn next_round(&mut self) -> bool {
        let again = self.rounds.again(&self.key);
        self.ended = !again;
        again
    }
}

impl<K: Eq + Hash> Drop for Running<K> {
    fn drop(&mut self) {
        if !self.ended {
            (self
                .rounds
                .running
                .lock()
                .unwrap_or_else(|e| e.into_inner()))
            .remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn requests_during_a_round_ask_for_one_more_round_not_one_each() {
        let rounds = Rounds::<&str>::default();
        assert!(rounds.start(&"a"));
        for _ in 0..10_000 {
            assert!(!rounds.start(&"a"));
        }
        assert!(rounds.start(&"b"), "another key runs its own round");
        assert_eq!(rounds.running(), 2);
        assert!(rounds.again(&"a"), "one more round covers them all");
        assert!(!rounds.again(&"a"));
        assert!(!rounds.again(&"b"));
        assert_eq!(rounds.running(), 0);
        assert!(rounds.start(&"a"), "a later request starts afresh");
    }

    /// A flood of requests while rounds are slow: one task at a time, and
    /// a round after the last request. (Before, a task per request waited
    /// on the slow step: about 50 at once here, and without bound in the chaos
    /// soak's `notify-flood`.)
    #[tokio::test(start_paused = true)]
    async fn a_flood_runs_one_task_at_a_time_and_a_round_after_the_last_request() {
        let rounds: Arc<Rounds<&str>> = Arc::default();
        let (alive, most, done) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let requested = Arc::new(AtomicUsize::new(0));
        for i in 1..=100 {
            requested.store(i, Ordering::SeqCst);
            let (alive, most, done, requested) =
                (alive.clone(), most.clone(), done.clone(), requested.clone());
            rounds.run("tools", move || {
                let (alive, most, done, requested) =
                    (alive.clone(), most.clone(), done.clone(), requested.clone());
                async move {
                    let now = alive.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    let seen = requested.load(Ordering::SeqCst);
                    // Slower than the flood: the invalidation of a big cache.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    done.store(seen, Ordering::SeqCst);
                    alive.fetch_sub(1, Ordering::SeqCst);
                }
            });
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        while rounds.running() > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert_eq!(
            done.load(Ordering::SeqCst),
            100,
            "the last request saw a round start after it"
        );
    }
}
