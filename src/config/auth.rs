//! The `[auth]` section: who may call the gateway and what they may use.
//!
//! ```toml
//! [auth]
//! enabled = true                 # BULWARK__AUTH__ENABLED=false turns it off (loopback only)
//! keys_file = "/var/lib/bulwark/keys.toml"   # default: DATA_DIR/keys.toml
//! [auth.projects.demo]
//! upstreams = ["echo", "time"]   # or ["*"]
//! [auth.projects.demo.tools.echo]
//! allow = ["echo", "add"]        # or deny = ["add"]; a trailing * matches a prefix
//! [auth.projects.big]
//! upstreams = ["*"]
//! tool_listing = "search"        # tools/list: gateway tools + pinned_tools only
//! pinned_tools = ["echo__echo"]
//! [[auth.keys]]                  # keys may also live in the config (hash only)
//! id = "k1"
//! hash = "sha256:…"
//! user = "alice"
//! project = "demo"
//! [auth.jwt]
//! hs256_secret = "${JWT_SECRET}"
//! jwks_url = "https://idp.example/.well-known/jwks.json"
//! issuer = "https://idp.example"
//! audience = ["bulwark"]
//! project_claim = "project"
//! [auth.oauth]                   # RFC 9728 protected-resource metadata
//! resource = "http://127.0.0.1:8000/mcp"
//! authorization_servers = ["https://idp.example"]
//! [auth.rate_limits]
//! per_key = { per_minute = 600, burst = 100 }
//! per_upstream = { per_minute = 300, burst = 50 }
//! per_tool = { "echo__slow" = { per_minute = 10, burst = 2 } }
//! backend = "redis"              # every budget shared by replicas; default "local"
//! redis_url = "redis://127.0.0.1:6379"   # default: cache.redis_url
//! ```
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The project every upstream is open to; the bootstrap key belongs to it,
/// and only its members may use `/api/v1`.
pub const ADMIN_PROJECT: &str = "admin";

/// Client authentication, grants and rate limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Off only for local testing: the gateway warns and listens on loopback only.
    pub enabled: bool,
    /// Lets a gateway with authentication off listen on a non-loopback address.
    pub allow_insecure: bool,
    /// Where `bulwark key create` writes key hashes; default `DATA_DIR/keys.toml`.
    pub keys_file: Option<PathBuf>,
    /// Projects by name: the upstreams and tools their keys and tokens may use.
    pub projects: BTreeMap<String, ProjectConfig>,
    /// Keys declared in the config itself (hashes only), next to the keys file.
    pub keys: Vec<KeyEntry>,
    /// JWT bearer tokens from an identity provider.
    pub jwt: Option<JwtConfig>,
    /// MCP authorization: publishes RFC 9728 metadata and points 401s at it.
    pub oauth: Option<OAuthConfig>,
    /// Request budgets per caller.
    pub rate_limits: RateLimitsConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            allow_insecure: false,
            keys_file: None,
            projects: BTreeMap::new(),
            keys: Vec::new(),
            jwt: None,
            oauth: None,
            rate_limits: RateLimitsConfig::default(),
        }
    }
}

/// What one project may use.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectConfig {
    /// Upstream names, or `"*"` for all of them.
    pub upstreams: Vec<String>,
    /// Per upstream: which of its tools (prompts and resources follow the upstream).
    pub tools: BTreeMap<String, ToolRules>,
    /// What `tools/list` on `/mcp` shows this project.
    #[serde(skip_serializing_if = "ToolListing::is_full")]
    pub tool_listing: ToolListing,
    /// In `search` listing: the federated names listed next to the gateway's
    /// own tools (still subject to the grant).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pinned_tools: Vec<String>,
}

/// How `tools/list` on `/mcp` presents a project's tools.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolListing {
    /// Every tool the project may use.
    #[default]
    Full,
    /// Only the gateway's own tools (with `bulwark__search_tools`) and the
    /// pinned ones; the rest are found by search and called as usual.
    Search,
}

impl ToolListing {
    fn is_full(&self) -> bool {
        *self == Self::Full
    }
}

/// Tool allow and deny lists of one upstream; deny wins.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolRules {
    /// Only these tools (absent: all of them). A trailing `*` matches a prefix.
    pub allow: Option<Vec<String>>,
    /// Never these tools. A trailing `*` matches a prefix.
    pub deny: Vec<String>,
}

/// One API key as stored: never the key itself, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// Short public identifier, shown in lists and logs.
    pub id: String,
    /// `sha256:` + hex digest of the key.
    pub hash: String,
    /// The user the key belongs to.
    pub user: String,
    /// The project whose grants the key carries.
    pub project: String,
    /// A revoked key is refused.
    #[serde(default)]
    pub revoked: bool,
    /// Creation time, seconds since the Unix epoch.
    #[serde(default)]
    pub created_at: Option<u64>,
}

/// JWT verification: HS256 with a shared secret and/or keys from a JWKS URL.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// HS256 shared secret; `${VAR}` reads it from the environment.
    pub hs256_secret: Option<String>,
    /// JWKS document with the provider's RS256/ES256 public keys.
    pub jwks_url: Option<String>,
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Accepted `aud` values (one must match).
    pub audience: Vec<String>,
    /// The claim naming the caller's project.
    pub project_claim: String,
    /// The claim naming the user (default `sub`).
    pub user_claim: String,
    /// Clock skew tolerated on `exp`/`nbf`, seconds.
    pub leeway_secs: u64,
    /// JWKS older than this is fetched again on next use, seconds.
    pub jwks_ttl_secs: u64,
    /// An unknown `kid` fetches the JWKS again at most this often, seconds:
    /// tokens with made-up kids must not turn the gateway into a request flood.
    pub jwks_min_refetch_secs: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            hs256_secret: None,
            jwks_url: None,
            issuer: None,
            audience: Vec::new(),
            project_claim: "project".into(),
            user_claim: "sub".into(),
            leeway_secs: 30,
            jwks_ttl_secs: 300,
            jwks_min_refetch_secs: 10,
        }
    }
}

/// RFC 9728 protected-resource metadata.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// This gateway's MCP endpoint as clients reach it.
    pub resource: String,
    /// Authorization servers that issue tokens for it.
    pub authorization_servers: Vec<String>,
    /// Scopes clients may request.
    #[serde(default)]
    pub scopes_supported: Vec<String>,
}

/// Request budgets, keyed on the caller's identity (never on the MCP session).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitsConfig {
    /// Every HTTP request (or stdio call) of one caller.
    pub per_key: Option<Rate>,
    /// Calls of one caller to one upstream.
    pub per_upstream: Option<Rate>,
    /// Calls of one caller to one tool, by federated name (`server__tool`).
    pub per_tool: BTreeMap<String, Rate>,
    /// How often idle buckets are dropped, seconds.
    pub prune_interval_secs: u64,
    /// Where the budgets live: this process, or Redis (shared by every
    /// replica).
    pub backend: LimitBackend,
    /// Redis for `backend = "redis"`; default: `cache.redis_url`.
    pub redis_url: Option<String>,
}

/// Where the budgets are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitBackend {
    /// In this process (each replica its own budget).
    #[default]
    Local,
    /// In Redis: one budget across every replica; local while unreachable.
    Redis,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self {
            per_key: None,
            per_upstream: None,
            per_tool: BTreeMap::new(),
            prune_interval_secs: 60,
            backend: LimitBackend::Local,
            redis_url: None,
        }
    }
}

/// A token bucket: `per_minute` sustained, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Sustained requests per minute.
    pub per_minute: u32,
    /// Requests allowed at once (default: `per_minute`).
    #[serde(default)]
    pub burst: Option<u32>,
}
