//! Upstreams from the `mcpServers` JSON that Claude Desktop and Cursor write:
//! `{"mcpServers": {"name": {"command": "…", "args": […], "env": {…}}}}`.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, UpstreamConfig};

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
    _kind: Option<String>,
    #[serde(default)]
    headers: Option<serde_json::Value>,
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
        if entry.url.is_some() || entry.headers.is_some() {
            return Err(at("remote (url) upstreams are not supported yet; use a stdio command".into()));
        }
        let command = entry.command.ok_or_else(|| at("missing field `command`".into()))?;
        upstreams.push((
            name.clone(),
            UpstreamConfig {
                command,
                args: entry.args,
                env: entry.env,
                cwd: entry.cwd,
                enabled: !entry.disabled,
                restart: None,
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
    fn errors_name_the_file_and_server() {
        let file = write(r#"{"mcpServers": {"broken": {"args": []}}}"#);
        let err = load(file.path()).unwrap_err().to_string();
        assert!(err.contains(&file.path().display().to_string()), "{err}");
        assert!(err.contains("mcpServers.broken"), "{err}");
        assert!(err.contains("command"), "{err}");
    }
}
