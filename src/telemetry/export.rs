//! OTLP/HTTP push of the metrics. The SDK's periodic reader runs on a
//! thread of its own with no tokio reactor, where reqwest cannot run: the
//! client below hands each export to the gateway's runtime and waits for it.
use std::time::Duration;

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{MetricExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::metrics::PeriodicReader;
use tokio::runtime::Handle;

/// How long one export may take; a dead collector costs no more than this
/// on the reader's thread, and nothing on the request path.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// A reqwest client whose requests run on the tokio runtime it was made on.
#[derive(Debug)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: Handle,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        self.runtime
            .spawn(async move { client.send_bytes(request).await })
            .await?
    }
}

/// A reader pushing every `interval` to `{endpoint}/v1/metrics`.
pub fn reader(
    endpoint: &str,
    interval: Duration,
) -> Result<PeriodicReader<MetricExporter>, super::TelemetryError> {
    let client = reqwest::Client::builder()
        .timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|err| super::TelemetryError::Otlp(err.to_string()))?;
    let runtime = Handle::try_current()
        .map_err(|err| super::TelemetryError::Otlp(format!("no tokio runtime: {err}")))?;
    let exporter = MetricExporter::builder()
        .with_http()
        .with_http_client(OnRuntime { client, runtime })
        .with_endpoint(format!("{}/v1/metrics", endpoint.trim_end_matches('/')))
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|err| super::TelemetryError::Otlp(err.to_string()))?;
    Ok(PeriodicReader::builder(exporter)
        .with_interval(interval)
        .build())
}
