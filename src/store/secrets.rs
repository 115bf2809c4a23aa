//! The one place where stored definitions, which carry secrets (env values,
//! header values, OAuth client secrets and keys), are written and read.
//! Encryption at rest goes here; nothing else touches the stored text.
//! Also how those secrets are masked in every API answer, and how a masked
//! value sent back in an update keeps the stored secret.
use serde_json::Value;

/// What a masked secret reads as.
pub const MASK: &str = "****";

/// The stored text of a definition.
pub fn seal(definition: &Value) -> String {
    definition.to_string()
}

/// The definition behind stored text.
pub fn unseal(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str(text)
}

/// Paths of secret values in an upstream definition: every value of these maps…
const SECRET_MAPS: &[&str] = &["env", "headers"];
/// …and these fields of its `oauth` table.
const SECRET_OAUTH_FIELDS: &[&str] = &["client_secret", "private_key"];

/// `definition` with every secret value replaced by [`MASK`].
pub fn mask_upstream(definition: &Value) -> Value {
    let mut masked = definition.clone();
    for_each_secret(&mut masked, |value| *value = Value::String(MASK.into()));
    masked
}

/// Where `update` still holds [`MASK`] (an operator sent back what they
/// read), puts back the secret stored in `current`.
pub fn keep_masked(update: &mut Value, current: &Value) {
    for map in SECRET_MAPS {
        if let Some(Value::Object(values)) = update.get_mut(*map) {
            for (key, value) in values.iter_mut() {
                if value == MASK
                    && let Some(old) = current.get(*map).and_then(|m| m.get(key))
                {
                    *value = old.clone();
                }
            }
        }
    }
    if let Some(Value::Object(oauth)) = update.get_mut("oauth") {
        for field in SECRET_OAUTH_FIELDS {
            if let Some(value) = oauth.get_mut(*field)
                && value == MASK
                && let Some(old) = current.get("oauth").and_then(|o| o.get(*field))
            {
                *value = old.clone();
            }
        }
    }
}

fn for_each_secret(definition: &mut Value, mut apply: impl FnMut(&mut Value)) {
    for map in SECRET_MAPS {
        if let Some(Value::Object(values)) = definition.get_mut(*map) {
            values.values_mut().for_each(&mut apply);
        }
    }
    if let Some(Value::Object(oauth)) = definition.get_mut("oauth") {
        for field in SECRET_OAUTH_FIELDS {
            if let Some(value) = oauth.get_mut(*field).filter(|v| !v.is_null()) {
                apply(value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn masks_secrets_and_keeps_them_when_sent_back_masked() {
        let stored = json!({
            "command": "x",
            "env": {"TOKEN": "s3cret-value"},
            "headers": {"Authorization": "Bearer abc"},
            "oauth": {"client_id": "id", "client_secret": "cs", "private_key": null},
        });
        let masked = mask_upstream(&stored);
        assert_eq!(masked["env"]["TOKEN"], MASK);
        assert_eq!(masked["headers"]["Authorization"], MASK);
        assert_eq!(masked["oauth"]["client_secret"], MASK);
        assert_eq!(masked["oauth"]["client_id"], "id");
        assert!(masked["oauth"]["private_key"].is_null());
        assert!(!masked.to_string().contains("s3cret"));

        let mut update = masked.clone();
        update["env"]["NEW"] = json!("new-value");
        keep_masked(&mut update, &stored);
        assert_eq!(update["env"]["TOKEN"], "s3cret-value");
        assert_eq!(update["env"]["NEW"], "new-value");
        assert_eq!(update["oauth"]["client_secret"], "cs");
        assert_eq!(unseal(&seal(&update)).unwrap(), update);
    }
}
