//! Bulwark's actors. Each module owns one kind of actor and its messages.
//!
//! - [`upstream`]: `UpstreamActor`, which owns one upstream MCP server process
//!   and the single MCP client session to it, plus the shared handles the
//!   request path uses to call it without hopping through the actor.
//! - [`cache`]: `CacheActor` and the `CacheHandle` readers use (memory or Redis).
//! - [`timeout`]: `EscalationActor`, deadlines of operations in flight.
//! - [`guardrail`]: `GuardrailActor` and the shared [`guardrail::Guardrails`]
//!   handle: input/output checks, PII redaction, tool poisoning and rug pulls.
//! - [`mailbox`]: mailbox-depth and message counters ractor does not keep.
mod actor_slot;
pub mod cache;
pub mod guardrail;
pub mod mailbox;
#[cfg(test)]
mod test_support;
pub mod timeout;
pub mod upstream;
