//! The trace layer: Bulwark's `tracing` spans recorded as OTLP spans.
//!
//! Each span it sees gets [`SpanIds`] (trace, span, parent, sampled) when
//! it starts; a sampled span also gets a [`Recording`] (name, kind, start,
//! status, and its attributes and events already encoded as protobuf) that
//! is finished and appended to the export queue's batch when it closes.
//! Nothing else happens per span: no context objects, no builder, no
//! processor chain, no per-poll work, no copy kept to encode later.
//!
//! It replaced `tracing-opentelemetry` and the SDK's tracer, which cost
//! ~42,000 instructions per traced `tools/call` (callgrind) before export:
//! a builder, a sampler call, a `KeyValue` per field, an `OtelData` per
//! span and a context attached on every field record.
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use bulwark_actors::trace_context::{self, Recording, SpanIds, SpanKind as Kind};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::{ExtensionsMut, LookupSpan};

use super::export::Queue;
use bulwark_actors::trace_context::encode::{self as otlp, AttributesOf};

/// Room for a span's attributes and its end: a request span's fit without growing.
const BODY_CAPACITY: usize = 384;

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
        // From now on spans may be recorded (see `super::exporting`).
        super::EXPORTING.store(true, std::sync::atomic::Ordering::Relaxed);
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
        let inherited = parent.as_ref().and_then(|p| {
            let extensions = p.extensions();
            let ids = extensions.get::<SpanIds>()?;
            Some((ids.trace_id, ids.span_id, ids.sampled, ids.state.clone()))
        });
        let mut ids = match inherited {
            Some((trace_id, parent_id, sampled, state)) => SpanIds {
                trace_id,
                span_id: span_id(),
                parent_id: Some(parent_id),
                parent_remote: false,
                sampled,
                state,
                recording: None,
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
                    recording: None,
                }
            }
        };
        // A root may still get a sampled remote parent (`set_parent`), so
        // it records; a child's decision is final.
        if self.queue.is_some() && (ids.sampled || ids.parent_id.is_none()) {
            let metadata = attrs.metadata();
            let mut recording = Recording {
                name: Cow::Borrowed(metadata.name()),
                kind: Kind::Internal,
                start: SystemTime::now(),
                body: Vec::with_capacity(BODY_CAPACITY),
                error: None,
            };
            attrs.record(&mut SpanFields(&mut recording));
            ids.recording = Some(recording);
        }
        span.extensions_mut().insert(ids);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(recording) = recording(&mut span.extensions_mut())
        {
            values.record(&mut SpanFields(recording));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        let Some(recording) = recording(&mut extensions) else {
            return;
        };
        let level = *event.metadata().level();
        let keep = level == Level::ERROR && recording.error.is_none();
        let mut message = None;
        otlp::event(&mut recording.body, SystemTime::now(), |buf| {
            otlp::str_attribute(buf, AttributesOf::Event, "level", level.as_str());
            event.record(&mut EventFields {
                buf,
                message: keep.then_some(&mut message),
            });
        });
        if keep {
            recording.error = Some(message.unwrap_or_default());
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(queue) = &self.queue else {
            return;
        };
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        let Some(ids) = extensions.get_mut::<SpanIds>() else {
            return;
        };
        let Some(recording) = ids.recording.take() else {
            return;
        };
        if ids.sampled {
            queue.push(&recording.finish(ids));
        }
    }
}

/// The recording a span's ids hold, if it is being recorded.
fn recording<'a>(extensions: &'a mut ExtensionsMut<'_>) -> Option<&'a mut Recording> {
    extensions.get_mut::<SpanIds>()?.recording.as_mut()
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
    // Only an exporting layer records spans: without one, skip the span's
    // lookup in the registry (~400 instructions, three times per request).
    if !super::exporting() {
        return;
    }
    trace_context::with_extension(span, |ids: &mut SpanIds| ids.recording.as_mut().map(f));
}

/// A span's fields: the `otel.*` ones set its name, kind and status, the
/// others are encoded as attributes.
struct SpanFields<'a>(&'a mut Recording);

impl SpanFields<'_> {
    /// An `otel.*` field; false for any other name.
    fn otel(&mut self, name: &str, value: &str) -> bool {
        let recording = &mut *self.0;
        match name {
            "otel.name" => recording.name = Cow::Owned(value.to_owned()),
            "otel.kind" => {
                recording.kind = match value {
                    "server" => Kind::Server,
                    "client" => Kind::Client,
                    _ => Kind::Internal,
                };
            }
            "otel.status_code" => {
                if value.eq_ignore_ascii_case("error") {
                    recording.error.get_or_insert_with(String::new);
                }
            }
            "otel.status_message" => recording.error = Some(value.to_owned()),
            _ => return false,
        }
        true
    }
}

impl Visit for SpanFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let name = field.name();
        if !self.otel(name, value) {
            otlp::str_attribute(&mut self.0.body, AttributesOf::Span, name, value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        if name.starts_with("otel.") {
            let text = format!("{value:?}");
            if self.otel(name, &text) {
                return;
            }
        }
        otlp::debug_attribute(&mut self.0.body, AttributesOf::Span, name, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        otlp::i64_attribute(&mut self.0.body, AttributesOf::Span, field.name(), value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        record_u64(&mut self.0.body, AttributesOf::Span, field.name(), value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        otlp::f64_attribute(&mut self.0.body, AttributesOf::Span, field.name(), value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        otlp::bool_attribute(&mut self.0.body, AttributesOf::Span, field.name(), value);
    }
}

/// An unsigned integer as OTLP's signed one, or as text beyond `i64`.
fn record_u64(buf: &mut Vec<u8>, to: AttributesOf, key: &str, value: u64) {
    match i64::try_from(value) {
        Ok(value) => otlp::i64_attribute(buf, to, key, value),
        Err(_) => otlp::debug_attribute(buf, to, key, &format_args!("{value}")),
    }
}

/// An event's fields, inside its `Span.Event` message: `message` is its
/// name (also kept as text when asked), the others its attributes.
struct EventFields<'a> {
    buf: &'a mut Vec<u8>,
    message: Option<&'a mut Option<String>>,
}

impl Visit for EventFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() != "message" {
            otlp::debug_attribute(self.buf, AttributesOf::Event, field.name(), value);
            return;
        }
        match &mut self.message {
            Some(kept) => {
                let text = format!("{value:?}");
                otlp::event_name(self.buf, &format_args!("{text}"));
                **kept = Some(text);
            }
            None => otlp::event_name(self.buf, value),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        otlp::i64_attribute(self.buf, AttributesOf::Event, field.name(), value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        record_u64(self.buf, AttributesOf::Event, field.name(), value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        otlp::f64_attribute(self.buf, AttributesOf::Event, field.name(), value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        otlp::bool_attribute(self.buf, AttributesOf::Event, field.name(), value);
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
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
    use opentelemetry_proto::tonic::trace::v1::Span;
    use prost::Message;
    use tracing_subscriber::Registry;
    use tracing_subscriber::layer::SubscriberExt;

    /// The spans `body` made, as a collector decodes them.
    fn recorded(ratio: f64, body: impl FnOnce()) -> Vec<Span> {
        let queue = Arc::new(Queue::new(64));
        let subscriber = Registry::default()
            .with(SpanLayer::exporting(queue.clone(), ratio).with_filter(ForTraces));
        tracing::subscriber::with_default(subscriber, body);
        decoded(queue.take())
    }

    fn attribute(attributes: &[KeyValue], key: &str) -> Option<any_value::Value> {
        let found = attributes.iter().find(|kv| kv.key == key)?;
        found.value.clone()?.value
    }

    fn text(value: &str) -> Option<any_value::Value> {
        Some(any_value::Value::StringValue(value.into()))
    }

    #[test]
    fn spans_nest_and_carry_their_fields() {
        let spans = recorded(1.0, || {
            let outer = tracing::info_span!(
                "mcp.request",
                otel.kind = "server",
                mcp.method.name = "tools/call",
                jsonrpc.request.id = %7,
                big = u64::MAX,
                error.type = tracing::field::Empty,
            );
            outer.in_scope(|| {
                let inner = tracing::debug_span!("cache.lookup", cache.hit = false, ratio = 0.5);
                inner.in_scope(|| tracing::warn!(code = 7, detail = "d", "slow upstream"));
                rename(&outer, || "tools/call echo__echo".into());
                outer.record("error.type", -32602);
                tracing::error!(reason = %"gone", "failed");
            });
            // Not Bulwark's: never recorded.
            tracing::info_span!(target: "hyper", "connection").in_scope(|| {});
        });
        assert_eq!(spans.len(), 2, "{spans:#?}");
        let (inner, outer) = (&spans[0], &spans[1]);
        assert_eq!(inner.name, "cache.lookup");
        assert_eq!(inner.kind, 1);
        assert_eq!(inner.trace_id, outer.trace_id);
        assert_eq!(inner.parent_span_id, outer.span_id);
        assert!(outer.parent_span_id.is_empty());
        assert_eq!(
            attribute(&inner.attributes, "cache.hit"),
            Some(any_value::Value::BoolValue(false))
        );
        assert_eq!(
            attribute(&inner.attributes, "ratio"),
            Some(any_value::Value::DoubleValue(0.5))
        );
        let event = &inner.events[0];
        assert_eq!(event.name, "slow upstream");
        assert!(event.time_unix_nano >= inner.start_time_unix_nano);
        assert_eq!(attribute(&event.attributes, "level"), text("WARN"));
        assert_eq!(attribute(&event.attributes, "detail"), text("d"));
        assert_eq!(
            attribute(&event.attributes, "code"),
            Some(any_value::Value::IntValue(7))
        );
        assert_eq!(outer.name, "tools/call echo__echo");
        assert_eq!(outer.kind, 2, "server");
        assert_eq!(outer.status.as_ref().unwrap().message, "failed");
        assert_eq!(outer.status.as_ref().unwrap().code, 2);
        assert_eq!(outer.events[0].name, "failed");
        assert_eq!(
            attribute(&outer.events[0].attributes, "reason"),
            text("gone")
        );
        assert!(inner.status.as_ref().unwrap().message.is_empty());
        assert_eq!(
            attribute(&outer.attributes, "mcp.method.name"),
            text("tools/call")
        );
        assert_eq!(
            attribute(&outer.attributes, "jsonrpc.request.id"),
            text("7")
        );
        assert_eq!(
            attribute(&outer.attributes, "big"),
            text("18446744073709551615")
        );
        assert_eq!(
            attribute(&outer.attributes, "error.type"),
            Some(any_value::Value::IntValue(-32602))
        );
        assert!(attribute(&outer.attributes, "otel.kind").is_none());
        assert!(outer.end_time_unix_nano >= outer.start_time_unix_nano);
        assert_eq!(outer.flags, 0x101, "sampled, parent known local");
    }

    /// The queue every step of this test binary goes to.
    fn step_queue() -> &'static Arc<Queue> {
        static QUEUE: std::sync::OnceLock<Arc<Queue>> = std::sync::OnceLock::new();
        QUEUE.get_or_init(|| {
            let queue = Arc::new(Queue::new(1024));
            trace_context::install_steps(Some(queue.clone()));
            queue
        })
    }

    fn decoded(batches: Vec<super::super::export::Batch>) -> Vec<Span> {
        batches
            .iter()
            .flat_map(|batch| {
                let request = crate::telemetry::traces::otlp::encode(&batch.bytes, b"", "");
                ExportTraceServiceRequest::decode(request.as_slice())
                    .unwrap()
                    .resource_spans
            })
            .flat_map(|resource| resource.scope_spans)
            .flat_map(|scope| scope.spans)
            .collect()
    }

    #[test]
    fn steps_are_children_of_the_current_span_and_of_each_other() {
        let steps = step_queue();
        let mut meta = serde_json::Map::new();
        let mut root_cx = None;
        let mut step_cx = None;
        let spans = recorded(1.0, || {
            // Outside any span: no ids, nothing recorded.
            assert!(trace_context::Step::start("orphan").context().is_none());
            let root = tracing::info_span!("mcp.request");
            root_cx = trace_context::context(&root);
            root.in_scope(|| {
                let mut step = trace_context::Step::start("upstream.call").client();
                step.str("bulwark.upstream", "echo")
                    .bool("cache.hit", false);
                step.rename(|| "tools/call echo".into());
                step.to_meta(&mut meta);
                step_cx = step.context();
                let mut child = step.child("guardrail.provider");
                child.failed();
                drop(child);
            });
        });
        assert_eq!(spans.len(), 1, "only the tracing span: {spans:#?}");
        let (root_cx, step_cx) = (root_cx.unwrap(), step_cx.unwrap());
        let ours: Vec<Span> = decoded(steps.take())
            .into_iter()
            .filter(|span| span.trace_id == root_cx.trace_id)
            .collect();
        assert_eq!(ours.len(), 2, "{ours:#?}");
        let (child, step) = (&ours[0], &ours[1]);
        assert_eq!(step.name, "tools/call echo");
        assert_eq!(step.kind, 3, "client");
        assert_eq!(step.parent_span_id, root_cx.span_id);
        assert_eq!(step.span_id, step_cx.span_id);
        assert_eq!(
            attribute(&step.attributes, "bulwark.upstream"),
            text("echo")
        );
        assert_eq!(
            attribute(&step.attributes, "cache.hit"),
            Some(any_value::Value::BoolValue(false))
        );
        assert!(step.end_time_unix_nano >= step.start_time_unix_nano);
        assert_eq!(child.name, "guardrail.provider");
        assert_eq!(child.parent_span_id, step.span_id);
        assert_eq!(child.status.as_ref().unwrap().code, 2, "error");
        assert_eq!(meta["traceparent"], step_cx.traceparent());
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
        assert_eq!(root.trace_id, remote.trace_id);
        assert_eq!(root.parent_span_id, remote.span_id);
        assert_eq!(root.trace_state, "vendor=v1");
        assert_eq!(root.flags, 0x301, "sampled, parent known remote");
        assert_eq!(spans[0].parent_span_id, root.span_id);
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
