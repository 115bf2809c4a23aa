//! What the cache holds: one [`CacheKind`] per kind of entry, each with its
//! own TTL and statistics.
use serde::{Deserialize, Serialize};

/// A kind of cached entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheKind {
    /// An upstream's `tools/list`.
    Tools,
    /// An upstream's `resources/list`.
    Resources,
    /// An upstream's `resources/templates/list`.
    ResourceTemplates,
    /// An upstream's `prompts/list`.
    Prompts,
    /// A client credential resolved to its project and grants.
    Credential,
    /// A cacheable tool's result, keyed by tool and canonical arguments.
    ToolResult,
}

impl CacheKind {
    /// Every kind, in a fixed order (the stats snapshot uses it).
    pub const ALL: [CacheKind; 6] = [
        CacheKind::Tools,
        CacheKind::Resources,
        CacheKind::ResourceTemplates,
        CacheKind::Prompts,
        CacheKind::Credential,
        CacheKind::ToolResult,
    ];

    /// The kind's name in keys, config and stats.
    pub fn name(self) -> &'static str {
        match self {
            CacheKind::Tools => "tools",
            CacheKind::Resources => "resources",
            CacheKind::ResourceTemplates => "resource_templates",
            CacheKind::Prompts => "prompts",
            CacheKind::Credential => "credential",
            CacheKind::ToolResult => "tool_result",
        }
    }

    /// The kind called `name` (as [`CacheKind::name`] spells it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Position in [`CacheKind::ALL`], for per-kind arrays.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for CacheKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_matches_position_in_all() {
        for (i, kind) in CacheKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
    }

    #[test]
    fn serde_name_matches_key_name() {
        for kind in CacheKind::ALL {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, serde_json::Value::String(kind.name().into()));
        }
    }
}
