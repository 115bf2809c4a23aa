//! Cache keys: namespaced by kind and upstream, with the key material hashed
//! (SHA-256) so credentials and tool arguments never appear in a key, in
//! memory dumps of the key set or in Redis.
use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::kind::CacheKind;

/// The scope of entries that belong to no upstream (credentials).
pub const GLOBAL_SCOPE: &str = "_";

/// A cache key: kind, upstream (or [`GLOBAL_SCOPE`]) and the hex SHA-256 of
/// the key material.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    kind: CacheKind,
    upstream: Arc<str>,
    digest: Arc<str>,
}

impl CacheKey {
    /// A key of `kind` for `upstream`, from arbitrary key material.
    pub fn new(kind: CacheKind, upstream: impl Into<Arc<str>>, material: &[u8]) -> Self {
        Self {
            kind,
            upstream: upstream.into(),
            digest: hex_sha256(&[material]).into(),
        }
    }

    /// The key of an upstream's list (`tools`, `resources`, `resource_templates`, `prompts`).
    pub fn list(kind: CacheKind, upstream: impl Into<Arc<str>>) -> Self {
        Self::new(kind, upstream, b"list")
    }

    /// This key, for one caller only: where a `private` result of `caller`
    /// lives (same kind and upstream, so every invalidation of the shared
    /// key's scope covers it).
    pub fn for_caller(&self, caller: &str) -> Self {
        Self {
            kind: self.kind,
            upstream: self.upstream.clone(),
            digest: hex_sha256(&[self.digest.as_bytes(), b"\0caller\0", caller.as_bytes()]).into(),
        }
    }

    /// The key of a credential's resolution; the credential itself is only hashed.
    pub fn credential(credential: &str) -> Self {
        Self::new(CacheKind::Credential, GLOBAL_SCOPE, credential.as_bytes())
    }

    /// The key of a tool result: the tool name and the canonical JSON of its
    /// arguments (object keys sorted at every depth), so `{"a":1,"b":2}` and
    /// `{"b":2,"a":1}` share an entry.
    pub fn tool_result(upstream: impl Into<Arc<str>>, tool: &str, arguments: &Value) -> Self {
        let mut canonical = Vec::with_capacity(128);
        write_canonical(arguments, &mut canonical);
        Self {
            kind: CacheKind::ToolResult,
            upstream: upstream.into(),
            // The NUL separator keeps ("ab", x) and ("a", "b"+x) apart.
            digest: hex_sha256(&[tool.as_bytes(), b"\0", &canonical]).into(),
        }
    }

    /// [`Self::tool_result`] of an argument object as a request carries it
    /// (`None` is `{}`), hashed where it lies instead of cloned into a value.
    pub fn tool_result_of(
        upstream: Arc<str>,
        tool: &str,
        arguments: Option<&serde_json::Map<String, Value>>,
    ) -> Self {
        let mut canonical = Vec::with_capacity(128);
        match arguments {
            Some(map) => write_object(map, &mut canonical),
            None => canonical.extend_from_slice(b"{}"),
        }
        Self {
            kind: CacheKind::ToolResult,
            upstream,
            digest: hex_sha256(&[tool.as_bytes(), b"\0", &canonical]).into(),
        }
    }

    /// The entry's kind.
    pub fn kind(&self) -> CacheKind {
        self.kind
    }

    /// The entry's upstream, or [`GLOBAL_SCOPE`].
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The Redis key: `{prefix}:{kind}:{upstream}:{digest}`.
    pub fn redis_key(&self, prefix: &str) -> String {
        format!(
            "{prefix}:{}:{}:{}",
            self.kind.name(),
            escape_segment(&self.upstream),
            self.digest
        )
    }
}

fn hex_sha256(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    let mut hex = String::with_capacity(64);
    crate::trace_context::push_hex(&mut hex, &hasher.finalize());
    hex
}

/// Writes `value` as JSON with object keys sorted, whatever order the map
/// keeps (serde_json's `preserve_order` may be on through another crate).
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => write_object(map, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_json(scalar, out),
    }
}

fn write_object(map: &serde_json::Map<String, Value>, out: &mut Vec<u8>) {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    for (i, (key, item)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json(key, out);
        out.push(b':');
        write_canonical(item, out);
    }
    out.push(b'}');
}

fn write_json<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // Writing a string or scalar into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// Makes an upstream name safe as one `:`-separated key segment and as a
/// literal inside a SCAN MATCH pattern.
pub(crate) fn escape_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for c in segment.chars() {
        match c {
            ':' | '*' | '?' | '[' | ']' | '\\' | '%' => {
                let _ = write!(out, "%{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn borrowed_arguments_hash_like_a_value() {
        let args = serde_json::json!({"b": [1, {"d": 2, "c": 3}], "a": "x"});
        let map = args.as_object().unwrap();
        assert_eq!(
            CacheKey::tool_result_of("s".into(), "t", Some(map)),
            CacheKey::tool_result("s", "t", &args)
        );
        assert_eq!(
            CacheKey::tool_result_of("s".into(), "t", None),
            CacheKey::tool_result("s", "t", &serde_json::json!({}))
        );
    }

    use serde_json::json;

    use super::*;

    #[test]
    fn argument_order_does_not_change_the_key() {
        let a = CacheKey::tool_result(
            "s",
            "t",
            &json!({"a": 1, "b": {"y": [1, {"q": 1, "p": 2}], "x": null}}),
        );
        let b = CacheKey::tool_result(
            "s",
            "t",
            &json!({"b": {"x": null, "y": [1, {"p": 2, "q": 1}]}, "a": 1}),
        );
        assert_eq!(a, b);
    }

    #[test]
    fn different_arguments_or_tools_differ() {
        let base = CacheKey::tool_result("s", "t", &json!({"a": 1}));
        assert_ne!(base, CacheKey::tool_result("s", "t", &json!({"a": 2})));
        assert_ne!(base, CacheKey::tool_result("s", "u", &json!({"a": 1})));
        assert_ne!(base, CacheKey::tool_result("r", "t", &json!({"a": 1})));
        assert_ne!(
            CacheKey::tool_result("s", "ab", &json!("c")),
            CacheKey::tool_result("s", "a", &json!("bc"))
        );
    }

    #[test]
    fn canonical_json_sorts_keys_and_keeps_arrays() {
        let mut out = Vec::new();
        write_canonical(&json!({"b": [2, 1], "a": "x\"y", "c": 1.5}), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":"x\"y","b":[2,1],"c":1.5}"#
        );
    }

    #[test]
    fn credentials_and_arguments_never_appear_in_keys() {
        let secret = "bwk_live_supersecret";
        let key = CacheKey::credential(secret).redis_key("bulwark:v1");
        assert!(!key.contains(secret), "{key}");
        assert!(key.starts_with("bulwark:v1:credential:_:"), "{key}");
        let key =
            CacheKey::tool_result("fs", "read", &json!({"path": "/etc/shadow"})).redis_key("p");
        assert!(!key.contains("shadow"), "{key}");
        assert_eq!(key.len(), "p:tool_result:fs:".len() + 64);
    }

    #[test]
    fn upstream_names_are_escaped_in_redis_keys() {
        let key = CacheKey::list(CacheKind::Tools, "we:ird*").redis_key("p");
        assert!(key.starts_with("p:tools:we%3Aird%2A:"), "{key}");
    }
}
