//! The guardrail plane: checks inputs before an upstream sees them, outputs
//! before a client sees them, and upstreams' tool lists before anyone uses them.
//!
//! [`Guardrails`] is the shared handle the request path calls directly: checks
//! run on the caller's task, concurrently, never through the actor's mailbox.
//! [`GuardrailActor`] owns the policies and providers (swapped in whole on
//! reload) and the operator's commands.
//!
//! - [`config`]: the `[guardrails]` section.
//! - [`detect`]: the local detectors (PII, secrets, injection, block lists, entropy).
//! - [`local`]: the local provider over JSON values.
//! - [`remote`]: Enkrypt- and OpenAI-moderation-compatible providers.
//! - [`redact`]: PII placeholders and their restoration.
//! - [`tools`], [`pins`], [`tool_guard`]: tool poisoning and rug pulls.
//! - [`actor`]: the `GuardrailActor`.
pub mod actor;
pub mod config;
pub mod detect;
pub mod local;
pub mod pins;
pub mod policy;
pub mod redact;
pub mod remote;
mod stats;
pub mod tool_guard;
pub mod tools;
pub mod verdict;
pub mod walk;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::trace_context::Step;
use arc_swap::ArcSwap;
use futures::future::join_all;
use rmcp::model::Tool;
use serde_json::Value;

pub use actor::{GuardrailActor, GuardrailArgs, GuardrailMsg};
pub use config::{GuardrailConfig, OnError, PinMode, PoisoningMode, PolicyConfig};
pub use policy::GuardrailConfigError;
pub use redact::Redactions;
pub use stats::{BlockCount, GuardrailStats};
pub use tool_guard::{FlaggedTool, ToolAction, ToolScan};
pub use tools::ToolFlag;
pub use verdict::{Direction, Flag, GuardrailBlock, InputKind, OutputReport};

use config::LOCAL_PROVIDER;
use detect::names;
use local::PiiAction;
use policy::{Policy, PolicySet};
use stats::Counters;
use tool_guard::ToolGuard;

/// The shared guardrail handle; cheap to clone.
#[derive(Clone)]
pub struct Guardrails {
    inner: Arc<Shared>,
}

struct Shared {
    policies: ArcSwap<PolicySet>,
    /// Survives reloads: pins and approvals are not configuration.
    tools: ToolGuard,
    counters: Counters,
    http: reqwest::Client,
}

impl std::fmt::Debug for Guardrails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guardrails").finish_non_exhaustive()
    }
}

impl Guardrails {
    /// Compiles `config` (regexes, keyword lists, providers) once.
    pub fn new(config: GuardrailConfig) -> Result<Self, GuardrailConfigError> {
        let http = reqwest::Client::builder()
            .build()
            .map_err(|err| GuardrailConfigError::HttpClient(err.to_string()))?;
        let policies = PolicySet::compile(&config, &http)?;
        Ok(Self {
            inner: Arc::new(Shared {
                policies: ArcSwap::from_pointee(policies),
                tools: ToolGuard::default(),
                counters: Counters::default(),
                http,
            }),
        })
    }

    /// Replaces policies and providers; checks already running finish with
    /// the old ones. Pins, approvals and counters are kept.
    pub fn reload(&self, config: &GuardrailConfig) -> Result<(), GuardrailConfigError> {
        let policies = PolicySet::compile(config, &self.inner.http)?;
        self.inner.policies.store(Arc::new(policies));
        Ok(())
    }

    /// Checks an input (tool or prompt arguments, or a resource URI as a JSON
    /// string) for `server`. Blocks per policy; with `pii_redaction` rewrites
    /// PII in `value` into placeholders and returns them for [`Self::check_output`].
    pub async fn check_input(
        &self,
        server: &str,
        kind: InputKind,
        value: &mut Value,
    ) -> Result<Redactions, GuardrailBlock> {
        let mut redactions = Redactions::default();
        let set = self.inner.policies.load_full();
        let policy = set.input(server);
        if !set.enabled || !policy.enabled {
            return Ok(redactions);
        }
        self.inner.counters.input();
        let pii = if policy.pii_redaction && !policy.blocks(names::PII) {
            PiiAction::Redact(&mut redactions)
        } else {
            PiiAction::Keep
        };
        let flagged = self
            .run(policy, Direction::Input, value, pii)
            .await
            .inspect_err(|block| self.blocked(server, block))?;
        self.inner.counters.redacted(redactions.len());
        if !flagged.is_empty() || !redactions.is_empty() {
            tracing::info!(
                server,
                ?kind,
                policy = %policy.name,
                redacted = redactions.len(),
                flagged = ?flagged,
                "guardrail input findings"
            );
        }
        Ok(redactions)
    }

    /// Checks an output (a `CallToolResult`, `GetPromptResult` or
    /// `ReadResourceResult` as JSON) of `server`: blocks per policy, masks PII
    /// the upstream produced (with `pii_redaction`), then restores the input's
    /// placeholders so the client sees its own values.
    pub async fn check_output(
        &self,
        server: &str,
        value: &mut Value,
        redactions: &Redactions,
    ) -> Result<OutputReport, GuardrailBlock> {
        let mut report = OutputReport::default();
        let set = self.inner.policies.load_full();
        let policy = set.output(server);
        if set.enabled && policy.enabled {
            self.inner.counters.output();
            let pii = if policy.pii_redaction && !policy.blocks(names::PII) {
                PiiAction::Mask(&mut report.masked)
            } else {
                PiiAction::Keep
            };
            report.flagged = self
                .run(policy, Direction::Output, value, pii)
                .await
                .inspect_err(|block| self.blocked(server, block))?;
            self.inner.counters.masked(report.masked);
        }
        if let Some(restorer) = redactions.restorer() {
            let _ = walk::try_each_string_mut::<()>(value, &mut |text| {
                report.restored += restorer.restore(text);
                Ok(())
            });
        }
        if report.masked > 0 || !report.flagged.is_empty() {
            tracing::info!(
                server,
                policy = %policy.name,
                masked = report.masked,
                flagged = ?report.flagged,
                "guardrail output findings"
            );
        }
        Ok(report)
    }

    /// [`Self::checks`] in a span of its own, which records the verdict.
    async fn run(
        &self,
        policy: &Policy,
        direction: Direction,
        value: &mut Value,
        pii: PiiAction<'_>,
    ) -> Result<Vec<Flag>, GuardrailBlock> {
        // A step of the request's trace, held while the check runs.
        let mut step = Step::start("guardrail.check");
        step.str("guardrail.policy", &policy.name)
            .str("guardrail.direction", direction.as_str());
        let result = self.checks(policy, direction, value, pii, &step).await;
        match &result {
            Ok(flagged) if flagged.is_empty() => step.str("guardrail.verdict", "allow"),
            Ok(_) => step.str("guardrail.verdict", "flag"),
            Err(block) => step
                .str("guardrail.verdict", "block")
                .str("guardrail.detector", block.detector.as_str()),
        };
        result
    }

    /// Size limit, local detectors and PII handling, then the remote
    /// providers concurrently on the already redacted text.
    async fn checks(
        &self,
        policy: &Policy,
        direction: Direction,
        value: &mut Value,
        pii: PiiAction<'_>,
        step: &Step,
    ) -> Result<Vec<Flag>, GuardrailBlock> {
        let block = |detector: &str, provider: &str| GuardrailBlock {
            policy_name: policy.name.clone(),
            direction,
            detector: detector.to_owned(),
            provider: provider.to_owned(),
        };
        if policy.max_bytes > 0 && walk::serialized_len(value) > policy.max_bytes {
            return Err(block(names::SIZE, LOCAL_PROVIDER));
        }
        let mut flagged: Vec<Flag> = local::scan(policy, value, pii)
            .map_err(|detector| block(detector, LOCAL_PROVIDER))?
            .into_iter()
            .map(|detector| Flag {
                detector: detector.to_owned(),
                provider: LOCAL_PROVIDER.to_owned(),
            })
            .collect();
        if policy.remotes.is_empty() {
            return Ok(flagged);
        }
        let text = walk::text(value, '\n');
        let verdicts = join_all(policy.remotes.iter().map(|p| {
            let mut provider = step.child("guardrail.provider");
            provider.str("guardrail.provider", p.name());
            let text = &text;
            async move {
                let verdict = p.check(text).await;
                drop(provider);
                verdict
            }
        }))
        .await;
        for (provider, verdict) in policy.remotes.iter().zip(verdicts) {
            match verdict {
                Ok(fired) => {
                    if let Some(detector) = fired.iter().find(|d| policy.blocks(d)) {
                        return Err(block(detector, provider.name()));
                    }
                    flagged.extend(fired.into_iter().map(|detector| Flag {
                        detector,
                        provider: provider.name().to_owned(),
                    }));
                }
                Err(err) => {
                    self.inner.counters.provider_error();
                    match policy.on_error {
                        OnError::Block => {
                            tracing::warn!(provider = provider.name(), policy = %policy.name, %err,
                                "guardrail provider failed; blocking (on_error = block)");
                            return Err(block(names::PROVIDER_ERROR, provider.name()));
                        }
                        OnError::Allow => {
                            tracing::warn!(provider = provider.name(), policy = %policy.name, %err,
                                "guardrail provider failed; allowing (on_error = allow)");
                            flagged.push(Flag {
                                detector: names::PROVIDER_ERROR.to_owned(),
                                provider: provider.name().to_owned(),
                            });
                        }
                    }
                }
            }
        }
        Ok(flagged)
    }

    fn blocked(&self, server: &str, block: &GuardrailBlock) {
        self.inner.counters.block(block);
        tracing::warn!(server, policy = %block.policy_name, direction = %block.direction,
            detector = %block.detector, provider = %block.provider, "guardrail blocked");
    }

    /// Scans a tool list from `server` for poisoning and rug pulls; returns
    /// the tools to show and what was flagged (withheld or not).
    pub fn scan_tools(&self, server: &str, tools: Vec<Tool>) -> ToolScan {
        let set = self.inner.policies.load();
        if !set.enabled {
            return ToolScan {
                tools,
                flagged: Vec::new(),
            };
        }
        let scan = self
            .inner
            .tools
            .scan(server, tools, set.pin_tools, set.tool_poisoning);
        for flagged in &scan.flagged {
            tracing::warn!(server, tool = %flagged.tool, flags = ?flagged.flags,
                action = ?flagged.action, "guardrail flagged a tool");
        }
        self.inner.counters.tools_flagged(scan.flagged.len());
        scan
    }

    /// Whether `tool` of `server` may be called: not if its latest listing
    /// withheld it. A refusal counts as a block, like any other.
    pub fn tool_allowed(&self, server: &str, tool: &str) -> Result<(), GuardrailBlock> {
        let set = self.inner.policies.load();
        if !set.enabled {
            return Ok(());
        }
        self.inner
            .tools
            .allowed(server, tool, set.pin_tools)
            .inspect_err(|block| self.inner.counters.block(block))
    }

    /// The rug-pull pins (to load and keep them in a store).
    pub fn pins(&self) -> &pins::PinStore {
        self.inner.tools.pins()
    }

    /// Approves the changed definition of `tool` (re-pins it); `false` when
    /// no change was pending. Clients should then be sent `tools/list_changed`.
    pub fn approve_tool(&self, server: &str, tool: &str) -> bool {
        let set = self.inner.policies.load();
        let approved = self
            .inner
            .tools
            .approve(server, tool, set.pin_tools, set.tool_poisoning);
        if approved {
            tracing::info!(server, tool, "tool definition approved and re-pinned");
        }
        approved
    }

    /// Every tool the latest scans flagged (for the operator API).
    pub fn flagged(&self) -> Vec<FlaggedTool> {
        self.inner.tools.flagged()
    }

    /// Counters since start.
    pub fn stats(&self) -> GuardrailStats {
        self.inner.counters.snapshot()
    }

    /// Blocks since start by policy, direction and detector.
    pub fn block_counts(&self) -> Vec<BlockCount> {
        self.inner.counters.block_counts()
    }
}
