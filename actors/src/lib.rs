//! Bulwark's actors. Each module owns one kind of actor and its messages.
//!
//! - [`upstream`]: `UpstreamActor`, which owns one upstream MCP server process
//!   and the single MCP client session to it, plus the shared handles the
//!   request path uses to call it without hopping through the actor.
//! - [`guardrail`]: `GuardrailActor` and the shared [`guardrail::Guardrails`]
//!   handle: input/output checks, PII redaction, tool poisoning and rug pulls.
//! - [`mailbox`]: mailbox-depth and message counters ractor does not keep.
pub mod guardrail;
pub mod mailbox;
pub mod upstream;
