//! `[virtual_servers.NAME]`: a curated set of upstream tools served at
//! `/mcp/v/NAME`, renamed and re-described at will.
//!
//! ```toml
//! [[virtual_servers.support.tools]]
//! tool = "github__create_issue"      # upstream + tool separator + upstream tool name
//! name = "report_bug"                # optional: the name clients see
//! description = "File a bug report"  # optional: replaces the upstream's description
//! ```
use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::UpstreamConfig;

/// One virtual server.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VirtualServerConfig {
    /// The tools it exposes, in listing order.
    pub tools: Vec<VirtualToolConfig>,
}

/// One exposed tool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualToolConfig {
    /// The upstream tool, `SERVER__TOOL` (with the configured separator).
    pub tool: String,
    /// The name clients see; the upstream tool's own name when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// The description clients see; the upstream's when absent.
    #[serde(default)]
    pub description: Option<String>,
}

impl VirtualToolConfig {
    /// (upstream, tool) of [`Self::tool`]; `None` without the separator.
    pub fn target<'a>(&'a self, separator: &str) -> Option<(&'a str, &'a str)> {
        self.tool
            .split_once(separator)
            .filter(|(server, tool)| !server.is_empty() && !tool.is_empty())
    }

    /// The name clients see.
    pub fn exposed<'a>(&'a self, separator: &str) -> &'a str {
        match &self.name {
            Some(name) => name,
            None => self.target(separator).map_or(&self.tool, |(_, tool)| tool),
        }
    }
}

/// Checks every virtual server: a valid name, tools that name configured
/// upstreams, and exposed names that are unique and non-empty.
pub fn check(
    servers: &BTreeMap<String, VirtualServerConfig>,
    upstreams: &BTreeMap<String, UpstreamConfig>,
    separator: &str,
) -> Result<(), String> {
    for (name, server) in servers {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(format!(
                "virtual_servers.{name}: a virtual server name may use only letters, digits, '-' and '_'"
            ));
        }
        let mut exposed = BTreeSet::new();
        for (at, tool) in server.tools.iter().enumerate() {
            let field = format!("virtual_servers.{name}.tools[{at}]");
            let Some((upstream, _)) = tool.target(separator) else {
                return Err(format!(
                    "{field}.tool = {:?}: expected SERVER{separator}TOOL",
                    tool.tool
                ));
            };
            if !upstreams.contains_key(upstream) {
                return Err(format!(
                    "{field}.tool = {:?}: unknown upstream '{upstream}'",
                    tool.tool
                ));
            }
            let shown = tool.exposed(separator);
            if shown.trim().is_empty() {
                return Err(format!("{field}.name is empty"));
            }
            if !exposed.insert(shown) {
                return Err(format!(
                    "{field}: the name '{shown}' is exposed twice by virtual server '{name}'"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstreams() -> BTreeMap<String, UpstreamConfig> {
        toml::from_str::<BTreeMap<String, UpstreamConfig>>("[echo]\ncommand = \"x\"\n").unwrap()
    }

    fn servers(text: &str) -> BTreeMap<String, VirtualServerConfig> {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn unknown_upstreams_and_duplicate_names_are_refused() {
        let ok = servers(
            "[v]\ntools = [{ tool = \"echo__echo\", name = \"say\" }, { tool = \"echo__add\" }]\n",
        );
        assert!(check(&ok, &upstreams(), "__").is_ok());
        let unknown = servers("[v]\ntools = [{ tool = \"nope__echo\" }]\n");
        let err = check(&unknown, &upstreams(), "__").unwrap_err();
        assert!(err.contains("unknown upstream 'nope'"), "{err}");
        let twice = servers(
            "[v]\ntools = [{ tool = \"echo__echo\" }, { tool = \"echo__add\", name = \"echo\" }]\n",
        );
        let err = check(&twice, &upstreams(), "__").unwrap_err();
        assert!(err.contains("exposed twice"), "{err}");
        let bare = servers("[v]\ntools = [{ tool = \"echo\" }]\n");
        assert!(check(&bare, &upstreams(), "__").is_err());
    }
}
