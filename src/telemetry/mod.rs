//! Telemetry: one OpenTelemetry metrics layer, read two ways: scraped as
//! Prometheus text at `/metrics` and pushed over OTLP/HTTP when
//! `[telemetry] otlp_endpoint` is set.
//!
//! - [`metrics`]: the request path's instruments (`mcp.server.operation.duration`).
//! - [`observed`]: instruments whose callbacks read the counters the
//!   gateway already keeps (upstreams, actors, guardrails, cache, tokens,
//!   deadlines, sessions, auth).
//! - [`endpoint`]: the `/metrics` route and who may read it.
//! - `export`: the OTLP push.
//! - [`traces`]: spans of the request path, W3C trace context in and out,
//!   OTLP/HTTP export, and the log format (`--log-format json` carries trace
//!   and span ids).
#[cfg(test)]
pub(crate) mod captured_logs;
pub mod endpoint;
mod export;
pub mod metrics;
pub mod observed;
pub mod traces;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;

use crate::config::telemetry::TelemetryConfig;
use crate::mcp::Gateway;

pub use metrics::RequestMetrics;

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The Prometheus exporter could not be built.
    #[error("prometheus exporter: {0}")]
    Prometheus(String),
    /// The OTLP exporter could not be built.
    #[error("OTLP exporter: {0}")]
    Otlp(String),
}

/// The metrics pipeline: a meter provider with a Prometheus reader (and an
/// OTLP one when configured). Disabled, it records and serves nothing.
pub struct Telemetry {
    provider: Option<SdkMeterProvider>,
    registry: prometheus::Registry,
    requests: RequestMetrics,
    config: TelemetryConfig,
}

impl Telemetry {
    /// Builds the pipeline `config` asks for. Must run on the tokio runtime
    /// when an OTLP endpoint is set.
    pub fn new(config: &TelemetryConfig) -> Result<Arc<Self>, TelemetryError> {
        let registry = prometheus::Registry::new();
        if !config.metrics {
            return Ok(Arc::new(Self {
                provider: None,
                registry,
                requests: RequestMetrics::disabled(),
                config: config.clone(),
            }));
        }
        let prometheus = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .scope_info_enabled(false)
            .build()
            .map_err(|err| TelemetryError::Prometheus(err.to_string()))?;
        let resource = Resource::builder()
            .with_service_name("bulwark")
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();
        let mut builder = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(prometheus);
        if let Some(endpoint) = &config.otlp_endpoint {
            let interval = Duration::from_secs(config.metrics_interval_secs);
            builder = builder.with_reader(export::reader(endpoint, interval)?);
            tracing::info!(endpoint = %endpoint, ?interval, "pushing metrics over OTLP/HTTP");
        }
        let provider = builder.build();
        let requests = RequestMetrics::new(&provider.meter("bulwark"));
        Ok(Arc::new(Self {
            provider: Some(provider),
            registry,
            requests,
            config: config.clone(),
        }))
    }

    /// The request path's instruments.
    pub fn requests(&self) -> RequestMetrics {
        self.requests.clone()
    }

    /// Whether metrics are recorded and `/metrics` is served.
    pub fn enabled(&self) -> bool {
        self.provider.is_some()
    }

    /// The `[telemetry]` settings in force.
    pub fn config(&self) -> &TelemetryConfig {
        &self.config
    }

    fn meter(&self) -> Option<Meter> {
        self.provider.as_ref().map(|p| p.meter("bulwark"))
    }

    /// Starts reporting `gateway`'s counters (upstreams, actors, guardrails, …).
    pub fn observe(&self, gateway: &Arc<Gateway>) {
        if let Some(meter) = self.meter() {
            observed::register(&meter, gateway);
        }
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> Result<String, TelemetryError> {
        use prometheus::Encoder;
        let mut text = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&self.registry.gather(), &mut text)
            .map_err(|err| TelemetryError::Prometheus(err.to_string()))?;
        String::from_utf8(text).map_err(|err| TelemetryError::Prometheus(err.to_string()))
    }

    /// Pushes what is left (OTLP) and stops the readers. Runs the SDK's
    /// blocking shutdown off the runtime's worker threads.
    pub async fn shutdown(&self) {
        let Some(provider) = self.provider.clone() else {
            return;
        };
        let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(err)) = done {
            tracing::debug!(%err, "metrics pipeline shutdown");
        }
    }
}
