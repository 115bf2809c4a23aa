//! Kinds of operations, each with its own default deadline.
use serde::{Deserialize, Serialize};

/// A kind of operation the escalation actor watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// Anything without a kind of its own (default deadline 30 s).
    Default,
    /// An input or output guardrail check (15 s).
    Guardrail,
    /// Authentication: key lookup, JWT validation, token fetch (10 s).
    Auth,
    /// A `tools/call` on an upstream (60 s).
    ToolExecution,
    /// Listing tools, resources or prompts (20 s).
    Discovery,
    /// A cache operation (5 s).
    Cache,
    /// A ping or connection attempt (2 s).
    Connectivity,
}

impl OpKind {
    /// Every kind, in a fixed order (metrics use it).
    pub const ALL: [OpKind; 7] = [
        OpKind::Default,
        OpKind::Guardrail,
        OpKind::Auth,
        OpKind::ToolExecution,
        OpKind::Discovery,
        OpKind::Cache,
        OpKind::Connectivity,
    ];

    /// The kind's name in config, logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Default => "default",
            OpKind::Guardrail => "guardrail",
            OpKind::Auth => "auth",
            OpKind::ToolExecution => "tool_execution",
            OpKind::Discovery => "discovery",
            OpKind::Cache => "cache",
            OpKind::Connectivity => "connectivity",
        }
    }

    /// Position in [`OpKind::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for OpKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
