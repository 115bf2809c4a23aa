//! What a check returns: a block, or a report of what was changed and noted.
use serde::Serialize;

/// Which way the checked content was going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Client → upstream: arguments and URIs.
    Input,
    /// Upstream → client: results.
    Output,
    /// An upstream's tool definitions.
    Tools,
}

impl Direction {
    /// How logs and traces name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Output => "output",
            Self::Tools => "tool list",
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an input is (for logs; every kind gets the same policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// `tools/call` arguments.
    ToolArguments,
    /// `prompts/get` arguments.
    PromptArguments,
    /// `resources/read` URI.
    ResourceUri,
    /// A client's answer to an upstream's mid-call request (sampling,
    /// elicitation, roots): it travels upstream like arguments do.
    ClientAnswer,
}

/// A refused call. Its `Display` names the policy, the direction, the
/// detector and the provider: never the matched text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error(
    "blocked by guardrail policy `{policy_name}` ({direction}): detector `{detector}` of provider `{provider}`"
)]
pub struct GuardrailBlock {
    /// The policy's `policy_name` (`pin_tools`/`tool_poisoning` for tool blocks).
    pub policy_name: String,
    /// Input, output or tool list.
    pub direction: Direction,
    /// Stable detector name, e.g. `secrets`, `moderation:violence`, `provider_error`.
    pub detector: String,
    /// `local` or the remote provider's configured name.
    pub provider: String,
}

/// A finding that did not block (its detector is not in the policy's `block`
/// list, or its provider failed open).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flag {
    /// Stable detector name.
    pub detector: String,
    /// `local` or the remote provider's name.
    pub provider: String,
}

/// What an output check changed and noted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutputReport {
    /// PII values the upstream produced that were masked.
    pub masked: usize,
    /// Input placeholders put back to the client's own values.
    pub restored: usize,
    /// Non-blocking findings.
    pub flagged: Vec<Flag>,
}
