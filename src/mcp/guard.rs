//! The guardrail steps of the request path: arguments and URIs on the way
//! in, results on the way out, tool lists as they are listed. Each step maps
//! a refusal to one [`GatewayError`] so clients see the policy and detector,
//! never the matched text.
use bulwark_actors::guardrail::{Guardrails, InputKind, Redactions};
use rmcp::model::JsonObject;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::GatewayError;

/// Checks (and with `pii_redaction`, rewrites) tool or prompt arguments.
pub async fn arguments(
    guardrails: &Guardrails,
    server: &str,
    kind: InputKind,
    arguments: &mut Option<JsonObject>,
) -> Result<Redactions, GatewayError> {
    let Some(object) = arguments.take() else {
        return Ok(Redactions::default());
    };
    let mut value = Value::Object(object);
    let checked = guardrails.check_input(server, kind, &mut value).await;
    if let Value::Object(object) = value {
        *arguments = Some(object);
    }
    Ok(checked?)
}

/// Checks a resource URI. It is never rewritten: a redacted URI would name
/// a different resource, so PII in a URI can only block.
pub async fn uri(guardrails: &Guardrails, server: &str, uri: &str) -> Result<(), GatewayError> {
    let mut value = Value::String(uri.to_owned());
    guardrails
        .check_input(server, InputKind::ResourceUri, &mut value)
        .await?;
    Ok(())
}

/// Checks a result on its way to the client and restores the input's
/// placeholders in it.
pub async fn output<T: Serialize + DeserializeOwned>(
    guardrails: &Guardrails,
    server: &str,
    result: T,
    redactions: &Redactions,
) -> Result<T, GatewayError> {
    let mut value = serde_json::to_value(&result)
        .map_err(|err| GatewayError::Internal(format!("result of '{server}': {err}")))?;
    guardrails
        .check_output(server, &mut value, redactions)
        .await?;
    serde_json::from_value(value)
        .map_err(|err| GatewayError::Internal(format!("checked result of '{server}': {err}")))
}
