//! A stdio upstream's stdout, read at most [`LINES_PER_WINDOW`] messages
//! per [`WINDOW`] beyond the answers the gateway asked for. One JSON-RPC
//! message is one line, and every line costs the gateway a parse and a task;
//! past the budget the reader waits for the next window, so a notification
//! flood backs up into the flooding process's own pipe instead of taking the
//! gateway's CPU from everyone else.
//!
//! Every line the gateway writes to the upstream (a request, a notification,
//! an answer) earns one line back on top of the budget: a busy upstream
//! answering thousands of calls a second is never held to the flood budget,
//! while a flood still gets no more than the budget plus the lines the
//! gateway itself sent.
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Length of one budget window.
pub const WINDOW: Duration = Duration::from_millis(100);
/// Lines read per window (2,000 a second).
pub const LINES_PER_WINDOW: usize = 200;

/// Lines earned by what the gateway wrote, shared by the two halves.
#[derive(Default)]
struct Credits {
    lines: AtomicUsize,
    /// The reader, while it waits out a spent window.
    reader: AtomicWaker,
}

impl Credits {
    fn add(&self, lines: usize) {
        if lines > 0 {
            // Bounded by what the gateway wrote.
            self.lines.fetch_add(lines, Ordering::AcqRel);
            self.reader.wake();
        }
    }

    /// Takes up to `want` earned lines; returns how many it took.
    fn take(&self, want: usize) -> usize {
        let mut taken = 0;
        let _ = self
            .lines
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                taken = n.min(want);
                Some(n - taken)
            });
        taken
    }
}

/// Rations `stdout` (see the module doc); `stdin` earns it lines.
pub fn rationed<R, W>(stdout: R, stdin: W) -> (LineRate<R>, Earning<W>) {
    let credits = Arc::new(Credits::default());
    (
        LineRate {
            credits: Some(credits.clone()),
            ..LineRate::new(stdout)
        },
        Earning {
            inner: stdin,
            credits,
        },
    )
}

/// The write half of [`rationed`]: every line written earns one read.
pub struct Earning<W> {
    inner: W,
    credits: Arc<Credits>,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Earning<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &written {
            let lines = buf[..*n].iter().filter(|b| **b == b'\n').count();
            this.credits.add(lines);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// `R` with its lines rationed (see the module doc).
pub struct LineRate<R> {
    inner: R,
    /// Lines earned by the write half, when there is one.
    credits: Option<Arc<Credits>>,
    /// Earned lines taken from `credits` and not read yet; they outlive
    /// the window.
    earned: usize,
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
            credits: None,
            earned: 0,
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
        if this.left == 0
            && this.earned == 0
            && let Some(credits) = &this.credits
        {
            this.earned = credits.take(LINES_PER_WINDOW);
            if this.earned == 0 {
                // Woken by the next line written, or by the window's end.
                credits.reader.register(cx.waker());
                this.earned = credits.take(LINES_PER_WINDOW);
            }
        }
        if this.left == 0 && this.earned == 0 {
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
            // The window's budget first, then earned lines; a read may carry
            // more lines than both: the next window pays.
            let from_budget = lines.min(this.left);
            this.left -= from_budget;
            this.earned = this.earned.saturating_sub(lines - from_budget);
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

    #[tokio::test(start_paused = true)]
    async fn answers_to_what_the_gateway_sent_are_not_rationed() {
        let calls = LINES_PER_WINDOW * 5;
        let (mut upstream, stdout) = tokio::io::duplex(1 << 20);
        let (rationed, mut stdin) = rationed(stdout, tokio::io::sink());
        // The gateway sends `calls` requests, in a few writes.
        for _ in 0..5 {
            stdin
                .write_all("{}\n".repeat(LINES_PER_WINDOW).as_bytes())
                .await
                .unwrap();
        }
        tokio::spawn(async move {
            for i in 0..calls + LINES_PER_WINDOW {
                let _ = upstream.write_all(format!("{i:0>99}\n").as_bytes()).await;
            }
        });
        let started = Instant::now();
        let mut lines = BufReader::new(rationed).lines();
        // Every answer plus one window's budget of extra lines, at once.
        for _ in 0..calls + LINES_PER_WINDOW {
            assert!(lines.next_line().await.unwrap().is_some());
        }
        assert!(started.elapsed() < WINDOW, "{:?}", started.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn a_line_written_wakes_a_reader_waiting_out_its_window() {
        let (mut upstream, stdout) = tokio::io::duplex(1 << 20);
        let (rationed, mut stdin) = rationed(stdout, tokio::io::sink());
        upstream
            .write_all("x\n".repeat(LINES_PER_WINDOW + 1).as_bytes())
            .await
            .unwrap();
        let mut lines = BufReader::new(rationed).lines();
        for _ in 0..LINES_PER_WINDOW {
            assert!(lines.next_line().await.unwrap().is_some());
        }
        // The budget is spent; a request sent now lets its answer through
        // before the window ends.
        let started = Instant::now();
        let reader = tokio::spawn(async move { lines.next_line().await.unwrap() });
        tokio::task::yield_now().await;
        stdin.write_all(b"{}\n").await.unwrap();
        assert!(reader.await.unwrap().is_some());
        assert!(started.elapsed() < WINDOW, "{:?}", started.elapsed());
    }
}
