//! Bounded single-consumer channels that cost little while idle (a Bulwark
//! patch, see `vendor/rmcp/PATCHES.md`).
//!
//! Every streamable-HTTP session holds six of these for its whole life, and
//! most of that life they are empty. A tokio channel costs ~800 bytes the
//! moment it is made (its shared state padded to cache lines, its first
//! block of 32 slots allocated eagerly); flume's costs ~160 bytes but
//! allocates a hook each time a receiver waits. This one is one mutex over
//! a queue of boxed messages (pointers, allocated on first use), the
//! receiver's waker and the senders waiting for room: ~150 bytes, and
//! waiting allocates nothing.
//!
//! The API is the part of `tokio::sync::mpsc` that rmcp uses, with the same
//! errors: a send waits for room, `recv` yields `None` once every sender is
//! gone and the queue is drained, a send fails once the receiver is gone.
use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    task::{Context, Poll, Waker},
};

pub use tokio::sync::mpsc::error::{SendError, TryRecvError, TrySendError};

/// Sends boxed values; see [`tokio::sync::mpsc::Sender`].
pub struct Sender<T>(Arc<Shared<T>>);

/// Receives boxed values; see [`tokio::sync::mpsc::Receiver`].
pub struct Receiver<T>(Arc<Shared<T>>);

struct Shared<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    queue: VecDeque<Box<T>>,
    capacity: usize,
    senders: usize,
    receiver_alive: bool,
    receiver_waker: Option<Waker>,
    /// Sends waiting for room, oldest first.
    waiting: VecDeque<Waiting>,
    next_waiting_id: u64,
}

struct Waiting {
    id: u64,
    waker: Waker,
    /// Woken for a freed slot and not yet polled since: the next freed slot
    /// goes to the next one.
    woken: bool,
}

impl<T> State<T> {
    fn has_room(&self) -> bool {
        self.queue.len() < self.capacity
    }

    /// Queues `value` when the receiver is there and there is room;
    /// returns the receiver's waker, to wake once the lock is released.
    fn offer(&mut self, value: Box<T>) -> Result<Option<Waker>, TrySendError<Box<T>>> {
        if !self.receiver_alive {
            return Err(TrySendError::Closed(value));
        }
        if !self.has_room() {
            return Err(TrySendError::Full(value));
        }
        self.queue.push_back(value);
        Ok(self.receiver_waker.take())
    }

    /// The oldest value, with the waiting send to wake for the slot it
    /// freed once the lock is released.
    fn pop(&mut self) -> Result<(Box<T>, Option<Waker>), TryRecvError> {
        match self.queue.pop_front() {
            Some(value) => Ok((value, self.next_sender())),
            None if self.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// The oldest waiting send not already woken, to wake once the lock is
    /// released.
    fn next_sender(&mut self) -> Option<Waker> {
        let waiting = self.waiting.iter_mut().find(|waiting| !waiting.woken)?;
        waiting.woken = true;
        Some(waiting.waker.clone())
    }
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // No code panics while holding the lock; a poisoned one is still whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A bounded channel of `buffer` messages (at least one: tokio panics on
/// zero, which no caller means).
pub fn channel<T>(buffer: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            capacity: buffer.max(1),
            senders: 1,
            receiver_alive: true,
            receiver_waker: None,
            waiting: VecDeque::new(),
            next_waiting_id: 0,
        }),
    });
    (Sender(shared.clone()), Receiver(shared))
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.0.lock().senders += 1;
        Self(self.0.clone())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.0.lock();
            state.senders -= 1;
            if state.senders == 0 {
                state.receiver_waker.take()
            } else {
                None
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let (queued, waiting) = {
            let mut state = self.0.lock();
            state.receiver_alive = false;
            (
                std::mem::take(&mut state.queue),
                std::mem::take(&mut state.waiting),
            )
        };
        // Dropped and woken outside the lock: a message's drop may send.
        drop(queued);
        for waiting in waiting {
            waiting.waker.wake();
        }
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.0.lock();
        f.debug_struct("Sender")
            .field("queued", &state.queue.len())
            .field("capacity", &state.capacity)
            .field("closed", &!state.receiver_alive)
            .finish()
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.0.lock();
        f.debug_struct("Receiver")
            .field("queued", &state.queue.len())
            .field("capacity", &state.capacity)
            .field("senders", &state.senders)
            .finish()
    }
}

impl<T> Sender<T> {
    /// Waits for room, then sends `value`.
    pub async fn send(&self, value: T) -> Result<(), SendError<T>> {
        Sending {
            shared: &self.0,
            value: Some(Box::new(value)),
            waiting: None,
        }
        .await
        .map_err(|SendError(value)| SendError(*value))
    }

    /// Sends `value` if there is room now.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let offered = self.0.lock().offer(Box::new(value));
        match offered {
            Ok(waker) => {
                if let Some(waker) = waker {
                    waker.wake();
                }
                Ok(())
            }
            Err(TrySendError::Full(value)) => Err(TrySendError::Full(*value)),
            Err(TrySendError::Closed(value)) => Err(TrySendError::Closed(*value)),
        }
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        !self.0.lock().receiver_alive
    }

    /// Room left now.
    pub fn capacity(&self) -> usize {
        let state = self.0.lock();
        state.capacity.saturating_sub(state.queue.len())
    }

    /// The capacity the channel was made with.
    pub fn max_capacity(&self) -> usize {
        self.0.lock().capacity
    }
}

/// [`Sender::send`]'s future: queues its value once there is room.
struct Sending<'a, T> {
    shared: &'a Shared<T>,
    value: Option<Box<T>>,
    /// Its place among the waiting sends, once it had to wait.
    waiting: Option<u64>,
}

impl<T> Future for Sending<'_, T> {
    type Output = Result<(), SendError<Box<T>>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(value) = this.value.take() else {
            return Poll::Ready(Ok(()));
        };
        let mut state = this.shared.lock();
        let value = match state.offer(value) {
            Ok(waker) => {
                if let Some(id) = this.waiting.take() {
                    state.waiting.retain(|waiting| waiting.id != id);
                }
                drop(state);
                if let Some(waker) = waker {
                    waker.wake();
                }
                return Poll::Ready(Ok(()));
            }
            Err(TrySendError::Closed(value)) => {
                // The receiver took the waiting list with it.
                this.waiting = None;
                return Poll::Ready(Err(SendError(value)));
            }
            Err(TrySendError::Full(value)) => value,
        };
        this.value = Some(value);
        let known = this
            .waiting
            .and_then(|id| state.waiting.iter_mut().find(|waiting| waiting.id == id));
        match known {
            Some(waiting) => {
                waiting.woken = false;
                if !waiting.waker.will_wake(cx.waker()) {
                    waiting.waker = cx.waker().clone();
                }
            }
            None => {
                let id = state.next_waiting_id;
                state.next_waiting_id += 1;
                state.waiting.push_back(Waiting {
                    id,
                    waker: cx.waker().clone(),
                    woken: false,
                });
                this.waiting = Some(id);
            }
        }
        Poll::Pending
    }
}

impl<T> Drop for Sending<'_, T> {
    fn drop(&mut self) {
        let Some(id) = self.waiting else {
            return;
        };
        let waker = {
            let mut state = self.shared.lock();
            let Some(at) = state.waiting.iter().position(|waiting| waiting.id == id) else {
                return;
            };
            let woken = state.waiting.remove(at).is_some_and(|waiting| waiting.woken);
            // A slot it was woken for and gave up goes to the next one.
            if woken && state.has_room() {
                state.next_sender()
            } else {
                None
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Receiver<T> {
    /// The next value; `None` once every sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<T> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// [`Self::recv`] for manual polling.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.0.lock();
        match state.pop() {
            Ok((value, sender)) => {
                drop(state);
                if let Some(waker) = sender {
                    waker.wake();
                }
                return Poll::Ready(Some(*value));
            }
            Err(TryRecvError::Disconnected) => return Poll::Ready(None),
            // Registered under the same lock: a value sent now wakes it.
            Err(TryRecvError::Empty) => {}
        }
        match &mut state.receiver_waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// The next value if one is queued.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let (value, sender) = self.0.lock().pop()?;
        if let Some(waker) = sender {
            waker.wake();
        }
        Ok(*value)
    }

    /// Whether every sender is gone (values may still be queued).
    pub fn is_closed(&self) -> bool {
        self.0.lock().senders == 0
    }

    /// Values queued now.
    pub fn len(&self) -> usize {
        self.0.lock().queue.len()
    }

    /// Whether no value is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
