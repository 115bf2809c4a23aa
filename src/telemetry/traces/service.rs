//! [`RequestTrace`]: one span per client request to the MCP server.
//!
//! The span is `mcp.request` with `mcp.method.name`, the JSON-RPC id, the
//! session id (hashed: the id is a bearer of the session), the request id
//! and the outcome. Its parent is the client's `_meta.traceparent` when
//! valid, else the HTTP request's span (which carries the header's). When
//! nothing exports, there is no `mcp.request` span: its fields go on the
//! HTTP request's span, which log lines show the same way. A failed request
//! answers with its request id in the error's `data` (`requestId`) and
//! writes one log line with the same id.
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};

use rmcp::RoleServer;
use rmcp::model::{ErrorData, NumberOrString};
use rmcp::service::RequestContext;
use rmcp::transport::common::http_header::names;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tracing::Instrument;
use tracing::field::Empty;

use super::http::{RequestId, RequestSpan};
use bulwark_actors::trace_context;

/// The span and request id of one MCP request.
pub struct RequestTrace {
    span: tracing::Span,
    id: RequestId,
}

impl RequestTrace {
    /// Opens the span of a `method` request arriving with `context`.
    pub fn start(context: &RequestContext<RoleServer>, method: &'static str) -> Self {
        Self::open(context, method, None)
    }

    /// [`Self::start`] for a `tools/call`, whose tool is known only once it
    /// is routed. When the HTTP request's span serves as the request's
    /// (nothing exports), the request's own fields are held back in the
    /// returned [`CallFields`] and recorded with the tool's, in one record
    /// (see [`super::record_tool`]).
    pub fn start_call(context: &RequestContext<RoleServer>) -> (Self, CallFields) {
        let mut held = CallFields::default();
        let trace = Self::open(context, "tools/call", Some(&mut held));
        (trace, held)
    }

    fn open(
        context: &RequestContext<RoleServer>,
        method: &'static str,
        hold: Option<&mut CallFields>,
    ) -> Self {
        let parts = context.extensions.get::<axum::http::request::Parts>();
        let id = parts
            .and_then(|parts| parts.extensions.get::<RequestId>())
            .cloned()
            .unwrap_or_default();
        let session = parts
            .and_then(|parts| parts.headers.get(&names::MCP_SESSION_ID))
            .map(|value| hashed(value.as_bytes()));
        let http = parts.and_then(|parts| parts.extensions.get::<RequestSpan>());
        let mut number = itoa::Buffer::new();
        if let Some(RequestSpan(http)) = http
            && !super::exporting()
        {
            // Nothing exports: the HTTP request's span serves as the MCP
            // request's too. A span's start, close and entries on every poll
            // cost more than one record of its fields (~1.7k instructions
            // per call net, callgrind); log lines carry the same fields, on
            // one span instead of two.
            match hold {
                Some(held) => {
                    *held = CallFields {
                        jsonrpc_id: Some(context.id.clone()),
                        session,
                        held: AtomicBool::new(true),
                    };
                }
                None => RequestFields {
                    method: Some(method),
                    jsonrpc_id: Some(id_text(&context.id, &mut number)),
                    session: session.as_deref(),
                    ..RequestFields::default()
                }
                .record(http),
            }
            if let Some(cx) = trace_context::from_meta(&context.meta) {
                trace_context::set_parent(http, cx);
            }
            return Self {
                span: http.clone(),
                id,
            };
        }
        let jsonrpc_id = id_text(&context.id, &mut number);
        let span = tracing::info_span!(
            parent: http.and_then(|parent| parent.0.id()),
            "mcp.request",
            otel.status_code = Empty,
            mcp.method.name = method,
            jsonrpc.request.id = jsonrpc_id,
            mcp.session.id = session.as_deref(),
            request.id = id.as_str(),
            gen_ai.tool.name = Empty,
            bulwark.upstream = Empty,
            bulwark.outcome = Empty,
            error.type = Empty,
        );
        super::layer::serving(&span, || method.to_owned());
        if let Some(cx) = trace_context::from_meta(&context.meta) {
            trace_context::set_parent(&span, cx);
        }
        Self { span, id }
    }

    /// The request's span.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Runs the request's work in its span and records how it ended; an
    /// error gets the request id. The work comes boxed: the handler's
    /// futures are large, and each layer that takes one by value copies it
    /// (and in debug builds, one more such layer overflows a worker's stack).
    pub async fn run<T>(
        self,
        work: Pin<Box<dyn Future<Output = Result<T, ErrorData>> + Send + '_>>,
    ) -> Result<T, ErrorData> {
        self.run_call(work, &CallFields::default()).await
    }

    /// [`Self::run`] for a request started with [`Self::start_call`]: the
    /// fields still held when it fails (it failed before it was routed) are
    /// recorded before its failure is logged.
    pub async fn run_call<T>(
        self,
        work: Pin<Box<dyn Future<Output = Result<T, ErrorData>> + Send + '_>>,
        held: &CallFields,
    ) -> Result<T, ErrorData> {
        let Self { span, id } = self;
        match work.instrument(span.clone()).await {
            Ok(result) => {
                if super::exporting() {
                    span.record("bulwark.outcome", "ok");
                }
                Ok(result)
            }
            Err(err) => {
                held.record(&span, None, None);
                let code = err.code.0;
                span.record("bulwark.outcome", "error")
                    .record("error.type", code)
                    .record("otel.status_code", "ERROR");
                span.in_scope(|| {
                    tracing::info!(request_id = %id, code, error = %err.message, "request failed");
                });
                Err(with_request_id(err, &id))
            }
        }
    }
}

/// A `tools/call`'s own fields, held back to be recorded with its tool's
/// (see [`RequestTrace::start_call`]); empty when they were recorded when
/// it started.
#[derive(Debug, Default)]
pub struct CallFields {
    jsonrpc_id: Option<NumberOrString>,
    session: Option<String>,
    held: AtomicBool,
}

impl CallFields {
    /// Records on `span` the fields still held, if any, with the routed
    /// `tool` and `upstream` when known, in one record.
    pub(super) fn record(&self, span: &tracing::Span, tool: Option<&str>, upstream: Option<&str>) {
        let routed = RequestFields {
            tool,
            upstream,
            ..RequestFields::default()
        };
        if !self.held.swap(false, Ordering::Relaxed) {
            if tool.is_some() || upstream.is_some() {
                routed.record(span);
            }
            return;
        }
        let mut number = itoa::Buffer::new();
        let jsonrpc_id = (self.jsonrpc_id.as_ref()).map(|id| id_text(id, &mut number));
        RequestFields {
            method: Some("tools/call"),
            jsonrpc_id,
            session: self.session.as_deref(),
            ..routed
        }
        .record(span);
    }
}

/// A JSON-RPC id as span text: a field given `%id` would be formatted
/// through `fmt` by each layer (~900 instructions each).
fn id_text<'a>(id: &'a NumberOrString, number: &'a mut itoa::Buffer) -> &'a str {
    match id {
        NumberOrString::Number(n) => number.format(*n),
        NumberOrString::String(s) => s,
    }
}

/// The fields of a request span set after its start, all in one record:
/// each record goes through every layer, and the log layer formats the
/// span's fields again (~1.2k instructions before any field).
#[derive(Debug, Default, Clone, Copy)]
struct RequestFields<'a> {
    method: Option<&'a str>,
    jsonrpc_id: Option<&'a str>,
    session: Option<&'a str>,
    tool: Option<&'a str>,
    upstream: Option<&'a str>,
}

impl RequestFields<'_> {
    fn record(self, span: &tracing::Span) {
        let Some(metadata) = span.metadata() else {
            return;
        };
        let fields = metadata.fields();
        let (Some(method), Some(jsonrpc_id), Some(session), Some(tool), Some(upstream)) = (
            fields.field("mcp.method.name"),
            fields.field("jsonrpc.request.id"),
            fields.field("mcp.session.id"),
            fields.field("gen_ai.tool.name"),
            fields.field("bulwark.upstream"),
        ) else {
            return;
        };
        fn value<'a>(value: &'a Option<&str>) -> Option<&'a dyn tracing::Value> {
            value.as_ref().map(|v| v as &dyn tracing::Value)
        }
        span.record_all(&fields.value_set(&[
            (&method, value(&self.method)),
            (&jsonrpc_id, value(&self.jsonrpc_id)),
            (&session, value(&self.session)),
            (&tool, value(&self.tool)),
            (&upstream, value(&self.upstream)),
        ]));
    }
}

/// `err` with `requestId` in its `data` (an object; made one when absent).
fn with_request_id(mut err: ErrorData, id: &RequestId) -> ErrorData {
    let id = Value::String(id.as_str().to_owned());
    match &mut err.data {
        Some(Value::Object(data)) => {
            data.insert("requestId".into(), id);
        }
        None => {
            let mut data = serde_json::Map::new();
            data.insert("requestId".into(), id);
            err.data = Some(Value::Object(data));
        }
        // Some other shape the client may rely on: left alone.
        Some(_) => {}
    }
    err
}

/// The first 8 bytes of SHA-256, in hex: enough to tell sessions apart in
/// a trace without handing the session id itself to the collector.
fn hashed(value: &[u8]) -> String {
    LAST_HASHED.with_borrow_mut(|last| match last {
        Some((id, hash)) if **id == *value => hash.clone(),
        _ => {
            let hash = sha256_hex(value);
            *last = Some((value.into(), hash.clone()));
            hash
        }
    })
}

thread_local! {
    /// The session id this thread hashed last, with its hash: a session's
    /// requests come in runs, and a SHA-256 is ~3.4k instructions, 1% of a
    /// `tools/call` through the gateway (callgrind).
    static LAST_HASHED: std::cell::RefCell<Option<(Box<[u8]>, String)>> =
        const { std::cell::RefCell::new(None) };
}

fn sha256_hex(value: &[u8]) -> String {
    let mut hex = String::with_capacity(16);
    trace_context::push_hex(&mut hex, &Sha256::digest(value)[..8]);
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id_joins_the_error_data() {
        let id = RequestId::new();
        let err = with_request_id(ErrorData::invalid_params("bad", None), &id);
        assert_eq!(err.data.unwrap()["requestId"], id.as_str());
        let data = serde_json::json!({"limit": "per_key"});
        let err = with_request_id(ErrorData::invalid_params("bad", Some(data)), &id);
        let data = err.data.unwrap();
        assert_eq!(data["limit"], "per_key");
        assert_eq!(data["requestId"], id.as_str());
    }

    /// One record's fields, names and values.
    type Fields = Vec<(String, String)>;

    /// Each record a span gets.
    #[derive(Clone, Default)]
    struct Records(std::sync::Arc<std::sync::Mutex<Vec<Fields>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Records {
        fn on_record(
            &self,
            _: &tracing::span::Id,
            values: &tracing::span::Record<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            struct Collect(Fields);
            impl tracing::field::Visit for Collect {
                fn record_debug(
                    &mut self,
                    field: &tracing::field::Field,
                    value: &dyn std::fmt::Debug,
                ) {
                    self.0.push((field.name().to_owned(), format!("{value:?}")));
                }
                fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                    self.0.push((field.name().to_owned(), value.to_owned()));
                }
            }
            let mut fields = Collect(Vec::new());
            values.record(&mut fields);
            self.0.lock().unwrap().push(fields.0);
        }
    }

    #[test]
    fn held_call_fields_are_recorded_once_with_the_tool() {
        use tracing_subscriber::layer::SubscriberExt;
        let records = Records::default();
        let subscriber = tracing_subscriber::Registry::default().with(records.clone());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "http.request",
                mcp.method.name = Empty,
                jsonrpc.request.id = Empty,
                mcp.session.id = Empty,
                gen_ai.tool.name = Empty,
                bulwark.upstream = Empty,
            );
            CallFields::default().record(&span, None, None);
            let held = CallFields {
                jsonrpc_id: Some(NumberOrString::Number(7)),
                session: Some("5e55".into()),
                held: AtomicBool::new(true),
            };
            held.record(&span, Some("echo"), Some("demo"));
            held.record(&span, None, None);
            held.record(&span, Some("again"), Some("demo"));
        });
        let records = records.0.lock().unwrap().clone();
        let pairs = |list: &[(&str, &str)]| -> Fields {
            list.iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            records,
            [
                pairs(&[
                    ("mcp.method.name", "tools/call"),
                    ("jsonrpc.request.id", "7"),
                    ("mcp.session.id", "5e55"),
                    ("gen_ai.tool.name", "echo"),
                    ("bulwark.upstream", "demo"),
                ]),
                pairs(&[("gen_ai.tool.name", "again"), ("bulwark.upstream", "demo")]),
            ]
        );
    }

    #[test]
    fn session_ids_are_hashed() {
        let hash = hashed(b"session-1");
        assert_eq!(hash.len(), 16);
        assert_ne!(hash, hashed(b"session-2"));
        // The remembered hash belongs to its id only.
        assert_eq!(hashed(b"session-1"), hash);
        assert_eq!(hashed(b"session-1"), sha256_hex(b"session-1"));
        assert_eq!(hashed(b"session-2"), sha256_hex(b"session-2"));
        assert_eq!(hashed(b"session-12"), sha256_hex(b"session-12"));
    }
}
