//! Compiled policies: what [`GuardrailConfig`] becomes once its regexes,
//! keyword lists and providers are built. A reload builds a new
//! [`PolicySet`] and swaps it in whole.
use std::collections::HashMap;
use std::sync::Arc;

use secrecy::ExposeSecret as _;

use super::config::{
    GuardrailConfig, LOCAL_PROVIDER, OnError, PinMode, PoisoningMode, PolicyConfig,
    PolicyDirection, ProviderConfig,
};
use super::detect::lists::{BlockLists, ListError};
use super::remote::RemoteProvider;

/// A configuration the guardrails cannot run with; names the place, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum GuardrailConfigError {
    /// A policy's regex list does not compile.
    #[error("guardrail policy `{policy}`: {source}")]
    BlockList {
        /// The policy's name.
        policy: String,
        /// Which entry and why.
        source: ListError,
    },
    /// A policy names a provider that is not configured.
    #[error("guardrail policy `{policy}` names unknown provider `{provider}`")]
    UnknownProvider {
        /// The policy's name.
        policy: String,
        /// The name it used.
        provider: String,
    },
    /// A `${VAR}` in a provider's settings is not set.
    #[error("guardrail provider `{provider}`: environment variable `{var}` is not set")]
    MissingEnv {
        /// The provider's name.
        provider: String,
        /// The variable.
        var: String,
    },
    /// A provider's settings still hold `${VAR}`: call
    /// [`GuardrailConfig::resolve_env`] first.
    #[error("guardrail provider `{provider}`: unresolved `${{VAR}}` reference")]
    UnresolvedEnv {
        /// The provider's name.
        provider: String,
    },
    /// The HTTP client for remote providers could not be built.
    #[error("guardrail HTTP client: {0}")]
    HttpClient(String),
}

/// One direction's compiled policy.
#[derive(Debug)]
pub struct Policy {
    /// `policy_name`.
    pub name: String,
    /// Off: nothing is checked.
    pub enabled: bool,
    block: Vec<String>,
    /// Provider failures block or pass.
    pub on_error: OnError,
    /// Redact (inputs) or mask (outputs) PII.
    pub pii_redaction: bool,
    /// Payload limit; 0 for none.
    pub max_bytes: usize,
    /// Bits per character for high-entropy secrets.
    pub entropy_threshold: f64,
    /// The policy's keywords and regexes.
    pub lists: BlockLists,
    /// Whether the local provider's detectors run.
    pub local: bool,
    /// Remote providers, run concurrently.
    pub remotes: Vec<Arc<RemoteProvider>>,
}

impl Policy {
    /// Whether findings of `detector` refuse the call. `moderation` covers
    /// every `moderation:CATEGORY`.
    pub fn blocks(&self, detector: &str) -> bool {
        self.block.iter().any(|b| {
            b == detector
                || detector
                    .strip_prefix(b.as_str())
                    .is_some_and(|rest| rest.starts_with(':'))
        })
    }

    fn compile(
        config: &PolicyConfig,
        direction: PolicyDirection,
        providers: &HashMap<String, Arc<RemoteProvider>>,
    ) -> Result<Self, GuardrailConfigError> {
        let name = config
            .policy_name
            .clone()
            .unwrap_or_else(|| direction.default_policy_name().to_owned());
        let extra = &config.additional_config;
        let lists = BlockLists::new(&extra.keywords, &extra.regexes).map_err(|source| {
            GuardrailConfigError::BlockList {
                policy: name.clone(),
                source,
            }
        })?;
        let mut local = false;
        let mut remotes = Vec::new();
        for provider_name in config.provider.names() {
            if provider_name == LOCAL_PROVIDER {
                local = true;
            } else {
                let provider = providers.get(provider_name).ok_or_else(|| {
                    GuardrailConfigError::UnknownProvider {
                        policy: name.clone(),
                        provider: provider_name.clone(),
                    }
                })?;
                remotes.push(provider.clone());
            }
        }
        Ok(Self {
            name,
            enabled: config.enabled,
            block: config.block.clone().unwrap_or_else(|| {
                direction
                    .default_block()
                    .iter()
                    .map(|d| d.to_string())
                    .collect()
            }),
            on_error: config.on_error,
            pii_redaction: extra.pii_redaction,
            max_bytes: extra.max_bytes,
            entropy_threshold: extra.entropy_threshold,
            lists,
            local,
            remotes,
        })
    }
}

/// Every policy of one configuration.
#[derive(Debug)]
pub struct PolicySet {
    /// Master switch.
    pub enabled: bool,
    /// Rug-pull handling.
    pub pin_tools: PinMode,
    /// Poisoned-tool handling.
    pub tool_poisoning: PoisoningMode,
    input: Arc<Policy>,
    output: Arc<Policy>,
    upstreams: HashMap<String, (Arc<Policy>, Arc<Policy>)>,
}

impl PolicySet {
    /// Compiles `config`; remote providers share `http`.
    pub fn compile(
        config: &GuardrailConfig,
        http: &reqwest::Client,
    ) -> Result<Self, GuardrailConfigError> {
        let mut providers = HashMap::new();
        for (name, provider) in &config.providers {
            check_resolved(name, provider)?;
            providers.insert(
                name.clone(),
                Arc::new(RemoteProvider::new(name, provider, http.clone())),
            );
        }
        let input = Arc::new(Policy::compile(
            &config.input,
            PolicyDirection::Input,
            &providers,
        )?);
        let output = Arc::new(Policy::compile(
            &config.output,
            PolicyDirection::Output,
            &providers,
        )?);
        let mut upstreams = HashMap::new();
        for (server, overrides) in &config.upstreams {
            let pick = |own: &Option<PolicyConfig>, direction, default: &Arc<Policy>| match own {
                Some(own) => Policy::compile(own, direction, &providers).map(Arc::new),
                None => Ok(default.clone()),
            };
            upstreams.insert(
                server.clone(),
                (
                    pick(&overrides.input, PolicyDirection::Input, &input)?,
                    pick(&overrides.output, PolicyDirection::Output, &output)?,
                ),
            );
        }
        Ok(Self {
            enabled: config.enabled,
            pin_tools: config.pin_tools,
            tool_poisoning: config.tool_poisoning,
            input,
            output,
            upstreams,
        })
    }

    /// The input policy for `server`.
    pub fn input(&self, server: &str) -> &Arc<Policy> {
        self.upstreams.get(server).map_or(&self.input, |(i, _)| i)
    }

    /// The output policy for `server`.
    pub fn output(&self, server: &str) -> &Arc<Policy> {
        self.upstreams.get(server).map_or(&self.output, |(_, o)| o)
    }
}

/// Refuses a provider whose key or URL still holds a `${VAR}` reference:
/// sending it literally would leak the variable's name and never work.
fn check_resolved(name: &str, config: &ProviderConfig) -> Result<(), GuardrailConfigError> {
    let unresolved = |value: &str| value.contains("${");
    if unresolved(config.api_key.expose_secret()) || config.url.as_deref().is_some_and(unresolved) {
        return Err(GuardrailConfigError::UnresolvedEnv {
            provider: name.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(value: serde_json::Value) -> Result<PolicySet, GuardrailConfigError> {
        let config: GuardrailConfig = serde_json::from_value(value).unwrap();
        PolicySet::compile(&config, &reqwest::Client::new())
    }

    #[test]
    fn upstream_overrides_replace_one_direction() {
        let set = compile(serde_json::json!({
            "upstreams": { "gh": { "input": { "policy_name": "gh-in", "block": ["pii"] } } }
        }))
        .unwrap();
        assert_eq!(set.input("gh").name, "gh-in");
        assert!(set.input("gh").blocks("pii"));
        assert_eq!(set.output("gh").name, "default-output");
        assert_eq!(set.input("other").name, "default-input");
        assert!(!set.input("other").blocks("pii"));
    }

    #[test]
    fn moderation_covers_its_categories() {
        let set = compile(serde_json::json!({
            "input": { "block": ["moderation", "toxicity"] },
            "output": { "block": ["moderation:violence"] }
        }))
        .unwrap();
        assert!(set.input("s").blocks("moderation:hate"));
        assert!(set.input("s").blocks("toxicity"));
        assert!(!set.input("s").blocks("moderation_x"));
        assert!(set.output("s").blocks("moderation:violence"));
        assert!(!set.output("s").blocks("moderation:hate"));
    }

    #[test]
    fn errors_name_the_place_not_the_secret() {
        let err = compile(serde_json::json!({ "input": { "provider": "nope" } })).unwrap_err();
        assert_eq!(
            err.to_string(),
            "guardrail policy `default-input` names unknown provider `nope`"
        );
        let err = compile(serde_json::json!({
            "providers": { "e": { "kind": "enkrypt", "api_key": "${ENKRYPT_KEY}" } }
        }))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "guardrail provider `e`: unresolved `${VAR}` reference"
        );
        let err = compile(serde_json::json!({
            "output": { "additional_config": { "regexes": ["ok", "(unclosed"] } }
        }))
        .unwrap_err();
        assert!(err.to_string().contains("regexes[1]"), "{err}");
    }
}
