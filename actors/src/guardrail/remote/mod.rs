//! Remote HTTP guardrail providers: an Enkrypt-compatible detect API and an
//! OpenAI-moderation-compatible API. Each call has the provider's own
//! deadline; errors say what failed (status, timeout, shape) and never carry
//! the API key, the URL's query or the response body.
mod enkrypt;
mod openai;

use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};

use super::config::{ProviderConfig, ProviderKind};

/// Why a provider gave no verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// No answer within `timeout_ms`.
    #[error("no answer within {0} ms")]
    Timeout(u64),
    /// The provider answered with a non-success status.
    #[error("HTTP status {0}")]
    Status(u16),
    /// Connecting or sending failed.
    #[error("request failed: {0}")]
    Transport(String),
    /// The answer was not in the provider's format.
    #[error("unexpected response: {0}")]
    Format(String),
}

/// One configured remote provider. Its `Debug` leaves out the key and the
/// URL's query.
pub struct RemoteProvider {
    name: String,
    kind: ProviderKind,
    url: String,
    api_key: SecretString,
    timeout: Duration,
    model: String,
    detectors: serde_json::Value,
    http: reqwest::Client,
}

impl std::fmt::Debug for RemoteProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteProvider")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.url.split('?').next().unwrap_or_default())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RemoteProvider {
    /// A provider from its config (with `${VAR}` already resolved).
    pub fn new(name: &str, config: &ProviderConfig, http: reqwest::Client) -> Self {
        let (default_url, default_model) = match config.kind {
            ProviderKind::Enkrypt => (enkrypt::DEFAULT_URL, ""),
            ProviderKind::OpenaiModeration => (openai::DEFAULT_URL, openai::DEFAULT_MODEL),
        };
        Self {
            name: name.to_owned(),
            kind: config.kind,
            url: config.url.clone().unwrap_or_else(|| default_url.to_owned()),
            api_key: config.api_key.clone(),
            timeout: Duration::from_millis(config.timeout_ms),
            model: config
                .model
                .clone()
                .unwrap_or_else(|| default_model.to_owned()),
            detectors: config
                .detectors
                .clone()
                .unwrap_or_else(enkrypt::default_detectors),
            http,
        }
    }

    /// The configured name, used as `provider` in verdicts.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Asks the provider about `text`; returns the detectors that fired
    /// (`injection_attack`, `toxicity`…, or `moderation:CATEGORY`).
    pub async fn check(&self, text: &str) -> Result<Vec<String>, ProviderError> {
        let call = async {
            let request = match self.kind {
                ProviderKind::Enkrypt => self
                    .http
                    .post(&self.url)
                    .header("apikey", self.api_key.expose_secret())
                    .json(&enkrypt::request(text, &self.detectors)),
                ProviderKind::OpenaiModeration => self
                    .http
                    .post(&self.url)
                    .bearer_auth(self.api_key.expose_secret())
                    .json(&openai::request(text, &self.model)),
            };
            let response = request.send().await.map_err(transport)?;
            let status = response.status();
            if !status.is_success() {
                return Err(ProviderError::Status(status.as_u16()));
            }
            let body: serde_json::Value = response.json().await.map_err(|err| {
                ProviderError::Format(if err.is_decode() {
                    "body is not JSON".into()
                } else {
                    transport(err).to_string()
                })
            })?;
            match self.kind {
                ProviderKind::Enkrypt => enkrypt::fired(&body),
                ProviderKind::OpenaiModeration => openai::fired(&body),
            }
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or(Err(ProviderError::Timeout(self.timeout.as_millis() as u64)))
    }
}

/// A transport error without its URL (which may carry a key in its query).
fn transport(err: reqwest::Error) -> ProviderError {
    let kind = if err.is_connect() {
        "could not connect"
    } else if err.is_timeout() {
        "timed out"
    } else if err.is_body() {
        "body interrupted"
    } else {
        "transport error"
    };
    ProviderError::Transport(kind.into())
}

#[cfg(any(test, feature = "test-fakes"))]
#[allow(clippy::unwrap_used, clippy::expect_used)] // test support: a broken fake should fail loudly
pub mod fake;
#[cfg(test)]
mod tests;
