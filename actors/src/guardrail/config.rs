//! The `[guardrails]` configuration: policies, providers and tool-list checks.
//!
//! ```toml
//! [guardrails]
//! enabled = true              # false turns every check off
//! pin_tools = "flag"          # off | flag | block    (rug pulls)
//! tool_poisoning = "hide"     # off | flag | hide | block
//!
//! [guardrails.providers.enkrypt]
//! kind = "enkrypt"
//! url = "https://api.enkryptai.com/guardrails/detect"
//! api_key = "${ENKRYPT_KEY}"
//! timeout_ms = 2000
//!
//! [guardrails.providers.moderation]
//! kind = "openai_moderation"
//! api_key = "${OPENAI_API_KEY}"
//! model = "omni-moderation-latest"
//!
//! [guardrails.input]
//! policy_name = "default-input"
//! provider = ["local", "enkrypt"]     # or one name; "local" is built in
//! block = ["secrets", "injection_attack", "keyword"]
//! on_error = "block"
//! additional_config = { pii_redaction = true, max_bytes = 1048576, keywords = ["drop table"] }
//!
//! [guardrails.upstreams.github.output]   # replaces the default output policy for `github`
//! block = ["secrets", "pii"]
//! ```
use std::collections::BTreeMap;

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use super::policy::GuardrailConfigError;

/// Name of the built-in offline provider.
pub const LOCAL_PROVIDER: &str = "local";

/// The whole `[guardrails]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardrailConfig {
    /// Master switch: `false` lets every call, output and tool list through unchecked.
    pub enabled: bool,
    /// What happens when a tool's definition changes after it was first seen.
    pub pin_tools: PinMode,
    /// What happens to a tool whose definition looks poisoned.
    pub tool_poisoning: PoisoningMode,
    /// Remote providers by the name policies use in `provider`.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Default policy for inputs (tool and prompt arguments, resource URIs).
    pub input: PolicyConfig,
    /// Default policy for outputs (tool, prompt and resource results).
    pub output: PolicyConfig,
    /// Per-upstream policies; a direction given here replaces the default whole.
    pub upstreams: BTreeMap<String, UpstreamPolicies>,
}

impl GuardrailConfig {
    /// Resolves `${VAR}` in every provider's `api_key` and `url` with
    /// `expand` (the gateway's own config expansion; its error is the
    /// missing variable's name). [`crate::guardrail::Guardrails::new`]
    /// refuses unresolved references.
    pub fn resolve_env(
        &mut self,
        expand: impl Fn(&str) -> Result<String, String>,
    ) -> Result<(), GuardrailConfigError> {
        for (name, provider) in &mut self.providers {
            let missing = |var| GuardrailConfigError::MissingEnv {
                provider: name.clone(),
                var,
            };
            provider.api_key =
                SecretString::from(expand(provider.api_key.expose_secret()).map_err(missing)?);
            if let Some(url) = &provider.url {
                provider.url = Some(expand(url).map_err(missing)?);
            }
        }
        Ok(())
    }
}

impl Default for GuardrailConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            pin_tools: PinMode::Flag,
            tool_poisoning: PoisoningMode::Hide,
            providers: BTreeMap::new(),
            input: PolicyConfig::default(),
            output: PolicyConfig::default(),
            upstreams: BTreeMap::new(),
        }
    }
}

/// `pin_tools`: how changed tool definitions (rug pulls) are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PinMode {
    /// No pinning.
    Off,
    /// A changed tool stays listed and callable and is reported until approved.
    Flag,
    /// A changed tool is withheld (not listed, not callable) until approved.
    Block,
}

/// `tool_poisoning`: how tools with suspicious definitions are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PoisoningMode {
    /// No scan.
    Off,
    /// Flagged tools stay listed and callable, and are reported.
    Flag,
    /// Flagged tools are not listed and may not be called.
    Hide,
    /// One flagged tool withholds every tool of its upstream: a server that
    /// poisons one description is not trusted with the others.
    Block,
}

/// `on_error`: what a provider failure or timeout means for the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Fail closed: the call is refused (detector `provider_error`).
    #[default]
    Block,
    /// Fail open: the call goes on and a warning is logged.
    Allow,
}

/// Input and output policies of one upstream.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamPolicies {
    /// Replaces `[guardrails.input]` for this upstream.
    pub input: Option<PolicyConfig>,
    /// Replaces `[guardrails.output]` for this upstream.
    pub output: Option<PolicyConfig>,
}

/// One direction's policy, in the seed gateway's shape. `policy_name` and
/// `block` default per direction (see [`PolicyDirection`]); the other fields
/// default the same way in both.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Off means nothing is checked in this direction (placeholders are still restored).
    pub enabled: bool,
    /// Named in block errors and logs; default `default-input` / `default-output`.
    pub policy_name: Option<String>,
    /// Providers that check this direction: `"local"` and/or names from
    /// `[guardrails.providers]`; they run concurrently.
    pub provider: ProviderList,
    /// Detectors whose findings refuse the call: `pii`, `secrets`,
    /// `injection_attack`, `keyword`, `regex`, remote detector names such as
    /// `toxicity`, and `moderation` (any category) or `moderation:CATEGORY`.
    /// Findings of other detectors are reported, not blocked. Default: inputs
    /// `secrets`, `injection_attack`, `keyword`, `regex`; outputs `secrets`,
    /// `injection_attack`.
    pub block: Option<Vec<String>>,
    /// What a failing or slow remote provider means.
    pub on_error: OnError,
    /// Detector settings.
    pub additional_config: AdditionalConfig,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            policy_name: None,
            provider: ProviderList::default(),
            block: None,
            on_error: OnError::Block,
            additional_config: AdditionalConfig::default(),
        }
    }
}

/// Which way a policy checks; supplies the defaults that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyDirection {
    /// Arguments and URIs going to an upstream.
    Input,
    /// Results coming back.
    Output,
}

impl PolicyDirection {
    /// `policy_name` when none is given.
    pub fn default_policy_name(self) -> &'static str {
        match self {
            Self::Input => "default-input",
            Self::Output => "default-output",
        }
    }

    /// `block` when none is given.
    pub fn default_block(self) -> &'static [&'static str] {
        match self {
            Self::Input => &["secrets", "injection_attack", "keyword", "regex"],
            Self::Output => &["secrets", "injection_attack"],
        }
    }
}

/// Provider names: one string or a list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ProviderList {
    /// `provider = "local"`.
    One(String),
    /// `provider = ["local", "enkrypt"]`.
    Many(Vec<String>),
}

impl ProviderList {
    /// The names, in order.
    pub fn names(&self) -> &[String] {
        match self {
            Self::One(name) => std::slice::from_ref(name),
            Self::Many(names) => names,
        }
    }
}

impl Default for ProviderList {
    fn default() -> Self {
        Self::One(LOCAL_PROVIDER.into())
    }
}

/// Detector settings of one policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdditionalConfig {
    /// Inputs: replace PII with placeholders the upstream sees and the client
    /// gets back restored. Outputs: mask PII the upstream produced.
    pub pii_redaction: bool,
    /// Larger payloads (serialized JSON) are refused (detector `size`); `0` means no limit.
    pub max_bytes: usize,
    /// Case-insensitive phrases for the `keyword` detector.
    pub keywords: Vec<String>,
    /// Regular expressions for the `regex` detector.
    pub regexes: Vec<String>,
    /// Shannon entropy (bits per character) from which a long token counts as a secret.
    pub entropy_threshold: f64,
}

impl Default for AdditionalConfig {
    fn default() -> Self {
        Self {
            pii_redaction: true,
            max_bytes: 1024 * 1024,
            keywords: Vec::new(),
            regexes: Vec::new(),
            entropy_threshold: crate::guardrail::detect::entropy::DEFAULT_THRESHOLD,
        }
    }
}

/// A remote guardrail provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Which wire format it speaks.
    pub kind: ProviderKind,
    /// Endpoint; defaults to the public service's.
    #[serde(default)]
    pub url: Option<String>,
    /// API key; `${VAR}` reads it from the gateway's environment.
    pub api_key: SecretString,
    /// Per-request deadline in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// `openai_moderation`: the model.
    #[serde(default)]
    pub model: Option<String>,
    /// `enkrypt`: the `detectors` object sent with each request (default:
    /// injection_attack, pii, toxicity, nsfw).
    #[serde(default)]
    pub detectors: Option<serde_json::Value>,
}

fn default_timeout_ms() -> u64 {
    2000
}

/// Remote provider wire formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// Enkrypt AI `POST /guardrails/detect`.
    Enkrypt,
    /// OpenAI `POST /v1/moderations`.
    OpenaiModeration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shape() {
        let config: GuardrailConfig = toml_like(serde_json::json!({
            "pin_tools": "block",
            "tool_poisoning": "flag",
            "providers": {
                "enkrypt": { "kind": "enkrypt", "url": "http://127.0.0.1:9/guardrails/detect",
                             "api_key": "k", "timeout_ms": 50 },
                "moderation": { "kind": "openai_moderation", "api_key": "k",
                                "model": "omni-moderation-latest" }
            },
            "input": { "provider": ["local", "enkrypt"], "block": ["pii"], "on_error": "allow",
                       "additional_config": { "pii_redaction": false, "keywords": ["x"] } },
            "upstreams": { "github": { "output": { "policy_name": "gh-out", "block": [] } } }
        }));
        assert_eq!(config.pin_tools, PinMode::Block);
        assert_eq!(config.tool_poisoning, PoisoningMode::Flag);
        assert_eq!(config.providers["enkrypt"].timeout_ms, 50);
        assert_eq!(config.providers["moderation"].timeout_ms, 2000);
        assert_eq!(config.input.provider.names(), ["local", "enkrypt"]);
        assert_eq!(config.input.on_error, OnError::Allow);
        assert!(!config.input.additional_config.pii_redaction);
        assert_eq!(config.input.additional_config.max_bytes, 1024 * 1024);
        assert_eq!(config.output.policy_name, None);
        let github = &config.upstreams["github"];
        assert!(github.input.is_none());
        assert_eq!(
            github.output.as_ref().unwrap().policy_name.as_deref(),
            Some("gh-out")
        );
        assert_eq!(
            github.output.as_ref().unwrap().provider.names(),
            [LOCAL_PROVIDER]
        );
    }

    #[test]
    fn rejects_unknown_fields() {
        let err = serde_json::from_value::<GuardrailConfig>(
            serde_json::json!({ "input": { "blocks": ["pii"] } }),
        )
        .unwrap_err();
        assert!(err.to_string().contains("blocks"), "{err}");
    }

    #[test]
    fn resolve_env_expands_keys_and_urls_and_names_missing_vars() {
        let mut config = toml_like(serde_json::json!({ "providers": {
            "e": { "kind": "enkrypt", "api_key": "${KEY}", "url": "http://${HOST}/detect" } } }));
        let expand = |value: &str| {
            Ok(value
                .replace("${KEY}", "k-123")
                .replace("${HOST}", "127.0.0.1:9"))
        };
        config.resolve_env(expand).unwrap();
        let provider = &config.providers["e"];
        assert_eq!(provider.api_key.expose_secret(), "k-123");
        assert_eq!(provider.url.as_deref(), Some("http://127.0.0.1:9/detect"));

        let mut config = toml_like(serde_json::json!({ "providers": {
            "e": { "kind": "enkrypt", "api_key": "${KEY}" } } }));
        let err = config.resolve_env(|_| Err("KEY".to_owned())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "guardrail provider `e`: environment variable `KEY` is not set"
        );
    }

    fn toml_like(value: serde_json::Value) -> GuardrailConfig {
        serde_json::from_value(value).unwrap()
    }
}
