//! Telemetry: what operators' monitoring reads.
//!
//! - [`traces`]: OpenTelemetry spans of the request path, W3C trace context
//!   in and out, OTLP/HTTP export, and the log format (`--log-format json`
//!   carries trace and span ids).
use serde::Deserialize;

pub mod traces;

/// `[telemetry]`: present turns exporting on; absent, nothing is exported.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Base URL of an OTLP/HTTP collector, e.g. `http://127.0.0.1:4318`;
    /// traces go to `{otlp_endpoint}/v1/traces`.
    pub otlp_endpoint: Option<String>,
    /// Export traces (when `otlp_endpoint` is set).
    pub traces: bool,
    /// Fraction of new traces sampled, 0.0..=1.0; a client's sampled flag
    /// (`traceparent`) is honoured either way.
    pub sampling_ratio: f64,
    /// Spans waiting for export at most; beyond it spans are dropped (and
    /// counted) rather than slowing calls.
    pub trace_queue_size: usize,
    /// `service.name` of the exported resource.
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            traces: true,
            sampling_ratio: 1.0,
            trace_queue_size: 4096,
            service_name: "bulwark".into(),
        }
    }
}

impl TelemetryConfig {
    /// Checks the values; names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.sampling_ratio) {
            return Err(format!(
                "telemetry.sampling_ratio = {} must be between 0.0 and 1.0",
                self.sampling_ratio
            ));
        }
        if self.trace_queue_size == 0 {
            return Err("telemetry.trace_queue_size must be at least 1".into());
        }
        if let Some(endpoint) = &self.otlp_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(format!(
                "telemetry.otlp_endpoint = {endpoint:?} must be an http:// or https:// URL"
            ));
        }
        Ok(())
    }

    /// Where traces are posted, when they are exported at all.
    pub fn traces_endpoint(&self) -> Option<String> {
        let base = self.otlp_endpoint.as_deref().filter(|_| self.traces)?;
        let base = base.trim_end_matches('/');
        Some(if base.ends_with("/v1/traces") {
            base.to_owned()
        } else {
            format!("{base}/v1/traces")
        })
    }
}
