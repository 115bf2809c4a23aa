//! What a project may use: which upstreams and, per upstream, which tools.
//! Prompts and resources follow their upstream: a project that may use an
//! upstream sees its prompts and resources.
use std::collections::{BTreeMap, BTreeSet};

use crate::config::auth::{ProjectConfig, ToolListing, ToolRules};

/// One project's grant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    /// Every upstream (`"*"`), or only these.
    all_upstreams: bool,
    upstreams: BTreeSet<String>,
    /// Tool rules by upstream; an upstream without rules allows all its tools.
    tools: BTreeMap<String, Rules>,
    /// How the project's `tools/list` is presented (not a permission: a
    /// tool left out of a `search` listing may still be called).
    listing: ToolListing,
    /// Federated names listed in `search` listing.
    pinned: BTreeSet<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Rules {
    allow: Option<Vec<Pattern>>,
    deny: Vec<Pattern>,
}

/// An exact name, or a prefix when written with a trailing `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact(String),
    Prefix(String),
}

impl Pattern {
    fn new(text: &str) -> Self {
        match text.strip_suffix('*') {
            Some(prefix) => Self::Prefix(prefix.to_owned()),
            None => Self::Exact(text.to_owned()),
        }
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Self::Exact(exact) => exact == name,
            Self::Prefix(prefix) => name.starts_with(prefix.as_str()),
        }
    }
}

impl Rules {
    fn new(rules: &ToolRules) -> Self {
        Self {
            allow: rules
                .allow
                .as_ref()
                .map(|names| names.iter().map(|n| Pattern::new(n)).collect()),
            deny: rules.deny.iter().map(|n| Pattern::new(n)).collect(),
        }
    }

    fn allows(&self, tool: &str) -> bool {
        let allowed = self
            .allow
            .as_ref()
            .is_none_or(|allow| allow.iter().any(|p| p.matches(tool)));
        allowed && !self.deny.iter().any(|p| p.matches(tool))
    }
}

impl Grant {
    /// Everything: the admin project, and every caller when auth is off.
    pub fn all() -> Self {
        Self {
            all_upstreams: true,
            ..Self::default()
        }
    }

    /// The grant a project's configuration describes.
    pub fn from_config(project: &ProjectConfig) -> Self {
        Self {
            all_upstreams: project.upstreams.iter().any(|u| u == "*"),
            upstreams: project
                .upstreams
                .iter()
                .filter(|u| *u != "*")
                .cloned()
                .collect(),
            tools: project
                .tools
                .iter()
                .map(|(server, rules)| (server.clone(), Rules::new(rules)))
                .collect(),
            listing: project.tool_listing,
            pinned: project.pinned_tools.iter().cloned().collect(),
        }
    }

    /// How the project's `tools/list` is presented.
    pub fn tool_listing(&self) -> ToolListing {
        self.listing
    }

    /// The federated names a `search` listing shows.
    pub fn pinned_tools(&self) -> &BTreeSet<String> {
        &self.pinned
    }

    /// May the project use `server` at all (its tools, prompts, resources)?
    pub fn allows_server(&self, server: &str) -> bool {
        self.all_upstreams || self.upstreams.contains(server)
    }

    /// May the project call `tool` of `server`?
    pub fn allows_tool(&self, server: &str, tool: &str) -> bool {
        self.allows_server(server) && self.tools.get(server).is_none_or(|r| r.allows(tool))
    }

    /// True when every tool of `server` is allowed (no tool rules restrict it).
    pub fn allows_every_tool(&self, server: &str) -> bool {
        self.allows_server(server) && !self.tools.contains_key(server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (server, allow, deny)
    type Rule<'a> = (&'a str, Option<&'a [&'a str]>, &'a [&'a str]);

    fn project(upstreams: &[&str], tools: &[Rule<'_>]) -> Grant {
        Grant::from_config(&ProjectConfig {
            upstreams: upstreams.iter().map(|s| s.to_string()).collect(),
            tools: tools
                .iter()
                .map(|(server, allow, deny)| {
                    let rules = ToolRules {
                        allow: allow.map(|a| a.iter().map(|s| s.to_string()).collect()),
                        deny: deny.iter().map(|s| s.to_string()).collect(),
                    };
                    (server.to_string(), rules)
                })
                .collect(),
            ..ProjectConfig::default()
        })
    }

    #[test]
    fn upstreams_outside_the_grant_are_closed() {
        let grant = project(&["echo"], &[]);
        assert!(grant.allows_server("echo"));
        assert!(!grant.allows_server("time"));
        assert!(grant.allows_tool("echo", "anything"));
        assert!(!grant.allows_tool("time", "get_current_time"));
    }

    #[test]
    fn allow_lists_admit_only_their_tools_and_prefixes() {
        let grant = project(&["echo"], &[("echo", Some(&["echo", "req*"]), &[])]);
        assert!(grant.allows_tool("echo", "echo"));
        assert!(grant.allows_tool("echo", "request_count"));
        assert!(!grant.allows_tool("echo", "add"));
    }

    #[test]
    fn deny_wins_over_allow() {
        let grant = project(&["*"], &[("echo", Some(&["*"]), &["add"])]);
        assert!(grant.allows_server("time"));
        assert!(grant.allows_tool("echo", "echo"));
        assert!(!grant.allows_tool("echo", "add"));
    }

    #[test]
    fn the_all_grant_allows_everything_and_empty_allows_nothing() {
        assert!(Grant::all().allows_tool("any", "thing"));
        assert!(!project(&[], &[]).allows_server("echo"));
    }
}
