//! Desired state: the config file's upstreams plus the store's enabled
//! ones, validated exactly as the config file is. A stored upstream that no
//! longer validates (say, a `${VAR}` that is gone) is left out and logged;
//! it never blocks the others.
use bulwark_actors::upstream::UpstreamSpec;
use bulwark_supervisors::policy::RestartPolicy;
use serde_json::Value;

use std::collections::HashMap;

use crate::config::{self, Config, ConfigError, PrefixMode, UpstreamConfig};
use crate::store::named::Record;

/// A field-level error in a submitted definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The offending field, as a dotted path (`args`, `oauth.client_id`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// Reads an upstream table from JSON, naming the field at fault.
pub fn parse_upstream(definition: Value) -> Result<UpstreamConfig, FieldError> {
    serde_path_to_error::deserialize(definition).map_err(|err| FieldError {
        field: err.path().to_string(),
        message: err.inner().to_string(),
    })
}

/// The JSON of an upstream table, every default spelled out.
pub fn upstream_json(upstream: &UpstreamConfig) -> Value {
    serde_json::to_value(upstream).unwrap_or(Value::Null)
}

/// True the first time this process asks about `server`: a reconcile runs
/// every few seconds on a shared store, and one warning per upstream is
/// enough.
fn first_notice(server: &str) -> bool {
    static NOTICED: std::sync::LazyLock<std::sync::Mutex<std::collections::BTreeSet<String>>> =
        std::sync::LazyLock::new(Default::default);
    NOTICED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(server.to_owned())
}

/// Checks `upstream` as the config file's `[upstreams.NAME]` would be checked
/// (names, transport, policy, `${VAR}`s), naming the field at fault.
pub fn check_upstream(
    file: &Config,
    name: &str,
    upstream: &UpstreamConfig,
) -> Result<(), FieldError> {
    let mut single = file.clone();
    single.upstreams = [(name.to_owned(), upstream.clone())].into();
    let result = config::validate(&single, "request")
        .and_then(|()| config::upstream_specs(&single).map(drop));
    result.map_err(|err| field_error(name, &err))
}

/// Pulls `upstreams.NAME.FIELD` out of a config error message.
fn field_error(name: &str, err: &ConfigError) -> FieldError {
    let message = match err {
        ConfigError::Invalid { message, .. } | ConfigError::File { message, .. } => message.clone(),
    };
    let prefix = format!("upstreams.{name}");
    let field = message
        .find(&prefix)
        .map(|at| {
            message[at + prefix.len()..]
                .trim_start_matches('.')
                .split([':', ' ', '='])
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .filter(|field| !field.is_empty())
        .unwrap_or_else(|| "name".to_owned());
    FieldError { field, message }
}

/// The prefix mode of every upstream that should run (file entries win).
pub fn prefix_modes(file: &Config, stored: &[Record]) -> HashMap<String, PrefixMode> {
    let mut modes: HashMap<String, PrefixMode> = stored
        .iter()
        .filter_map(|record| {
            let upstream = parse_upstream(record.definition.clone()).ok()?;
            Some((record.name.clone(), upstream.prefix))
        })
        .collect();
    for (name, upstream) in &file.upstreams {
        modes.insert(name.clone(), upstream.prefix);
    }
    modes
}

/// Launch specs of everything that should run, file entries first.
pub fn specs(
    file: &Config,
    stored: &[Record],
) -> Result<Vec<(UpstreamSpec, RestartPolicy)>, ConfigError> {
    let mut merged = file.clone();
    for record in stored {
        if file.upstreams.contains_key(&record.name) {
            tracing::warn!(server = %record.name, "stored upstream shadowed by the config file's entry of the same name");
            continue;
        }
        let upstream = match parse_upstream(record.definition.clone()) {
            Ok(mut upstream) => {
                upstream.enabled &= record.enabled;
                // Stored before remote upstreams refused them: dropped (the
                // server never received them), not a reason to stop it.
                let dropped = upstream.take_remote_launch_settings();
                if !dropped.is_empty() && upstream.enabled && first_notice(&record.name) {
                    tracing::warn!(server = %record.name, keys = ?dropped, "stored remote upstream has launch settings its server never receives; ignored (a PUT or PATCH that does not send them clears them)");
                }
                upstream
            }
            Err(err) => {
                tracing::error!(server = %record.name, field = %err.field, error = %err.message, "stored upstream is invalid; not started");
                continue;
            }
        };
        if upstream.enabled
            && let Err(err) = check_upstream(file, &record.name, &upstream)
        {
            tracing::error!(server = %record.name, field = %err.field, error = %err.message, "stored upstream is invalid; not started");
            continue;
        }
        merged.upstreams.insert(record.name.clone(), upstream);
    }
    config::upstream_specs(&merged)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn errors_name_the_field() {
        let err = parse_upstream(json!({"command": "x", "args": "no"})).unwrap_err();
        assert_eq!(err.field, "args");
        let err = parse_upstream(json!({"command": "x", "oauth": {"client_id": 5}})).unwrap_err();
        assert_eq!(err.field, "oauth.client_id");
        let file: Config = toml::from_str("").unwrap();
        let upstream = parse_upstream(json!({"url": "http://x", "command": "y"})).unwrap();
        let err = check_upstream(&file, "both", &upstream).unwrap_err();
        assert!(err.message.contains("exclude"), "{err:?}");
        let upstream = parse_upstream(json!({"command": "x"})).unwrap();
        assert!(check_upstream(&file, "ok", &upstream).is_ok());
        // Pool keys arrive through the same definition type.
        let pool = parse_upstream(json!({"command": "x", "instances": 0})).unwrap();
        assert_eq!(
            check_upstream(&file, "p", &pool).unwrap_err().field,
            "instances"
        );
        let pool = parse_upstream(json!({"command": "x", "instances": 2, "strategy": "random"}));
        let pool = pool.unwrap();
        assert!(check_upstream(&file, "p", &pool).is_ok());
        assert_eq!(upstream_json(&pool)["instances"], 2);
        assert!(
            upstream_json(&upstream).get("instances").is_none(),
            "defaults stay out"
        );
        assert_eq!(
            check_upstream(&file, "bad name", &upstream)
                .unwrap_err()
                .field,
            "name"
        );
    }
}
