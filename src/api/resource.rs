//! What the named-definition resources (upstreams, projects) share: how a
//! definition is shown, where a stored record is found, and how a `PUT` or
//! `PATCH` body becomes the next definition.
use serde_json::{Map, Value, json};

use super::problem::Problem;
use crate::store::Store;
use crate::store::named::{Named, Record};

/// `definition` as the API shows it, with `name`, `source` and `enabled`.
pub(super) fn shown(mut definition: Value, name: &str, source: &str, enabled: bool) -> Value {
    if let Value::Object(map) = &mut definition {
        map.insert("name".into(), json!(name));
        map.insert("source".into(), json!(source));
        map.insert("enabled".into(), json!(enabled));
    }
    definition
}

/// A stored record's shown form with its times.
pub(super) fn stamped(mut shown: Value, record: &Record) -> Value {
    shown["created_at"] = json!(record.created_at);
    shown["updated_at"] = json!(record.updated_at);
    shown
}

/// The stored `name` of `table`: `409` when the config file defines it
/// (read-only here), `404` when nothing does.
pub(super) async fn stored(
    table: Named,
    store: &Store,
    kind: &str,
    name: &str,
    in_file: bool,
) -> Result<Record, Problem> {
    if in_file {
        return Err(Problem::from_file(kind, name));
    }
    table
        .get(store, name)
        .await?
        .ok_or_else(|| Problem::not_found(kind, name))
}

/// Fields the API shows but a body cannot set.
const READ_ONLY: [&str; 5] = ["name", "source", "status", "created_at", "updated_at"];

/// The next definition from a body: read-only fields dropped, then merged
/// over `current` (`PATCH`) or taken as it is (`PUT`).
pub(super) fn next_definition(
    current: &Value,
    mut body: Map<String, Value>,
    merge: bool,
) -> Map<String, Value> {
    for read_only in READ_ONLY {
        body.remove(read_only);
    }
    if !merge {
        return body;
    }
    let mut merged = current.as_object().cloned().unwrap_or_default();
    merged.extend(body);
    merged
}
