//! Fuzz targets (bolero). Under `cargo test` each runs a short random
//! campaign on stable Rust; the long run is documented in the README
//! (`BOLERO_RANDOM_ITERATIONS=… cargo test --test fuzz`, or `cargo bolero`
//! with libFuzzer). Every target must never panic; each also checks a
//! property of its own.
//!
//! - [`front_door`]: bytes → body shape → the handler's JSON-RPC parse.
//! - [`config`]: the TOML config and `mcpServers` JSON, loaded and validated.
//! - [`guardrails`]: the detectors, and restore ∘ redact = identity.
//! - [`cache_key`]: the cache key canonicaliser.
//! - [`json_rpc_parse`]: rmcp's unbuffered message parse = the derived one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cache_key;
mod config;
mod front_door;
mod guardrails;
mod json_rpc_parse;

/// Text assembled from `parts`, each choosing a fragment of `vocabulary` or
/// contributing its own characters: random bytes alone rarely make JSON or
/// TOML that gets past the first character.
pub fn assemble(parts: &[(u8, String)], vocabulary: &[&str]) -> String {
    let mut out = String::new();
    for (choice, own) in parts {
        match vocabulary.get(usize::from(*choice)) {
            Some(fragment) => out.push_str(fragment),
            None => out.push_str(own),
        }
    }
    out
}
