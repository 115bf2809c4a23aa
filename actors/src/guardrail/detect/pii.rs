//! Personal data: e-mail, phone, credit card (Luhn), US SSN, IBAN (mod 97),
//! IPv4 and IPv6 addresses. Candidates come from regexes; numbers with a
//! checksum are kept only when it holds, so order numbers and dates pass.
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use super::{Span, disjoint};

/// Entity labels (placeholder stems).
pub mod entity {
    /// An e-mail address.
    pub const EMAIL: &str = "EMAIL";
    /// A phone number.
    pub const PHONE: &str = "PHONE";
    /// A payment card number.
    pub const CARD: &str = "CREDIT_CARD";
    /// A US social security number.
    pub const SSN: &str = "SSN";
    /// An international bank account number.
    pub const IBAN: &str = "IBAN";
    /// An IPv4 or IPv6 address.
    pub const IP: &str = "IP_ADDRESS";
}

/// Confirms a candidate and gives its final range; gets the whole text so
/// it can look around the candidate.
type Check = fn(&str, Range<usize>) -> Option<Range<usize>>;

/// Whether a pattern can match a text with this census at all: a cheap
/// test that spares a search (most strings hold no PII, and starting a
/// regex search costs more than a pass over a short string).
type Gate = fn(&Census) -> bool;

/// Counts of the characters the patterns need, from one pass over a text.
#[derive(Debug, Default)]
struct Census {
    digits: usize,
    upper: usize,
    dots: usize,
    dashes: usize,
    colons: usize,
    at: bool,
}

impl Census {
    fn of(text: &str) -> Self {
        let mut census = Self::default();
        for byte in text.bytes() {
            match byte {
                b'0'..=b'9' => census.digits += 1,
                b'A'..=b'Z' => census.upper += 1,
                b'.' => census.dots += 1,
                b'-' => census.dashes += 1,
                b':' => census.colons += 1,
                b'@' => census.at = true,
                _ => {}
            }
        }
        census
    }
}

struct Pattern {
    regex: Regex,
    entity: &'static str,
    check: Check,
    gate: Gate,
}

// ASCII classes and word boundaries keep the lazy DFA small and fast; the
// values these patterns find are ASCII anyway.
static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    let table: [(&str, &'static str, Check, Gate); 7] = [
        (
            r"(?-u:\b)[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?-u:\b)",
            entity::EMAIL,
            always,
            |c| c.at && c.dots >= 1,
        ),
        (
            r"(?-u:\b)[0-9](?:[ -]?[0-9]){12,18}(?-u:\b)",
            entity::CARD,
            luhn_check,
            |c| c.digits >= 13,
        ),
        (
            r"(?-u:\b)[0-9]{3}-[0-9]{2}-[0-9]{4}(?-u:\b)",
            entity::SSN,
            ssn_check,
            |c| c.digits >= 9 && c.dashes >= 2,
        ),
        (
            r"(?-u:\b)[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}(?-u:\b)",
            entity::IBAN,
            iban_check,
            |c| c.upper >= 2 && c.digits >= 2,
        ),
        (
            // The country code is added by `widen`: an optional prefix here
            // would make every digit a match start.
            r"(?:\([0-9]{3}\)|(?-u:\b)[0-9]{3})[ .-][0-9]{3}[ .-][0-9]{4}(?-u:\b)|\+[0-9]{10,14}(?-u:\b)",
            entity::PHONE,
            with_country_code,
            |c| c.digits >= 10,
        ),
        (
            r"(?-u:\b)[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?-u:\b)",
            entity::IP,
            ipv4_valid,
            |c| c.digits >= 4 && c.dots >= 3,
        ),
        (
            r"(?i)(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}",
            entity::IP,
            ipv6_valid,
            // An IPv6 address has two colons at least; most text has fewer.
            |c| c.colons >= 2,
        ),
    ];
    table
        .into_iter()
        .filter_map(|(pattern, entity, check, gate)| match Regex::new(pattern) {
            Ok(regex) => Some(Pattern {
                regex,
                entity,
                check,
                gate,
            }),
            Err(err) => {
                tracing::error!(%err, entity, "built-in PII pattern does not compile");
                None
            }
        })
        .collect()
});

/// Every PII value in `text`, disjoint and in order.
pub fn find(text: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    let census = Census::of(text);
    for pattern in PATTERNS.iter().filter(|p| (p.gate)(&census)) {
        for m in pattern.regex.find_iter(text) {
            if let Some(range) = (pattern.check)(text, m.range()) {
                spans.push(Span::new(range, pattern.entity));
            }
        }
    }
    disjoint(spans)
}

/// Widens a phone number to take in a `+1 `-style country code before it.
fn with_country_code(text: &str, range: Range<usize>) -> Option<Range<usize>> {
    let before = &text.as_bytes()[..range.start];
    let mut start = range.start;
    if matches!(before.last(), Some(b' ' | b'.' | b'-')) {
        start -= 1;
    }
    let digits = before[..start]
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_digit())
        .count();
    Some(
        if (1..=3).contains(&digits) && before[..start - digits].last() == Some(&b'+') {
            start - digits - 1..range.end
        } else {
            range
        },
    )
}

fn always(_: &str, range: Range<usize>) -> Option<Range<usize>> {
    Some(range)
}

/// Adapts a check of the candidate alone.
macro_rules! on_candidate {
    ($name:ident, $inner:path) => {
        fn $name(text: &str, range: Range<usize>) -> Option<Range<usize>> {
            $inner(&text[range.clone()]).then_some(range)
        }
    };
}
on_candidate!(luhn_check, luhn_valid);
on_candidate!(ssn_check, ssn_valid);
on_candidate!(iban_check, iban_valid);

/// An address must stand alone: not part of a longer dotted or coloned run
/// (versions like 1.2.3.4.5, paths like std::net).
fn stands_alone(text: &str, range: &Range<usize>, joiners: &[char]) -> bool {
    let before = text[..range.start].chars().next_back();
    let after = text[range.end..].chars().next();
    let joined = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || joiners.contains(&c));
    !joined(before) && !after.is_some_and(|c| c.is_alphanumeric() || c == ':')
}

fn digits(s: &str) -> impl Iterator<Item = u32> + '_ {
    s.chars().filter_map(|c| c.to_digit(10))
}

/// The Luhn checksum of a 13–19 digit card number.
pub fn luhn_valid(candidate: &str) -> bool {
    let count = digits(candidate).count();
    if !(13..=19).contains(&count) {
        return false;
    }
    let digits: Vec<u32> = digits(candidate).collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    // All-zero runs pass Luhn but are never card numbers.
    sum.is_multiple_of(10) && digits.iter().any(|&d| d != 0)
}

/// SSA rules: no area 000, 666 or 9xx, no group 00, no serial 0000.
fn ssn_valid(candidate: &str) -> bool {
    let mut parts = candidate.split('-');
    let (Some(area), Some(group), Some(serial)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000"
}

/// ISO 13616: move the first four characters to the end, letters to
/// numbers, and the whole must be 1 mod 97.
pub fn iban_valid(candidate: &str) -> bool {
    let compact: Vec<u8> = candidate.bytes().filter(|b| *b != b' ').collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut remainder: u32 = 0;
    for &b in tail.iter().chain(head) {
        let value = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

fn ipv4_valid(text: &str, range: Range<usize>) -> Option<Range<usize>> {
    let valid =
        stands_alone(text, &range, &['.']) && text[range.clone()].parse::<Ipv4Addr>().is_ok();
    valid.then_some(range)
}

fn ipv6_valid(text: &str, range: Range<usize>) -> Option<Range<usize>> {
    let address = &text[range.clone()];
    // `::` alone and clock times like 12:30:45 are not worth a placeholder.
    let valid = stands_alone(text, &range, &[':', '.'])
        && address.len() > 2
        && address.parse::<Ipv6Addr>().is_ok();
    valid.then_some(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(&str, &'static str)> {
        find(text)
            .into_iter()
            .map(|s| (&text[s.range], s.entity))
            .collect()
    }

    #[test]
    fn the_gates_pass_each_kind_alone() {
        // Each value as the whole text: the census then holds only what the
        // value itself has, the least any gate may ask for.
        for (text, entity) in [
            ("a@b.io", entity::EMAIL),
            ("4111111111111111", entity::CARD),
            ("123-45-6789", entity::SSN),
            ("GB82WEST12345698765432", entity::IBAN),
            ("(415) 555-0132", entity::PHONE),
            ("+14155550132", entity::PHONE),
            ("1.2.3.4", entity::IP),
            ("fe80::1", entity::IP),
        ] {
            assert_eq!(found(text), [(text, entity)], "{text}");
        }
    }

    #[test]
    fn text_without_the_characters_a_kind_needs_skips_its_search() {
        let census = Census::of("hello, world: 42 - ok.");
        let searched: Vec<&str> = PATTERNS
            .iter()
            .filter(|p| (p.gate)(&census))
            .map(|p| p.entity)
            .collect();
        assert!(searched.is_empty(), "{searched:?}");
    }

    #[test]
    fn finds_each_kind() {
        let text = "mail ada@example.com, call +1 415-555-0132, card 4111 1111 1111 1111, \
                    ssn 123-45-6789, iban GB82 WEST 1234 5698 7654 32, \
                    from 192.168.1.20 and 2001:db8::8a2e:370:7334.";
        assert_eq!(
            found(text),
            [
                ("ada@example.com", entity::EMAIL),
                ("+1 415-555-0132", entity::PHONE),
                ("4111 1111 1111 1111", entity::CARD),
                ("123-45-6789", entity::SSN),
                ("GB82 WEST 1234 5698 7654 32", entity::IBAN),
                ("192.168.1.20", entity::IP),
                ("2001:db8::8a2e:370:7334", entity::IP),
            ]
        );
    }

    #[test]
    fn checksums_reject_lookalikes() {
        assert!(found("order 4111 1111 1111 1112 shipped").is_empty());
        assert!(found("iban GB83 WEST 1234 5698 7654 32").is_empty());
        assert!(found("ssn 000-12-3456 or 666-12-3456 or 912-12-3456").is_empty());
        assert!(found("version 1.2.300.4 at 12:30:45").is_empty());
        assert!(found("v1.2.3.4.5 in std::net and Foo::Bar::abc, deadbeef::").is_empty());
        assert_eq!(
            found("call 415-555-0132, +44 020 555 0199 or (415) 555-0100"),
            [
                ("415-555-0132", entity::PHONE),
                ("+44 020 555 0199", entity::PHONE),
                ("(415) 555-0100", entity::PHONE)
            ]
        );
    }

    #[test]
    fn ordinary_text_has_no_pii() {
        let text = "The quick brown fox paid 12.50 USD on 2024-05-01 for item #12345; \
                    see https://example.com/docs/page?id=42 and call add(2, 3).";
        assert!(found(text).is_empty(), "{:?}", found(text));
    }

    #[test]
    fn luhn_and_iban_checks() {
        assert!(luhn_valid("4242424242424242"));
        assert!(luhn_valid("5500-0000-0000-0004"));
        assert!(!luhn_valid("4242424242424241"));
        assert!(!luhn_valid("0000000000000000"));
        assert!(iban_valid("DE89370400440532013000"));
        assert!(iban_valid("FR14 2004 1010 0505 0001 3M02 606"));
        assert!(!iban_valid("DE89370400440532013001"));
    }
}
