//! Steps: child spans of the current request span, recorded without the
//! `tracing` registry.
//!
//! The gateway's own steps on the request path (authentication, each
//! guardrail check, the cache lookup, the upstream call) are timed, not
//! entered: nothing logs "inside" them. As `tracing` spans each cost about
//! 4,000 instructions (the registry's slab entry, per-layer filter state,
//! both layers' callbacks, an extension map), most of tracing's cost per
//! call. A step takes its parent's ids from the current span, encodes its
//! fields into its OTLP `Span` as it gets them, and hands the finished span
//! to the exporter when it is dropped. Steps nest ([`Step::child`]) and pass
//! their context on ([`Step::to_meta`]) as spans do. With tracing off,
//! starting one is one atomic load.
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use serde_json::{Map, Value};
use tracing_subscriber::Registry;
use tracing_subscriber::registry::LookupSpan;

use super::encode::{self, AttributesOf};
use super::{Recording, SpanIds, SpanKind, TraceContext};

/// Where finished spans go: the exporter's queue.
pub trait SpanSink: Send + Sync {
    /// Takes one finished, encoded `Span` message.
    fn push(&self, span: &[u8]);
}

static INSTALLED: AtomicBool = AtomicBool::new(false);
static SINK: OnceLock<Arc<dyn SpanSink>> = OnceLock::new();

/// Room for a step's attributes and its end: they fit without growing.
const BODY_CAPACITY: usize = 256;

/// Turns steps on, once per process, when the trace layer is installed:
/// every step under a span with ids gets ids (for propagation), and the
/// sampled ones are recorded into `sink` when there is one.
pub fn install(sink: Option<Arc<dyn SpanSink>>) {
    if let Some(sink) = sink {
        let _ = SINK.set(sink);
    }
    INSTALLED.store(true, Ordering::Release);
}

/// A step in progress; recorded when dropped. Empty (and free) when
/// tracing is off or the current span has no ids.
#[derive(Debug, Default)]
#[must_use = "a step ends, and is recorded, when it is dropped"]
pub struct Step(Option<Box<SpanIds>>);

/// What a step takes from its parent.
struct Parent {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    sampled: bool,
    state: Option<Arc<str>>,
}

impl Step {
    /// Starts `name` as a child of the current span.
    pub fn start(name: &'static str) -> Self {
        if !INSTALLED.load(Ordering::Relaxed) {
            return Self(None);
        }
        Self::under(current_parent(), name)
    }

    /// Starts `name` as a child of this step.
    pub fn child(&self, name: &'static str) -> Self {
        let parent = self.0.as_deref().map(|ids| Parent {
            trace_id: ids.trace_id,
            span_id: ids.span_id,
            sampled: ids.sampled,
            state: ids.state.clone(),
        });
        Self::under(parent, name)
    }

    fn under(parent: Option<Parent>, name: &'static str) -> Self {
        let Some(parent) = parent else {
            return Self(None);
        };
        let recording = (parent.sampled && SINK.get().is_some()).then(|| Recording {
            name: Cow::Borrowed(name),
            kind: SpanKind::Internal,
            start: SystemTime::now(),
            body: Vec::with_capacity(BODY_CAPACITY),
            error: None,
        });
        Self(Some(Box::new(SpanIds {
            trace_id: parent.trace_id,
            span_id: fastrand::u64(1..).to_be_bytes(),
            parent_id: Some(parent.span_id),
            parent_remote: false,
            sampled: parent.sampled,
            state: parent.state,
            recording,
        })))
    }

    fn recording(&mut self) -> Option<&mut Recording> {
        self.0.as_mut()?.recording.as_mut()
    }

    /// Marks it as a request the gateway makes (`SpanKind::Client`).
    pub fn client(mut self) -> Self {
        if let Some(recording) = self.recording() {
            recording.kind = SpanKind::Client;
        }
        self
    }

    /// Names it in its trace (`name` is only called when it is recorded).
    pub fn rename(&mut self, name: impl FnOnce() -> String) {
        if let Some(recording) = self.recording() {
            recording.name = Cow::Owned(name());
        }
    }

    /// Records a text attribute.
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        if let Some(recording) = self.recording() {
            encode::str_attribute(&mut recording.body, AttributesOf::Span, key, value);
        }
        self
    }

    /// Records a flag attribute.
    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        if let Some(recording) = self.recording() {
            encode::bool_attribute(&mut recording.body, AttributesOf::Span, key, value);
        }
        self
    }

    /// Marks it failed (status `ERROR`, no message).
    pub fn failed(&mut self) -> &mut Self {
        if let Some(recording) = self.recording() {
            recording.error.get_or_insert_with(String::new);
        }
        self
    }

    /// The context a child of this step (here or in the next hop) continues.
    pub fn context(&self) -> Option<TraceContext> {
        self.0.as_deref().map(SpanIds::context)
    }

    /// Writes this step's context into `meta` (see [`super::to_meta`]).
    pub fn to_meta(&self, meta: &mut Map<String, Value>) {
        if let Some(cx) = self.context() {
            super::write_meta(cx, meta);
        }
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        let Some(ids) = self.0.as_deref_mut() else {
            return;
        };
        if let (Some(recording), Some(sink)) = (ids.recording.take(), SINK.get()) {
            sink.push(&recording.finish(ids));
        }
    }
}

/// The ids of the current span, when the trace layer gave it some.
fn current_parent() -> Option<Parent> {
    tracing::dispatcher::get_default(|dispatch| {
        let current = dispatch.current_span();
        let id = current.id()?;
        let data = dispatch.downcast_ref::<Registry>()?.span(id)?;
        let extensions = data.extensions();
        let ids = extensions.get::<SpanIds>()?;
        Some(Parent {
            trace_id: ids.trace_id,
            span_id: ids.span_id,
            sampled: ids.sampled,
            state: ids.state.clone(),
        })
    })
}
