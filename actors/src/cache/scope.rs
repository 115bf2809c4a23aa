//! What an invalidation covers.
use std::sync::Arc;

use super::key::{CacheKey, escape_segment};
use super::kind::CacheKind;

/// The entries one invalidation removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every entry.
    All,
    /// Every entry of one kind (e.g. all credentials after a key revocation).
    Kind(CacheKind),
    /// Every entry of one upstream, all kinds (its restart, a config change).
    Upstream(Arc<str>),
    /// One kind of one upstream (its `list_changed` notification).
    KindOf(CacheKind, Arc<str>),
    /// One entry (a revoked credential, a stale fill).
    Key(CacheKey),
}

impl Scope {
    /// Whether `key` lies in this scope.
    pub fn matches(&self, key: &CacheKey) -> bool {
        match self {
            Scope::All => true,
            Scope::Kind(kind) => key.kind() == *kind,
            Scope::Upstream(upstream) => key.upstream() == &**upstream,
            Scope::KindOf(kind, upstream) => key.kind() == *kind && key.upstream() == &**upstream,
            Scope::Key(one) => key == one,
        }
    }

    /// The Redis SCAN MATCH pattern of this scope under `prefix`.
    pub(crate) fn redis_pattern(&self, prefix: &str) -> String {
        let prefix = glob_escape(prefix);
        match self {
            Scope::All => format!("{prefix}:*"),
            Scope::Kind(kind) => format!("{prefix}:{}:*", kind.name()),
            Scope::Upstream(upstream) => format!("{prefix}:*:{}:*", escape_segment(upstream)),
            Scope::KindOf(kind, upstream) => {
                format!("{prefix}:{}:{}:*", kind.name(), escape_segment(upstream))
            }
            Scope::Key(key) => key.redis_key(&prefix),
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::All => f.write_str("all"),
            Scope::Kind(kind) => write!(f, "kind {kind}"),
            Scope::Upstream(upstream) => write!(f, "upstream {upstream}"),
            Scope::KindOf(kind, upstream) => write!(f, "{kind} of upstream {upstream}"),
            Scope::Key(key) => write!(f, "one {} entry of {}", key.kind(), key.upstream()),
        }
    }
}

fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_match_their_keys_only() {
        let tools_a = CacheKey::list(CacheKind::Tools, "a");
        let prompts_a = CacheKey::list(CacheKind::Prompts, "a");
        let tools_b = CacheKey::list(CacheKind::Tools, "b");
        let a: Arc<str> = "a".into();
        assert!(Scope::All.matches(&tools_b));
        assert!(Scope::Kind(CacheKind::Tools).matches(&tools_b));
        assert!(!Scope::Kind(CacheKind::Tools).matches(&prompts_a));
        assert!(Scope::Upstream(a.clone()).matches(&prompts_a));
        assert!(!Scope::Upstream(a.clone()).matches(&tools_b));
        assert!(Scope::KindOf(CacheKind::Tools, a.clone()).matches(&tools_a));
        assert!(!Scope::KindOf(CacheKind::Tools, a).matches(&prompts_a));
        assert!(Scope::Key(tools_a.clone()).matches(&tools_a));
        assert!(!Scope::Key(tools_a).matches(&tools_b));
    }

    #[test]
    fn redis_patterns_follow_the_key_layout() {
        let up: Arc<str> = "fs".into();
        assert_eq!(Scope::All.redis_pattern("p:v1"), "p:v1:*");
        assert_eq!(
            Scope::Kind(CacheKind::ToolResult).redis_pattern("p"),
            "p:tool_result:*"
        );
        assert_eq!(Scope::Upstream(up.clone()).redis_pattern("p"), "p:*:fs:*");
        assert_eq!(
            Scope::KindOf(CacheKind::Tools, up).redis_pattern("p*"),
            "p\\*:tools:fs:*"
        );
        let key = CacheKey::list(CacheKind::Tools, "fs");
        assert_eq!(
            Scope::Key(key.clone()).redis_pattern("p*"),
            key.redis_key("p\\*")
        );
    }
}
