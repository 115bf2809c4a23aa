//! Federated names: `server{sep}tool` for tools and prompts, and
//! `bulwark://server/ORIGINAL` for resource URIs (the original URI kept whole,
//! so templates stay templates and reads route without lookups).
use std::borrow::Cow;
use std::sync::Arc;

use super::error::GatewayError;
use super::prefixes::ToolNames;

const URI_PREFIX: &str = "bulwark://";

/// Joins and splits federated names.
#[derive(Debug, Clone)]
pub struct Naming {
    separator: String,
    /// Which tool names go without the prefix (shared by every clone).
    names: Arc<ToolNames>,
}

impl Naming {
    /// Names joined with `separator` (default `__`).
    pub fn new(separator: impl Into<String>) -> Self {
        Self {
            separator: separator.into(),
            names: Arc::default(),
        }
    }

    /// The prefix modes and the bare-name table of tools.
    pub fn tool_names(&self) -> &ToolNames {
        &self.names
    }

    /// The federated name of `server`'s `tool`, per its prefix mode.
    pub fn tool(&self, server: &str, tool: &str) -> String {
        if self.names.is_bare(server, tool) {
            tool.to_owned()
        } else {
            self.join(server, tool)
        }
    }

    /// Splits a federated tool name into (server, tool): a bare name some
    /// upstream exposes first, else `server{sep}tool` (always accepted).
    pub fn split_tool<'a>(
        &self,
        federated: &'a str,
    ) -> Result<(Cow<'a, str>, &'a str), GatewayError> {
        if let Some(server) = self.names.owner(federated)? {
            return Ok((Cow::Owned(server.to_string()), federated));
        }
        let (server, tool) = self.split(federated)?;
        Ok((Cow::Borrowed(server), tool))
    }

    /// `server` + separator + `name`.
    pub fn join(&self, server: &str, name: &str) -> String {
        format!("{server}{}{name}", self.separator)
    }

    /// Splits a federated tool or prompt name into (server, name).
    pub fn split<'a>(&self, federated: &'a str) -> Result<(&'a str, &'a str), GatewayError> {
        split_around(federated, &self.separator).ok_or_else(|| GatewayError::Unprefixed {
            name: federated.to_owned(),
            separator: self.separator.clone(),
        })
    }

    /// The federated URI of an upstream resource (or template).
    pub fn join_uri(&self, server: &str, uri: &str) -> String {
        format!("{URI_PREFIX}{server}/{uri}")
    }

    /// Splits a federated URI into (server, original URI).
    pub fn split_uri<'a>(&self, federated: &'a str) -> Result<(&'a str, &'a str), GatewayError> {
        federated
            .strip_prefix(URI_PREFIX)
            .and_then(|rest| rest.split_once('/'))
            .ok_or_else(|| GatewayError::Unprefixed {
                name: federated.to_owned(),
                separator: format!(" URI of the form {URI_PREFIX}SERVER/"),
            })
    }
}

/// `name` split around the first `separator`, as `str::split_once` does,
/// by a byte scan: `split_once` with a string pattern sets up a two-way
/// searcher (~1,000 instructions) for every call, twice per `tools/call`.
fn split_around<'a>(name: &'a str, separator: &str) -> Option<(&'a str, &'a str)> {
    let sep = separator.as_bytes();
    let Some(&first) = sep.first() else {
        return name.split_once(separator);
    };
    let bytes = name.as_bytes();
    // A match of a whole UTF-8 separator starts and ends on char boundaries.
    let at = (0..bytes.len()).find(|&i| bytes[i] == first && bytes[i..].starts_with(sep))?;
    Some((name.get(..at)?, name.get(at + sep.len()..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_around_is_split_once() {
        let names = [
            "a__b",
            "a____b",
            "__a",
            "a__",
            "__",
            "_",
            "",
            "a_b__c__d",
            "é__ü",
            "ü_é__x",
            "ab",
            "a.b.c",
            "x::y::z",
            "日本__語",
            "日本語",
        ];
        for separator in ["__", "_", ".", "::", "語", "é_", ""] {
            for name in names {
                assert_eq!(
                    split_around(name, separator),
                    name.split_once(separator),
                    "{name:?} around {separator:?}"
                );
            }
        }
    }

    #[test]
    fn names_round_trip() {
        let naming = Naming::new("__");
        let joined = naming.join("time", "get_current_time");
        assert_eq!(joined, "time__get_current_time");
        assert_eq!(naming.split(&joined).unwrap(), ("time", "get_current_time"));
    }

    #[test]
    fn tool_names_may_contain_the_separator() {
        let naming = Naming::new("__");
        assert_eq!(naming.split("a__b__c").unwrap(), ("a", "b__c"));
    }

    #[test]
    fn uris_round_trip_including_templates() {
        let naming = Naming::new("__");
        let joined = naming.join_uri("conf", "test://template/{id}/data");
        assert_eq!(joined, "bulwark://conf/test://template/{id}/data");
        assert_eq!(
            naming.split_uri(&joined).unwrap(),
            ("conf", "test://template/{id}/data")
        );
    }

    #[test]
    fn unprefixed_names_are_rejected_with_the_expected_form() {
        let naming = Naming::new("__");
        let err = naming.split("plain").unwrap_err().to_string();
        assert!(err.contains("SERVER__NAME"), "{err}");
        assert!(naming.split_uri("file:///x").is_err());
    }
}
