//! The cache key canonicaliser: any arguments hash without panicking, and
//! the same arguments in another key order hash to the same key.
use std::sync::Arc;

use bulwark_actors::cache::CacheKey;
use serde_json::{Map, Value};

use super::{assemble, built_object, draws};

const JSON: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"a\"",
    "\"b\"",
    "\"é\"",
    "1",
    "1.0",
    "-0",
    "1e3",
    "null",
    "true",
    "\"\\u0000\"",
    "\"x\"",
];

/// `map` rebuilt in reverse insertion order, recursively.
fn reversed(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .rev()
                .map(|(k, v)| (k.clone(), reversed(v)))
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(reversed).collect()),
        other => other.clone(),
    }
}

fn check(text: &str) {
    let Ok(Value::Object(arguments)) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let upstream: Arc<str> = "echo".into();
    let key = CacheKey::tool_result_of(upstream.clone(), "tool", Some(&arguments));
    let Value::Object(shuffled) = reversed(&Value::Object(arguments.clone())) else {
        unreachable!()
    };
    let again = CacheKey::tool_result_of(upstream.clone(), "tool", Some(&shuffled));
    assert_eq!(key, again, "key order changed the key of {text}");
    if arguments.is_empty() {
        assert_eq!(key, CacheKey::tool_result_of(upstream, "tool", None));
    }
}

#[test]
fn cache_key_any_text() {
    bolero::check!()
        .with_type::<String>()
        .for_each(|text| check(text));
}

#[test]
fn cache_key_json_shaped() {
    bolero::check!()
        .with_type::<Vec<(u8, String)>>()
        .for_each(|parts| check(&assemble(parts, JSON)));
}

/// Keys and scalars for the built arguments: plain, non-ASCII, escaped,
/// empty; numbers that are equal as numbers but written apart.
const KEYS: &[&str] = &["a", "b", "c", "é", "\\u0041", "", "a\\\"b"];
const SCALARS: &[&str] = &[
    "1",
    "1.0",
    "-0",
    "0",
    "1e3",
    "1000",
    "null",
    "true",
    "false",
    "\"x\"",
    "\"é\"",
    "\"\\u0000\"",
    "\"a\"",
];

#[test]
fn cache_key_built_arguments() {
    // Assembled text is almost never an object (the canonicaliser would
    // go unchecked); built arguments mostly are.
    bolero::check!().with_type::<Vec<u8>>().for_each(|bytes| {
        let mut next = draws(bytes);
        let mut text = String::new();
        built_object(&mut next, KEYS, SCALARS, &mut text);
        check(&text);
    });
}
