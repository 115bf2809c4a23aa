//! The last lines an upstream wrote to stderr, kept for operators.
use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

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
        if line.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
        }
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

    /// Reads `stream` line by line into the tail until it closes.
    pub async fn capture(&self, server: &str, stream: impl AsyncRead + Unpin) {
        let mut reader = BufReader::new(stream).lines();
        loop {
            match reader.next_line().await {
                Ok(Some(line)) => self.push(line),
                Ok(None) => break,
                Err(err) => {
                    tracing::debug!(server, %err, "stderr read ended");
                    break;
                }
            }
        }
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
    async fn captures_a_stream() {
        let tail = StderrTail::default();
        tail.capture("t", &b"one\ntwo\n"[..]).await;
        assert_eq!(tail.lines(), vec!["one", "two"]);
    }
}
