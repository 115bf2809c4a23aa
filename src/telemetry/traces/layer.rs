//! The trace layer: Bulwark's `tracing` spans recorded as OTLP spans.
//!
//! Each span it sees gets [`SpanIds`] (trace, span, parent, sampled) when
//! it starts; a sampled span also gets a [`Recording`] (name, kind, start,
//! attributes, status, events) that goes into the export queue as a
//! [`FinishedSpan`] when it closes. Nothing else happens per span: no
//! context objects, no builder, no processor chain, no per-poll work.
//!
//! It replaced `tracing-opentelemetry` and the SDK's tracer, which cost
//! ~42,000 instructions per traced `tools/call` (callgrind) before export:
//! a builder, a sampler call, a `KeyValue` per field, an `OtelData` per
//! span and a context attached on every field record.
use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::SystemTime;

use bulwark_actors::trace_context::{self, SpanIds};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::export::Queue;

/// The OTLP span kinds Bulwark uses (`otel.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Work inside the gateway.
    Internal,
    /// A request the gateway serves.
    Server,
    /// A request the gateway makes.
    Client,
}

/// An attribute value, as its field was recorded.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// Text.
    Str(String),
    /// A signed integer (unsigned ones beyond `i64` become text).
    I64(i64),
    /// A float.
    F64(f64),
    /// A flag.
    Bool(bool),
}

/// A log event at WARN or above inside a sampled span.
#[derive(Debug, Clone)]
pub struct SpanEvent {
    /// When it happened.
    pub time: SystemTime,
    /// Its message.
    pub name: String,
    /// `level` and its other fields.
    pub attributes: Vec<(&'static str, AttrValue)>,
}

/// What a sampled span records while it is open.
#[derive(Debug, Clone)]
pub struct Recording {
    /// `otel.name` when given, else the span's name.
    pub name: Cow<'static, str>,
    /// `otel.kind`.
    pub kind: Kind,
    /// When the span started.
    pub start: SystemTime,
    /// Its fields, except the `otel.*` ones.
    pub attributes: Vec<(&'static str, AttrValue)>,
    /// `otel.status_code = "ERROR"` or an ERROR event: the error's text, if any.
    pub error: Option<String>,
    /// WARN and ERROR events.
    pub events: Vec<SpanEvent>,
}

/// A closed, sampled span, waiting for export.
#[derive(Debug, Clone)]
pub struct FinishedSpan {
    /// Its ids and parent.
    pub ids: SpanIds,
    /// What it recorded.
    pub recording: Recording,
    /// When it closed.
    pub end: SystemTime,
}

/// Samples root spans by trace id, as OpenTelemetry's `TraceIdRatioBased`
/// does; a child follows its parent, local or remote.
#[derive(Debug, Clone, Copy)]
struct Sampler {
    /// Sampled when the trace id's low 63 bits fall under this.
    bound: u64,
}

impl Sampler {
    fn ratio(ratio: f64) -> Self {
        let bound = (ratio.clamp(0.0, 1.0) * (1u64 << 63) as f64) as u64;
        Self { bound }
    }

    fn sampled(self, trace_id: &[u8; 16]) -> bool {
        let mut low = [0u8; 8];
        low.copy_from_slice(&trace_id[8..]);
        (u64::from_be_bytes(low) >> 1) < self.bound
    }
}

/// The layer. Without a queue it only hands out ids (for JSON log lines
/// and propagation) and records nothing.
pub struct SpanLayer {
    queue: Option<Arc<Queue>>,
    sampler: Sampler,
}

impl SpanLayer {
    /// Records sampled spans into `queue`; roots are sampled at `ratio`.
    pub fn exporting(queue: Arc<Queue>, ratio: f64) -> Self {
        Self {
            queue: Some(queue),
            sampler: Sampler::ratio(ratio),
        }
    }

    /// Ids only: nothing is sampled unless a remote parent was, and nothing
    /// is recorded either way.
    pub fn ids_only() -> Self {
        Self {
            queue: None,
            sampler: Sampler::ratio(0.0),
        }
    }
}

impl<S> Layer<S> for SpanLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let parent = span.parent();
        let inherited = parent
            .as_ref()
            .and_then(|p| p.extensions().get::<SpanIds>().cloned());
        let ids = match inherited {
            Some(parent) => SpanIds {
                trace_id: parent.trace_id,
                span_id: span_id(),
                parent_id: Some(parent.span_id),
                parent_remote: false,
                sampled: parent.sampled,
                state: parent.state,
            },
            None => {
                let trace_id = trace_id();
                SpanIds {
                    trace_id,
                    span_id: span_id(),
                    parent_id: None,
                    parent_remote: false,
                    sampled: self.sampler.sampled(&trace_id),
                    state: None,
                }
            }
        };
        // A root may still get a sampled remote parent (`set_parent`), so
        // it records; a child's decision is final.
        let record = self.queue.is_some() && (ids.sampled || ids.parent_id.is_none());
        let mut extensions = span.extensions_mut();
        extensions.insert(ids);
        if record {
            let metadata = attrs.metadata();
            let mut recording = Recording {
                name: Cow::Borrowed(metadata.name()),
                kind: Kind::Internal,
                start: SystemTime::now(),
                attributes: Vec::with_capacity(metadata.fields().len()),
                error: None,
                events: Vec::new(),
            };
            attrs.record(&mut Fields(&mut recording));
            extensions.insert(recording);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(recording) = span.extensions_mut().get_mut::<Recording>()
        {
            values.record(&mut Fields(recording));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        let Some(recording) = extensions.get_mut::<Recording>() else {
            return;
        };
        let level = *event.metadata().level();
        let mut fields = EventFields {
            message: String::new(),
            attributes: vec![("level", AttrValue::Str(level.as_str().to_owned()))],
        };
        event.record(&mut Fields(&mut fields));
        if level == Level::ERROR && recording.error.is_none() {
            recording.error = Some(fields.message.clone());
        }
        recording.events.push(SpanEvent {
            time: SystemTime::now(),
            name: fields.message,
            attributes: fields.attributes,
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(queue) = &self.queue else {
            return;
        };
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        let Some(recording) = extensions.remove::<Recording>() else {
            return;
        };
        match extensions.get_mut::<SpanIds>() {
            Some(ids) if ids.sampled => queue.push(FinishedSpan {
                ids: ids.clone(),
                recording,
                end: SystemTime::now(),
            }),
            _ => {}
        }
    }
}

/// Which spans and events the layer sees: Bulwark's own spans down to
/// DEBUG, and its warnings and errors (as span events). Decided once per
/// callsite, not per span.
pub struct ForTraces;

impl ForTraces {
    fn wants(metadata: &Metadata<'_>) -> bool {
        if !metadata.target().starts_with("bulwark") {
            return false;
        }
        let deepest = if metadata.is_span() {
            Level::DEBUG
        } else {
            Level::WARN
        };
        *metadata.level() <= deepest
    }
}

impl<S> Filter<S> for ForTraces {
    fn enabled(&self, metadata: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        Self::wants(metadata)
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        if Self::wants(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::DEBUG)
    }
}

/// Names `span` in its trace (`name` is only called when the span is
/// being recorded): for names known only later, once the request is routed.
pub fn rename(span: &tracing::Span, name: impl FnOnce() -> String) {
    with_recording(span, |recording| recording.name = Cow::Owned(name()));
}

/// Marks `span` as the server side of a request, named `name`. For the
/// INFO request spans, instead of `otel.kind` and `otel.name` fields: the
/// log layer formats every field of an INFO span when it starts, printed or
/// not, and those two mean nothing in a log line.
pub fn serving(span: &tracing::Span, name: impl FnOnce() -> String) {
    with_recording(span, |recording| {
        recording.kind = Kind::Server;
        recording.name = Cow::Owned(name());
    });
}

fn with_recording(span: &tracing::Span, f: impl FnOnce(&mut Recording)) {
    trace_context::with_extension(span, f);
}

/// Where visited fields go: text through [`Self::text`] (which may treat
/// some names specially), everything else as an attribute.
trait FieldSink {
    fn text(&mut self, name: &'static str, value: String);
    fn attributes(&mut self) -> &mut Vec<(&'static str, AttrValue)>;
}

impl FieldSink for Recording {
    fn text(&mut self, name: &'static str, value: String) {
        match name {
            "otel.name" => self.name = Cow::Owned(value),
            "otel.kind" => {
                self.kind = match value.as_str() {
                    "server" => Kind::Server,
                    "client" => Kind::Client,
                    _ => Kind::Internal,
                };
            }
            "otel.status_code" => {
                if value.eq_ignore_ascii_case("error") {
                    self.error.get_or_insert_with(String::new);
                }
            }
            "otel.status_message" => self.error = Some(value),
            name => self.attributes.push((name, AttrValue::Str(value))),
        }
    }

    fn attributes(&mut self) -> &mut Vec<(&'static str, AttrValue)> {
        &mut self.attributes
    }
}

/// An event's fields: `message` becomes the event's name.
struct EventFields {
    message: String,
    attributes: Vec<(&'static str, AttrValue)>,
}

impl FieldSink for EventFields {
    fn text(&mut self, name: &'static str, value: String) {
        if name == "message" {
            self.message = value;
        } else {
            self.attributes.push((name, AttrValue::Str(value)));
        }
    }

    fn attributes(&mut self) -> &mut Vec<(&'static str, AttrValue)> {
        &mut self.attributes
    }
}

/// The `Visit` of every [`FieldSink`]: each value formatted once.
struct Fields<'a, S>(&'a mut S);

impl<S: FieldSink> Visit for Fields<'_, S> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.text(field.name(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `format!` starts empty and grows by doubling: ids and names
        // (`%`-recorded) fit this without a reallocation.
        let mut text = String::with_capacity(48);
        let _ = write!(text, "{value:?}");
        self.0.text(field.name(), text);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0
            .attributes()
            .push((field.name(), AttrValue::I64(value)));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        let value =
            i64::try_from(value).map_or_else(|_| AttrValue::Str(value.to_string()), AttrValue::I64);
        self.0.attributes().push((field.name(), value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0
            .attributes()
            .push((field.name(), AttrValue::F64(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0
            .attributes()
            .push((field.name(), AttrValue::Bool(value)));
    }
}

/// A random, non-zero trace id.
fn trace_id() -> [u8; 16] {
    loop {
        let id = fastrand::u128(..).to_be_bytes();
        if id != [0; 16] {
            return id;
        }
    }
}

/// A random, non-zero span id.
fn span_id() -> [u8; 8] {
    fastrand::u64(1..).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_actors::trace_context::{self, TraceContext};
    use tracing_subscriber::Registry;
    use tracing_subscriber::layer::SubscriberExt;

    fn recorded(ratio: f64, body: impl FnOnce()) -> Vec<FinishedSpan> {
        let queue = Arc::new(Queue::new(64));
        let subscriber = Registry::default()
            .with(SpanLayer::exporting(queue.clone(), ratio).with_filter(ForTraces));
        tracing::subscriber::with_default(subscriber, body);
        queue.take()
    }

    #[test]
    fn spans_nest_and_carry_their_fields() {
        let spans = recorded(1.0, || {
            let outer = tracing::info_span!(
                "mcp.request",
                otel.kind = "server",
                mcp.method.name = "tools/call",
                error.type = tracing::field::Empty,
            );
            outer.in_scope(|| {
                let inner = tracing::debug_span!("cache.lookup", cache.hit = false);
                inner.in_scope(|| tracing::warn!(code = 7, "slow upstream"));
                rename(&outer, || "tools/call echo__echo".into());
                outer.record("error.type", -32602);
                tracing::error!("failed");
            });
            // Not Bulwark's: never recorded.
            tracing::info_span!(target: "hyper", "connection").in_scope(|| {});
        });
        assert_eq!(spans.len(), 2, "{spans:#?}");
        let (inner, outer) = (&spans[0], &spans[1]);
        assert_eq!(inner.recording.name, "cache.lookup");
        assert_eq!(inner.ids.trace_id, outer.ids.trace_id);
        assert_eq!(inner.ids.parent_id, Some(outer.ids.span_id));
        assert_eq!(outer.ids.parent_id, None);
        assert_eq!(
            inner.recording.attributes,
            [("cache.hit", AttrValue::Bool(false))]
        );
        let event = &inner.recording.events[0];
        assert_eq!(event.name, "slow upstream");
        assert!(event.attributes.contains(&("code", AttrValue::I64(7))));
        assert_eq!(outer.recording.name, "tools/call echo__echo");
        assert_eq!(outer.recording.kind, Kind::Server);
        assert_eq!(outer.recording.error.as_deref(), Some("failed"));
        assert!(
            outer
                .recording
                .attributes
                .contains(&("error.type", AttrValue::I64(-32602)))
        );
        assert!(outer.end >= outer.recording.start);
    }

    #[test]
    fn a_remote_parent_decides_the_trace_and_sampling() {
        let remote = TraceContext::parse(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            Some("vendor=v1"),
        )
        .unwrap();
        // Ratio 0: only the remote parent's flag gets these recorded.
        let spans = recorded(0.0, || {
            let root = tracing::info_span!("http.request");
            trace_context::set_parent(&root, remote.clone());
            let child = root.in_scope(|| tracing::debug_span!("authenticate"));
            let cx = trace_context::context(&child).unwrap();
            assert_eq!(cx.trace_id, remote.trace_id);
            assert_eq!(cx.state.as_deref(), Some("vendor=v1"));
            drop(child);
            // An unsampled root without a remote parent: dropped.
            tracing::info_span!("http.request").in_scope(|| {});
        });
        assert_eq!(spans.len(), 2, "{spans:#?}");
        let root = &spans[1];
        assert_eq!(root.ids.parent_id, Some(remote.span_id));
        assert!(root.ids.parent_remote);
        assert_eq!(spans[0].ids.parent_id, Some(root.ids.span_id));
    }

    #[test]
    fn the_ratio_samples_by_trace_id() {
        assert!(Sampler::ratio(1.0).sampled(&[0xff; 16]));
        assert!(!Sampler::ratio(0.0).sampled(&[0; 16]));
        let half = Sampler::ratio(0.5);
        let mut id = [0u8; 16];
        id[8] = 0x7f;
        assert!(half.sampled(&id));
        id[8] = 0x80;
        assert!(!half.sampled(&id));
    }
}
