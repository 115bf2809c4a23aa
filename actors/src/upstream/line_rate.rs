//! A stdio upstream's stdout, read at most [`LINES_PER_WINDOW`] messages
//! per [`WINDOW`]. One JSON-RPC message is one line, and every line costs
//! the gateway a parse and a task; past the budget the reader waits for the
//! next window, so a notification flood backs up into the flooding process's
//! own pipe instead of taking the gateway's CPU from everyone else. A
//! well-behaved server never notices: its answers are few and big results
//! are one line each.
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Length of one budget window.
pub const WINDOW: Duration = Duration::from_millis(100);
/// Lines read per window (2,000 a second).
pub const LINES_PER_WINDOW: usize = 200;

/// `R` with its lines rationed (see the module doc).
pub struct LineRate<R> {
    inner: R,
    /// Lines still allowed in the current window.
    left: usize,
    /// When the current window ends.
    window_end: Instant,
    /// Armed while the budget is spent.
    pause: Option<Pin<Box<Sleep>>>,
}

impl<R> LineRate<R> {
    /// Rations the lines read from `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            left: LINES_PER_WINDOW,
            window_end: Instant::now() + WINDOW,
            pause: None,
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for LineRate<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let now = Instant::now();
        if now >= this.window_end {
            this.left = LINES_PER_WINDOW;
            this.window_end = now + WINDOW;
            this.pause = None;
        }
        if this.left == 0 {
            let window_end = this.window_end;
            let pause = this
                .pause
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(window_end)));
            if pause.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.pause = None;
            this.left = LINES_PER_WINDOW;
            this.window_end = Instant::now() + WINDOW;
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if read.is_ready() {
            let lines = buf.filled()[before..]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            // A read may carry more lines than are left: the next window pays.
            this.left = this.left.saturating_sub(lines);
        }
        read
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_flood_is_read_at_the_budget_and_a_trickle_is_not_delayed() {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        let flood = LINES_PER_WINDOW * 5;
        tokio::spawn(async move {
            // Notification-sized lines: one read carries dozens, not all.
            for i in 0..flood {
                let _ = tx.write_all(format!("{i:0>99}\n").as_bytes()).await;
            }
        });
        let started = Instant::now();
        let mut lines = BufReader::new(LineRate::new(rx)).lines();
        let mut first_window = 0;
        for n in 0..flood {
            assert!(lines.next_line().await.unwrap().is_some());
            if started.elapsed() < WINDOW {
                first_window = n + 1;
            }
        }
        // The first window's budget, give or take one read's worth.
        assert!(first_window < LINES_PER_WINDOW * 2, "{first_window}");
        // Five budgets take about four windows past the first.
        assert!(started.elapsed() >= WINDOW * 3, "{:?}", started.elapsed());

        // A few lines well under the budget pass at once.
        let (mut tx, rx) = tokio::io::duplex(1024);
        tx.write_all(b"a\nb\nc\n").await.unwrap();
        let started = Instant::now();
        let mut lines = BufReader::new(LineRate::new(rx)).lines();
        for _ in 0..3 {
            assert!(lines.next_line().await.unwrap().is_some());
        }
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
