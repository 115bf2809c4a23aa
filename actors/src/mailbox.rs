//! Mailbox accounting. ractor's mailboxes are unbounded and expose no depth,
//! so senders count what they enqueue and handlers count what they take.
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Per-actor message counters, shared with whoever reports on the actor.
#[derive(Debug, Default)]
pub struct MailboxStats {
    depth: AtomicI64,
    handled: AtomicU64,
}

impl MailboxStats {
    /// Records a message put in the mailbox.
    pub fn enqueued(&self) {
        self.depth.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a message taken out of the mailbox by the handler.
    pub fn handled(&self) {
        self.depth.fetch_sub(1, Ordering::Relaxed);
        self.handled.fetch_add(1, Ordering::Relaxed);
    }

    /// Messages waiting to be handled.
    pub fn depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed).max(0) as u64
    }

    /// Messages handled since the actor kind was first started.
    pub fn handled_total(&self) -> u64 {
        self.handled.load(Ordering::Relaxed)
    }
}
