//! Enkrypt AI guardrails: `POST /guardrails/detect` with header `apikey`,
//! body `{"text", "detectors": {NAME: {"enabled": true, …}}}`; the answer's
//! `summary` maps each detector to `1`/`0` (or a list of labels for
//! `toxicity`, non-empty when it fired), `details` explains.
use serde_json::{Value, json};

use super::ProviderError;

/// The public endpoint.
pub const DEFAULT_URL: &str = "https://api.enkryptai.com/guardrails/detect";

/// Detectors asked for when the provider config names none.
pub fn default_detectors() -> Value {
    json!({
        "injection_attack": { "enabled": true },
        "pii": { "enabled": true, "entities": ["pii", "secrets", "ip_address"] },
        "toxicity": { "enabled": true },
        "nsfw": { "enabled": true }
    })
}

/// The request body.
pub fn request(text: &str, detectors: &Value) -> Value {
    json!({ "text": text, "detectors": detectors })
}

/// Detector names whose summary says they fired.
pub fn fired(body: &Value) -> Result<Vec<String>, ProviderError> {
    let summary = body
        .get("summary")
        .and_then(Value::as_object)
        .ok_or_else(|| ProviderError::Format("no `summary` object".into()))?;
    Ok(summary
        .iter()
        .filter(|(_, verdict)| match verdict {
            Value::Number(n) => n.as_f64().is_some_and(|n| n > 0.0),
            Value::Bool(b) => *b,
            Value::Array(labels) => !labels.is_empty(),
            _ => false,
        })
        .map(|(name, _)| name.clone())
        .collect())
}
