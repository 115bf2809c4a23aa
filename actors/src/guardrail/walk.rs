//! Walks the strings of a JSON value: string values, and object keys where a
//! check only needs to read them.
//!
//! Binary payloads (`data` of image/audio content, `blob` of resources; both
//! sit next to a `mimeType`) are skipped: base64 is neither text nor a secret.
use serde_json::{Map, Value};

fn is_binary_field(map: &Map<String, Value>, key: &str) -> bool {
    matches!(key, "data" | "blob") && map.contains_key("mimeType")
}

/// Calls `f` on every string value and object key; stops at the first `Err`.
pub fn try_each_str<E>(value: &Value, f: &mut impl FnMut(&str) -> Result<(), E>) -> Result<(), E> {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().try_for_each(|item| try_each_str(item, f)),
        Value::Object(map) => map.iter().try_for_each(|(key, item)| {
            f(key)?;
            if is_binary_field(map, key) {
                Ok(())
            } else {
                try_each_str(item, f)
            }
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

/// Calls `f` on every string value (not keys: renaming an argument would
/// break the call) so it may rewrite it; stops at the first `Err`.
pub fn try_each_string_mut<E>(
    value: &mut Value,
    f: &mut impl FnMut(&mut String) -> Result<(), E>,
) -> Result<(), E> {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items
            .iter_mut()
            .try_for_each(|item| try_each_string_mut(item, f)),
        Value::Object(map) => {
            let binary: Vec<String> = ["data", "blob"]
                .into_iter()
                .filter(|key| is_binary_field(map, key))
                .map(String::from)
                .collect();
            map.iter_mut()
                .filter(|(key, _)| !binary.contains(key))
                .try_for_each(|(_, item)| try_each_string_mut(item, f))
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

/// The one string of a value that is a string or a list of one (a tool
/// result's text, as the request path hands it over): checked in place
/// instead of being copied into a joined text.
fn single_string_mut(value: &mut Value) -> Option<&mut String> {
    match value {
        Value::String(s) => Some(s),
        Value::Array(items) if items.len() == 1 => single_string_mut(&mut items[0]),
        _ => None,
    }
}

fn single_string(value: &Value) -> Option<&str> {
    match value {
        Value::String(s) => Some(s),
        Value::Array(items) if items.len() == 1 => single_string(&items[0]),
        _ => None,
    }
}

/// [`joined_text`], borrowing the string when `value` holds just one.
pub fn text(value: &Value, separator: char) -> std::borrow::Cow<'_, str> {
    match single_string(value) {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(joined_text(value, separator)),
    }
}

/// The first capacity of a joined text.
const JOINED_CAPACITY: usize = 256;

/// Every string of `value` (keys included), joined by `separator`: the
/// text a remote provider is asked about (newlines), or the local detectors
/// scan in one pass per pattern (NUL, which no pattern crosses).
pub fn joined_text(value: &Value, separator: char) -> String {
    // Sized for a typical call's strings: growing from empty reallocated
    // it ~4 times per scan.
    let mut text = String::with_capacity(JOINED_CAPACITY);
    let _ = try_each_str::<()>(value, &mut |s| {
        if !text.is_empty() {
            text.push(separator);
        }
        text.push_str(s);
        Ok(())
    });
    text
}

/// Rewrites string values from spans found in one pass over all of them:
/// `find` runs once on the values joined by NUL (patterns that cannot cross
/// a NUL see each value whole), and `apply` gets each value that has spans,
/// with the spans made relative to it.
pub fn rewrite_values<S>(
    value: &mut Value,
    find: impl FnOnce(&str) -> Vec<S>,
    range: impl Fn(&S) -> std::ops::Range<usize>,
    shift: impl Fn(S, usize) -> S,
    mut apply: impl FnMut(&mut String, &[S]),
) {
    if let Some(s) = single_string_mut(value) {
        let spans = find(s);
        if !spans.is_empty() {
            apply(s, &spans);
        }
        return;
    }
    let mut joined = String::with_capacity(JOINED_CAPACITY);
    let mut ends = Vec::with_capacity(8);
    let _ = try_each_string_mut::<()>(value, &mut |s| {
        joined.push_str(s);
        ends.push(joined.len());
        joined.push('\0');
        Ok(())
    });
    let mut spans = find(&joined).into_iter().peekable();
    if spans.peek().is_none() {
        return;
    }
    let mut index = 0;
    let _ = try_each_string_mut::<()>(value, &mut |s| {
        let end = ends[index];
        let start = end - s.len();
        index += 1;
        let mut own = Vec::new();
        while let Some(span) = spans.next_if(|span| range(span).start < end) {
            if range(&span).end <= end {
                own.push(shift(span, start));
            }
        }
        if !own.is_empty() {
            apply(s, &own);
        }
        Ok(())
    });
}

/// Length of `value` serialized as compact JSON, without building the string.
pub fn serialized_len(value: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing a `Value` to a counter cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn visits_values_and_keys_but_not_binary() {
        let value = json!({
            "a": ["x", {"b": "y"}], "n": 1,
            "content": [{"type": "image", "data": "QUJD", "mimeType": "image/png"}]
        });
        let mut seen = Vec::new();
        try_each_str::<()>(&value, &mut |s| {
            seen.push(s.to_owned());
            Ok(())
        })
        .unwrap();
        seen.sort();
        assert_eq!(
            seen,
            [
                "a",
                "b",
                "content",
                "data",
                "image",
                "image/png",
                "mimeType",
                "n",
                "type",
                "x",
                "y"
            ]
        );
        assert!(!joined_text(&value, '\n').contains("QUJD"));
    }

    #[test]
    fn rewrites_values_only() {
        let mut value = json!({"key": "v", "list": ["w"], "blob": "b"});
        try_each_string_mut::<()>(&mut value, &mut |s| {
            s.make_ascii_uppercase();
            Ok(())
        })
        .unwrap();
        assert_eq!(value, json!({"key": "V", "list": ["W"], "blob": "B"}));
    }

    /// Replaces every "ab" in the string values of `value` with "X".
    fn replace_ab(value: &mut Value) {
        rewrite_values(
            value,
            |joined| joined.match_indices("ab").map(|(i, _)| i..i + 2).collect(),
            |range| range.clone(),
            |range, by| range.start - by..range.end - by,
            |text, ranges| {
                for range in ranges.iter().rev() {
                    text.replace_range(range.clone(), "X");
                }
            },
        );
    }

    #[test]
    fn rewrite_values_maps_spans_back_to_their_strings() {
        let mut value = json!({"a": "xx ab", "b": ["ab", "no"], "c": {"d": "abab"}});
        replace_ab(&mut value);
        assert_eq!(
            value,
            json!({"a": "xx X", "b": ["X", "no"], "c": {"d": "XX"}})
        );
    }

    #[test]
    fn a_lone_string_is_checked_in_place() {
        let value = json!(["one text"]);
        assert!(matches!(
            text(&value, '\0'),
            std::borrow::Cow::Borrowed("one text")
        ));
        assert_eq!(text(&json!(["a", "b"]), '\0'), "a\0b");
        for mut value in [json!(["xx ab ab"]), json!("xx ab ab")] {
            replace_ab(&mut value);
            assert!(
                value == json!(["xx X X"]) || value == json!("xx X X"),
                "{value}"
            );
        }
    }

    #[test]
    fn serialized_len_matches_to_vec() {
        let value = json!({"a": [1, "two", null], "é": true});
        assert_eq!(
            serialized_len(&value),
            serde_json::to_vec(&value).unwrap().len()
        );
    }
}
