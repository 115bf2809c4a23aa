//! The local provider: runs the built-in detectors and the policy's block
//! lists over every string of a JSON value, offline, then redacts or masks PII.
use serde_json::Value;

use super::detect::{injection, names, pii, secrets};
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
        walk::try_each_str(value, &mut |text| detect(policy, text, &mut flagged))?;
    }
    match pii {
        PiiAction::Keep => {}
        PiiAction::Redact(redactions) => {
            let _ = walk::try_each_string_mut::<()>(value, &mut |text| {
                let spans = pii::find(text);
                redactions.redact(text, &spans);
                Ok(())
            });
        }
        PiiAction::Mask(masked) => {
            let _ = walk::try_each_string_mut::<()>(value, &mut |text| {
                let spans = pii::find(text);
                *masked += spans.len();
                redact::mask(text, &spans);
                Ok(())
            });
        }
    }
    Ok(flagged)
}

/// A detector's test of one string.
type Fires<'a> = dyn Fn(&str) -> bool + 'a;

/// Checks one string. A detector that already fired without blocking is
/// not run again: the answer would not change.
fn detect(
    policy: &Policy,
    text: &str,
    flagged: &mut Vec<&'static str>,
) -> Result<(), &'static str> {
    let checks: [(&'static str, &Fires<'_>); 5] = [
        (names::SECRETS, &|t| {
            !secrets::find(t, policy.entropy_threshold).is_empty()
        }),
        (names::INJECTION, &injection::is_match),
        (names::KEYWORD, &|t| policy.lists.keyword_match(t)),
        (names::REGEX, &|t| policy.lists.regex_match(t)),
        // PII found here only matters when it blocks; redaction runs later.
        (names::PII, &|t| {
            policy.blocks(names::PII) && !pii::find(t).is_empty()
        }),
    ];
    for (detector, fires) in checks {
        let blocking = policy.blocks(detector);
        if !blocking && flagged.contains(&detector) {
            continue;
        }
        if fires(text) {
            if blocking {
                return Err(detector);
            }
            flagged.push(detector);
        }
    }
    Ok(())
}
