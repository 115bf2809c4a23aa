//! Guardrails end to end: the hostile demo upstreams behind the real gateway,
//! a real client (the official Python SDK) on `/mcp`, and remote providers
//! over real HTTP on loopback.
mod hostile;
mod providers;

use serde_json::Value;

/// JSON-RPC code of a guardrail refusal.
pub const GUARDRAIL_BLOCKED: i64 = -32006;

/// Asserts `answer` is a guardrail refusal by `detector`, and returns its message.
pub fn assert_blocked(answer: &Value, detector: &str) -> String {
    assert_eq!(answer["ok"], false, "expected a refusal: {answer}");
    assert_eq!(answer["error"]["code"], GUARDRAIL_BLOCKED, "{answer}");
    let message = answer["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains(&format!("`{detector}`")),
        "refusal should name detector {detector}: {message}"
    );
    message
}
