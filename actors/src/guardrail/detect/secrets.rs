//! Credentials: AWS access key ids and secret keys, GitHub, Slack and
//! OpenAI-style tokens, private-key PEM blocks, JWTs (whose header must decode
//! to a JSON object with `alg`), and high-entropy tokens.
use std::ops::Range;
use std::sync::LazyLock;

use base64::Engine as _;
use regex::Regex;

use super::{Span, disjoint, entropy};

/// Entity labels (placeholder stems).
pub mod entity {
    /// `AKIA…`/`ASIA…` access key id.
    pub const AWS_ACCESS_KEY: &str = "AWS_ACCESS_KEY";
    /// A 40-character AWS secret access key next to its name.
    pub const AWS_SECRET_KEY: &str = "AWS_SECRET_KEY";
    /// `ghp_…`, `gho_…`, `github_pat_…`.
    pub const GITHUB_TOKEN: &str = "GITHUB_TOKEN";
    /// `xoxb-…` and the other Slack token kinds.
    pub const SLACK_TOKEN: &str = "SLACK_TOKEN";
    /// `sk-…` API keys.
    pub const API_KEY: &str = "API_KEY";
    /// A PEM private key block.
    pub const PRIVATE_KEY: &str = "PRIVATE_KEY";
    /// A JSON Web Token.
    pub const JWT: &str = "JWT";
    /// A long random-looking token.
    pub const HIGH_ENTROPY: &str = "SECRET";
}

struct Pattern {
    regex: Regex,
    entity: &'static str,
    /// The capture group holding the secret (0: the whole match).
    group: usize,
}

static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    let table: [(&str, &'static str, usize); 7] = [
        (r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", entity::AWS_ACCESS_KEY, 0),
        (
            r#"(?i)aws.{0,20}?secret.{0,20}?["'=:\s]\s*([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)"#,
            entity::AWS_SECRET_KEY,
            1,
        ),
        (
            r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b",
            entity::GITHUB_TOKEN,
            0,
        ),
        (r"\bxox[bpars]-[A-Za-z0-9-]{10,}", entity::SLACK_TOKEN, 0),
        (
            r"\bsk-(?:proj-|svcacct-|admin-|ant-)?[A-Za-z0-9_-]{20,}",
            entity::API_KEY,
            0,
        ),
        (
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)?",
            entity::PRIVATE_KEY,
            0,
        ),
        (
            r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*",
            entity::JWT,
            0,
        ),
    ];
    table
        .into_iter()
        .filter_map(|(pattern, entity, group)| match Regex::new(pattern) {
            Ok(regex) => Some(Pattern {
                regex,
                entity,
                group,
            }),
            Err(err) => {
                tracing::error!(%err, entity, "built-in secret pattern does not compile");
                None
            }
        })
        .collect()
});

/// Every secret in `text`, disjoint and in order; tokens at or above
/// `entropy_threshold` bits per character count too.
pub fn find(text: &str, entropy_threshold: f64) -> Vec<Span> {
    let mut spans = Vec::new();
    for pattern in PATTERNS.iter() {
        // Most texts hold no secret: `is_match` needs no capture slots (an
        // allocation per pattern and text); the groups are read on a hit.
        if !pattern.regex.is_match(text) {
            continue;
        }
        for caps in pattern.regex.captures_iter(text) {
            let Some(m) = caps.get(pattern.group) else {
                continue;
            };
            if pattern.entity != entity::JWT || jwt_header_valid(m.as_str()) {
                spans.push(Span::new(m.range(), pattern.entity));
            }
        }
    }
    for range in entropy::find(text, entropy_threshold) {
        if !overlaps(&spans, &range) {
            spans.push(Span::new(range, entity::HIGH_ENTROPY));
        }
    }
    disjoint(spans)
}

fn overlaps(spans: &[Span], range: &Range<usize>) -> bool {
    spans
        .iter()
        .any(|s| s.range.start < range.end && range.start < s.range.end)
}

/// A JWT's first part is base64url JSON naming its algorithm.
fn jwt_header_valid(token: &str) -> bool {
    let Some(header) = token.split('.').next() else {
        return false;
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header) else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .is_ok_and(|value| value.get("alg").is_some_and(serde_json::Value::is_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(&str, &'static str)> {
        find(text, entropy::DEFAULT_THRESHOLD)
            .into_iter()
            .map(|s| (&text[s.range], s.entity))
            .collect()
    }

    const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

    #[test]
    fn finds_each_kind() {
        let text = format!(
            "id AKIAIOSFODNN7EXAMPLE aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY \
             gh ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 slack xoxb-123456789012-abcdefABCDEF \
             openai sk-proj-abcdefghijklmnopqrstuvwx jwt {JWT} \
             -----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY----- done"
        );
        let kinds: Vec<_> = found(&text).into_iter().map(|(_, e)| e).collect();
        assert_eq!(
            kinds,
            [
                entity::AWS_ACCESS_KEY,
                entity::AWS_SECRET_KEY,
                entity::GITHUB_TOKEN,
                entity::SLACK_TOKEN,
                entity::API_KEY,
                entity::JWT,
                entity::PRIVATE_KEY,
            ]
        );
        let texts: Vec<_> = found(&text).into_iter().map(|(t, _)| t).collect();
        assert_eq!(texts[1], "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        assert!(texts[6].ends_with("-----END RSA PRIVATE KEY-----"));
    }

    #[test]
    fn a_jwt_needs_a_json_header() {
        // `{"notjson":true}` is JSON but names no `alg`.
        assert!(found("eyJub3Rqc29uIjp0cnVlfQ.abc.def").is_empty());
        assert!(found("eyJhbGciOiJub25lIn0x.abc.def").is_empty());
        assert_eq!(
            found("eyJhbGciOiJub25lIn0.e30."),
            [("eyJhbGciOiJub25lIn0.e30.", entity::JWT)]
        );
    }

    #[test]
    fn ordinary_text_has_no_secrets() {
        let text = "Deploy the service-account to us-east-1 with sk-short and task-id \
                    550e8400-e29b-41d4-a716-446655440000; commit \
                    da39a3ee5e6b4b0d3255bfef95601890afd80709.";
        assert!(found(text).is_empty(), "{:?}", found(text));
    }

    #[test]
    fn high_entropy_tokens_are_secrets() {
        assert_eq!(
            found("password: Zx9Qw3Rt7Yp2Lm5Nv8Bc4Df6Gh1Jk0Sa"),
            [("Zx9Qw3Rt7Yp2Lm5Nv8Bc4Df6Gh1Jk0Sa", entity::HIGH_ENTROPY)]
        );
    }
}
