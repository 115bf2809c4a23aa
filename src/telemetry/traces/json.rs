//! `--log-format json`: tracing-subscriber's JSON lines (fields, the span
//! and its parents with their fields, e.g. `request.id`) with the
//! `trace_id` and `span_id` of the current span put first, so a log line
//! leads to its trace and back.
use std::fmt;

use bulwark_actors::trace_context::{self, push_hex};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{self, Format, Json, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The JSON event format with trace ids.
pub struct WithTraceIds {
    inner: Format<Json>,
}

impl WithTraceIds {
    /// The format of `bulwark --log-format json`.
    pub fn new() -> Self {
        Self {
            inner: format::format()
                .json()
                .with_current_span(true)
                .with_span_list(true),
        }
    }
}

impl<S, N> FormatEvent<S, N> for WithTraceIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let ids = current_ids();
        match (ids, line.strip_prefix('{')) {
            (Some((trace_id, span_id)), Some(rest)) => {
                write!(
                    writer,
                    "{{\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\",{rest}"
                )
            }
            _ => writer.write_str(&line),
        }
    }
}

/// The trace and span id of the current span, when it has ids.
fn current_ids() -> Option<(String, String)> {
    let cx = trace_context::context(&tracing::Span::current())?;
    let (mut trace_id, mut span_id) = (String::with_capacity(32), String::with_capacity(16));
    push_hex(&mut trace_id, &cx.trace_id);
    push_hex(&mut span_id, &cx.span_id);
    Some((trace_id, span_id))
}
