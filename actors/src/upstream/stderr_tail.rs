//! The last lines an upstream wrote to stderr, kept for operators.
//!
//! A hostile upstream controls these bytes: a line may never end, and they
//! may not be UTF-8. The reader works on bytes, keeps at most [`MAX_LINE`]
//! of a line and skips the rest, decodes lossily, and keeps draining the
//! pipe until it closes: stopping early would break the upstream's stderr
//! (EPIPE/SIGPIPE) and turn a noisy server into a crash loop.
use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Lines kept per upstream; enough to show a stack trace's head.
pub const TAIL_LINES: usize = 50;
/// Longest line kept; a process printing megabytes on one line cannot grow memory.
const MAX_LINE: usize = 2048;

/// A bounded ring of stderr lines that survives restarts of the upstream.
#[derive(Debug, Default)]
pub struct StderrTail {
    lines: Mutex<VecDeque<String>>,
}

impl StderrTail {
    /// Appends one line, dropping the oldest past [`TAIL_LINES`].
    pub fn push(&self, mut line: String) {
        truncate(&mut line);
        self.append(line);
    }

    fn append(&self, line: String) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// A copy of the kept lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().cloned().collect()
    }

    /// Reads `stream` into the tail, line by line, until it closes. Memory
    /// stays under [`MAX_LINE`] plus one read buffer whatever arrives.
    pub async fn capture(&self, server: &str, mut stream: impl AsyncRead + Unpin) {
        let mut chunk = vec![0u8; READ_CHUNK];
        let mut line = LineBuffer::default();
        loop {
            let read = match stream.read(&mut chunk).await {
                Ok(0) => break,
                Ok(read) => read,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    tracing::debug!(server, %err, "stderr read ended");
                    break;
                }
            };
            for piece in chunk[..read].split_inclusive(|b| *b == b'\n') {
                if let Some(done) = line.feed(piece) {
                    self.append(done);
                }
            }
        }
        if line.seen > 0 {
            self.append(line.take());
        }
    }
}

/// Bytes read per `read` call.
const READ_CHUNK: usize = 8 * 1024;

/// One line being assembled: its first [`MAX_LINE`] bytes, the rest dropped.
#[derive(Default)]
struct LineBuffer {
    kept: Vec<u8>,
    /// Bytes of this line seen in all, kept or not.
    seen: usize,
}

impl LineBuffer {
    /// Takes a piece ending at most at one newline; returns the line it completes.
    fn feed(&mut self, piece: &[u8]) -> Option<String> {
        let (body, ends) = match piece.split_last() {
            Some((b'\n', body)) => (body, true),
            _ => (piece, false),
        };
        let room = MAX_LINE.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&body[..body.len().min(room)]);
        self.seen += body.len();
        ends.then(|| self.take())
    }

    /// The line so far, decoded lossily and marked when bytes were dropped.
    fn take(&mut self) -> String {
        let kept = std::mem::take(&mut self.kept);
        let cut = std::mem::take(&mut self.seen) > kept.len();
        let kept = kept.strip_suffix(b"\r").unwrap_or(&kept);
        let mut text = String::from_utf8_lossy(kept).into_owned();
        truncate(&mut text);
        if cut {
            text.push_str(TRUNCATED);
        }
        text
    }
}

/// Appended to a line whose end was dropped.
const TRUNCATED: &str = " …[truncated]";

/// Cuts `line` to [`MAX_LINE`] bytes on a char boundary.
fn truncate(line: &mut String) {
    if line.len() > MAX_LINE {
        let mut cut = MAX_LINE;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_last_lines() {
        let tail = StderrTail::default();
        for i in 0..(TAIL_LINES + 5) {
            tail.push(format!("line {i}"));
        }
        let lines = tail.lines();
        assert_eq!(lines.len(), TAIL_LINES);
        assert_eq!(lines[0], "line 5");
    }

    #[test]
    fn truncates_long_lines_on_a_char_boundary() {
        let tail = StderrTail::default();
        tail.push("é".repeat(MAX_LINE));
        assert!(tail.lines()[0].len() <= MAX_LINE);
    }

    #[tokio::test]
    async fn invalid_utf8_and_an_endless_line_do_not_stop_the_reader() {
        let tail = StderrTail::default();
        let mut input = b"before\n\xff\xfe bad \xc3\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
        input.extend_from_slice(b"\nafter\r\nunterminated");
        tail.capture("t", &input[..]).await;
        let lines = tail.lines();
        assert_eq!(lines.len(), 5, "{lines:?}");
        assert_eq!(lines[0], "before");
        assert_eq!(lines[1], "\u{fffd}\u{fffd} bad \u{fffd}");
        assert!(lines[2].starts_with("xxxx") && lines[2].ends_with(TRUNCATED));
        assert_eq!(lines[2].len(), MAX_LINE + TRUNCATED.len());
        assert_eq!(lines[3], "after");
        assert_eq!(lines[4], "unterminated");
    }

    #[tokio::test]
    async fn captures_a_stream() {
        let tail = StderrTail::default();
        tail.capture("t", &b"one\ntwo\n"[..]).await;
        assert_eq!(tail.lines(), vec!["one", "two"]);
    }
}
