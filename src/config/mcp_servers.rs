//! Upstreams from the `mcpServers` JSON that Claude Desktop and Cursor write:
//! `{"mcpServers": {"name": {"command": "…", "args": […], "env": {…}}}}`, and
//! remote ones: `{"name": {"url": "https://…/mcp", "headers": {…}}}` (`"type": "sse"`
//! for a legacy HTTP+SSE server).
//!
//! Other clients' files load too: Windsurf's `serverUrl` is another name for
//! `url`, Cline's legacy `transportType` another name for `type`, and the
//! client-side settings Cline, Roo Code and others keep beside a server
//! (`autoApprove`, `alwaysAllow`, `timeout`, `watchPaths`) are ignored, with a
//! warning ([`super::Config::warn_ignored_keys`]), as are a remote server's
//! `env`, `args` and `cwd` (its own client dropped them too; a TOML upstream
//! with them is refused); Roo Code's `disabledTools`
//! is refused, since ignored it would offer the tools it lists. Any
//! other key is an error that lists the accepted ones, and so is a name given
//! twice (a server, a variable, a header): a plain JSON map would silently
//! keep only the last.
use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Unexpected, Visitor};

use super::{ConfigError, Defined, UpstreamConfig, UpstreamKind};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    #[serde(deserialize_with = "servers")]
    mcp_servers: Unique<Server>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    command: Option<String>,
    #[serde(default, deserialize_with = "arguments")]
    args: Vec<String>,
    #[serde(default, deserialize_with = "variables")]
    env: Unique<Text>,
    #[serde(default)]
    cwd: Option<PathBuf>,
    #[serde(default)]
    disabled: bool,
    url: Option<String>,
    /// Windsurf's name for `url`.
    #[serde(rename = "serverUrl")]
    server_url: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    /// Cline's legacy name for `type` (`"stdio"`, `"sse"` or `"http"`).
    #[serde(rename = "transportType")]
    transport_type: Option<String>,
    #[serde(default, deserialize_with = "headers")]
    headers: Unique<Text>,
    // Client-side settings (which tools run without asking, the client's
    // own timeout): nothing for the gateway to do with them.
    #[serde(rename = "autoApprove")]
    auto_approve: Option<IgnoredAny>,
    #[serde(rename = "alwaysAllow")]
    always_allow: Option<IgnoredAny>,
    timeout: Option<IgnoredAny>,
    /// Roo Code's files to watch for a restart.
    #[serde(rename = "watchPaths")]
    watch_paths: Option<IgnoredAny>,
    /// Roo Code's tools the client does not offer: refused, since ignoring
    /// it would offer them.
    #[serde(rename = "disabledTools")]
    disabled_tools: Option<IgnoredAny>,
}

/// Reads the upstreams of an `mcpServers` file, in file order.
pub fn load(path: &Path) -> Result<Vec<(String, UpstreamConfig)>, ConfigError> {
    let file = path.display().to_string();
    let error = |message: String| ConfigError::File {
        file: file.clone(),
        // serde quotes some values it refuses; the ones that may be secrets
        // are never quoted (see `Text`), and this masks any credential shape.
        message: crate::mask::mask(&message, []),
    };
    let text = std::fs::read_to_string(path).map_err(|err| error(err.to_string()))?;
    // Straight from the text, never through `serde_json::Value`, whose maps
    // would drop a repeated key; the path names the server and field at fault.
    let mut reader = serde_json::Deserializer::from_str(&text);
    let parsed: File =
        serde_path_to_error::deserialize(&mut reader).map_err(|err| error(err.to_string()))?;
    reader.end().map_err(|err| error(err.to_string()))?;
    let defined = Defined::McpServers(Arc::from(file.as_str()));
    parsed
        .mcp_servers
        .0
        .into_iter()
        .map(|(name, Server(entry))| {
            let upstream = entry.upstream(&file, &name, defined.clone())?;
            Ok((name, upstream))
        })
        .collect()
}

impl Entry {
    fn upstream(
        self,
        file: &str,
        name: &str,
        defined: Defined,
    ) -> Result<UpstreamConfig, ConfigError> {
        let at = |message: String| ConfigError::File {
            file: file.to_owned(),
            message: format!("mcpServers.{name}: {message}"),
        };
        if self.disabled_tools.is_some() {
            return Err(at(
                "`disabledTools` is a client's list of tools not to offer, which the gateway \
                 does not read: remove it, and withhold those tools with a project's `tools` deny \
                 grant (ignoring it would offer them)"
                    .into(),
            ));
        }
        let mut ignored: Vec<&'static str> = [
            ("autoApprove", self.auto_approve.is_some()),
            ("alwaysAllow", self.always_allow.is_some()),
            ("timeout", self.timeout.is_some()),
            ("watchPaths", self.watch_paths.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, given)| given.then_some(key))
        .collect();
        let kind = match (
            kind("type", self.kind.as_deref()).map_err(at)?,
            kind("transportType", self.transport_type.as_deref()).map_err(at)?,
        ) {
            (Some(kind), Some(legacy)) if kind != legacy => {
                return Err(at(format!(
                    "`type` {:?} and `transportType` {:?} disagree: give one",
                    self.kind.unwrap_or_default(),
                    self.transport_type.unwrap_or_default()
                )));
            }
            (kind, legacy) => kind.or(legacy),
        };
        let (url, url_key) = match (self.url, self.server_url) {
            (Some(_), Some(_)) => {
                return Err(at(
                    "`url` and `serverUrl` are two names for one setting: give one".into(),
                ));
            }
            (None, Some(url)) => (Some(url), "serverUrl"),
            (url, None) => (url, "url"),
        };
        let command = match (self.command, &url) {
            (Some(command), None) => command,
            (None, Some(_)) => String::new(),
            (Some(_), Some(_)) => {
                return Err(at(format!("`command` and `{url_key}` exclude each other")));
            }
            (None, None) => return Err(at("missing field `command` (or `url`)".into())),
        };
        let mut upstream = UpstreamConfig {
            command,
            args: self.args,
            env: self.env.0.into_iter().map(|(k, Text(v))| (k, v)).collect(),
            cwd: self.cwd,
            enabled: !self.disabled,
            restart: None,
            url,
            kind,
            headers: self
                .headers
                .0
                .into_iter()
                .map(|(k, Text(v))| (k, v))
                .collect(),
            oauth: None,
            token_env: None,
            prefix: Default::default(),
            instances: None,
            urls: Vec::new(),
            strategy: Default::default(),
            weights: Vec::new(),
            affinity: Default::default(),
            health: None,
            defined,
            ignored: Vec::new(),
        };
        // A remote server's launch settings: the client that wrote the file
        // dropped them too, so it loads (a TOML upstream is refused).
        ignored.extend(upstream.take_remote_launch_settings());
        upstream.ignored = ignored;
        Ok(upstream)
    }
}

/// The transport named by `key`, if given.
fn kind(key: &str, value: Option<&str>) -> Result<Option<UpstreamKind>, String> {
    let Some(value) = value else {
        return Ok(None);
    };
    // The names `type` takes in the TOML file, whatever their case here.
    let lower = value.to_ascii_lowercase();
    let named = de::value::StrDeserializer::<de::value::Error>::new(&lower);
    UpstreamKind::deserialize(named)
        .map(Some)
        .map_err(|_| format!("{key} {lower:?}: expected \"stdio\", \"http\" or \"sse\""))
}

/// The members of a JSON object in file order, each name once.
struct Unique<V>(Vec<(String, V)>);

impl<V> Default for Unique<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

fn servers<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Unique<Server>, D::Error> {
    unique(deserializer, "server")
}

fn variables<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Unique<Text>, D::Error> {
    unique(deserializer, "variable")
}

fn headers<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Unique<Text>, D::Error> {
    unique(deserializer, "header")
}

/// An object of `V`s by name, each name once (`what` names a member in
/// errors).
fn unique<'de, D, V>(deserializer: D, what: &'static str) -> Result<Unique<V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct UniqueVisitor<V> {
        what: &'static str,
        members: PhantomData<V>,
    }

    impl<'de, V: Deserialize<'de>> Visitor<'de> for UniqueVisitor<V> {
        type Value = Unique<V>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "an object of {}s by name", self.what)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut seen = BTreeSet::new();
            let mut members = Vec::new();
            while let Some(name) = map.next_key::<String>()? {
                if !seen.insert(name.clone()) {
                    return Err(de::Error::custom(format_args!(
                        "{} name {name:?} is given twice",
                        self.what
                    )));
                }
                members.push((name, map.next_value()?));
            }
            Ok(Unique(members))
        }

        // A string where the object belongs is never quoted: it may be a secret.
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Err(E::invalid_type(Unexpected::Other("a string"), &self))
        }
    }

    deserializer.deserialize_any(UniqueVisitor {
        what,
        members: PhantomData,
    })
}

/// One server's entry: an object, read as [`Entry`] (a string in its place
/// is refused without being quoted).
struct Server(Entry);

impl<'de> Deserialize<'de> for Server {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ServerVisitor;

        impl<'de> Visitor<'de> for ServerVisitor {
            type Value = Server;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a server entry (an object)")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Server, A::Error> {
                Entry::deserialize(de::value::MapAccessDeserializer::new(map)).map(Server)
            }

            fn visit_str<E: de::Error>(self, _: &str) -> Result<Server, E> {
                Err(E::invalid_type(Unexpected::Other("a string"), &self))
            }
        }

        deserializer.deserialize_any(ServerVisitor)
    }
}

/// `args`: an array of strings, never quoted in an error (an argument may
/// be a key: `--api-key …`).
fn arguments<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let serde_json::Value::Array(items) = serde_json::Value::deserialize(deserializer)? else {
        return Err(de::Error::custom(
            "`args` must be an array of strings (value not shown)",
        ));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| match item {
            serde_json::Value::String(text) => Ok(text),
            _ => Err(de::Error::custom(format_args!(
                "`args[{index}]` must be a string (value not shown)"
            ))),
        })
        .collect()
}

/// A variable's or header's value: a string, never quoted in an error.
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let found = match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(text) => return Ok(Text(text)),
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "a boolean",
            serde_json::Value::Number(_) => "a number",
            serde_json::Value::Array(_) => "an array",
            serde_json::Value::Object(_) => "an object",
        };
        Err(de::Error::invalid_type(
            Unexpected::Other(found),
            &"a string",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::captured_logs::Lines;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn reads_claude_desktop_format() {
        let file = write(
            r#"{"mcpServers": {"time": {"command": "uvx", "args": ["mcp-server-time"], "env": {"TZ": "UTC"}}}}"#,
        );
        let servers = load(file.path()).unwrap();
        assert_eq!(servers.len(), 1);
        assert_eq!(servers[0].0, "time");
        assert_eq!(servers[0].1.args, vec!["mcp-server-time"]);
        assert_eq!(servers[0].1.env["TZ"], "UTC");
    }

    #[test]
    fn reads_remote_servers_with_headers() {
        let file = write(
            r#"{"mcpServers": {"remote": {"type": "http", "url": "https://example.com/mcp", "headers": {"X-Api-Key": "${KEY}"}}}}"#,
        );
        let servers = load(file.path()).unwrap();
        assert_eq!(servers[0].1.url.as_deref(), Some("https://example.com/mcp"));
        assert_eq!(servers[0].1.headers["X-Api-Key"], "${KEY}");
        assert!(servers[0].1.command.is_empty());
    }

    #[test]
    fn reads_legacy_sse_servers() {
        let file =
            write(r#"{"mcpServers": {"old": {"type": "sse", "url": "http://127.0.0.1:9/sse"}}}"#);
        let servers = load(file.path()).unwrap();
        assert_eq!(servers[0].1.kind, Some(UpstreamKind::Sse));
        assert_eq!(servers[0].1.url.as_deref(), Some("http://127.0.0.1:9/sse"));
    }

    #[test]
    fn refuses_an_unknown_type_with_a_reason() {
        let file =
            write(r#"{"mcpServers": {"old": {"type": "websocket", "url": "ws://127.0.0.1:9/"}}}"#);
        let err = load(file.path()).unwrap_err().to_string();
        assert!(
            err.contains("mcpServers.old") && err.contains("websocket"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_file_and_server() {
        let file = write(r#"{"mcpServers": {"broken": {"args": []}}}"#);
        let err = load(file.path()).unwrap_err().to_string();
        assert!(err.contains(&file.path().display().to_string()), "{err}");
        assert!(err.contains("mcpServers.broken"), "{err}");
        assert!(err.contains("command"), "{err}");
    }

    /// The error of loading `json`, which names the file.
    fn error(json: &str) -> String {
        let file = write(json);
        let err = load(file.path()).unwrap_err().to_string();
        assert!(err.contains(&file.path().display().to_string()), "{err}");
        err
    }

    #[test]
    fn a_name_given_twice_is_refused_not_overwritten() {
        let cases = [
            (
                r#"{"mcpServers": {"a": {"command": "x"}, "a": {"command": "y"}}}"#,
                r#"server name "a" is given twice"#,
            ),
            // An escape spells the same name.
            (
                r#"{"mcpServers": {"a": {"command": "x"}, "\u0061": {"url": "https://h/mcp"}}}"#,
                r#"server name "a" is given twice"#,
            ),
            (
                r#"{"mcpServers": {"a": {"command": "x", "env": {"K": "1", "K": "2"}}}}"#,
                r#"variable name "K" is given twice"#,
            ),
            (
                r#"{"mcpServers": {"a": {"url": "https://h/mcp", "headers": {"X-K": "1", "X-K": "2"}}}}"#,
                r#"header name "X-K" is given twice"#,
            ),
            (
                r#"{"mcpServers": {"a": {"command": "x", "\u0063ommand": "y"}}}"#,
                "duplicate field `command`",
            ),
            (
                r#"{"mcpServers": {"a": {"command": "x"}}, "mcpServers": {}}"#,
                "duplicate field `mcpServers`",
            ),
        ];
        for (json, expected) in cases {
            let err = error(json);
            assert!(err.contains(expected), "{json}: {err}");
        }
        // The path says which server a repeated variable belongs to.
        let err = error(r#"{"mcpServers": {"a": {"command": "x", "env": {"K": "1", "K": "2"}}}}"#);
        assert!(err.contains("mcpServers.a.env"), "{err}");
    }

    #[test]
    fn servers_keep_the_file_order() {
        let file = write(
            r#"{"mcpServers": {"b": {"command": "x"}, "a": {"command": "y"}, "c": {"command": "z"}}}"#,
        );
        let names: Vec<_> = load(file.path())
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["b", "a", "c"]);
    }

    #[test]
    fn reads_windsurf_server_url() {
        let file = write(
            r#"{"mcpServers": {"w": {"serverUrl": "https://h/mcp", "headers": {"X-K": "${K}"}}}}"#,
        );
        let servers = load(file.path()).unwrap();
        assert_eq!(servers[0].1.url.as_deref(), Some("https://h/mcp"));
        assert!(servers[0].1.command.is_empty());
        let err = error(
            r#"{"mcpServers": {"w": {"url": "https://h/mcp", "serverUrl": "https://h/mcp"}}}"#,
        );
        assert!(
            err.contains("mcpServers.w") && err.contains("`url` and `serverUrl`"),
            "{err}"
        );
        let err = error(r#"{"mcpServers": {"w": {"command": "x", "serverUrl": "https://h/mcp"}}}"#);
        assert!(err.contains("`command` and `serverUrl`"), "{err}");
    }

    #[test]
    fn reads_clines_legacy_transport_type() {
        let file = write(
            r#"{"mcpServers": {
                "old": {"url": "https://h/sse", "transportType": "sse"},
                "new": {"url": "https://h/mcp", "transportType": "http", "type": "streamableHttp"},
                "local": {"command": "x", "transportType": "stdio"}}}"#,
        );
        let servers: std::collections::BTreeMap<_, _> =
            load(file.path()).unwrap().into_iter().collect();
        assert_eq!(servers["old"].kind, Some(UpstreamKind::Sse));
        assert_eq!(servers["new"].kind, Some(UpstreamKind::Http));
        assert_eq!(servers["local"].kind, Some(UpstreamKind::Stdio));
        let err = error(
            r#"{"mcpServers": {"a": {"url": "https://h/mcp", "type": "sse", "transportType": "http"}}}"#,
        );
        assert!(
            err.contains("mcpServers.a") && err.contains("disagree"),
            "{err}"
        );
        let err =
            error(r#"{"mcpServers": {"a": {"url": "https://h/mcp", "transportType": "ws"}}}"#);
        assert!(err.contains(r#"transportType "ws""#), "{err}");
    }

    #[test]
    fn client_side_keys_are_ignored_with_one_warning_each() {
        let file = write(
            r#"{"mcpServers": {
                "cline": {"command": "x", "autoApprove": ["t"], "timeout": 60, "disabled": false},
                "roo": {"command": "y", "alwaysAllow": [], "watchPaths": ["/tmp/x"]},
                "far": {"url": "https://h/mcp", "env": {"K": "v4lue"}, "args": ["-v"], "cwd": "/tmp"},
                "plain": {"command": "z"}}}"#,
        );
        let lines = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(lines.clone())
            .with_ansi(false)
            .without_time()
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let config = super::super::Config::load(&super::super::Sources {
                config_file: None,
                mcp_servers: Some(file.path().to_owned()),
            })
            .unwrap();
            assert_eq!(config.upstreams.len(), 4);
            let far = &config.upstreams["far"];
            assert!(far.env.is_empty() && far.args.is_empty() && far.cwd.is_none());
            assert!(lines.text().is_empty(), "loading does not log");
            config.warn_ignored_keys();
        });
        let text = lines.text();
        let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
        assert_eq!(warnings.len(), 7, "{text}");
        let path = file.path().display().to_string();
        for (server, key) in [
            ("cline", "autoApprove"),
            ("cline", "timeout"),
            ("roo", "alwaysAllow"),
            ("roo", "watchPaths"),
            ("far", "env"),
            ("far", "args"),
            ("far", "cwd"),
        ] {
            assert!(
                warnings
                    .iter()
                    .any(|l| l.contains(&format!("server={server} "))
                        && l.contains(&format!("key=\"{key}\""))
                        && l.contains(&path)),
                "{server}.{key}: {text}"
            );
        }
        assert!(
            text.contains("mcpServers.far.env applies to launched (command) servers only"),
            "{text}"
        );
        assert!(!text.contains("v4lue"), "no value shown: {text}");
    }

    #[test]
    fn other_unknown_keys_are_refused_listing_the_accepted_ones() {
        for json in [
            r#"{"mcpServers": {"a": {"command": "x", "Command": "y"}}}"#,
            r#"{"mcpServers": {"a": {"command": "x", "excludeTools": []}}}"#,
        ] {
            let err = error(json);
            assert!(err.contains("mcpServers.a"), "{err}");
            assert!(err.contains("unknown field"), "{err}");
            for key in [
                "`command`",
                "`url`",
                "`serverUrl`",
                "`headers`",
                "`autoApprove`",
            ] {
                assert!(err.contains(key), "{key}: {err}");
            }
        }
    }

    #[test]
    fn values_that_may_be_secrets_are_never_quoted() {
        let secret = "hunter2-very-secret";
        for json in [
            format!(r#"{{"mcpServers": {{"a": {{"command": "x", "env": "{secret}"}}}}}}"#),
            format!(r#"{{"mcpServers": {{"a": {{"url": "https://h/", "headers": "{secret}"}}}}}}"#),
            format!(r#"{{"mcpServers": {{"a": "{secret}"}}}}"#),
            r#"{"mcpServers": {"a": {"command": "x", "env": {"PIN": 987654}}}}"#.to_owned(),
            r#"{"mcpServers": {"a": {"url": "https://h/", "headers": {"X-K": true}}}}"#.to_owned(),
        ] {
            let err = error(&json);
            assert!(!err.contains(secret) && !err.contains("987654"), "{err}");
            assert!(err.contains("mcpServers.a"), "{err}");
        }
        let err = error(r#"{"mcpServers": {"a": {"command": "x", "env": {"PIN": 987654}}}}"#);
        assert!(
            err.contains("mcpServers.a.env.PIN") && err.contains("a number"),
            "{err}"
        );
    }

    #[test]
    fn trailing_text_is_refused() {
        let err = error(r#"{"mcpServers": {}} x"#);
        assert!(err.contains("trailing"), "{err}");
    }

    #[test]
    fn disabled_tools_are_refused_not_ignored() {
        let file = write(r#"{"mcpServers": {"roo": {"command": "y", "disabledTools": ["rm"]}}}"#);
        let err = load(file.path()).unwrap_err().to_string();
        assert!(
            err.contains("mcpServers.roo") && err.contains("disabledTools") && err.contains("deny"),
            "{err}"
        );
    }

    #[test]
    fn arguments_of_the_wrong_shape_are_refused_without_quoting_them() {
        for args in [
            r#""--api-key sk-live-s3cr3t""#,
            r#"["ok", 7]"#,
            r#"{"k": "sk-live-s3cr3t"}"#,
        ] {
            let file = write(&format!(
                r#"{{"mcpServers": {{"a": {{"command": "x", "args": {args}}}}}}}"#
            ));
            let err = load(file.path()).unwrap_err().to_string();
            assert!(err.contains("args"), "{args}: {err}");
            assert!(!err.contains("s3cr3t"), "{args}: {err}");
        }
        let file = write(r#"{"mcpServers": {"a": {"command": "x", "args": ["--api-key", "k"]}}}"#);
        assert_eq!(load(file.path()).unwrap()[0].1.args, ["--api-key", "k"]);
    }
}
