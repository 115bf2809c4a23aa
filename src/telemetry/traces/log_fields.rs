//! How text log lines write fields: `name=value`, space-separated, as
//! tracing-subscriber's default does, but cheaper.
//!
//! The log layer formats every field of an INFO span when the span starts
//! and when a field is recorded, whether or not a line is ever printed in
//! it: the request spans' fields were ~13,000 instructions of every
//! `tools/call` (callgrind), most of it `<str as Debug>` escaping each
//! character and the styling calls of the default visitor. Here a plain
//! value (visible ASCII, no quote or backslash) is written as it is; any
//! other goes through `Debug` (quoted, control characters escaped), so a
//! value can never forge a line break or a field boundary.
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::Writer;

/// The field formatter of text log lines.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogFields;

thread_local! {
    /// Where a visitor writes before its one write to the real writer.
    static SCRATCH: std::cell::Cell<String> = const { std::cell::Cell::new(String::new()) };
}

/// A scratch buffer larger than this is dropped rather than kept per thread.
const SCRATCH_KEPT: usize = 4096;

impl<'a> MakeVisitor<Writer<'a>> for LogFields {
    type Visitor = LogVisitor<'a>;

    fn make_visitor(&self, writer: Writer<'a>) -> Self::Visitor {
        LogVisitor {
            writer,
            buf: SCRATCH.with(std::cell::Cell::take),
            first: true,
            result: Ok(()),
        }
    }
}

/// Writes one span's or event's fields: into a per-thread scratch buffer,
/// then to the writer at once. A span's fields go to a `String` that starts
/// empty, and growing it piece by piece cost ~6 reallocations per span
/// (callgrind: ~4k instructions per `tools/call`).
pub struct LogVisitor<'a> {
    writer: Writer<'a>,
    buf: String,
    first: bool,
    result: fmt::Result,
}

impl LogVisitor<'_> {
    /// The separator before every field but the first.
    fn separate(&mut self) -> fmt::Result {
        if std::mem::take(&mut self.first) {
            Ok(())
        } else {
            self.buf.write_char(' ')
        }
    }

    fn write(&mut self, field: &Field, value: Value<'_>) {
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        self.result = self.separate().and_then(|()| {
            let name = field.name();
            if name == "message" {
                return match value {
                    Value::Str(text) => self.buf.write_str(text),
                    Value::Debug(value) => write!(self.buf, "{value:?}"),
                };
            }
            self.buf
                .write_str(name.strip_prefix("r#").unwrap_or(name))?;
            self.buf.write_char('=')?;
            match value {
                Value::Str(text) if is_plain(text) => self.buf.write_str(text),
                Value::Str(text) => write!(self.buf, "{text:?}"),
                Value::Debug(value) => write!(self.buf, "{value:?}"),
            }
        });
    }
}

enum Value<'a> {
    Str(&'a str),
    Debug(&'a dyn fmt::Debug),
}

/// Whether `text` reads unambiguously without quotes.
fn is_plain(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

impl Visit for LogVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, Value::Str(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, Value::Debug(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // The error and its causes, as the default formatter writes them.
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            let _ = write!(text, ": {cause}");
            source = cause.source();
        }
        self.write(field, Value::Str(&text));
    }
}

impl VisitOutput<fmt::Result> for LogVisitor<'_> {
    fn finish(mut self) -> fmt::Result {
        let result = self.result.and_then(|()| self.writer.write_str(&self.buf));
        if self.buf.capacity() <= SCRATCH_KEPT {
            self.buf.clear();
            SCRATCH.with(|scratch| scratch.set(self.buf));
        }
        result
    }
}

impl VisitFmt for LogVisitor<'_> {
    /// The scratch buffer: whatever is written here goes out with the fields,
    /// in order, at [`VisitOutput::finish`].
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::captured_logs::Lines;

    #[test]
    fn fields_read_unambiguously() {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(LogFields)
            .with_writer(lines.clone())
            .with_ansi(false)
            .without_time()
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "mcp.request",
                request.id = "ab12",
                tool = "two words",
                outcome = tracing::field::Empty,
            );
            span.record("outcome", "ok");
            span.in_scope(|| {
                let err = std::io::Error::other("refused");
                tracing::info!(
                    error = &err as &dyn std::error::Error,
                    forged = "x\nINFO fake",
                    code = 7,
                    "request failed"
                );
            });
        });
        let text = lines.text();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains(r#"mcp.request{request.id=ab12 tool="two words" outcome=ok}"#),
            "{text}"
        );
        assert!(
            text.contains(r#"request failed error=refused forged="x\nINFO fake" code=7"#),
            "{text}"
        );
    }
}
