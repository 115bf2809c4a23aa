//! High-entropy tokens: long runs of key-like characters whose Shannon
//! entropy says "random", not "word" or "identifier".
use std::ops::Range;

/// Bits per character from which a token counts as random. Random base64 or
/// base62 of 24+ characters scores above 4.2; English words, snake_case
/// names and hex hashes (at most 4.0) stay below.
pub const DEFAULT_THRESHOLD: f64 = 4.2;

/// Tokens shorter than this are too short to judge.
const MIN_LEN: usize = 24;
/// Longer runs are data (images, blobs), not credentials.
const MAX_LEN: usize = 512;

/// Shannon entropy of `token` in bits per byte.
pub fn shannon(token: &[u8]) -> f64 {
    if token.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in token {
        counts[usize::from(b)] += 1;
    }
    let len = token.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / len;
            -p * p.log2()
        })
        .sum()
}

/// Characters of keys and base64; `=` is left out so `key=value` splits (padding adds no entropy).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'_' | b'-')
}

/// Ranges of tokens in `text` at or above `threshold` bits per character.
pub fn find(text: &str, threshold: f64) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut start = None;
    for i in 0..=bytes.len() {
        let in_token = bytes.get(i).is_some_and(|&b| is_token_byte(b));
        match (in_token, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                start = None;
                if looks_random(&bytes[s..i], threshold) {
                    found.push(s..i);
                }
            }
            _ => {}
        }
    }
    found
}

fn looks_random(token: &[u8], threshold: f64) -> bool {
    if !(MIN_LEN..=MAX_LEN).contains(&token.len()) || is_uuid(token) {
        return false;
    }
    // Keys mix letters and digits; words, paths and kebab-case names rarely do.
    let has_digit = token.iter().any(u8::is_ascii_digit);
    let has_upper = token.iter().any(u8::is_ascii_uppercase);
    let has_lower = token.iter().any(u8::is_ascii_lowercase);
    has_digit && (has_upper || has_lower) && shannon(token) >= threshold
}

fn is_uuid(token: &[u8]) -> bool {
    token.len() == 36
        && token.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flagged(text: &str) -> Vec<&str> {
        find(text, DEFAULT_THRESHOLD)
            .into_iter()
            .map(|r| &text[r])
            .collect()
    }

    #[test]
    fn random_keys_are_flagged() {
        let text = "key=Zx9Qw3Rt7Yp2Lm5Nv8Bc4Df6Gh1Jk0Sa token: kP4t9vQ2mX7rL1zW8yB3nC6fH0sD5gJ";
        assert_eq!(
            flagged(text),
            [
                "Zx9Qw3Rt7Yp2Lm5Nv8Bc4Df6Gh1Jk0Sa",
                "kP4t9vQ2mX7rL1zW8yB3nC6fH0sD5gJ"
            ]
        );
    }

    #[test]
    fn words_uuids_and_hashes_are_not() {
        let text = "internationalization_configuration_manager \
                    550e8400-e29b-41d4-a716-446655440000 \
                    da39a3ee5e6b4b0d3255bfef95601890afd80709 \
                    /usr/local/share/applications/firefox-esr.desktop \
                    version-2024-05-01-release-candidate-3";
        assert!(flagged(text).is_empty(), "{:?}", flagged(text));
    }

    #[test]
    fn entropy_of_uniform_and_constant() {
        assert_eq!(shannon(b"aaaa"), 0.0);
        assert!((shannon(b"abcd") - 2.0).abs() < 1e-9);
    }
}
