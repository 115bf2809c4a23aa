//! OTLP/HTTP span export, and the protobuf encoding the trace layer writes
//! spans in as they are recorded.
//!
//! `opentelemetry-otlp` first converts each batch into the generated
//! protobuf types (every key, name and value copied into a new `String`,
//! the instrumentation scope hashed per span), sizes them, encodes them and
//! drops them: under callgrind that was ~67,000 instructions per traced
//! `tools/call`. Here each field is encoded once, when the span records it
//! (no `String` per attribute, nothing kept to encode later); a closed span
//! is appended to its batch, and an export only wraps the batch in its
//! resource, encoded once at start.
//!
//! The bytes are an `ExportTraceServiceRequest` as the OTLP/HTTP binary
//! protocol defines it; a unit test decodes them with `opentelemetry-proto`
//! and compares them with that crate's own conversion of the same spans.
use std::fmt::{self, Write as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::{Array, Value};
use opentelemetry_sdk::Resource;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use bulwark_actors::trace_context::{SpanIds, SpanKind as Kind};

/// The instrumentation scope of every span.
const SCOPE: &str = "bulwark";

/// Sends span batches to an OTLP/HTTP collector (`…/v1/traces`).
#[derive(Debug)]
pub struct OtlpHttp {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    /// The `Resource` message, encoded once.
    resource: Vec<u8>,
    resource_schema: String,
}

impl OtlpHttp {
    /// An exporter posting to `endpoint` (checked here: a bad URL fails the
    /// start, not every export) with `timeout` per request, and the
    /// headers of `OTEL_EXPORTER_OTLP_TRACES_HEADERS` (else
    /// `OTEL_EXPORTER_OTLP_HEADERS`), as the OpenTelemetry SDKs read them.
    pub fn new(endpoint: &str, resource: &Resource, timeout: Duration) -> Result<Self, String> {
        let endpoint =
            reqwest::Url::parse(endpoint).map_err(|err| format!("endpoint {endpoint:?}: {err}"))?;
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        if let Ok(list) = std::env::var("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
            .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_HEADERS"))
        {
            for (name, value) in parse_headers(&list) {
                headers.insert(name, value);
            }
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .default_headers(headers)
            .build()
            .map_err(|err| err.to_string())?;
        let mut encoded = Vec::new();
        for (key, value) in resource.iter() {
            message(&mut encoded, 1, |buf| key_value(buf, key.as_str(), value));
        }
        Ok(Self {
            client,
            endpoint,
            resource: encoded,
            resource_schema: resource.schema_url().unwrap_or_default().to_owned(),
        })
    }

    /// Posts `batch` (encoded spans, see [`push_span`]); an error says why
    /// the collector did not take it.
    pub async fn export(&self, batch: &[u8]) -> Result<(), String> {
        let body = encode(batch, &self.resource, &self.resource_schema);
        let response = self
            .client
            .post(self.endpoint.clone())
            .body(body)
            .send()
            .await
            .map_err(|err| err.to_string())?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("collector answered {status}"))
        }
    }
}

/// `name=value,name2=value2`, values percent-decoded; malformed pairs skipped.
fn parse_headers(list: &str) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
    list.split(',').filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        let value = percent_encoding::percent_decode_str(value.trim())
            .decode_utf8()
            .ok()?;
        Some((
            HeaderName::from_bytes(name.trim().as_bytes()).ok()?,
            HeaderValue::from_str(&value).ok()?,
        ))
    })
}

/// An `ExportTraceServiceRequest` holding `spans` (encoded `ScopeSpans.spans`
/// fields, as [`push_span`] writes them) under one resource (its encoded
/// attributes and schema) and Bulwark's scope. The batch is copied once;
/// the lengths around it are known up front, so nothing is moved.
pub fn encode(spans: &[u8], resource: &[u8], resource_schema: &str) -> Vec<u8> {
    if spans.is_empty() {
        return Vec::new();
    }
    // ScopeSpans.scope = 1 (InstrumentationScope.name = 1)
    let mut scope = Vec::with_capacity(SCOPE.len() + 4);
    message(&mut scope, 1, |buf| string(buf, 1, SCOPE));
    let scope_spans = scope.len() + spans.len();
    let mut schema = Vec::new();
    string(&mut schema, 3, resource_schema);
    // ResourceSpans: resource = 1, scope_spans = 2, schema_url = 3.
    let resource_spans = delimited_len(resource.len()) + delimited_len(scope_spans) + schema.len();
    let mut buf = Vec::with_capacity(delimited_len(resource_spans));
    // ExportTraceServiceRequest.resource_spans = 1
    header(&mut buf, 1, resource_spans);
    header(&mut buf, 1, resource.len());
    buf.extend_from_slice(resource);
    header(&mut buf, 2, scope_spans);
    buf.extend_from_slice(&scope);
    buf.extend_from_slice(spans);
    buf.extend_from_slice(&schema);
    buf
}

/// Appends `span` (a `Span` message's fields) to `batch` as one
/// `ScopeSpans.spans` entry.
pub fn push_span(batch: &mut Vec<u8>, span: &[u8]) {
    header(batch, 2, span.len());
    batch.extend_from_slice(span);
}

/// Where an attribute goes: a span's (`Span.attributes`) or an event's
/// (`Span.Event.attributes`).
#[derive(Debug, Clone, Copy)]
pub enum AttributesOf {
    /// `Span.attributes` = 9.
    Span = 9,
    /// `Span.Event.attributes` = 3.
    Event = 3,
}

/// A text attribute.
pub fn str_attribute(buf: &mut Vec<u8>, to: AttributesOf, key: &str, value: &str) {
    let (key_len, value_len) = (key.len(), value.len());
    // Nearly every attribute is short: then each length is one byte, and
    // the fields around the key and the value are two slices of known bytes.
    if key_len + value_len < 120 && key_len > 0 {
        let any_value = 2 + value_len;
        let key_value = 2 + key_len + 2 + any_value;
        buf.reserve(2 + key_value);
        buf.extend_from_slice(&[
            ((to as u8) << 3) | LENGTH_DELIMITED,
            key_value as u8,
            (1 << 3) | LENGTH_DELIMITED,
            key_len as u8,
        ]);
        buf.extend_from_slice(key.as_bytes());
        buf.extend_from_slice(&[
            (2 << 3) | LENGTH_DELIMITED,
            any_value as u8,
            (1 << 3) | LENGTH_DELIMITED,
            value_len as u8,
        ]);
        buf.extend_from_slice(value.as_bytes());
        return;
    }
    key_value_sized(buf, to, key, delimited_len(value.len()), |buf| {
        string_always(buf, 1, value);
    });
}

/// A text attribute formatted straight into the buffer (`?` and `%`
/// fields), without a `String` in between.
pub fn debug_attribute(buf: &mut Vec<u8>, to: AttributesOf, key: &str, value: &dyn fmt::Debug) {
    message(buf, to as u32, |buf| {
        string(buf, 1, key);
        message(buf, 2, |buf| message(buf, 1, |buf| write_debug(buf, value)));
    });
}

/// An integer attribute.
pub fn i64_attribute(buf: &mut Vec<u8>, to: AttributesOf, key: &str, value: i64) {
    let len = 1 + varint_len(value as u64);
    key_value_sized(buf, to, key, len, |buf| i64_value(buf, value));
}

/// A float attribute.
pub fn f64_attribute(buf: &mut Vec<u8>, to: AttributesOf, key: &str, value: f64) {
    key_value_sized(buf, to, key, 9, |buf| f64_value(buf, value));
}

/// A flag attribute.
pub fn bool_attribute(buf: &mut Vec<u8>, to: AttributesOf, key: &str, value: bool) {
    key_value_sized(buf, to, key, 2, |buf| bool_value(buf, value));
}

/// A `KeyValue` as field `to`, its `AnyValue` of `value_len` bytes written by
/// `value`. The lengths are known before a byte is written: no length to
/// fill in afterwards, one reservation.
fn key_value_sized(
    buf: &mut Vec<u8>,
    to: AttributesOf,
    key: &str,
    value_len: usize,
    value: impl FnOnce(&mut Vec<u8>),
) {
    let key_len = if key.is_empty() {
        0
    } else {
        delimited_len(key.len())
    };
    let len = key_len + delimited_len(value_len);
    buf.reserve(delimited_len(len));
    header(buf, to as u32, len);
    string(buf, 1, key);
    header(buf, 2, value_len);
    value(buf);
}

/// A `Span.Event` (field 11) at `time`; `fields` writes its name and
/// attributes (see [`event_name`]).
pub fn event(buf: &mut Vec<u8>, time: SystemTime, fields: impl FnOnce(&mut Vec<u8>)) {
    message(buf, 11, |buf| {
        fixed64(buf, 1, nanos(time));
        fields(buf);
    });
}

/// An event's name (`Span.Event.name` = 2), inside [`event`].
pub fn event_name(buf: &mut Vec<u8>, name: &dyn fmt::Debug) {
    message(buf, 2, |buf| write_debug(buf, name));
}

/// What a span knows only when it ends.
pub struct SpanEnd<'a> {
    /// Its ids and parent.
    pub ids: &'a SpanIds,
    /// Its name.
    pub name: &'a str,
    /// Its kind.
    pub kind: Kind,
    /// When it started.
    pub start: SystemTime,
    /// When it ended.
    pub end: SystemTime,
    /// Its error, if it failed (the text may be empty).
    pub error: Option<&'a str>,
}

/// Appends the rest of a `Span` message to `buf`, which holds its
/// attributes and events: field order is free in protobuf, so they could
/// be written as they were recorded.
pub fn finish_span(buf: &mut Vec<u8>, span: &SpanEnd<'_>) {
    let ids = span.ids;
    let state = ids.state.as_deref().unwrap_or_default();
    let error = span.error.map_or(0, str::len);
    buf.reserve(96 + span.name.len() + state.len() + error);
    bytes(buf, 1, &ids.trace_id);
    bytes(buf, 2, &ids.span_id);
    string(buf, 3, state);
    if let Some(parent) = &ids.parent_id {
        bytes(buf, 4, parent);
    }
    string(buf, 5, span.name);
    uint(buf, 6, kind(span.kind));
    fixed64(buf, 7, nanos(span.start));
    fixed64(buf, 8, nanos(span.end));
    // Status: message = 2, code = 3 (the generated code always sends it).
    message(buf, 15, |buf| {
        if let Some(description) = span.error {
            string(buf, 2, description);
            uint(buf, 3, 2);
        }
    });
    let trace_flags = u8::from(ids.sampled);
    fixed32(buf, 16, flags(ids.parent_remote, trace_flags));
}

/// `value`'s `Debug` text (a `%` field's `Display`) written into `buf`.
fn write_debug(buf: &mut Vec<u8>, value: &dyn fmt::Debug) {
    struct Bytes<'a>(&'a mut Vec<u8>);
    impl fmt::Write for Bytes<'_> {
        fn write_str(&mut self, text: &str) -> fmt::Result {
            self.0.extend_from_slice(text.as_bytes());
            Ok(())
        }
    }
    let _ = write!(Bytes(buf), "{value:?}");
}

/// `SpanFlags`: the W3C trace flags, plus "whether the parent is remote is
/// known" (0x100) and "it is" (0x200).
fn flags(remote: bool, trace_flags: u8) -> u32 {
    u32::from(trace_flags) | 0x100 | if remote { 0x200 } else { 0 }
}

fn kind(kind: Kind) -> u64 {
    match kind {
        Kind::Internal => 1,
        Kind::Server => 2,
        Kind::Client => 3,
    }
}

fn nanos(time: SystemTime) -> u64 {
    // Not `as_nanos`: its u128 arithmetic costs more than the rest of a span's ids.
    time.duration_since(UNIX_EPOCH)
        .map(|d| {
            d.as_secs()
                .saturating_mul(1_000_000_000)
                .saturating_add(u64::from(d.subsec_nanos()))
        })
        .unwrap_or(0)
}

/// A `KeyValue` message's fields: key = 1, value (`AnyValue`) = 2.
fn key_value(buf: &mut Vec<u8>, key: &str, value: &Value) {
    string(buf, 1, key);
    message(buf, 2, |buf| any_value(buf, value));
}

/// An `AnyValue`'s fields: string 1, bool 2, int 3, double 4, array 5.
fn any_value(buf: &mut Vec<u8>, value: &Value) {
    match value {
        Value::String(text) => string_always(buf, 1, text.as_str()),
        Value::Bool(flag) => bool_value(buf, *flag),
        Value::I64(number) => i64_value(buf, *number),
        Value::F64(number) => f64_value(buf, *number),
        Value::Array(array) => message(buf, 5, |buf| {
            // ArrayValue.values = 1
            let mut each = |value: Value| message(buf, 1, |buf| any_value(buf, &value));
            match array {
                Array::Bool(values) => values.iter().for_each(|v| each(Value::Bool(*v))),
                Array::I64(values) => values.iter().for_each(|v| each(Value::I64(*v))),
                Array::F64(values) => values.iter().for_each(|v| each(Value::F64(*v))),
                Array::String(values) => values.iter().for_each(|v| each(Value::String(v.clone()))),
                other => each(Value::String(other.to_string().into())),
            }
        }),
        other => string_always(buf, 1, &other.to_string()),
    }
}

fn bool_value(buf: &mut Vec<u8>, flag: bool) {
    tag(buf, 2, VARINT);
    varint(buf, u64::from(flag));
}

fn i64_value(buf: &mut Vec<u8>, number: i64) {
    tag(buf, 3, VARINT);
    // int64 as a varint: two's complement, 10 bytes when negative.
    varint(buf, number as u64);
}

fn f64_value(buf: &mut Vec<u8>, number: f64) {
    tag(buf, 4, FIXED64);
    buf.extend_from_slice(&number.to_le_bytes());
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LENGTH_DELIMITED: u8 = 2;
const FIXED32: u8 = 5;

#[inline]
fn varint(buf: &mut Vec<u8>, value: u64) {
    // Most are lengths and enums under 128: one byte.
    if value < 0x80 {
        buf.push(value as u8);
        return;
    }
    let (bytes, len) = varint_bytes(value);
    buf.extend_from_slice(&bytes[..len]);
}

/// `value` as a protobuf varint: 7 bits a byte, low first, at most 10 bytes.
fn varint_bytes(mut value: u64) -> ([u8; 10], usize) {
    let mut bytes = [0u8; 10];
    let mut len = 0;
    while value >= 0x80 {
        bytes[len] = (value as u8) | 0x80;
        value >>= 7;
        len += 1;
    }
    bytes[len] = value as u8;
    (bytes, len + 1)
}

#[inline]
fn tag(buf: &mut Vec<u8>, field: u32, wire: u8) {
    // Every field number but `Span.flags` (16) fits a one-byte tag.
    if field < 16 {
        buf.push(((field as u8) << 3) | wire);
    } else {
        varint(buf, (u64::from(field) << 3) | u64::from(wire));
    }
}

/// A proto3 scalar field: left out when it holds the default (zero).
fn uint(buf: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        tag(buf, field, VARINT);
        varint(buf, value);
    }
}

fn fixed64(buf: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        tag(buf, field, FIXED64);
        buf.extend_from_slice(&value.to_le_bytes());
    }
}

fn fixed32(buf: &mut Vec<u8>, field: u32, value: u32) {
    if value != 0 {
        tag(buf, field, FIXED32);
        buf.extend_from_slice(&value.to_le_bytes());
    }
}

fn bytes(buf: &mut Vec<u8>, field: u32, value: &[u8]) {
    if !value.is_empty() {
        string_bytes(buf, field, value);
    }
}

fn string(buf: &mut Vec<u8>, field: u32, value: &str) {
    bytes(buf, field, value.as_bytes());
}

/// A string field sent even when empty (a oneof member: its presence is
/// what says which value it is).
fn string_always(buf: &mut Vec<u8>, field: u32, value: &str) {
    string_bytes(buf, field, value.as_bytes());
}

fn string_bytes(buf: &mut Vec<u8>, field: u32, value: &[u8]) {
    tag(buf, field, LENGTH_DELIMITED);
    varint(buf, value.len() as u64);
    buf.extend_from_slice(value);
}

/// A nested message, written in place after a one-byte length: most
/// (attributes, values, events) are shorter than 128 bytes, and their length
/// is then filled in; a longer one moves its bytes once to make room. No
/// sizing pass, no allocation.
fn message(buf: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    tag(buf, field, LENGTH_DELIMITED);
    let at = buf.len();
    buf.push(0);
    body(buf);
    let len = buf.len() - at - 1;
    if len < 0x80 {
        buf[at] = len as u8;
        return;
    }
    let (header, used) = varint_bytes(len as u64);
    buf[at] = header[0];
    buf.splice(at + 1..at + 1, header[1..used].iter().copied());
}

/// A length-delimited field's tag and length, its body to follow.
fn header(buf: &mut Vec<u8>, field: u32, len: usize) {
    tag(buf, field, LENGTH_DELIMITED);
    varint(buf, len as u64);
}

/// The bytes a length-delimited field of one-byte tag and `len` bytes takes.
fn delimited_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// The bytes `value` takes as a varint.
fn varint_len(value: u64) -> usize {
    1 + (63 - (value | 1).leading_zeros() as usize) / 7
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{
        Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
    };
    use opentelemetry::{InstrumentationScope, KeyValue};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
    use prost::Message;
    use std::str::FromStr;

    #[derive(Clone)]
    enum AttrValue {
        Str(String),
        Debug(String),
        I64(i64),
        F64(f64),
        Bool(bool),
    }

    type Attrs = Vec<(&'static str, AttrValue)>;

    /// A span as the layer would have recorded it.
    #[derive(Clone)]
    struct TestSpan {
        ids: SpanIds,
        name: &'static str,
        kind: Kind,
        start: SystemTime,
        end: SystemTime,
        attributes: Vec<(&'static str, AttrValue)>,
        error: Option<String>,
        events: Vec<(SystemTime, &'static str, Attrs)>,
    }

    fn write_attribute(buf: &mut Vec<u8>, to: AttributesOf, key: &str, value: &AttrValue) {
        match value {
            AttrValue::Str(text) => str_attribute(buf, to, key, text),
            AttrValue::Debug(text) => debug_attribute(buf, to, key, &format_args!("{text}")),
            AttrValue::I64(number) => i64_attribute(buf, to, key, *number),
            AttrValue::F64(number) => f64_attribute(buf, to, key, *number),
            AttrValue::Bool(flag) => bool_attribute(buf, to, key, *flag),
        }
    }

    /// Encoded through the functions the layer uses, in the order it does.
    fn encoded(span: &TestSpan) -> Vec<u8> {
        let mut buf = Vec::new();
        for (key, value) in &span.attributes {
            write_attribute(&mut buf, AttributesOf::Span, key, value);
        }
        for (time, name, attributes) in &span.events {
            event(&mut buf, *time, |buf| {
                for (key, value) in attributes {
                    write_attribute(buf, AttributesOf::Event, key, value);
                }
                event_name(buf, &format_args!("{name}"));
            });
        }
        finish_span(
            &mut buf,
            &SpanEnd {
                ids: &span.ids,
                name: span.name,
                kind: span.kind,
                start: span.start,
                end: span.end,
                error: span.error.as_deref(),
            },
        );
        buf
    }

    fn span(name: &'static str) -> TestSpan {
        let at = UNIX_EPOCH + Duration::from_millis(1_764_633_600_123);
        TestSpan {
            ids: SpanIds {
                trace_id: [7; 16],
                span_id: [3; 8],
                parent_id: Some([9; 8]),
                parent_remote: true,
                sampled: true,
                state: Some("vendor=v1".into()),
                recording: None,
            },
            name,
            kind: Kind::Server,
            start: at,
            end: at + Duration::from_micros(250),
            attributes: vec![
                ("mcp.method.name", AttrValue::Str("tools/call".into())),
                ("jsonrpc.request.id", AttrValue::Str(String::new())),
                ("error.type", AttrValue::I64(-32602)),
                ("cache.hit", AttrValue::Bool(false)),
                ("ratio", AttrValue::F64(0.25)),
                ("big", AttrValue::Debug(u64::MAX.to_string())),
            ],
            error: Some("unknown server 'x'".into()),
            events: vec![(at, "request failed", vec![("code", AttrValue::I64(-32602))])],
        }
    }

    fn spans() -> Vec<TestSpan> {
        let mut root = span("http.request");
        root.ids.parent_id = None;
        root.ids.parent_remote = false;
        root.ids.state = None;
        root.error = None;
        root.kind = Kind::Internal;
        let mut ok = span("guardrail.check");
        // Lengths that take two and three bytes, and an error without a message.
        ok.attributes
            .push(("long", AttrValue::Str("x".repeat(20_000))));
        // The largest attribute written with one-byte lengths, and the next.
        ok.attributes
            .push(("edge", AttrValue::Str("e".repeat(115))));
        ok.attributes
            .push(("edge2", AttrValue::Str("e".repeat(115))));
        ok.attributes
            .push(("longer", AttrValue::Debug("z".repeat(200))));
        ok.events.push((
            ok.start,
            "",
            vec![("text", AttrValue::Str("y".repeat(300)))],
        ));
        ok.error = Some(String::new());
        ok.kind = Kind::Client;
        ok.ids.sampled = false;
        vec![span("tools/call echo__echo"), root, ok]
    }

    /// The same span as the SDK's `SpanData`, for the official conversion.
    fn sdk(span: TestSpan) -> SpanData {
        let value = |value: AttrValue| match value {
            AttrValue::Str(text) => Value::from(text),
            AttrValue::Debug(text) => Value::from(text),
            AttrValue::I64(number) => Value::I64(number),
            AttrValue::F64(number) => Value::F64(number),
            AttrValue::Bool(flag) => Value::Bool(flag),
        };
        let attributes = |list: Vec<(&'static str, AttrValue)>| {
            list.into_iter()
                .map(|(key, v)| KeyValue::new(key, value(v)))
                .collect::<Vec<_>>()
        };
        let ids = span.ids;
        let mut events = SpanEvents::default();
        for (time, name, list) in span.events {
            events
                .events
                .push(Event::new(name, time, attributes(list), 0));
        }
        let state = ids.state.as_deref().unwrap_or_default();
        SpanData {
            span_context: SpanContext::new(
                TraceId::from_bytes(ids.trace_id),
                SpanId::from_bytes(ids.span_id),
                if ids.sampled {
                    TraceFlags::SAMPLED
                } else {
                    TraceFlags::default()
                },
                false,
                TraceState::from_str(state).unwrap(),
            ),
            parent_span_id: ids.parent_id.map_or(SpanId::INVALID, SpanId::from_bytes),
            parent_span_is_remote: ids.parent_remote,
            span_kind: match span.kind {
                Kind::Internal => SpanKind::Internal,
                Kind::Server => SpanKind::Server,
                Kind::Client => SpanKind::Client,
            },
            name: span.name.into(),
            start_time: span.start,
            end_time: span.end,
            attributes: attributes(span.attributes),
            dropped_attributes_count: 0,
            events,
            links: SpanLinks::default(),
            status: span.error.map_or(Status::Unset, Status::error),
            instrumentation_scope: InstrumentationScope::builder(SCOPE).build(),
        }
    }

    #[test]
    fn a_batch_decodes_as_the_official_conversion_of_it() {
        let spans = spans();
        let resource = Resource::builder()
            .with_service_name("bulwark-test")
            .with_schema_url([KeyValue::new("k", "v")], "https://schema/1")
            .build();
        let mut encoded_resource = Vec::new();
        for (key, value) in resource.iter() {
            message(&mut encoded_resource, 1, |buf| {
                key_value(buf, key.as_str(), value)
            });
        }
        let mut batch = Vec::new();
        for span in &spans {
            push_span(&mut batch, &encoded(span));
        }
        let ours = encode(&batch, &encoded_resource, "https://schema/1");
        let decoded = ExportTraceServiceRequest::decode(ours.as_slice()).unwrap();
        let official = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                spans.into_iter().map(sdk).collect(),
                &ResourceAttributesWithSchema::from(&resource),
            ),
        };
        assert_eq!(decoded, official);
    }

    #[test]
    fn resource_values_of_every_kind_decode_as_the_official_conversion() {
        use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue as ProtoKeyValue};
        use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
        let array = Value::Array(Array::String(vec!["a".into(), "b".into()]));
        let values = [Value::Bool(true), Value::I64(-1), Value::F64(0.5), array];
        let mut buf = Vec::new();
        for value in &values {
            message(&mut buf, 1, |buf| key_value(buf, "k", value));
        }
        let decoded = ProtoResource::decode(buf.as_slice()).unwrap();
        let official: Vec<_> = values
            .into_iter()
            .map(|value| ProtoKeyValue {
                key: "k".into(),
                value: Some(AnyValue::from(value)),
                ..ProtoKeyValue::default()
            })
            .collect();
        assert_eq!(decoded.attributes, official);
    }

    #[test]
    fn a_bad_endpoint_fails_the_start() {
        let resource = Resource::builder().build();
        let err = OtlpHttp::new("not a url", &resource, Duration::from_secs(1)).unwrap_err();
        assert!(err.contains("not a url"), "{err}");
        assert!(
            OtlpHttp::new(
                "http://127.0.0.1:4318/v1/traces",
                &resource,
                Duration::from_secs(1)
            )
            .is_ok()
        );
    }

    #[test]
    fn varint_lengths_match_the_encoding() {
        for value in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            assert_eq!(varint_len(value), varint_bytes(value).1, "{value}");
        }
    }

    #[test]
    fn an_empty_batch_is_an_empty_request() {
        assert!(encode(&[], b"", "").is_empty());
    }

    #[test]
    fn headers_come_from_the_sdk_variable_format() {
        let parsed: Vec<_> = parse_headers("api-key=a%20b, x-tenant = t1,broken,=x").collect();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].0, "api-key");
        assert_eq!(parsed[0].1, "a b");
        assert_eq!(parsed[1].1, "t1");
    }
}
