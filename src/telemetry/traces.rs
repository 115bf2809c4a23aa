//! Traces and the log format: one `tracing` subscriber for both.
//!
//! The request path is instrumented with `tracing` spans; when tracing is on,
//! `tracing-opentelemetry` turns them into OpenTelemetry spans:
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
//! The two outer spans are INFO (they carry the request id into log lines);
//! the inner ones are DEBUG, so with tracing off and the default log level
//! they are disabled outright and cost nothing. Spans reach the exporter
//! through a bounded queue ([`export`]): a slow or dead collector drops
//! spans (counted by [`dropped_spans`]), never a call.
mod export;
pub mod http;
mod json;
mod otlp;
pub mod service;

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::{Level, Metadata};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, filter};

use crate::config::telemetry::TelemetryConfig;
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
    provider: Option<SdkTracerProvider>,
    export: Option<export::Handle>,
}

impl Tracing {
    /// Exports the spans still queued (for a few seconds at most) and stops.
    pub async fn shutdown(self) {
        if let Some(export) = self.export {
            export.shutdown(SHUTDOWN_FLUSH).await;
        }
        if let Some(provider) = self.provider {
            // The processor's own shutdown is a no-op; this marks the
            // provider closed so late spans are not recorded.
            let _ = provider.shutdown();
        }
    }
}

/// Installs the global subscriber: log lines in `format` filtered by
/// `BULWARK_LOG` (else `RUST_LOG`, else `info`), and OpenTelemetry spans
/// when `telemetry` exports traces or the log format needs trace ids.
/// Call inside the tokio runtime (the exporter runs on it).
pub fn init(format: LogFormat, telemetry: Option<&TelemetryConfig>) -> Result<Tracing, TraceError> {
    let log_filter = EnvFilter::try_from_env("BULWARK_LOG")
        .or_else(|_| EnvFilter::try_from_env("RUST_LOG"))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a terminal: in a pipe, a file or the journal the
    // escape codes are noise, and styling every span field costs ~5% of a
    // `tools/call`'s instructions (callgrind), paid even when no line prints.
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let logs = match format {
        LogFormat::Text => logs.with_filter(log_filter).boxed(),
        LogFormat::Json => logs
            .json()
            .event_format(json::WithTraceIds::new())
            .with_filter(log_filter)
            .boxed(),
    };
    let endpoint = telemetry.and_then(TelemetryConfig::traces_endpoint);
    let (provider, export) = match (&endpoint, format) {
        (None, LogFormat::Text) => (None, None),
        _ => {
            let (provider, export) = provider(endpoint.as_deref(), telemetry)?;
            (Some(provider), export)
        }
    };
    // Per span, the layer's defaults would add the source file, module and
    // line, the thread's id and name (an allocated string), the target and
    // busy/idle times (two clock reads per poll), and attach an OpenTelemetry
    // context on every enter. Nothing reads them: trace ids and parents come
    // from the `tracing` span tree (`OpenTelemetrySpanExt::context`), so
    // each is off.
    let spans = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("bulwark"))
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_context_activation(false)
            .with_filter(filter::filter_fn(for_traces).with_max_level_hint(Level::DEBUG))
    });
    Registry::default()
        .with(logs)
        .with(spans)
        .try_init()
        .map_err(|err| TraceError::Subscriber(err.to_string()))?;
    if endpoint.is_some() {
        // The URL stays out of the line: scripts look for the first URL printed.
        tracing::info!("exporting traces over OTLP/HTTP to telemetry.otlp_endpoint");
    }
    Ok(Tracing { provider, export })
}

/// A tracer provider: exporting to `endpoint` under the configured sampling,
/// or (no endpoint: ids for JSON log lines only) recording nothing.
fn provider(
    endpoint: Option<&str>,
    telemetry: Option<&TelemetryConfig>,
) -> Result<(SdkTracerProvider, Option<export::Handle>), TraceError> {
    let defaults = TelemetryConfig::default();
    let telemetry = telemetry.unwrap_or(&defaults);
    let resource = Resource::builder()
        .with_service_name(telemetry.service_name.clone())
        .build();
    let builder = SdkTracerProvider::builder().with_resource(resource.clone());
    let Some(endpoint) = endpoint else {
        let sampler = Sampler::ParentBased(Box::new(Sampler::AlwaysOff));
        return Ok((builder.with_sampler(sampler).build(), None));
    };
    let exporter =
        otlp::OtlpHttp::new(endpoint, &resource, EXPORT_TIMEOUT).map_err(TraceError::Exporter)?;
    let (processor, handle) = export::Bounded::start(exporter, telemetry.trace_queue_size);
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
        telemetry.sampling_ratio,
    )));
    let provider = builder
        .with_sampler(sampler)
        .with_span_processor(processor)
        .build();
    Ok((provider, Some(handle)))
}

/// What becomes part of a trace: Bulwark's own spans down to DEBUG, and its
/// warnings and errors as span events. Dependencies' spans stay out.
fn for_traces(metadata: &Metadata<'_>) -> bool {
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

/// Names the current request span after its route, once it is known:
/// `tools/call echo__echo`, with the upstream and its tool as attributes.
pub fn record_tool(method: &str, federated: &str, server: &str, tool: &str) {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let span = tracing::Span::current();
    // The OpenTelemetry span has started (it was entered): `otel.name` would
    // no longer apply, so rename the started span itself.
    let cx = span.context();
    if cx.span().span_context().is_valid() {
        cx.span().update_name(format!("{method} {federated}"));
    }
    span.record("gen_ai.tool.name", tool);
    span.record("bulwark.upstream", server);
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
