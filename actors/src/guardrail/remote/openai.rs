//! OpenAI moderation: `POST /v1/moderations` with `Authorization: Bearer`,
//! body `{"model", "input"}`; the answer is
//! `{"id", "model", "results": [{"flagged", "categories": {NAME: bool}, "category_scores"}]}`.
//! A true category fires `moderation:NAME`; a flagged result with none true fires `moderation`.
use serde_json::{Value, json};

use super::ProviderError;

/// The public endpoint.
pub const DEFAULT_URL: &str = "https://api.openai.com/v1/moderations";
/// The model asked for when the provider config names none.
pub const DEFAULT_MODEL: &str = "omni-moderation-latest";

/// The request body.
pub fn request(text: &str, model: &str) -> Value {
    json!({ "model": model, "input": text })
}

/// `moderation:CATEGORY` for each category any result flagged.
pub fn fired(body: &Value) -> Result<Vec<String>, ProviderError> {
    let results = body
        .get("results")
        .and_then(Value::as_array)
        .ok_or_else(|| ProviderError::Format("no `results` array".into()))?;
    let mut fired = Vec::new();
    for result in results {
        let categories = result.get("categories").and_then(Value::as_object);
        let before = fired.len();
        for (name, hit) in categories.into_iter().flatten() {
            let name = format!("moderation:{name}");
            if hit.as_bool() == Some(true) && !fired.contains(&name) {
                fired.push(name);
            }
        }
        let flagged = result.get("flagged").and_then(Value::as_bool) == Some(true);
        if flagged && fired.len() == before && !fired.iter().any(|n| n == "moderation") {
            fired.push("moderation".into());
        }
    }
    Ok(fired)
}
