//! Mailbox accounting. ractor's mailboxes are unbounded and expose no depth,
//! so senders count what they enqueue and handlers count what they take.
//!
//! The counters outlive the actor's instances (a restarted actor reports
//! under the same name), but a mailbox does not: messages still queued when
//! an instance stops are dropped with it, and a late send to a stopped
//! instance fails. So depth is counted per instance ([`InstanceMailbox`]):
//! a new instance starts at zero, whatever its predecessor left behind, and
//! a send that fails is not counted.
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use arc_swap::ArcSwap;

/// Per-actor message counters, shared with whoever reports on the actor.
#[derive(Debug, Default)]
pub struct MailboxStats {
    /// The running instance's mailbox; swapped for a fresh one per instance.
    current: ArcSwap<InstanceMailbox>,
    handled: AtomicU64,
}

/// The depth of one instance's mailbox. Tasks of an instance hold their own
/// instance's counter, so a message they send after it stopped never counts
/// against its successor.
#[derive(Debug, Default)]
pub struct InstanceMailbox {
    depth: AtomicI64,
}

impl InstanceMailbox {
    /// Records a message put in this instance's mailbox.
    pub fn enqueued(&self) {
        self.depth.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes back a message counted by [`Self::enqueued`] whose send failed.
    pub fn undelivered(&self) {
        self.depth.fetch_sub(1, Ordering::Relaxed);
    }
}

impl MailboxStats {
    /// Starts counting a new instance's mailbox (call it when an instance
    /// starts and when it stops): what the previous one left unhandled died
    /// with it. Returns the counter its own tasks should send through.
    pub fn instance(&self) -> Arc<InstanceMailbox> {
        let fresh = Arc::new(InstanceMailbox::default());
        self.current.store(fresh.clone());
        fresh
    }

    /// Records a message put in the running instance's mailbox.
    pub fn enqueued(&self) {
        self.current.load().enqueued();
    }

    /// Takes back a message counted by [`Self::enqueued`] whose send failed.
    pub fn undelivered(&self) {
        self.current.load().undelivered();
    }

    /// Records a message taken out of the mailbox by the handler.
    pub fn handled(&self) {
        self.current.load().depth.fetch_sub(1, Ordering::Relaxed);
        self.handled.fetch_add(1, Ordering::Relaxed);
    }

    /// Messages waiting to be handled by the running instance.
    pub fn depth(&self) -> u64 {
        self.current.load().depth.load(Ordering::Relaxed).max(0) as u64
    }

    /// Messages handled since the actor kind was first started.
    pub fn handled_total(&self) -> u64 {
        self.handled.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_instance_starts_empty_and_late_sends_of_the_old_one_do_not_count() {
        let stats = MailboxStats::default();
        let old = stats.instance();
        old.enqueued();
        old.enqueued();
        stats.handled();
        assert_eq!(stats.depth(), 1, "one message left when the instance stops");
        let new = stats.instance();
        assert_eq!(stats.depth(), 0, "the leftover died with its mailbox");
        old.enqueued(); // a timer of the old instance fires late
        old.undelivered(); // and its send fails
        new.enqueued();
        assert_eq!(stats.depth(), 1);
        stats.handled();
        assert_eq!(stats.depth(), 0);
        assert_eq!(stats.handled_total(), 2);
    }
}
