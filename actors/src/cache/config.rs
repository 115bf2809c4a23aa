//! The `[cache]` configuration section and the rule that decides whether a
//! tool's result may be cached.
//!
//! ```toml
//! [cache]
//! backend = "memory"            # or "redis"
//! redis_url = "redis://127.0.0.1:6379"
//! key_prefix = "bulwark:v1"
//! max_entries = 10000           # memory backend bounds: entries ...
//! max_bytes = 67108864          # ... and approximate bytes of values (64 MiB)
//! op_timeout_ms = 250           # every Redis operation
//! outage_backoff_ms = 1000      # after a Redis error, skip Redis this long
//! annotated_results = true      # cache tools annotated readOnly + idempotent
//!
//! [cache.ttl_secs]
//! tools = 14400
//! credential = 86400
//! tool_result = 300
//!
//! [cache.tools."server__tool"]
//! cacheable = true
//! ttl_secs = 60
//! ```
use std::collections::BTreeMap;
use std::time::Duration;

use rmcp::model::ToolAnnotations;
use serde::{Deserialize, Serialize};

use super::kind::CacheKind;

/// Where entries live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// In this process, bounded by `max_entries` (moka).
    #[default]
    Memory,
    /// In Redis at `redis_url`, shared by every gateway replica.
    Redis,
}

/// The `[cache]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Memory (default) or Redis.
    pub backend: BackendKind,
    /// `redis://…` or `rediss://…`; required when `backend = "redis"`.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key, so gateways sharing a Redis can be kept apart
    /// and a key-format change can bump the version.
    pub key_prefix: String,
    /// Most entries the memory backend keeps before evicting.
    pub max_entries: u64,
    /// Approximate bytes of values the memory backend keeps before evicting
    /// (large tool results must not grow the gateway without bound).
    pub max_bytes: u64,
    /// Upper bound of one Redis operation; a slower one counts as a miss.
    pub op_timeout_ms: u64,
    /// After a Redis error, operations skip Redis (as misses) this long, so an
    /// outage costs calls nothing rather than `op_timeout_ms` each.
    pub outage_backoff_ms: u64,
    /// Cache the results of tools annotated both `readOnlyHint` and
    /// `idempotentHint` even when not configured under `[cache.tools]`.
    pub annotated_results: bool,
    /// TTL per kind.
    pub ttl_secs: KindTtls,
    /// Result caching per federated tool name (`server__tool`).
    pub tools: BTreeMap<String, ToolCacheConfig>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            backend: BackendKind::Memory,
            redis_url: None,
            key_prefix: "bulwark:v1".into(),
            max_entries: 10_000,
            max_bytes: 64 * 1024 * 1024,
            op_timeout_ms: 250,
            outage_backoff_ms: 1_000,
            annotated_results: true,
            ttl_secs: KindTtls::default(),
            tools: BTreeMap::new(),
        }
    }
}

impl CacheConfig {
    /// The TTL of `kind`.
    pub fn ttl(&self, kind: CacheKind) -> Duration {
        Duration::from_secs(self.ttl_secs.get(kind))
    }

    /// Timeout of one Redis operation.
    pub fn op_timeout(&self) -> Duration {
        Duration::from_millis(self.op_timeout_ms.max(1))
    }

    /// How long Redis is skipped after an error.
    pub fn outage_backoff(&self) -> Duration {
        Duration::from_millis(self.outage_backoff_ms)
    }

    /// Whether (and how long) the result of `tool` (federated name) may be
    /// cached, given its annotations: see [`result_cacheable`].
    pub fn result_ttl(
        &self,
        tool: &str,
        annotations: Option<&ToolAnnotations>,
    ) -> Option<Duration> {
        let annotations = annotations.filter(|_| self.annotated_results);
        result_cacheable(
            self.tools.get(tool),
            annotations,
            self.ttl(CacheKind::ToolResult),
        )
    }

    /// Checks values a type cannot: a Redis backend needs a URL.
    pub fn validate(&self) -> Result<(), String> {
        if self.backend == BackendKind::Redis && self.redis_url.is_none() {
            return Err("cache.redis_url is required when cache.backend = \"redis\"".into());
        }
        if self.max_entries == 0 {
            return Err("cache.max_entries must be at least 1".into());
        }
        if self.max_bytes < 1024 {
            return Err("cache.max_bytes must be at least 1024".into());
        }
        Ok(())
    }
}

/// TTL in seconds per kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KindTtls {
    /// `tools/list`, default 4 h.
    pub tools: u64,
    /// `resources/list`, default 4 h.
    pub resources: u64,
    /// `resources/templates/list`, default 4 h.
    pub resource_templates: u64,
    /// `prompts/list`, default 4 h.
    pub prompts: u64,
    /// Credential → project and grants, default 24 h.
    pub credential: u64,
    /// Tool results without a per-tool TTL, default 5 min.
    pub tool_result: u64,
}

impl Default for KindTtls {
    fn default() -> Self {
        const FOUR_HOURS: u64 = 4 * 3600;
        Self {
            tools: FOUR_HOURS,
            resources: FOUR_HOURS,
            resource_templates: FOUR_HOURS,
            prompts: FOUR_HOURS,
            credential: 24 * 3600,
            tool_result: 300,
        }
    }
}

impl KindTtls {
    /// The TTL of `kind` in seconds.
    pub fn get(&self, kind: CacheKind) -> u64 {
        match kind {
            CacheKind::Tools => self.tools,
            CacheKind::Resources => self.resources,
            CacheKind::ResourceTemplates => self.resource_templates,
            CacheKind::Prompts => self.prompts,
            CacheKind::Credential => self.credential,
            CacheKind::ToolResult => self.tool_result,
        }
    }
}

/// `[cache.tools."server__tool"]`: result caching of one tool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolCacheConfig {
    /// `true` caches the tool's results whatever its annotations say; `false`
    /// never caches them, even when annotated read-only and idempotent.
    pub cacheable: Option<bool>,
    /// TTL of the tool's results; setting it alone also makes the tool cacheable.
    pub ttl_secs: Option<u64>,
}

/// Whether a tool's result may be cached, and for how long: cacheable when
/// configured (`cacheable = true` or a `ttl_secs`), or when annotated both
/// `readOnlyHint` and `idempotentHint`; never when configured
/// `cacheable = false` or with a zero TTL.
pub fn result_cacheable(
    tool: Option<&ToolCacheConfig>,
    annotations: Option<&ToolAnnotations>,
    default_ttl: Duration,
) -> Option<Duration> {
    let configured = tool.and_then(|t| t.cacheable.or(t.ttl_secs.map(|_| true)));
    let cacheable = configured.unwrap_or_else(|| {
        annotations
            .is_some_and(|a| a.read_only_hint == Some(true) && a.idempotent_hint == Some(true))
    });
    let ttl = tool
        .and_then(|t| t.ttl_secs)
        .map_or(default_ttl, Duration::from_secs);
    (cacheable && !ttl.is_zero()).then_some(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: Duration = Duration::from_secs(300);

    fn annotated(read_only: bool, idempotent: bool) -> ToolAnnotations {
        ToolAnnotations::new()
            .read_only(read_only)
            .idempotent(idempotent)
    }

    fn tool(cacheable: Option<bool>, ttl_secs: Option<u64>) -> ToolCacheConfig {
        ToolCacheConfig {
            cacheable,
            ttl_secs,
        }
    }

    #[test]
    fn unannotated_unconfigured_tools_are_not_cacheable() {
        assert_eq!(result_cacheable(None, None, DEFAULT), None);
        assert_eq!(
            result_cacheable(None, Some(&ToolAnnotations::new()), DEFAULT),
            None
        );
    }

    #[test]
    fn read_only_and_idempotent_together_make_a_tool_cacheable() {
        let both = annotated(true, true);
        assert_eq!(result_cacheable(None, Some(&both), DEFAULT), Some(DEFAULT));
        assert_eq!(
            result_cacheable(None, Some(&annotated(true, false)), DEFAULT),
            None
        );
        assert_eq!(
            result_cacheable(None, Some(&annotated(false, true)), DEFAULT),
            None
        );
    }

    #[test]
    fn configuration_overrides_annotations_both_ways() {
        let both = annotated(true, true);
        let off = tool(Some(false), None);
        assert_eq!(result_cacheable(Some(&off), Some(&both), DEFAULT), None);
        let on = tool(Some(true), None);
        assert_eq!(result_cacheable(Some(&on), None, DEFAULT), Some(DEFAULT));
        let ttl_only = tool(None, Some(60));
        assert_eq!(
            result_cacheable(Some(&ttl_only), None, DEFAULT),
            Some(Duration::from_secs(60))
        );
        let zero = tool(Some(true), Some(0));
        assert_eq!(result_cacheable(Some(&zero), Some(&both), DEFAULT), None);
    }

    #[test]
    fn section_parses_from_toml_with_defaults_and_rejects_unknown_fields() {
        let cfg: CacheConfig = toml_like(
            r#"{"backend": "redis", "redis_url": "redis://127.0.0.1:6379",
                "ttl_secs": {"tools": 10},
                "tools": {"fs__read": {"ttl_secs": 30}}}"#,
        )
        .unwrap();
        assert_eq!(cfg.backend, BackendKind::Redis);
        assert_eq!(cfg.ttl(CacheKind::Tools), Duration::from_secs(10));
        assert_eq!(cfg.ttl(CacheKind::Prompts), Duration::from_secs(4 * 3600));
        assert_eq!(
            cfg.ttl(CacheKind::Credential),
            Duration::from_secs(24 * 3600)
        );
        assert_eq!(
            cfg.result_ttl("fs__read", None),
            Some(Duration::from_secs(30))
        );
        assert_eq!(cfg.result_ttl("fs__write", None), None);
        cfg.validate().unwrap();
        assert!(toml_like::<CacheConfig>(r#"{"bakend": "memory"}"#).is_err());
        assert!(toml_like::<CacheConfig>(r#"{"tools": {"a__b": {"ttl": 1}}}"#).is_err());
        let no_url: CacheConfig = toml_like(r#"{"backend": "redis"}"#).unwrap();
        assert!(no_url.validate().is_err());
    }

    #[test]
    fn annotated_results_switch_turns_annotation_rule_off() {
        let cfg = CacheConfig {
            annotated_results: false,
            ..CacheConfig::default()
        };
        assert_eq!(cfg.result_ttl("a__b", Some(&annotated(true, true))), None);
        let on = CacheConfig::default();
        assert_eq!(
            on.result_ttl("a__b", Some(&annotated(true, true))),
            Some(DEFAULT)
        );
    }

    /// The gateway reads config through the `config` crate; JSON exercises the
    /// same serde derive without another dev-dependency.
    fn toml_like<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, serde_json::Error> {
        serde_json::from_str(json)
    }
}
