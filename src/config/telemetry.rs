//! `[telemetry]`: metrics (`/metrics`, OTLP push) and the collector they go to.
use serde::Deserialize;

/// Who may read `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricsAccess {
    /// An admin credential, or the dedicated `metrics_token` when one is set.
    #[default]
    Admin,
    /// Anyone who passes the Host/Origin check. Meant for `server.admin_listen`
    /// (where `/metrics` is served when it is set) on a private interface.
    Open,
}

/// The `[telemetry]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Records metrics and serves `/metrics`; `false` turns every
    /// instrument into a no-op (the bench's "metrics off").
    pub metrics: bool,
    /// OTLP/HTTP collector base URL, e.g. `http://127.0.0.1:4318`: metrics
    /// are pushed to `{otlp_endpoint}/v1/metrics`. Nothing is pushed when absent.
    pub otlp_endpoint: Option<String>,
    /// Seconds between two OTLP metric pushes.
    pub metrics_interval_secs: u64,
    /// Who may scrape `/metrics`: `"admin"` (default) or `"open"`.
    pub metrics_access: MetricsAccess,
    /// A credential only for scrapers (`Authorization: Bearer …`), accepted
    /// besides admin credentials when `metrics_access = "admin"`; may be `${VAR}`.
    pub metrics_token: Option<MetricsToken>,
    /// Export traces to `{otlp_endpoint}/v1/traces` (when `otlp_endpoint` is set).
    pub traces: bool,
    /// Fraction of new traces sampled, 0.0..=1.0; a client's sampled flag
    /// (`traceparent`) is honoured either way.
    pub sampling_ratio: f64,
    /// Spans waiting for export at most; beyond it spans are dropped (and
    /// counted) rather than slowing calls.
    pub trace_queue_size: usize,
    /// `service.name` of the exported traces' resource.
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            metrics: true,
            otlp_endpoint: None,
            metrics_interval_secs: 15,
            metrics_access: MetricsAccess::Admin,
            metrics_token: None,
            traces: true,
            sampling_ratio: 1.0,
            trace_queue_size: 4096,
            service_name: "bulwark".into(),
        }
    }
}

impl TelemetryConfig {
    /// Checks the values a type cannot.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.sampling_ratio) {
            return Err(format!(
                "telemetry.sampling_ratio = {} must be between 0.0 and 1.0",
                self.sampling_ratio
            ));
        }
        if self.trace_queue_size == 0 {
            return Err("telemetry.trace_queue_size must be at least 1".into());
        }
        if self.metrics_interval_secs == 0 {
            return Err("telemetry.metrics_interval_secs must be at least 1".into());
        }
        if let Some(endpoint) = &self.otlp_endpoint {
            let url = url::Url::parse(endpoint)
                .map_err(|err| format!("telemetry.otlp_endpoint = {endpoint:?}: {err}"))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(format!(
                    "telemetry.otlp_endpoint = {endpoint:?}: must be an http(s) URL"
                ));
            }
        }
        if let Some(token) = &self.metrics_token
            && token.0.trim().is_empty()
        {
            return Err("telemetry.metrics_token must not be empty".into());
        }
        Ok(())
    }
}

impl TelemetryConfig {
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

/// The scraper credential; never printed.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct MetricsToken(String);

impl MetricsToken {
    /// The secret itself, after `${VAR}` expansion.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces `${VAR}` references from the environment.
    pub(super) fn expand(&mut self) -> Result<(), String> {
        self.0 = super::expand_env(&self.0)
            .map_err(|var| format!("telemetry.metrics_token: ${{{var}}} is not set"))?;
        Ok(())
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_never_printed_and_bad_values_are_refused() {
        let config = TelemetryConfig {
            metrics_token: Some(MetricsToken("s3cret-value".into())),
            ..TelemetryConfig::default()
        };
        assert!(!format!("{config:?}").contains("s3cret-value"));
        assert!(config.validate().is_ok());
        let zero = TelemetryConfig {
            metrics_interval_secs: 0,
            ..TelemetryConfig::default()
        };
        assert!(zero.validate().is_err());
        let ftp = TelemetryConfig {
            otlp_endpoint: Some("ftp://collector".into()),
            ..TelemetryConfig::default()
        };
        assert!(ftp.validate().is_err());
    }
}
