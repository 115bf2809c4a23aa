//! The local provider's detectors. Each scans one string and reports byte
//! spans, so callers can block on them or replace them.
pub mod entropy;
pub mod injection;
pub mod lists;
pub mod pii;
pub mod secrets;

use std::ops::Range;

/// Stable detector names, used in policies' `block` lists and in errors.
pub mod names {
    /// Personal data: e-mail, phone, card, SSN, IBAN, IP address.
    pub const PII: &str = "pii";
    /// Credentials: cloud and API keys, tokens, private keys, high-entropy strings.
    pub const SECRETS: &str = "secrets";
    /// Prompt-injection text.
    pub const INJECTION: &str = "injection_attack";
    /// A phrase from the policy's `keywords`.
    pub const KEYWORD: &str = "keyword";
    /// A match of one of the policy's `regexes`.
    pub const REGEX: &str = "regex";
    /// A payload over the policy's `max_bytes`.
    pub const SIZE: &str = "size";
    /// A remote provider failed or timed out (with `on_error = "block"`).
    pub const PROVIDER_ERROR: &str = "provider_error";
    /// A tool definition that looks poisoned.
    pub const TOOL_POISONING: &str = "tool_poisoning";
    /// A tool whose definition changed since it was pinned.
    pub const TOOL_CHANGED: &str = "tool_changed";
}

/// One match: where it is and what kind of value it is (`EMAIL`, `AWS_ACCESS_KEY`…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// Byte range in the scanned string.
    pub range: Range<usize>,
    /// Entity label, upper case; also the stem of redaction placeholders.
    pub entity: &'static str,
}

impl Span {
    fn new(range: Range<usize>, entity: &'static str) -> Self {
        Self { range, entity }
    }
}

/// Sorts spans by start and drops any that overlap an earlier (or, at the
/// same start, longer) one, so replacing them in order is safe.
pub(crate) fn disjoint(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by(|a, b| {
        a.range
            .start
            .cmp(&b.range.start)
            .then(b.range.end.cmp(&a.range.end))
    });
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for span in spans {
        if out
            .last()
            .is_none_or(|last| span.range.start >= last.range.end)
        {
            out.push(span);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disjoint_keeps_the_first_and_longest() {
        let spans = vec![
            Span::new(5..9, "B"),
            Span::new(0..4, "A"),
            Span::new(5..12, "C"),
            Span::new(10..14, "D"),
            Span::new(14..15, "E"),
        ];
        let kept: Vec<_> = disjoint(spans).into_iter().map(|s| s.entity).collect();
        assert_eq!(kept, ["A", "C", "E"]);
    }
}
