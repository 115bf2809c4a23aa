//! W3C trace context (`traceparent`, `tracestate`) where Bulwark carries it:
//! HTTP headers and an MCP request's `_meta` (the keys are the same). One
//! propagator, no global state: reading a context that is absent or invalid
//! yields `None`, and writing one only happens for a valid span context, so
//! with tracing off nothing is read or written.
use std::collections::HashMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use serde_json::{Map, Value};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C `traceparent` key (header name and `_meta` key).
pub const TRACEPARENT: &str = "traceparent";
/// The W3C `tracestate` key (header name and `_meta` key).
pub const TRACESTATE: &str = "tracestate";

/// The remote context a header map carries, if a valid one.
pub fn from_headers(headers: &HeaderMap) -> Option<Context> {
    valid(TraceContextPropagator::new().extract(&Headers(headers)))
}

/// The remote context a request's `_meta` carries, if a valid one.
pub fn from_meta(meta: &Map<String, Value>) -> Option<Context> {
    valid(TraceContextPropagator::new().extract(&Meta(meta)))
}

/// Writes `span`'s context into `meta` (replacing what the client sent):
/// the next hop sees this span as its parent. Nothing when `span` has no
/// valid context (tracing off, span disabled).
pub fn to_meta(span: &tracing::Span, meta: &mut Map<String, Value>) {
    let cx = span.context();
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&cx, &mut MetaMut(meta));
    }
}

/// Writes `span`'s context as headers, if it has a valid one.
pub fn to_headers(span: &tracing::Span, headers: &mut HashMap<HeaderName, HeaderValue>) {
    let cx = span.context();
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&cx, &mut HeadersMut(headers));
    }
}

fn valid(cx: Context) -> Option<Context> {
    cx.span().span_context().is_valid().then_some(cx)
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeadersMut<'a>(&'a mut HashMap<HeaderName, HeaderValue>);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(key),
            HeaderValue::try_from(value.as_str()),
        ) {
            self.0.insert(name, value);
        }
    }
}

struct Meta<'a>(&'a Map<String, Value>);

impl Extractor for Meta<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

struct MetaMut<'a>(&'a mut Map<String, Value>);

impl Injector for MetaMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), Value::String(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn reads_a_valid_traceparent_from_headers_and_meta() {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static(PARENT));
        let cx = from_headers(&headers).unwrap();
        let trace_id = cx.span().span_context().trace_id();
        assert_eq!(trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");

        let mut meta = Map::new();
        meta.insert(TRACEPARENT.into(), Value::String(PARENT.into()));
        assert!(from_meta(&meta).unwrap().span().span_context().is_sampled());
    }

    #[test]
    fn ignores_absent_or_malformed_context() {
        assert!(from_headers(&HeaderMap::new()).is_none());
        let mut meta = Map::new();
        meta.insert(TRACEPARENT.into(), Value::String("00-zz-yy-01".into()));
        assert!(from_meta(&meta).is_none());
        meta.insert(TRACEPARENT.into(), Value::Bool(true));
        assert!(from_meta(&meta).is_none());
    }

    #[test]
    fn writes_nothing_without_a_valid_span_context() {
        let mut meta = Map::new();
        to_meta(&tracing::Span::none(), &mut meta);
        assert!(meta.is_empty());
    }
}
