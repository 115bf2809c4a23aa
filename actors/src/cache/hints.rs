//! What a cached MCP result says about its own caching (SEP-2549): `ttlMs`
//! bounds how long it may be kept, `cacheScope: "private"` keeps it to the
//! caller it was fetched for.
use std::time::Duration;

use serde_json::Value;

/// The caching hints of one result, read from its JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hints {
    /// The result's `ttlMs`, when it has one (negative reads as 0, as the spec asks).
    pub ttl: Option<Duration>,
    /// Whether the result says `cacheScope: "private"`.
    pub private: bool,
}

impl Hints {
    /// The hints `value` carries; a value without them has none.
    pub fn of(value: &Value) -> Self {
        let ttl = value.get("ttlMs").and_then(|ttl| {
            ttl.as_u64()
                .or_else(|| ttl.as_i64().map(|_| 0))
                .map(Duration::from_millis)
        });
        let private = value.get("cacheScope").and_then(Value::as_str) == Some("private");
        Self { ttl, private }
    }

    /// How long the value may be kept when the cache would keep it for
    /// `default`: never longer than its own `ttlMs`.
    pub fn bound(&self, default: Duration) -> Duration {
        self.ttl.map_or(default, |ttl| ttl.min(default))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn hints_are_read_from_the_wire_fields() {
        let none = Hints::of(&json!({"tools": []}));
        assert_eq!(none, Hints::default());
        assert_eq!(none.bound(Duration::from_secs(60)), Duration::from_secs(60));
        let hinted = Hints::of(&json!({"ttlMs": 1500, "cacheScope": "private"}));
        assert!(hinted.private);
        assert_eq!(
            hinted.bound(Duration::from_secs(60)),
            Duration::from_millis(1500)
        );
        assert_eq!(
            hinted.bound(Duration::from_millis(10)),
            Duration::from_millis(10)
        );
        let negative = Hints::of(&json!({"ttlMs": -5, "cacheScope": "public"}));
        assert_eq!(negative.ttl, Some(Duration::ZERO));
        assert!(!negative.private);
    }
}
