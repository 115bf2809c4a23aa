//! The local provider: runs the built-in detectors and the policy's block
//! lists over every string of a JSON value, offline, then redacts or masks PII.
use serde_json::Value;

use super::detect::{Span, injection, names, pii, secrets};
use super::policy::Policy;
use super::redact::{self, Redactions};
use super::walk;

/// What happens to PII in string values once nothing blocked.
pub enum PiiAction<'a> {
    /// Leave it.
    Keep,
    /// Replace with placeholders recorded in the call's redactions (inputs).
    Redact(&'a mut Redactions),
    /// Mask for good, counting the values masked (outputs).
    Mask(&'a mut usize),
}

/// Runs the local detectors of `policy` over `value` (when the policy uses
/// the local provider) and then applies `pii`. Returns the detectors that
/// fired without blocking, or the first that blocks.
pub fn scan(
    policy: &Policy,
    value: &mut Value,
    pii: PiiAction<'_>,
) -> Result<Vec<&'static str>, &'static str> {
    let mut flagged: Vec<&'static str> = Vec::new();
    if policy.local {
        // One pass per pattern over all strings (keys included): a regex
        // search costs more to start than to run over a short string.
        let text = walk::text(value, '\0');
        detect(policy, value, &text, &mut flagged)?;
    }
    let rewrite = |value: &mut Value, apply: &mut dyn FnMut(&mut String, &[Span])| {
        walk::rewrite_values(
            value,
            pii::find,
            |span: &Span| span.range.clone(),
            |span, by| Span {
                range: span.range.start - by..span.range.end - by,
                entity: span.entity,
            },
            apply,
        );
    };
    match pii {
        PiiAction::Keep => {}
        PiiAction::Redact(redactions) => {
            // Placeholders must not collide with any field's literal tokens.
            let whole = walk::text(value, '\0').into_owned();
            rewrite(value, &mut |text, spans| {
                redactions.redact_within(text, spans, &whole)
            });
        }
        PiiAction::Mask(masked) => rewrite(value, &mut |text, spans| {
            *masked += spans.len();
            redact::mask(text, spans);
        }),
    }
    Ok(flagged)
}

/// A detector's test of one string.
type Fires<'a> = dyn Fn(&str) -> bool + 'a;

/// Runs each detector once over `text` (the strings of `value` joined):
/// the first that blocks is the error, the others that fire are flagged.
fn detect(
    policy: &Policy,
    value: &Value,
    text: &str,
    flagged: &mut Vec<&'static str>,
) -> Result<(), &'static str> {
    let checks: [(&'static str, &Fires<'_>); 5] = [
        (names::SECRETS, &|t| {
            !secrets::find(t, policy.entropy_threshold).is_empty()
        }),
        (names::INJECTION, &injection::is_match),
        (names::KEYWORD, &|t| policy.lists.keyword_match(t)),
        // Per string, so `^` and `$` anchor to each value as users expect.
        (names::REGEX, &|_| {
            walk::try_each_str(value, &mut |s| match policy.lists.regex_match(s) {
                true => Err(()),
                false => Ok(()),
            })
            .is_err()
        }),
        // PII found here only matters when it blocks; redaction runs later.
        (names::PII, &|t| {
            policy.blocks(names::PII) && !pii::find(t).is_empty()
        }),
    ];
    for (detector, fires) in checks {
        let blocking = policy.blocks(detector);
        if fires(text) {
            if blocking {
                return Err(detector);
            }
            flagged.push(detector);
        }
    }
    Ok(())
}
