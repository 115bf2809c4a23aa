//! Hostile demo upstreams: servers that misbehave the way real attacks do,
//! so the gateway's guardrails can be shown to block, redact or flag them.
//! Each is the echo server plus its own tools.
//!
//! - [`leaky`]: PII and secrets in outputs; `echo_args` returns its arguments verbatim.
//! - [`poisoned`]: tool definitions with hidden instructions, invisible
//!   Unicode, injections and exfiltration cues, next to clean tools.
//! - [`rugpull`]: a tool whose definition turns malicious when `mutate` is called.
//! - [`injector`]: prompt-injection text in tool output.
//! - [`chatty`]: logs, elicits and samples mid-call.
//! - [`huge`]: outputs of a chosen size.
//! - [`chaos`]: broken transports and processes (stderr garbage, floods,
//!   wrong ids, no handshake, SIGTERM ignored, grandchildren).
//!
//! Every secret here is fake but shaped to pass the detectors' checksums.
pub mod chaos;
pub mod chatty;
pub mod huge;
pub mod injector;
pub mod leaky;
pub mod poisoned;
pub mod rugpull;

#[cfg(test)]
mod tests;
