//! Bulwark's actors. Each module owns one kind of actor and its messages.
//!
//! - [`upstream`]: `UpstreamActor`, which owns one upstream MCP server (a
//!   child process or a remote streamable HTTP session) and the single MCP
//!   client session to it, plus the shared handles the request path uses to
//!   call it without hopping through the actor.
//! - [`oauth`]: `TokenActor`, OAuth client-credentials tokens for upstreams.
//! - [`cache`]: `CacheActor` and the `CacheHandle` readers use (memory or Redis).
//! - [`timeout`]: `EscalationActor`, deadlines of operations in flight.
//! - [`guardrail`]: `GuardrailActor` and the shared [`guardrail::Guardrails`]
//!   handle: input/output checks, PII redaction, tool poisoning and rug pulls.
//! - [`mailbox`]: mailbox-depth and message counters ractor does not keep.
//! - [`trace_context`]: W3C trace context in HTTP headers and MCP `_meta`.
//! - [`http_body`]: response bodies read within a byte limit.
mod actor_slot;
pub mod cache;
pub mod guardrail;
pub mod http_body;
pub mod mailbox;
pub mod oauth;
#[cfg(test)]
mod test_support;
pub mod timeout;
pub mod trace_context;
pub mod upstream;
