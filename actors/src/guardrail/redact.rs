//! PII placeholders: inputs get stable placeholders (`<EMAIL_1>`: the same
//! value gets the same placeholder within one call) and the mapping restores
//! them in the output, so the upstream never sees the originals and the
//! client gets its own values back. PII the upstream itself produced is
//! masked for good (`<EMAIL_REDACTED>`).
use std::collections::HashMap;

use aho_corasick::AhoCorasick;

use super::detect::Span;

/// The placeholders of one call and the values they stand for.
///
/// Its `Debug` shows only how many there are: the values are PII.
#[derive(Clone, Default)]
pub struct Redactions {
    /// `(placeholder, original)` in the order they were made.
    pairs: Vec<(String, String)>,
    by_value: HashMap<String, usize>,
    per_entity: HashMap<&'static str, usize>,
}

impl std::fmt::Debug for Redactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactions")
            .field("placeholders", &self.pairs.len())
            .finish()
    }
}

impl Redactions {
    /// How many distinct values were replaced.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether nothing was replaced.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The placeholders made, in order (no values: safe to log).
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.pairs
            .iter()
            .map(|(placeholder, _)| placeholder.as_str())
    }

    fn placeholder_for(&mut self, value: &str, entity: &'static str) -> &str {
        let index = match self.by_value.get(value) {
            Some(&index) => index,
            None => {
                let n = self.per_entity.entry(entity).or_default();
                *n += 1;
                self.pairs
                    .push((format!("<{entity}_{n}>"), value.to_owned()));
                let index = self.pairs.len() - 1;
                self.by_value.insert(value.to_owned(), index);
                index
            }
        };
        &self.pairs[index].0
    }

    /// Replaces `spans` of `text` with placeholders, recording each value.
    pub fn redact(&mut self, text: &mut String, spans: &[Span]) {
        rewrite(text, spans, |value, entity| {
            self.placeholder_for(value, entity).to_owned()
        });
    }

    /// A matcher for restoring, or `None` when there is nothing to restore.
    pub fn restorer(&self) -> Option<Restorer<'_>> {
        if self.pairs.is_empty() {
            return None;
        }
        let matcher = AhoCorasick::new(self.pairs.iter().map(|(p, _)| p.as_str())).ok()?;
        Some(Restorer {
            matcher,
            originals: self.pairs.iter().map(|(_, v)| v.as_str()).collect(),
        })
    }
}

/// Puts the original values back in place of their placeholders.
pub struct Restorer<'a> {
    matcher: AhoCorasick,
    originals: Vec<&'a str>,
}

impl Restorer<'_> {
    /// Restores every placeholder in `text`; returns how many it replaced.
    pub fn restore(&self, text: &mut String) -> usize {
        let count = self.matcher.find_iter(text.as_str()).count();
        if count > 0 {
            *text = self.matcher.replace_all(text, &self.originals);
        }
        count
    }
}

/// Masks `spans` of `text` for good, e.g. `<EMAIL_REDACTED>`.
pub fn mask(text: &mut String, spans: &[Span]) {
    rewrite(text, spans, |_, entity| format!("<{entity}_REDACTED>"));
}

/// Rebuilds `text` with each (disjoint, ordered) span replaced by `with(value, entity)`.
fn rewrite(text: &mut String, spans: &[Span], mut with: impl FnMut(&str, &'static str) -> String) {
    if spans.is_empty() {
        return;
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for span in spans {
        out.push_str(&text[at..span.range.start]);
        out.push_str(&with(&text[span.range.clone()], span.entity));
        at = span.range.end;
    }
    out.push_str(&text[at..]);
    *text = out;
}

#[cfg(test)]
mod tests {
    use super::super::detect::pii;
    use super::*;

    fn redact(redactions: &mut Redactions, text: &str) -> String {
        let mut text = text.to_owned();
        let spans = pii::find(&text);
        redactions.redact(&mut text, &spans);
        text
    }

    #[test]
    fn same_value_same_placeholder_and_round_trip() {
        let mut r = Redactions::default();
        let a = redact(&mut r, "to ada@example.com and bob@example.org");
        let b = redact(&mut r, "cc ada@example.com, card 4111111111111111");
        assert_eq!(a, "to <EMAIL_1> and <EMAIL_2>");
        assert_eq!(b, "cc <EMAIL_1>, card <CREDIT_CARD_1>");
        assert_eq!(r.len(), 3);
        assert_eq!(format!("{r:?}"), "Redactions { placeholders: 3 }");

        let restorer = r.restorer().unwrap();
        let mut echoed = format!("{a} / {b}");
        assert_eq!(restorer.restore(&mut echoed), 4);
        assert_eq!(
            echoed,
            "to ada@example.com and bob@example.org / cc ada@example.com, card 4111111111111111"
        );
    }

    #[test]
    fn masks_are_final() {
        let mut text = "call 415-555-0132 now".to_owned();
        let spans = pii::find(&text);
        mask(&mut text, &spans);
        assert_eq!(text, "call <PHONE_REDACTED> now");
        assert!(Redactions::default().restorer().is_none());
    }
}
