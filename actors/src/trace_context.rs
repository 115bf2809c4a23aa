//! W3C trace context (`traceparent`, `tracestate`) where Bulwark carries it:
//! HTTP headers and an MCP request's `_meta` (the keys are the same), and
//! the ids of the spans the gateway's trace layer records.
//!
//! The layer (in the gateway crate) stores a [`SpanIds`] in each span it
//! sees; this module reads and rewrites them through the `tracing` registry,
//! so code anywhere (an actor, a transport) can continue a remote trace or
//! pass its own on. Reading a context that is absent or invalid yields
//! `None`, and writing one only happens for a span that has ids, so with
//! tracing off nothing is read or written.
pub mod encode;
mod step;

pub use step::{SpanSink, Step, install as install_steps};

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};
use tracing_subscriber::Registry;
use tracing_subscriber::registry::LookupSpan;

/// The W3C `traceparent` key (header name and `_meta` key).
pub const TRACEPARENT: &str = "traceparent";
/// The W3C `tracestate` key (header name and `_meta` key).
pub const TRACESTATE: &str = "tracestate";

/// The longest `tracestate` passed on (the W3C limit is 512 characters).
const MAX_TRACESTATE: usize = 512;

/// A span's place in a trace, as `traceparent` and `tracestate` carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace, 16 bytes, not all zero.
    pub trace_id: [u8; 16],
    /// The span, 8 bytes, not all zero.
    pub span_id: [u8; 8],
    /// The sampled flag: the caller records this trace.
    pub sampled: bool,
    /// The vendor state, passed on unchanged.
    pub state: Option<Arc<str>>,
}

impl TraceContext {
    /// Parses a `traceparent` (and its `tracestate`) as W3C Trace Context
    /// level 1 reads them: a version other than `ff`, lowercase hex ids
    /// that are not all zero, and for version `00` nothing after the flags.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let value = traceparent.trim().as_bytes();
        if value.len() < 55 {
            return None;
        }
        let version = hex_byte(&value[0..2])?;
        if version == 0xff || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
            return None;
        }
        // Version 00 is exactly 55 characters; a later version may add
        // fields after a dash, which are ignored.
        if (version == 0 && value.len() != 55) || (value.len() > 55 && value[55] != b'-') {
            return None;
        }
        let mut trace_id = [0u8; 16];
        hex_into(&value[3..35], &mut trace_id)?;
        let mut span_id = [0u8; 8];
        hex_into(&value[36..52], &mut span_id)?;
        let flags = hex_byte(&value[53..55])?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        let state = tracestate
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= MAX_TRACESTATE)
            .filter(|s| s.bytes().all(|b| (0x20..0x7f).contains(&b)))
            .map(Arc::from);
        Some(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
            state,
        })
    }

    /// The `traceparent` value: version `00`.
    pub fn traceparent(&self) -> String {
        let mut out = String::with_capacity(55);
        out.push_str("00-");
        push_hex(&mut out, &self.trace_id);
        out.push('-');
        push_hex(&mut out, &self.span_id);
        out.push_str(if self.sampled { "-01" } else { "-00" });
        out
    }
}

/// What the trace layer keeps in every span it sees: the ids, the parent,
/// the sampling decision and, when recorded, the span's [`Recording`].
/// Rewritten by [`set_parent`].
#[derive(Debug, Clone)]
pub struct SpanIds {
    /// The trace this span belongs to.
    pub trace_id: [u8; 16],
    /// This span.
    pub span_id: [u8; 8],
    /// Its parent, local or remote; `None` for a root.
    pub parent_id: Option<[u8; 8]>,
    /// Whether the parent came from another process.
    pub parent_remote: bool,
    /// Whether this span is recorded and exported.
    pub sampled: bool,
    /// The vendor `tracestate` inherited from a remote parent.
    pub state: Option<Arc<str>>,
    /// What an exporting layer records while the span is open. Kept here,
    /// not in an extension of its own: each extension costs the span an
    /// allocation and a map insert, and every lookup another search.
    pub recording: Option<Recording>,
}

/// The OTLP span kinds Bulwark uses (`otel.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// Work inside the gateway.
    Internal,
    /// A request the gateway serves.
    Server,
    /// A request the gateway makes.
    Client,
}

/// What a sampled span records while it is open (filled by the gateway's
/// trace layer).
#[derive(Debug, Clone)]
pub struct Recording {
    /// `otel.name` when given, else the span's name.
    pub name: Cow<'static, str>,
    /// `otel.kind`.
    pub kind: SpanKind,
    /// When the span started.
    pub start: SystemTime,
    /// Its attributes (but the `otel.*` fields) and its WARN and ERROR
    /// events, encoded as OTLP `Span` message fields as they are recorded.
    pub body: Vec<u8>,
    /// `otel.status_code = "ERROR"` or an ERROR event: the error's text, if any.
    pub error: Option<String>,
}

impl Recording {
    /// The finished OTLP `Span` message of the span `ids` names, ending now.
    pub fn finish(mut self, ids: &SpanIds) -> Vec<u8> {
        encode::finish_span(
            &mut self.body,
            &encode::SpanEnd {
                ids,
                name: &self.name,
                kind: self.kind,
                start: self.start,
                end: SystemTime::now(),
                error: self.error.as_deref(),
            },
        );
        self.body
    }
}

impl SpanIds {
    /// The context a child of this span (here or in the next hop) continues.
    pub fn context(&self) -> TraceContext {
        TraceContext {
            trace_id: self.trace_id,
            span_id: self.span_id,
            sampled: self.sampled,
            state: self.state.clone(),
        }
    }
}

/// Lowercase hex of `bytes` appended to `out`.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
}

/// The remote context a header map carries, if a valid one.
pub fn from_headers(headers: &HeaderMap) -> Option<TraceContext> {
    let parent = headers.get(TRACEPARENT)?.to_str().ok()?;
    let state = headers.get(TRACESTATE).and_then(|v| v.to_str().ok());
    TraceContext::parse(parent, state)
}

/// The remote context a request's `_meta` carries, if a valid one.
pub fn from_meta(meta: &Map<String, Value>) -> Option<TraceContext> {
    let parent = meta.get(TRACEPARENT)?.as_str()?;
    let state = meta.get(TRACESTATE).and_then(Value::as_str);
    TraceContext::parse(parent, state)
}

/// Writes `span`'s context into `meta` (replacing what the client sent):
/// the next hop sees this span as its parent. Nothing when `span` has no
/// ids (tracing off, span disabled).
pub fn to_meta(span: &tracing::Span, meta: &mut Map<String, Value>) {
    if let Some(cx) = context(span) {
        write_meta(cx, meta);
    }
}

/// Writes `cx` into `meta`, replacing the client's `traceparent` and
/// `tracestate`.
fn write_meta(cx: TraceContext, meta: &mut Map<String, Value>) {
    meta.insert(TRACEPARENT.into(), Value::String(cx.traceparent()));
    match cx.state {
        Some(state) => meta.insert(TRACESTATE.into(), Value::String(state.to_string())),
        None => meta.remove(TRACESTATE),
    };
}

/// Writes `span`'s context as headers, if it has ids.
pub fn to_headers(span: &tracing::Span, headers: &mut HashMap<HeaderName, HeaderValue>) {
    let Some(cx) = context(span) else {
        return;
    };
    if let Ok(value) = HeaderValue::try_from(cx.traceparent()) {
        headers.insert(HeaderName::from_static(TRACEPARENT), value);
    }
    if let Some(value) = cx.state.and_then(|s| HeaderValue::try_from(&*s).ok()) {
        headers.insert(HeaderName::from_static(TRACESTATE), value);
    }
}

/// `span`'s own context, when the trace layer gave it ids.
pub fn context(span: &tracing::Span) -> Option<TraceContext> {
    with_extension(span, |ids: &mut SpanIds| ids.context())
}

/// Makes `remote` the parent of `span`: its trace, its sampling decision.
/// Call before `span` has children; they take their trace from it when
/// they start. Nothing when `span` has no ids.
pub fn set_parent(span: &tracing::Span, remote: TraceContext) {
    with_extension(span, |ids: &mut SpanIds| {
        ids.trace_id = remote.trace_id;
        ids.parent_id = Some(remote.span_id);
        ids.parent_remote = true;
        ids.sampled = remote.sampled;
        ids.state = remote.state;
    });
}

/// Runs `f` on the `T` a layer keeps in `span`'s registry extensions, if
/// the subscriber is a registry, `span` is enabled and it has one.
pub fn with_extension<T: Send + Sync + 'static, R>(
    span: &tracing::Span,
    f: impl FnOnce(&mut T) -> R,
) -> Option<R> {
    span.with_subscriber(|(id, dispatch)| {
        let data = dispatch.downcast_ref::<Registry>()?.span(id)?;
        let mut extensions = data.extensions_mut();
        extensions.get_mut::<T>().map(f)
    })
    .flatten()
}

fn hex_into(text: &[u8], out: &mut [u8]) -> Option<()> {
    for (pair, byte) in text.chunks_exact(2).zip(out.iter_mut()) {
        *byte = hex_byte(pair)?;
    }
    Some(())
}

/// Two lowercase hex digits (W3C: uppercase is invalid).
fn hex_byte(pair: &[u8]) -> Option<u8> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    Some(digit(pair[0])? << 4 | digit(pair[1])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn reads_a_valid_traceparent_from_headers_and_meta() {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static(PARENT));
        headers.insert(TRACESTATE, HeaderValue::from_static("congo=t61rcWkgMzE"));
        let cx = from_headers(&headers).unwrap();
        assert_eq!(cx.traceparent(), PARENT);
        assert_eq!(cx.state.as_deref(), Some("congo=t61rcWkgMzE"));

        let mut meta = Map::new();
        meta.insert(TRACEPARENT.into(), Value::String(PARENT.into()));
        let cx = from_meta(&meta).unwrap();
        assert!(cx.sampled);
        assert_eq!(cx.span_id, [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
    }

    #[test]
    fn ignores_absent_or_malformed_context() {
        assert!(from_headers(&HeaderMap::new()).is_none());
        let mut meta = Map::new();
        meta.insert(TRACEPARENT.into(), Value::String("00-zz-yy-01".into()));
        assert!(from_meta(&meta).is_none());
        meta.insert(TRACEPARENT.into(), Value::Bool(true));
        assert!(from_meta(&meta).is_none());
        for bad in [
            // all-zero trace id, all-zero span id
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // uppercase hex, version ff, version 00 with a tail
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xx",
            // wrong separators
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(TraceContext::parse(bad, None).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_later_version_may_carry_more_fields() {
        let future = format!("01{}-extra", &PARENT[2..]);
        let cx = TraceContext::parse(&future, None).unwrap();
        assert_eq!(&cx.traceparent()[2..], &PARENT[2..]);
        assert!(TraceContext::parse(&format!("01{}x", &PARENT[2..]), None).is_none());
    }

    #[test]
    fn writes_nothing_without_span_ids() {
        let mut meta = Map::new();
        to_meta(&tracing::Span::none(), &mut meta);
        assert!(meta.is_empty());
        let mut headers = HashMap::new();
        to_headers(&tracing::Span::none(), &mut headers);
        assert!(headers.is_empty());
    }
}
