//! PII placeholders: inputs get stable placeholders (`<EMAIL_1>`: the same
//! value gets the same placeholder within one call) and the mapping restores
//! them in the output, so the upstream never sees the originals and the
//! client gets its own values back. PII the upstream itself produced is
//! masked for good (`<EMAIL_REDACTED>`).
use std::collections::HashMap;

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

    /// The placeholder of `value`; a new one is never a token `text`
    /// already holds, or restoring would turn the client's own literal
    /// `<EMAIL_1>` into someone's address (found by the fuzzer).
    fn placeholder_for(&mut self, value: &str, entity: &'static str, text: &str) -> &str {
        let index = match self.by_value.get(value) {
            Some(&index) => index,
            None => {
                let n = self.per_entity.entry(entity).or_default();
                let placeholder = loop {
                    *n += 1;
                    let candidate = format!("<{entity}_{n}>");
                    if !text.contains(&candidate) {
                        break candidate;
                    }
                };
                self.pairs.push((placeholder, value.to_owned()));
                let index = self.pairs.len() - 1;
                self.by_value.insert(value.to_owned(), index);
                index
            }
        };
        &self.pairs[index].0
    }

    /// Replaces `spans` of `text` with placeholders, recording each value.
    pub fn redact(&mut self, text: &mut String, spans: &[Span]) {
        let original = text.clone();
        self.redact_within(text, spans, &original);
    }

    /// Like [`Self::redact`] for one string of a larger input: no new
    /// placeholder is a token `whole` (all of the input's text) holds, so a
    /// literal `<EMAIL_1>` in another field is not restored into a value.
    pub fn redact_within(&mut self, text: &mut String, spans: &[Span], whole: &str) {
        if spans.is_empty() {
            return;
        }
        rewrite(text, spans, |value, entity| {
            self.placeholder_for(value, entity, whole).to_owned()
        });
    }

    /// A restorer, or `None` when there is nothing to restore.
    pub fn restorer(&self) -> Option<Restorer<'_>> {
        if self.pairs.is_empty() {
            return None;
        }
        Some(Restorer {
            originals: self
                .pairs
                .iter()
                .map(|(p, v)| (p.as_str(), v.as_str()))
                .collect(),
        })
    }
}

/// Puts the original values back in place of their placeholders.
pub struct Restorer<'a> {
    originals: HashMap<&'a str, &'a str>,
}

/// The longest placeholder: `<` + entity + `_` + count + `>`.
const MAX_PLACEHOLDER: usize = 40;

impl Restorer<'_> {
    /// Restores every placeholder in `text`; returns how many it replaced.
    pub fn restore(&self, text: &mut String) -> usize {
        let mut out = String::new();
        let mut copied = 0;
        let mut count = 0;
        let mut from = 0;
        while let Some(open) = text[from..].find('<').map(|i| from + i) {
            let rest = &text[open..];
            // `>` is ASCII, so its byte position is a char boundary.
            let Some(close) = rest.bytes().take(MAX_PLACEHOLDER).position(|b| b == b'>') else {
                from = open + 1;
                continue;
            };
            let token = &rest[..=close];
            match self.originals.get(token) {
                Some(original) => {
                    out.push_str(&text[copied..open]);
                    out.push_str(original);
                    copied = open + token.len();
                    from = copied;
                    count += 1;
                }
                None => from = open + 1,
            }
        }
        if count > 0 {
            out.push_str(&text[copied..]);
            *text = out;
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
    fn restore_skips_lookalikes_and_handles_edges() {
        let mut r = Redactions::default();
        redact(&mut r, "ada@example.com");
        let restorer = r.restorer().unwrap();
        let mut text = "<<EMAIL_1><EMAIL_2> <EMAIL_1 <EMAIL_1>ééééééééééééééééééééééééé".to_owned();
        assert_eq!(restorer.restore(&mut text), 2);
        assert_eq!(
            text,
            "<ada@example.com<EMAIL_2> <EMAIL_1 ada@example.comééééééééééééééééééééééééé"
        );
        let mut plain = "a < b > c, <éééééééééééééééééééééééééééé> <".to_owned();
        assert_eq!(restorer.restore(&mut plain), 0);
        assert_eq!(plain, "a < b > c, <éééééééééééééééééééééééééééé> <");
    }

    #[test]
    fn placeholders_never_collide_with_the_texts_own_tokens() {
        let mut r = Redactions::default();
        let original = "<EMAIL_1> is not ada@example.com";
        let mut text = redact(&mut r, original);
        assert_eq!(text, "<EMAIL_1> is not <EMAIL_2>");
        r.restorer().unwrap().restore(&mut text);
        assert_eq!(text, original);
    }

    #[test]
    fn placeholders_never_collide_with_tokens_of_other_fields() {
        let mut r = Redactions::default();
        let whole = "<EMAIL_1>\0mail ada@example.com";
        let mut field = "mail ada@example.com".to_owned();
        let spans = pii::find(&field);
        r.redact_within(&mut field, &spans, whole);
        assert_eq!(field, "mail <EMAIL_2>");
        let mut literal = "<EMAIL_1>".to_owned();
        assert_eq!(r.restorer().unwrap().restore(&mut literal), 0);
        assert_eq!(literal, "<EMAIL_1>");
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
