//! Bounded mpsc channels whose messages travel boxed (a Bulwark patch, see
//! `vendor/rmcp/PATCHES.md`).
//!
//! tokio allocates a channel's first block of 32 slots when the channel is
//! made, whatever its capacity: with JSON-RPC messages of ~370 bytes that is
//! ~12 KB per channel, and every streamable-HTTP session holds seven of them
//! for its whole life. Boxed, a slot is one pointer and a message costs one
//! allocation while it is queued.
use std::task::{Context, Poll};

pub use tokio::sync::mpsc::error::{SendError, TryRecvError, TrySendError};

/// Sends boxed values; see [`tokio::sync::mpsc::Sender`].
pub struct Sender<T>(tokio::sync::mpsc::Sender<Box<T>>);

/// Receives boxed values; see [`tokio::sync::mpsc::Receiver`].
pub struct Receiver<T>(tokio::sync::mpsc::Receiver<Box<T>>);

/// A bounded channel of `buffer` messages.
pub fn channel<T>(buffer: usize) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = tokio::sync::mpsc::channel(buffer);
    (Sender(tx), Receiver(rx))
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<T> Sender<T> {
    /// Waits for room, then sends `value`.
    pub async fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.0
            .send(Box::new(value))
            .await
            .map_err(|SendError(value)| SendError(*value))
    }

    /// Sends `value` if there is room now.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        self.0.try_send(Box::new(value)).map_err(|err| match err {
            TrySendError::Full(value) => TrySendError::Full(*value),
            TrySendError::Closed(value) => TrySendError::Closed(*value),
        })
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    /// Completes when the receiver is gone.
    pub async fn closed(&self) {
        self.0.closed().await
    }

    /// Room left now.
    pub fn capacity(&self) -> usize {
        self.0.capacity()
    }

    /// The capacity the channel was made with.
    pub fn max_capacity(&self) -> usize {
        self.0.max_capacity()
    }
}

impl<T> Receiver<T> {
    /// The next value; `None` once every sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<T> {
        self.0.recv().await.map(|value| *value)
    }

    /// [`Self::recv`] for manual polling.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.0.poll_recv(cx).map(|value| value.map(|value| *value))
    }

    /// The next value if one is queued.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.0.try_recv().map(|value| *value)
    }

    /// Closes the channel to new values.
    pub fn close(&mut self) {
        self.0.close()
    }

    /// Whether the channel is closed.
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    /// Values queued now.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no value is queued.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
