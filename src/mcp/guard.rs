//! The guardrail steps of the request path: arguments and URIs on the way
//! in, results on the way out, tool lists as they are listed. Each step maps
//! a refusal to one [`GatewayError`] so clients see the policy and detector,
//! never the matched text.
use bulwark_actors::guardrail::{Guardrails, InputKind, Redactions};
use rmcp::model::{CallToolResult, ContentBlock, JsonObject};
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

/// [`output`] for a tool result, without the round trip through a JSON
/// value in the common case: text blocks (without `_meta`) and structured
/// content are moved into a list of their strings and values, checked, and
/// moved back. The wrapper (`content`, `type`, `text` keys) carries nothing a
/// detector looks for; the size limit counts the checked values. Any other
/// content takes the full round trip.
pub async fn tool_output(
    guardrails: &Guardrails,
    server: &str,
    mut result: CallToolResult,
    redactions: &Redactions,
) -> Result<CallToolResult, GatewayError> {
    let plain = result.meta.is_none()
        && result
            .content
            .iter()
            .all(|block| matches!(block, ContentBlock::Text(text) if text.meta.is_none()));
    if !plain {
        return output(guardrails, server, result, redactions).await;
    }
    let mut parts: Vec<Value> = result
        .content
        .iter_mut()
        .map(|block| match block {
            ContentBlock::Text(text) => Value::String(std::mem::take(&mut text.text)),
            _ => Value::Null,
        })
        .collect();
    if let Some(structured) = result.structured_content.take() {
        parts.push(structured);
    }
    let mut value = Value::Array(parts);
    let checked = guardrails
        .check_output(server, &mut value, redactions)
        .await;
    let Value::Array(parts) = value else {
        return Err(GatewayError::Internal(format!(
            "checked result of '{server}' changed shape"
        )));
    };
    let mut parts = parts.into_iter();
    for block in &mut result.content {
        if let (ContentBlock::Text(text), Some(Value::String(checked))) = (block, parts.next()) {
            text.text = checked;
        }
    }
    result.structured_content = parts.next();
    checked?;
    Ok(result)
}
