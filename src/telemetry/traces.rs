//! Traces and the log format: one `tracing` subscriber for both.
//!
//! The request path is instrumented with `tracing` spans; when tracing is on,
//! Bulwark's own layer ([`layer`]) records them as OTLP spans:
//!
//! ```text
//! http.request (POST /mcp, request.id)          traces::http, parent: `traceparent` header
//! ├─ authenticate                               auth::middleware
//! └─ mcp.request (tools/call echo__echo)        traces::service, parent: `_meta.traceparent`
//!    ├─ guardrail.check (input) ─ guardrail.provider …
//!    ├─ cache.lookup
//!    ├─ upstream.call ── context out as `_meta.traceparent`
//!    │  └─ upstream.http ── as the `traceparent` header (remote upstreams)
//!    │     └─ oauth.token (on a cache miss, through the TokenActor)
//!    └─ guardrail.check (output)
//! ```
//!
//! The two outer spans are INFO `tracing` spans (they carry the request id
//! into log lines). The inner ones are [`Step`](bulwark_actors::trace_context::Step)s:
//! children of the current span recorded straight into OTLP, without the
//! `tracing` registry. They time a step and are never entered (nothing logs
//! inside them), and as `tracing` spans they cost ~4,000 instructions each,
//! most of tracing's cost per call (callgrind). With tracing off a step is
//! one atomic load. Those that pass their context on (`upstream.call` into
//! `_meta`) do so explicitly. The remote path's `upstream.http` and
//! `oauth.token` stay `tracing` spans: they are entered, across an actor hop.
//! Spans and steps reach the exporter through a bounded queue ([`export`]): a slow or dead collector drops
//! spans (counted by [`dropped_spans`]), never a call.
mod export;
pub mod http;
mod json;
mod layer;
mod log_fields;
mod otlp;
pub mod service;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::telemetry::TelemetryConfig;
use bulwark_actors::trace_context;
pub use export::{dropped_spans, exported_spans};

/// How an OTLP export may take at most before it counts as failed.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`Tracing::shutdown`] waits for the last spans to go out.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(3);

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, with `trace_id` and `span_id` inside a span.
    Json,
}

/// Why tracing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The OTLP exporter could not be built (a bad endpoint).
    #[error("OTLP trace exporter: {0}")]
    Exporter(String),
    /// A global subscriber was already installed.
    #[error("installing the log subscriber: {0}")]
    Subscriber(String),
}

/// The installed subscriber's exporting half; flush it at shutdown.
pub struct Tracing {
    export: Option<export::Handle>,
}

impl Tracing {
    /// Exports the spans still queued (for a few seconds at most) and stops.
    pub async fn shutdown(self) {
        if let Some(export) = self.export {
            export.shutdown(SHUTDOWN_FLUSH).await;
        }
    }
}

/// The log filter without `BULWARK_LOG` or `RUST_LOG`. rmcp logs every
/// session's start and end and every notification at INFO, and its INFO
/// spans are entered on every poll of a session: with traces exported they
/// cost ~17k instructions per `tools/call` (callgrind, 430k -> 413k).
const DEFAULT_LOG_FILTER: &str = "info,rmcp=warn";

/// Whether spans are exported (set as an exporting layer is made, which
/// [`init`] does when an endpoint is configured). Without export, fields
/// that only a span's export reads (an HTTP status, an `ok` outcome) are
/// not recorded: the log layer formats every recorded field into the span
/// (~1,300 instructions each, callgrind) for lines that, once a request has
/// its answer, no longer print.
static EXPORTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether spans are exported: see [`EXPORTING`].
pub fn exporting() -> bool {
    EXPORTING.load(std::sync::atomic::Ordering::Relaxed)
}

/// Installs the global subscriber: log lines in `format` filtered by
/// `BULWARK_LOG` (else `RUST_LOG`, else [`DEFAULT_LOG_FILTER`]), and OpenTelemetry spans
/// when `telemetry` exports traces or the log format needs trace ids.
/// Call inside the tokio runtime (the exporter runs on it).
pub fn init(format: LogFormat, telemetry: Option<&TelemetryConfig>) -> Result<Tracing, TraceError> {
    let log_filter = EnvFilter::try_from_env("BULWARK_LOG")
        .or_else(|_| EnvFilter::try_from_env("RUST_LOG"))
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let endpoint = telemetry.and_then(TelemetryConfig::traces_endpoint);
    let (spans, export) = match (&endpoint, format) {
        (None, LogFormat::Text) => (None, None),
        // JSON lines carry trace ids: ids without recording.
        (None, LogFormat::Json) => {
            trace_context::install_steps(None);
            (Some(layer::SpanLayer::ids_only()), None)
        }
        (Some(endpoint), _) => {
            let defaults = TelemetryConfig::default();
            let telemetry = telemetry.unwrap_or(&defaults);
            let resource = Resource::builder()
                .with_service_name(telemetry.service_name.clone())
                .build();
            let exporter = otlp::OtlpHttp::new(endpoint, &resource, EXPORT_TIMEOUT)
                .map_err(TraceError::Exporter)?;
            let queue = Arc::new(export::Queue::new(telemetry.trace_queue_size));
            let export = export::Handle::start(exporter, queue.clone());
            trace_context::install_steps(Some(queue.clone()));
            let layer = layer::SpanLayer::exporting(queue, telemetry.sampling_ratio);
            (Some(layer), Some(export))
        }
    };
    let installed = match spans {
        // The log layer alone: its filter is the subscriber's. A per-layer
        // filter looks the span up in the registry on every enter, exit and
        // record (~40 lookups per `tools/call`, ~8k instructions).
        None => Registry::default()
            .with(log_filter)
            .with(log_layer(format))
            .try_init(),
        Some(spans) => Registry::default()
            .with(log_layer(format).with_filter(log_filter))
            .with(spans.with_filter(layer::ForTraces))
            .try_init(),
    };
    installed.map_err(|err| TraceError::Subscriber(err.to_string()))?;
    if endpoint.is_some() {
        // The URL stays out of the line: scripts look for the first URL printed.
        tracing::info!("exporting traces over OTLP/HTTP to telemetry.otlp_endpoint");
    }
    Ok(Tracing { export })
}

/// The layer that writes log lines on stderr in `format`.
fn log_layer<S>(format: LogFormat) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    // Colours only for a terminal: in a pipe, a file or the journal the
    // escape codes are noise, and styling every span field costs ~5% of a
    // `tools/call`'s instructions (callgrind), paid even when no line prints.
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => logs.fmt_fields(log_fields::LogFields).boxed(),
        LogFormat::Json => logs.json().event_format(json::WithTraceIds::new()).boxed(),
    }
}

/// Names the current `tools/call` span after its route, once it is known:
/// `tools/call echo__echo`, with the upstream and its tool as attributes,
/// and the request's own fields `held` back for this record, if any.
pub fn record_tool(federated: &str, server: &str, tool: &str, held: &service::CallFields) {
    let span = tracing::Span::current();
    layer::rename(&span, || ["tools/call ", federated].concat());
    held.record(&span, Some(tool), Some(server));
}

/// Records the current `tools/call`'s own fields `held` back, if any, for a
/// call that names no tool on its span (see [`record_tool`]).
pub fn record_untooled(held: &service::CallFields) {
    held.record(&tracing::Span::current(), None, None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_endpoint_appends_the_signal_path_once() {
        let mut config = TelemetryConfig {
            otlp_endpoint: Some("http://127.0.0.1:4318/".into()),
            ..TelemetryConfig::default()
        };
        assert_eq!(
            config.traces_endpoint().as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        config.otlp_endpoint = Some("http://c:4318/v1/traces".into());
        assert_eq!(
            config.traces_endpoint().as_deref(),
            Some("http://c:4318/v1/traces")
        );
        config.traces = false;
        assert_eq!(config.traces_endpoint(), None);
        config.sampling_ratio = 1.5;
        assert!(config.validate().is_err());
    }
}
