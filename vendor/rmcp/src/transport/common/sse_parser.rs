//! Bulwark patch: the SSE parser of `sse_stream` 0.2.6 (same events, same
//! errors), except that a `data` line spanning several body chunks is moved
//! into the event instead of copied. `sse_stream` gathered such a line in a
//! buffer, copied its value into the event and kept the buffer (cleared, at
//! its grown capacity) for the rest of the stream: a 10 MB result was in
//! memory three times while it was parsed (the line, the event's data, the
//! message). Here the gathered line becomes the event's data.
use std::{
    borrow::Cow,
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use futures::Stream;
use sse_stream::{Error as SseError, Sse};

const BOM_HEADER: &[u8] = b"\xEF\xBB\xBF";

/// A line buffer at least this large is dropped once its line is parsed
/// rather than kept for the next one.
const KEEP_LINE_BUFFER: usize = 64 * 1024;

/// The fields an SSE line may carry.
enum Field {
    Data,
    Event,
    Id,
    Retry,
    Comment,
}

#[derive(Default)]
struct Parser {
    parsed: VecDeque<Sse>,
    current: Option<Sse>,
    unfinished_line: Vec<u8>,
    skip_leading_lf: bool,
    started: bool,
}

impl Parser {
    fn parse_line(&mut self, line: Cow<'_, [u8]>) -> Result<(), SseError> {
        let mut start = 0;
        if !self.started {
            self.started = true;
            if line.starts_with(BOM_HEADER) {
                start = BOM_HEADER.len();
            }
        }
        let rest = &line[start..];
        if rest.is_empty() {
            if let Some(sse) = self.current.take() {
                self.parsed.push_back(sse);
            }
            return Ok(());
        }
        let Some(colon) = rest.iter().position(|byte| *byte == b':') else {
            tracing::warn!(line = ?rest, "invalid line, missing `:`");
            return Err(SseError::InvalidLine);
        };
        let field = match &rest[..colon] {
            b"data" => Field::Data,
            b"event" => Field::Event,
            b"id" => Field::Id,
            b"retry" => Field::Retry,
            b"" => Field::Comment,
            name => {
                tracing::warn!(line = ?name, "invalid line: unknown field");
                return Err(SseError::InvalidLine);
            }
        };
        let mut value_start = start + colon + 1;
        if line.get(value_start) == Some(&b' ') {
            value_start += 1;
        }
        let value = &line[value_start..];
        match field {
            Field::Data => {
                // The value is checked before the event is started: a line
                // that is not UTF-8 leaves no (empty) event behind.
                if let Some(data) = self.current.as_mut().and_then(|event| event.data.as_mut()) {
                    let value =
                        std::str::from_utf8(&line[value_start..]).map_err(SseError::Utf8Parse)?;
                    data.push('\n');
                    data.push_str(value);
                } else {
                    let data = match line {
                        Cow::Owned(mut line) => {
                            line.drain(..value_start);
                            String::from_utf8(line)
                                .map_err(|err| SseError::Utf8Parse(err.utf8_error()))?
                        }
                        Cow::Borrowed(line) => std::str::from_utf8(&line[value_start..])
                            .map_err(SseError::Utf8Parse)?
                            .to_owned(),
                    };
                    self.current.get_or_insert_default().data = Some(data);
                }
            }
            Field::Event => {
                let value = std::str::from_utf8(value).map_err(SseError::Utf8Parse)?;
                let event = self.current.get_or_insert_default();
                if event.event.is_some() {
                    return Err(SseError::DuplicatedEventLine);
                }
                event.event = Some(value.to_owned());
            }
            Field::Id => {
                // Per spec: an id containing U+0000 NULL is ignored.
                if value.contains(&0_u8) {
                    tracing::warn!(?value, "id field contains NULL byte, ignoring per spec");
                    return Ok(());
                }
                let value = std::str::from_utf8(value).map_err(SseError::Utf8Parse)?;
                let event = self.current.get_or_insert_default();
                if event.id.is_some() {
                    return Err(SseError::DuplicatedIdLine);
                }
                event.id = Some(value.to_owned());
            }
            Field::Retry => {
                let retry = std::str::from_utf8(value)
                    .map_err(SseError::Utf8Parse)?
                    .trim_ascii()
                    .parse::<u64>()
                    .map_err(SseError::IntParse)?;
                let event = self.current.get_or_insert_default();
                if event.retry.is_some() {
                    return Err(SseError::DuplicatedRetry);
                }
                event.retry = Some(retry);
            }
            Field::Comment => {}
        }
        Ok(())
    }

    fn parse_complete_line(&mut self, line: &[u8]) -> Result<(), SseError> {
        if self.unfinished_line.is_empty() {
            return self.parse_line(Cow::Borrowed(line));
        }
        let mut complete = std::mem::take(&mut self.unfinished_line);
        complete.extend_from_slice(line);
        if complete.capacity() >= KEEP_LINE_BUFFER {
            // Moved into the event when it is a data line, else dropped.
            return self.parse_line(Cow::Owned(complete));
        }
        let result = self.parse_line(Cow::Borrowed(&complete));
        complete.clear();
        self.unfinished_line = complete;
        result
    }

    fn parse_chunk(&mut self, mut bytes: &[u8]) -> Result<(), SseError> {
        // An empty chunk says nothing, in particular not whether a `\r` that
        // ended the last one is followed by `\n`.
        if bytes.is_empty() {
            return Ok(());
        }
        if self.skip_leading_lf {
            self.skip_leading_lf = false;
            if bytes.first() == Some(&b'\n') {
                bytes = &bytes[1..];
            }
        }
        while !bytes.is_empty() {
            let Some(line_end) = bytes.iter().position(|byte| matches!(*byte, b'\n' | b'\r'))
            else {
                self.unfinished_line.extend_from_slice(bytes);
                return Ok(());
            };
            self.parse_complete_line(&bytes[..line_end])?;
            let delimiter = bytes[line_end];
            bytes = &bytes[line_end + 1..];
            if delimiter == b'\r' {
                if bytes.first() == Some(&b'\n') {
                    bytes = &bytes[1..];
                } else if bytes.is_empty() {
                    self.skip_leading_lf = true;
                }
            }
        }
        Ok(())
    }
}

pin_project_lite::pin_project! {
    /// The SSE events of a stream of body chunks.
    pub(crate) struct SseEvents<S> {
        #[pin]
        body: S,
        parser: Parser,
    }
}

impl<S> SseEvents<S> {
    pub(crate) fn new(body: S) -> Self {
        Self {
            body,
            parser: Parser::default(),
        }
    }
}

impl<S, E> Stream for SseEvents<S>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    type Item = Result<Sse, SseError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if let Some(sse) = this.parser.parsed.pop_front() {
                return Poll::Ready(Some(Ok(sse)));
            }
            match ready!(this.body.as_mut().poll_next(cx)) {
                Some(Err(error)) => return Poll::Ready(Some(Err(SseError::Body(Box::new(error))))),
                None => return Poll::Ready(None),
                Some(Ok(chunk)) => {
                    if let Err(error) = this.parser.parse_chunk(&chunk) {
                        return Poll::Ready(Some(Err(error)));
                    }
                }
            }
        }
    }
}
