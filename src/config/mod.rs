//! Configuration, layered: built-in defaults → `config/default.toml` →
//! `--config FILE` → `BULWARK__SECTION__KEY` environment variables, plus
//! upstreams from an `mcpServers` JSON file (`--mcp-servers`).
//!
//! The demo upstreams in `config/default.toml` run only when no other source
//! names any upstream, so `bulwark serve` works out of the box and a user's
//! own configuration is never mixed with the demo.
pub mod auth;
mod mcp_servers;
pub mod oauth;
pub mod telemetry;
mod validate;
pub mod virtual_servers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bulwark_actors::guardrail::GuardrailConfig;
use bulwark_actors::upstream::{Affinity, HealthSpec, Strategy};
use bulwark_supervisors::policy::RestartPolicy;
use serde::Deserialize;

pub use mcp_servers::load as load_mcp_servers;
pub use validate::check as validate;
pub(crate) use validate::expand_env;
pub use validate::resolve_specs as upstream_specs;

/// The embedded copy of `config/default.toml`, used when the file is absent.
const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// A configuration error; says which file, server and field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read or parsed.
    #[error("{file}: {message}")]
    File {
        /// The file at fault.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// The merged configuration is invalid.
    #[error("invalid configuration ({origin}): {message}")]
    Invalid {
        /// Where the offending value came from.
        origin: String,
        /// What is wrong, naming the field.
        message: String,
    },
}

/// The gateway's whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The HTTP front.
    #[serde(default)]
    pub server: ServerConfig,
    /// Default restart policy of every upstream.
    #[serde(default)]
    pub supervision: RestartPolicy,
    /// Upstream MCP servers by name.
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Input, output and tool-list checks.
    #[serde(default)]
    pub guardrails: GuardrailConfig,
    /// Client authentication, grants and rate limits.
    #[serde(default)]
    pub auth: auth::AuthConfig,
    /// The cache: backend, TTLs, cacheable tools.
    #[serde(default)]
    pub cache: bulwark_actors::cache::CacheConfig,
    /// Deadlines and escalation thresholds.
    #[serde(default)]
    pub timeouts: bulwark_actors::timeout::TimeoutsConfig,
    /// The management store (SQLite by default, PostgreSQL by URL).
    #[serde(default)]
    pub store: crate::store::StoreConfig,
    /// Metrics: `/metrics` and OTLP push.
    #[serde(default)]
    pub telemetry: telemetry::TelemetryConfig,
    /// Management logins: session token lifetime, lockout.
    #[serde(default)]
    pub login: crate::govern::LoginConfig,
    /// The audit trail: retention.
    #[serde(default)]
    pub audit: crate::govern::AuditConfig,
    /// Curated tool sets served at `/mcp/v/NAME`.
    #[serde(default)]
    pub virtual_servers: BTreeMap<String, virtual_servers::VirtualServerConfig>,
    /// Client sessions: this process only, or a directory every replica shares.
    #[serde(default)]
    pub sessions: crate::mcp::directory::SessionsConfig,
}

/// Settings of the HTTP front.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: String,
    /// Allowed `Host` header values (DNS-rebinding protection).
    pub allowed_hosts: Vec<String>,
    /// Allowed `Origin` header values; empty admits pages served from an
    /// allowed host only, `"*"` any origin.
    pub allowed_origins: Vec<String>,
    /// Joins server and tool in federated names.
    pub tool_separator: String,
    /// Lists the gateway's own tools (`bulwark__list_servers`, …) on `/mcp`.
    pub gateway_tools: bool,
    /// Where the gateway keeps its state (the keys file); default
    /// `$XDG_DATA_HOME/bulwark` or `~/.local/share/bulwark`.
    pub data_dir: Option<PathBuf>,
    /// Bounds of the HTTP front: connections, timeouts, bodies, sessions.
    pub limits: crate::front::limits::FrontLimits,
    /// A second address that serves `/api` (and `/health`, `/ready`); when
    /// set, the main address no longer serves `/api` (it keeps `/mcp` and
    /// the probes).
    pub admin_listen: Option<String>,
    /// At SIGTERM, how long calls in flight get to finish before they are cancelled.
    pub shutdown_grace_secs: u64,
}

impl ServerConfig {
    /// The configured data directory, or the XDG default.
    pub fn data_dir(&self) -> PathBuf {
        if let Some(dir) = &self.data_dir {
            return dir.clone();
        }
        let base = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("bulwark")
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8000".into(),
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            allowed_origins: Vec::new(),
            tool_separator: "__".into(),
            gateway_tools: true,
            data_dir: None,
            limits: crate::front::limits::FrontLimits::default(),
            admin_listen: None,
            shutdown_grace_secs: 30,
        }
    }
}

/// One upstream MCP server: launched over stdio (`command`) or remote (`url`).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Program to run; `{self}` is this gateway's own binary (for demo servers).
    #[serde(default)]
    pub command: String,
    /// A remote endpoint, instead of a command.
    #[serde(default)]
    pub url: Option<String>,
    /// The transport: `stdio` (with `command`), `http` (streamable HTTP) or
    /// `sse` (the legacy 2024-11-05 HTTP+SSE stream); with a `url` and no
    /// type, detected (`HttpProtocol::Detect`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<UpstreamKind>,
    /// Static HTTP headers for a remote upstream; values may be `${VAR}`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// OAuth client credentials: a bearer token for a remote upstream, or
    /// the variable `token_env` for a stdio one.
    #[serde(default)]
    pub oauth: Option<oauth::OAuthConfig>,
    /// stdio upstreams with OAuth: the environment variable carrying the token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// Its arguments; `${VAR}` is replaced from the gateway's environment.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment for the process (plus PATH and HOME); values may be `${VAR}`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Disabled upstreams are not started.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Overrides the `[supervision]` policy for this upstream.
    #[serde(default)]
    pub restart: Option<RestartPolicy>,
    /// Whether its tools' federated names carry the `server__` prefix.
    #[serde(default, skip_serializing_if = "PrefixMode::is_always")]
    pub prefix: PrefixMode,
    /// A command upstream: how many processes of it run as one pool (1 when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<usize>,
    /// A remote upstream served by several endpoints: one instance per URL
    /// (instead of `url`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// How calls pick an instance of a pool.
    #[serde(default, skip_serializing_if = "is_default")]
    pub strategy: Strategy,
    /// `strategy = "weighted"`: one weight per instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weights: Vec<u32>,
    /// `"session"` keeps each client session on one instance.
    #[serde(default, skip_serializing_if = "is_default")]
    pub affinity: Affinity,
    /// Active health checks of every instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthSpec>,
    /// Where it was defined, so that errors about it name that place.
    #[serde(skip)]
    defined: Defined,
    /// The keys of its `mcpServers` entry the gateway ignores (see
    /// [`Config::warn_ignored_keys`]).
    #[serde(skip)]
    ignored: Vec<&'static str>,
}

/// Where an upstream was defined.
#[derive(Debug, Clone, Default)]
enum Defined {
    /// `[upstreams.NAME]` of the TOML layers (or a management request).
    #[default]
    Toml,
    /// `mcpServers.NAME` of this JSON file.
    McpServers(std::sync::Arc<str>),
}

impl UpstreamConfig {
    /// Its key where it was defined: `upstreams.NAME` or `mcpServers.NAME`.
    fn at(&self, name: &str) -> String {
        match self.defined {
            Defined::Toml => format!("upstreams.{name}"),
            Defined::McpServers(_) => format!("mcpServers.{name}"),
        }
    }

    /// The launch settings (`env`, `args`, `cwd`) it was given: a
    /// process's, which a remote (`url`) upstream's server never receives.
    fn launch_settings(&self) -> Vec<&'static str> {
        [
            ("env", !self.env.is_empty()),
            ("args", !self.args.is_empty()),
            ("cwd", self.cwd.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, given)| given.then_some(key))
        .collect()
    }

    /// Whether its server is remote (`url` or `urls`).
    fn is_remote(&self) -> bool {
        self.url.is_some() || !self.urls.is_empty()
    }

    /// Drops the launch settings of a remote upstream and names those it
    /// had. Stdio upstreams are left as they are.
    pub fn take_remote_launch_settings(&mut self) -> Vec<&'static str> {
        if !self.is_remote() {
            return Vec::new();
        }
        let given = self.launch_settings();
        self.env.clear();
        self.args.clear();
        self.cwd = None;
        given
    }

    /// The keys of its `mcpServers` entry that the gateway ignores: other
    /// clients' own settings (`autoApprove`, `alwaysAllow`, `timeout`,
    /// `watchPaths`) and a remote server's `env`, `args` and `cwd`.
    pub fn ignored_keys(&self) -> &[&'static str] {
        &self.ignored
    }

    /// The file it was defined in: its `mcpServers` file, or else `toml`
    /// (the origin of the TOML layers).
    fn origin<'a>(&'a self, toml: &'a str) -> &'a str {
        match &self.defined {
            Defined::Toml => toml,
            Defined::McpServers(file) => file,
        }
    }
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// When an upstream's tool names get the `server__` prefix on `/mcp`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PrefixMode {
    /// Always `server__tool`.
    #[default]
    Always,
    /// The bare name, unless another upstream's tool has the same bare name.
    Conditional,
    /// Always the bare name; a collision with another `never` upstream is a
    /// configuration error.
    Never,
}

impl PrefixMode {
    fn is_always(&self) -> bool {
        *self == Self::Always
    }
}

fn enabled() -> bool {
    true
}

/// How an upstream is reached (`type` in the file and in `mcpServers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamKind {
    /// A child process over stdin/stdout.
    Stdio,
    /// Streamable HTTP.
    #[serde(
        alias = "streamable-http",
        alias = "streamableHttp",
        alias = "streamablehttp"
    )]
    Http,
    /// The legacy HTTP+SSE transport (MCP 2024-11-05).
    Sse,
}

/// Where configuration comes from.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// `--config FILE`.
    pub config_file: Option<PathBuf>,
    /// `--mcp-servers FILE`.
    pub mcp_servers: Option<PathBuf>,
}

/// What the gateway says of a key it ignores in `mcpServers.NAME`.
pub fn ignored_key(name: &str, key: &str) -> String {
    let why = match key {
        "env" => {
            "applies to launched (command) servers only: a remote server never receives it (send keys in `headers`)"
        }
        "args" | "cwd" => "applies to launched (command) servers only",
        _ => "is a client-side setting the gateway does not use",
    };
    format!("mcpServers.{name}.{key} {why}; ignored")
}

impl Config {
    /// Logs one warning per key that an `mcpServers` entry had and the
    /// gateway ignores (see [`UpstreamConfig::ignored_keys`]). Loading
    /// does not log (at start, logging is set up from the loaded
    /// configuration); whoever puts a loaded configuration to use calls this.
    pub fn warn_ignored_keys(&self) {
        for (name, upstream) in &self.upstreams {
            for key in &upstream.ignored {
                tracing::warn!(
                    file = upstream.origin(""),
                    server = %name,
                    key,
                    "{}",
                    ignored_key(name, key)
                );
            }
        }
    }

    /// Loads and validates the layered configuration.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        let (default_text, default_origin) = match std::fs::read_to_string("config/default.toml") {
            Ok(text) => (text, "config/default.toml".to_owned()),
            Err(_) => (
                DEFAULT_TOML.to_owned(),
                "built-in config/default.toml".to_owned(),
            ),
        };
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            &default_text,
            config::FileFormat::Toml,
        ));
        let user_upstreams = sources.mcp_servers.is_some()
            || sources
                .config_file
                .as_deref()
                .is_some_and(file_names_upstreams);
        if user_upstreams {
            // The demo upstreams are a fallback, never mixed into a user's set.
            builder = config::Config::builder().add_source(config::File::from_str(
                &strip_upstreams(&default_text, &default_origin)?,
                config::FileFormat::Toml,
            ));
        }
        let mut origin = default_origin;
        if let Some(file) = &sources.config_file {
            if !file.exists() {
                return Err(ConfigError::File {
                    file: file.display().to_string(),
                    message: "no such file".into(),
                });
            }
            builder = builder.add_source(config::File::from(file.as_path()).required(true));
            origin = file.display().to_string();
        }
        builder = builder.add_source(
            config::Environment::with_prefix("BULWARK")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("server.allowed_hosts")
                .with_list_parse_key("server.allowed_origins")
                .with_list_parse_key("auth.jwt.audience"),
        );
        let merged = builder.build().map_err(|err| ConfigError::Invalid {
            origin: origin.clone(),
            message: crate::mask::config_error(&err.to_string()),
        })?;
        let mut config: Config = merged
            .try_deserialize()
            .map_err(|err| ConfigError::Invalid {
                origin: origin.clone(),
                message: crate::mask::config_error(&err.to_string()),
            })?;
        if let Some(file) = &sources.mcp_servers {
            for (name, upstream) in mcp_servers::load(file)? {
                if config.upstreams.contains_key(&name) {
                    return Err(ConfigError::File {
                        file: file.display().to_string(),
                        message: format!("server '{name}' is also defined in {origin}"),
                    });
                }
                config.upstreams.insert(name, upstream);
            }
        }
        validate::check(&config, &origin)?;
        validate::resolve_guardrail_env(&mut config, &origin)?;
        if let Some(token) = &mut config.telemetry.metrics_token {
            token.expand().map_err(|message| ConfigError::Invalid {
                origin: origin.clone(),
                message,
            })?;
        }
        Ok(config)
    }
}

fn file_names_upstreams(file: &Path) -> bool {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .is_some_and(|table| table.contains_key("upstreams"))
}

fn strip_upstreams(text: &str, origin: &str) -> Result<String, ConfigError> {
    let mut table = text
        .parse::<toml::Table>()
        .map_err(|err| ConfigError::File {
            file: origin.to_owned(),
            message: err.to_string(),
        })?;
    table.remove("upstreams");
    toml::to_string(&table).map_err(|err| ConfigError::File {
        file: origin.to_owned(),
        message: err.to_string(),
    })
}
