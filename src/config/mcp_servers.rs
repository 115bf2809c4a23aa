//! Upstreams from the `mcpServers` JSON that Claude Desktop and Cursor write:
//! `{"mcpServers": {"name": {"command": "…", "args": […], "env": {…}}}}`, and
//! remote ones: `{"name": {"url": "https://…/mcp", "headers": {…}}}` (`"type": "sse"`
//! for a legacy HTTP+SSE server).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, UpstreamConfig, UpstreamKind};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    mcp_servers: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    cwd: Option<PathBuf>,
    #[serde(default)]
    disabled: bool,
    url: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Reads the upstreams of an `mcpServers` file.
pub fn load(path: &Path) -> Result<Vec<(String, UpstreamConfig)>, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|err| ConfigError::File {
        file: file.clone(),
        message: err.to_string(),
    })?;
    let parsed: File = serde_json::from_str(&text).map_err(|err| ConfigError::File {
        file: file.clone(),
        message: err.to_string(),
    })?;
    let mut upstreams = Vec::new();
    for (name, value) in parsed.mcp_servers {
        let at = |message: String| ConfigError::File {
            file: file.clone(),
            message: format!("mcpServers.{name}: {message}"),
        };
        let entry: Entry = serde_json::from_value(value).map_err(|err| at(err.to_string()))?;
        let kind = match entry
            .kind
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None => None,
            Some("stdio") => Some(UpstreamKind::Stdio),
            Some("http" | "streamable-http" | "streamablehttp") => Some(UpstreamKind::Http),
            Some("sse") => Some(UpstreamKind::Sse),
            Some(other) => {
                return Err(at(format!(
                    "type {other:?}: expected \"stdio\", \"http\" or \"sse\""
                )));
            }
        };
        let command = match (&entry.command, &entry.url) {
            (Some(command), None) => command.clone(),
            (None, Some(_)) => String::new(),
            (Some(_), Some(_)) => return Err(at("`command` and `url` exclude each other".into())),
            (None, None) => return Err(at("missing field `command` (or `url`)".into())),
        };
        upstreams.push((
            name.clone(),
            UpstreamConfig {
                command,
                args: entry.args,
                env: entry.env,
                cwd: entry.cwd,
                enabled: !entry.disabled,
                restart: None,
                url: entry.url,
                kind,
                headers: entry.headers,
                oauth: None,
                token_env: None,
                prefix: Default::default(),
                instances: None,
                urls: Vec::new(),
                strategy: Default::default(),
                weights: Vec::new(),
                affinity: Default::default(),
                health: None,
            },
        ));
    }
    Ok(upstreams)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
