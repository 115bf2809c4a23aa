//! A connection's future polled again at once when it woke its own task
//! while being polled, instead of through the scheduler.
//!
//! A task that tokio's multi-thread runtime finds woken at the end of its
//! own poll is queued as a yield, and a yield notifies a parked worker: on
//! an idle machine that is an eventfd write and a thread woken only to find
//! nothing to do. A call handled in its connection's task woke itself twice
//! (a response read into a channel the same poll then waited on), so every
//! quick call cost two such wake-ups (`perf`: 97% of the gateway's eventfd
//! writes at c=1 through a remote upstream). Here such a poll runs again
//! in place, a few times at most, and never past the task's coop budget.
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures::task::AtomicWaker;

/// Polls in a row before a self-wake goes through the scheduler after all,
/// so one busy connection still yields to the others.
const REPOLLS: usize = 4;

const IDLE: u8 = 0;
const POLLING: u8 = 1;
const WOKEN: u8 = 2;

/// `inner`, polled again in place when it wakes itself during a poll.
pub struct Repoll<F> {
    inner: Pin<Box<F>>,
    shared: Arc<Shared>,
    waker: Waker,
}

struct Shared {
    state: AtomicU8,
    task: AtomicWaker,
}

impl Wake for Shared {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // While the future is being polled a wake only marks it; otherwise
        // it wakes the task.
        if let Err(IDLE) =
            self.state
                .compare_exchange(POLLING, WOKEN, Ordering::AcqRel, Ordering::Acquire)
        {
            self.task.wake();
        }
    }
}

impl<F: Future> Repoll<F> {
    /// Wraps `inner`.
    pub fn new(inner: F) -> Self {
        let shared = Arc::new(Shared {
            state: AtomicU8::new(IDLE),
            task: AtomicWaker::new(),
        });
        Self {
            inner: Box::pin(inner),
            waker: Waker::from(shared.clone()),
            shared,
        }
    }
}

impl<F: Future> Future for Repoll<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        this.shared.task.register(cx.waker());
        let mut inner_cx = Context::from_waker(&this.waker);
        for _ in 0..REPOLLS {
            this.shared.state.store(POLLING, Ordering::Release);
            if let Poll::Ready(output) = this.inner.as_mut().poll(&mut inner_cx) {
                this.shared.state.store(IDLE, Ordering::Release);
                return Poll::Ready(output);
            }
            if this
                .shared
                .state
                .compare_exchange(POLLING, IDLE, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Poll::Pending;
            }
            // Woken during the poll: again, unless the budget says yield.
            if !tokio::task::coop::has_budget_remaining() {
                break;
            }
        }
        this.shared.state.store(IDLE, Ordering::Release);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Wakes itself during its first `wakes` polls, then is ready.
    struct SelfWaking {
        wakes: usize,
        polls: Arc<AtomicUsize>,
    }

    impl Future for SelfWaking {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::Relaxed);
            if self.wakes == 0 {
                return Poll::Ready(());
            }
            self.wakes -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    /// Counts the wakes of the task.
    struct Counting(AtomicUsize);
    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn poll_once<F: Future>(future: &mut Repoll<F>, task: &Arc<Counting>) -> Poll<F::Output> {
        let waker = Waker::from(task.clone());
        Pin::new(future).poll(&mut Context::from_waker(&waker))
    }

    #[tokio::test]
    async fn a_self_wake_during_a_poll_polls_again_in_place() {
        let polls = Arc::new(AtomicUsize::new(0));
        let task = Arc::new(Counting(AtomicUsize::new(0)));
        let mut future = Repoll::new(SelfWaking {
            wakes: 2,
            polls: polls.clone(),
        });
        assert!(poll_once(&mut future, &task).is_ready());
        assert_eq!(polls.load(Ordering::Relaxed), 3);
        assert_eq!(task.0.load(Ordering::Relaxed), 0, "the task was not woken");
    }

    #[tokio::test]
    async fn past_the_repoll_limit_the_task_is_woken() {
        let polls = Arc::new(AtomicUsize::new(0));
        let task = Arc::new(Counting(AtomicUsize::new(0)));
        let mut future = Repoll::new(SelfWaking {
            wakes: REPOLLS + 1,
            polls: polls.clone(),
        });
        assert!(poll_once(&mut future, &task).is_pending());
        assert_eq!(polls.load(Ordering::Relaxed), REPOLLS);
        assert_eq!(task.0.load(Ordering::Relaxed), 1, "woken to run later");
        assert!(poll_once(&mut future, &task).is_ready());
    }

    #[tokio::test]
    async fn a_wake_after_the_poll_wakes_the_task() {
        let task = Arc::new(Counting(AtomicUsize::new(0)));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut future = Repoll::new(rx);
        assert!(poll_once(&mut future, &task).is_pending());
        assert_eq!(task.0.load(Ordering::Relaxed), 0);
        tx.send(()).unwrap();
        assert_eq!(task.0.load(Ordering::Relaxed), 1);
        assert!(poll_once(&mut future, &task).is_ready());
    }
}
