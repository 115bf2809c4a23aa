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

/// Draws from `bytes`, a byte each, 0 once they run out.
pub fn draws(bytes: &[u8]) -> impl FnMut() -> usize + '_ {
    let mut at = 0;
    move || {
        let byte = bytes.get(at).copied().unwrap_or(0);
        at += 1;
        usize::from(byte)
    }
}

/// Whitespace between tokens, mostly none.
const SPACE: &[&str] = &["", "", "", " ", "\n ", "\t"];

/// A JSON object drawn from `next` (a draw past the input's end is 0): up to
/// four members keyed from `keys` (written between quotes as given), values
/// nested objects, arrays or `scalars` (as given, so a vocabulary may hold
/// near misses). Assembled token sequences are almost never an object; these
/// mostly are, so a target's property is checked on accepted input.
pub fn built_object(
    next: &mut impl FnMut() -> usize,
    keys: &[&str],
    scalars: &[&str],
    out: &mut String,
) {
    Builder {
        next,
        keys,
        scalars,
    }
    .object(out, 0);
}

/// What [`built_object`] draws from.
struct Builder<'a, F> {
    next: &'a mut F,
    keys: &'a [&'a str],
    scalars: &'a [&'a str],
}

impl<F: FnMut() -> usize> Builder<'_, F> {
    fn pick<'s>(&mut self, from: &[&'s str]) -> &'s str {
        from[(self.next)() % from.len()]
    }

    fn object(&mut self, out: &mut String, depth: usize) {
        out.push('{');
        for member in 0..(self.next)() % 5 {
            if member > 0 {
                out.push(',');
            }
            out.push_str(self.pick(SPACE));
            out.push('"');
            out.push_str(self.pick(self.keys));
            out.push_str("\":");
            out.push_str(self.pick(SPACE));
            self.value(out, depth + 1);
        }
        out.push_str(self.pick(SPACE));
        out.push('}');
    }

    fn value(&mut self, out: &mut String, depth: usize) {
        match (self.next)() % 8 {
            0 if depth < 40 => self.object(out, depth),
            1 if depth < 40 => {
                out.push('[');
                for item in 0..(self.next)() % 4 {
                    if item > 0 {
                        out.push(',');
                    }
                    self.value(out, depth + 1);
                }
                out.push(']');
            }
            _ => out.push_str(self.pick(self.scalars)),
        }
    }
}
