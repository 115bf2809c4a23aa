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
use std::time::Duration;

use opentelemetry::{Array, Value};
use opentelemetry_sdk::Resource;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use bulwark_actors::trace_context::encode::{
    bool_value, delimited_len, f64_value, header, i64_value, message, string, string_always,
};

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
/// fields, as `trace_context::encode::push_span` writes them) under one resource (its encoded
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

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_actors::trace_context::encode::{
        AttributesOf, SpanEnd, bool_attribute, debug_attribute, event, event_name, f64_attribute,
        finish_span, i64_attribute, push_span, str_attribute,
    };
    use bulwark_actors::trace_context::{SpanIds, SpanKind as Kind};
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
    use std::time::{SystemTime, UNIX_EPOCH};

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
