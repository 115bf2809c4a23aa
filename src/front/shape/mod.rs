//! Bounded reading of a JSON-RPC body before anything builds a tree from it.
//!
//! One pass over the bytes with serde's visitor API, allocating only the
//! `method` and `id`: counts every JSON value against a budget and caps the
//! nesting depth, so a body of a million tiny objects is refused before
//! `serde_json::Value` would spend hundreds of bytes on each. Small plain
//! bodies, the usual request, are read by hand instead (`plain`).
use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

mod plain;

/// The longest method name kept whole; longer ones are unknown anyway.
pub const MAX_METHOD_LEN: usize = 128;

/// What the front door needs to know about a message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shape {
    /// `method`, or `None` for a response or a message without one.
    pub method: Option<String>,
    /// The method name was longer than [`MAX_METHOD_LEN`] (and is not kept).
    pub method_too_long: bool,
    /// `id`, as canonical JSON text, when a string or number.
    pub id: Option<String>,
    /// The kind of `params`, when present.
    pub params: Option<Kind>,
    /// The kind of `params.arguments`, when present.
    pub arguments: Option<Kind>,
    /// JSON values in the whole body.
    pub values: usize,
}

/// The kind of a JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `null`.
    Null,
    /// `true`/`false`.
    Bool,
    /// A number.
    Number,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
}

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// Not JSON (the parser's message; it quotes no input).
    #[error("parse error: {0}")]
    Parse(String),
    /// Valid JSON so far, but not one JSON-RPC object.
    #[error("invalid request: the body must be one JSON-RPC object")]
    NotAnObject,
    /// More values than allowed.
    #[error("the body has more than {0} JSON values")]
    TooManyValues(usize),
    /// Nested deeper than allowed.
    #[error("the body nests deeper than {0} levels")]
    TooDeep(usize),
}

/// Reads the shape of `body`, refusing more than `max_values` values or
/// deeper nesting than `max_depth`.
pub fn read(body: &[u8], max_values: usize, max_depth: usize) -> Result<Shape, ShapeError> {
    match plain::read(body, max_values, max_depth) {
        Some(shape) => Ok(shape),
        None => read_by_serde(body, max_values, max_depth),
    }
}

/// [`read`] through serde's visitors alone: every body, every refusal and
/// its wording. [`read`] takes plain bodies by hand first and must agree
/// with this (the `front_door` fuzz target checks it).
pub fn read_by_serde(
    body: &[u8],
    max_values: usize,
    max_depth: usize,
) -> Result<Shape, ShapeError> {
    let budget = Budget {
        left: Cell::new(max_values),
        max_values,
        max_depth,
        exceeded: Cell::new(None),
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let result = TopSeed { budget: &budget }
        .deserialize(&mut deserializer)
        .and_then(|shape| deserializer.end().map(|()| shape));
    match (result, budget.exceeded.take()) {
        (_, Some(limit)) => Err(limit),
        (Ok(mut shape), None) => {
            shape.values = max_values - budget.left.get();
            Ok(shape)
        }
        (Err(err), None) => Err(ShapeError::Parse(parse_message(&err))),
    }
}

/// serde_json's message names position and kind, never input text, except
/// for `invalid type: string "…"` which the visitors here never produce.
fn parse_message(err: &serde_json::Error) -> String {
    let text = err.to_string();
    crate::front::clip(&text, 200).into_owned()
}

struct Budget {
    left: Cell<usize>,
    max_values: usize,
    max_depth: usize,
    exceeded: Cell<Option<ShapeError>>,
}

impl Budget {
    fn take<E: de::Error>(&self) -> Result<(), E> {
        match self.left.get().checked_sub(1) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => Err(self.fail(ShapeError::TooManyValues(self.max_values))),
        }
    }

    fn enter<E: de::Error>(&self, depth: usize) -> Result<(), E> {
        if depth > self.max_depth {
            return Err(self.fail(ShapeError::TooDeep(self.max_depth)));
        }
        Ok(())
    }

    fn fail<E: de::Error>(&self, limit: ShapeError) -> E {
        let err = E::custom(&limit);
        self.exceeded.set(Some(limit));
        err
    }
}

/// Any value, counted; yields its kind.
#[derive(Clone, Copy)]
struct Counted<'a> {
    budget: &'a Budget,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Counted<'_> {
    type Value = Kind;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Kind, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Counted<'_> {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Kind, E> {
        self.budget.take().map(|()| Kind::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Kind, E> {
        self.visit_unit()
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Kind, E> {
        self.budget.take().map(|()| Kind::Bool)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Kind, E> {
        self.budget.take().map(|()| Kind::Number)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Kind, E> {
        self.budget.take().map(|()| Kind::Number)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Kind, E> {
        self.budget.take().map(|()| Kind::Number)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Kind, E> {
        self.budget.take().map(|()| Kind::String)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        self.budget.take()?;
        let inner = self.nested()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(Kind::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
        self.budget.take()?;
        let inner = self.nested()?;
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(inner)?;
        }
        Ok(Kind::Object)
    }
}

impl Counted<'_> {
    fn nested<E: de::Error>(self) -> Result<Self, E> {
        self.budget.enter(self.depth + 1)?;
        Ok(Self {
            depth: self.depth + 1,
            ..self
        })
    }
}

/// The top-level object.
struct TopSeed<'a> {
    budget: &'a Budget,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = Shape;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Shape, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON-RPC object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        self.budget.take()?;
        self.budget.enter(1)?;
        let value = Counted {
            budget: self.budget,
            depth: 1,
        };
        let mut shape = Shape::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Method => {
                    self.budget.take()?;
                    match map.next_value::<Option<String>>()? {
                        Some(method) if method.len() > MAX_METHOD_LEN => {
                            shape.method_too_long = true;
                        }
                        method => shape.method = method,
                    }
                }
                Key::Id => shape.id = map.next_value_seed(IdSeed(value))?,
                Key::Params => {
                    let (kind, arguments) = map.next_value_seed(ParamsSeed(value))?;
                    shape.params = Some(kind);
                    shape.arguments = arguments;
                }
                Key::Other => {
                    map.next_value_seed(value)?;
                }
            }
        }
        Ok(shape)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Shape, A::Error> {
        Err(self.budget.fail(ShapeError::NotAnObject))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Shape, E> {
        Err(self.budget.fail(ShapeError::NotAnObject))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Shape, E> {
        Err(self.budget.fail(ShapeError::NotAnObject))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Shape, E> {
        Err(self.budget.fail(ShapeError::NotAnObject))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Shape, E> {
        Err(self.budget.fail(ShapeError::NotAnObject))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Shape, E> {
        Err(self.budget.fail(ShapeError::NotAnObject))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Shape, E> {
        Err(self.budget.fail(ShapeError::NotAnObject))
    }
}

/// The top-level keys the front door reads.
enum Key {
    Method,
    Id,
    Params,
    Other,
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "method" => Key::Method,
                    "id" => Key::Id,
                    "params" => Key::Params,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

/// `id`: kept as canonical text when a string or number, counted otherwise.
struct IdSeed<'a>(Counted<'a>);

impl<'de> DeserializeSeed<'de> for IdSeed<'_> {
    type Value = Option<String>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for IdSeed<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a request id")
    }
    fn visit_str<E: de::Error>(self, id: &str) -> Result<Self::Value, E> {
        self.0.budget.take()?;
        Ok(Some(serde_json::Value::from(id).to_string()))
    }
    fn visit_i64<E: de::Error>(self, id: i64) -> Result<Self::Value, E> {
        self.0.budget.take()?;
        Ok(Some(id.to_string()))
    }
    fn visit_u64<E: de::Error>(self, id: u64) -> Result<Self::Value, E> {
        self.0.budget.take()?;
        Ok(Some(id.to_string()))
    }
    fn visit_f64<E: de::Error>(self, id: f64) -> Result<Self::Value, E> {
        self.0.budget.take()?;
        Ok(Some(id.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_unit().map(|_| None)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.0.visit_bool(v).map(|_| None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.visit_seq(seq).map(|_| None)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(map).map(|_| None)
    }
}

/// `params`: its kind, and the kind of its `arguments`.
struct ParamsSeed<'a>(Counted<'a>);

impl<'de> DeserializeSeed<'de> for ParamsSeed<'_> {
    type Value = (Kind, Option<Kind>);

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ParamsSeed<'_> {
    type Value = (Kind, Option<Kind>);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("params")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        self.0.budget.take()?;
        let inner = self.0.nested()?;
        let mut arguments = None;
        while let Some(key) = map.next_key::<ParamKey>()? {
            let kind = map.next_value_seed(inner)?;
            if matches!(key, ParamKey::Arguments) {
                arguments = Some(kind);
            }
        }
        Ok((Kind::Object, arguments))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.visit_seq(seq).map(|kind| (kind, None))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_unit().map(|kind| (kind, None))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.0.visit_bool(v).map(|kind| (kind, None))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.0.visit_i64(v).map(|kind| (kind, None))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.0.visit_u64(v).map(|kind| (kind, None))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.0.visit_f64(v).map(|kind| (kind, None))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.0.visit_str(v).map(|kind| (kind, None))
    }
}

/// Keys of `params`: only `arguments` matters.
enum ParamKey {
    Arguments,
    Other,
}

impl<'de> de::Deserialize<'de> for ParamKey {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = ParamKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<ParamKey, E> {
                Ok(if key == "arguments" {
                    ParamKey::Arguments
                } else {
                    ParamKey::Other
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_method_id_and_param_kinds() {
        let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x","arguments":[1,2]}}"#;
        let shape = read(body, 100, 8).unwrap();
        assert_eq!(shape.method.as_deref(), Some("tools/call"));
        assert_eq!(shape.id.as_deref(), Some("7"));
        assert_eq!(shape.params, Some(Kind::Object));
        assert_eq!(shape.arguments, Some(Kind::Array));
        assert_eq!(shape.values, 9);
        let shape = read(br#"{"id":"a\"b","method":"ping","params":null}"#, 100, 8).unwrap();
        assert_eq!(shape.id.as_deref(), Some(r#""a\"b""#));
        assert_eq!(shape.params, Some(Kind::Null));
    }

    #[test]
    fn refuses_too_many_values_too_deep_and_non_objects() {
        let many = format!(
            r#"{{"method":"ping","params":{{"_meta":[{}{{}}]}}}}"#,
            "{},".repeat(50)
        );
        assert_eq!(
            read(many.as_bytes(), 20, 8),
            Err(ShapeError::TooManyValues(20))
        );
        let deep = format!(r#"{{"params":{}1{}}}"#, "[".repeat(20), "]".repeat(20));
        assert_eq!(read(deep.as_bytes(), 1000, 8), Err(ShapeError::TooDeep(8)));
        assert_eq!(read(b"[1]", 10, 8), Err(ShapeError::NotAnObject));
        assert!(matches!(read(b"{\"a\":", 10, 8), Err(ShapeError::Parse(_))));
        assert!(matches!(read(b"{} x", 10, 8), Err(ShapeError::Parse(_))));
        let long = format!(r#"{{"method":"{}"}}"#, "m".repeat(1000));
        assert!(read(long.as_bytes(), 10, 8).unwrap().method_too_long);
    }
}
