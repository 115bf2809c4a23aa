//! What goes into an audit entry: the action and target a request names,
//! its states with every secret masked, and a time-sorted id. Also the
//! retention sweep.
use std::time::Duration;

use axum::http::Method;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::store::{Store, audit, now_ms};

const MASK: &str = "****";
/// Field names whose values are always secrets, wherever they appear.
const SECRET_FIELDS: [&str; 9] = [
    "key",
    "password",
    "secret",
    "token",
    "api_key",
    "client_secret",
    "private_key",
    "authorization",
    "access_token",
];
/// Maps whose every value may be a secret (upstream environment, headers).
const SECRET_MAPS: [&str; 2] = ["env", "headers"];
/// How often the retention sweep runs.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// `value` with secrets masked: known secret fields, every value of
/// environment and header maps, and credential-shaped text anywhere.
pub fn masked(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(name, inner)| {
                    let lower = name.to_ascii_lowercase();
                    let shown = if SECRET_FIELDS.contains(&lower.as_str())
                        || lower.ends_with("_secret")
                        || lower.ends_with("password")
                    {
                        mask_leaves(inner)
                    } else if SECRET_MAPS.contains(&lower.as_str()) {
                        match inner {
                            Value::Object(entries) => Value::Object(
                                entries
                                    .iter()
                                    .map(|(k, v)| (k.clone(), mask_leaves(v)))
                                    .collect(),
                            ),
                            other => masked(other),
                        }
                    } else {
                        masked(inner)
                    };
                    (name.clone(), shown)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(masked).collect()),
        Value::String(text) => Value::String(crate::mask::mask(text, [])),
        other => other.clone(),
    }
}

/// Every string under `value` replaced by the mask (an already masked
/// value stays as it is shown).
fn mask_leaves(value: &Value) -> Value {
    match value {
        Value::String(_) => Value::String(MASK.into()),
        Value::Array(items) => Value::Array(items.iter().map(mask_leaves).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), mask_leaves(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The action of a mutating `method path`, e.g. `upstreams.create`,
/// `upstreams.update`, `keys.revoke`, `system.backup`.
pub fn action(method: &Method, path: &str) -> String {
    let segments = segments(path);
    let resource = segments.first().copied().unwrap_or("api");
    let verb = match (segments.len(), method.as_str()) {
        (1, "POST") => "create",
        (_, "PUT") => "replace",
        (_, "PATCH") => "update",
        (_, "DELETE") => "delete",
        (2 | 3, "POST") => segments.last().copied().unwrap_or("post"),
        _ => "post",
    };
    format!("{resource}.{verb}")
}

/// The resource a mutating request acts on, e.g. `upstreams/echo`. A
/// create names the created item from the answer (`name`, `username`, `id`).
pub fn target(path: &str, answer: Option<&Value>) -> String {
    let segments = segments(path);
    match segments.as_slice() {
        [resource] => {
            let named = answer.and_then(|a| {
                ["name", "username", "id"]
                    .iter()
                    .find_map(|field| a.get(*field).and_then(Value::as_str))
            });
            match named {
                Some(name) => format!("{resource}/{name}"),
                None => (*resource).to_owned(),
            }
        }
        [resource, item, ..] => format!("{resource}/{item}"),
        [] => path.to_owned(),
    }
}

/// The path whose `GET` shows what a mutation of `path` changes (the item
/// for `/x/{id}` and `/x/{id}/verb`), or `None` for a collection.
pub fn state_path(path: &str) -> Option<String> {
    match segments(path).as_slice() {
        [resource, item] | [resource, item, _] => Some(format!("/api/v1/{resource}/{item}")),
        _ => None,
    }
}

fn segments(path: &str) -> Vec<&str> {
    path.trim_start_matches("/api/v1")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect()
}

/// A new entry id: zero-padded milliseconds then random hex, so ids sort
/// by time and never collide.
pub fn entry_id(at: i64) -> String {
    let mut random = [0u8; 8];
    // Without randomness the time alone still orders entries; the store's
    // primary key refuses a true duplicate rather than overwriting it.
    let _ = getrandom::fill(&mut random);
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("{at:015}-{hex}")
}

/// Appends `entry` (stamped with an id and time when it has none); a store
/// failure is logged, since the action it records has happened already.
pub async fn append(store: &Store, mut entry: audit::AuditEntry) {
    if entry.at == 0 {
        entry.at = now_ms();
    }
    if entry.id.is_empty() {
        entry.id = entry_id(entry.at);
    }
    if let Err(err) = audit::append(store, &entry).await {
        tracing::error!(%err, action = %entry.action, target = %entry.target, "audit entry not written");
    }
}

/// [`append`] for many entries, in one transaction.
pub async fn append_batch(store: &Store, mut entries: Vec<audit::AuditEntry>) {
    for entry in &mut entries {
        if entry.at == 0 {
            entry.at = now_ms();
        }
        if entry.id.is_empty() {
            entry.id = entry_id(entry.at);
        }
    }
    if let Err(err) = audit::append_all(store, &entries).await {
        tracing::error!(%err, entries = entries.len(), "audit entries not written");
    }
}

/// Deletes entries older than `days` days now and then every hour until
/// `shutdown`; `days = 0` keeps everything.
pub fn spawn_retention(store: Store, days: u64, shutdown: CancellationToken) {
    if days == 0 {
        return;
    }
    let keep_ms = i64::try_from(days.saturating_mul(86_400_000)).unwrap_or(i64::MAX);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    match audit::prune(&store, now_ms().saturating_sub(keep_ms)).await {
                        Ok(0) => {}
                        Ok(pruned) => tracing::info!(pruned, days, "audit entries past retention deleted"),
                        Err(err) => tracing::warn!(%err, "audit retention sweep failed"),
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secrets_are_masked_wherever_they_sit() {
        let value = json!({
            "name": "gh",
            "env": {"GITHUB_TOKEN": "ghp_abcdefghijklmnopqrstuvwxyz123456", "MODE": "x"},
            "headers": {"X-Api": "s3cr3t-value"},
            "key": "bk_0123456789abcdef0123",
            "oauth": {"client_secret": "shh-very-secret"},
            "args": ["--token=hunter2-hunter2"],
        });
        let shown = masked(&value).to_string();
        for secret in ["ghp_abc", "s3cr3t", "bk_0123", "shh-very", "hunter2"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("\"name\":\"gh\""), "{shown}");
    }

    #[test]
    fn actions_and_targets_come_from_the_route() {
        let post = Method::POST;
        assert_eq!(action(&post, "/api/v1/upstreams"), "upstreams.create");
        assert_eq!(
            action(&Method::PATCH, "/api/v1/upstreams/a"),
            "upstreams.update"
        );
        assert_eq!(action(&post, "/api/v1/keys/k1/revoke"), "keys.revoke");
        assert_eq!(action(&post, "/api/v1/system/backup"), "system.backup");
        assert_eq!(
            target("/api/v1/users", Some(&json!({"username": "ann"}))),
            "users/ann"
        );
        assert_eq!(target("/api/v1/keys/k1/revoke", None), "keys/k1");
        assert_eq!(
            state_path("/api/v1/keys/k1/revoke").unwrap(),
            "/api/v1/keys/k1"
        );
        assert_eq!(state_path("/api/v1/upstreams"), None);
        assert!(entry_id(5) < entry_id(6));
    }
}
