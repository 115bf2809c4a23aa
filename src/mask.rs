//! Masks secrets in text an operator will read (stderr tails, errors):
//! known secret values, and anything shaped like a credential.
use std::sync::LazyLock;

use regex::Regex;

const MASK: &str = "****";
/// Values shorter than this are too common to mask without garbling text.
const MIN_SECRET_LEN: usize = 6;

static PATTERNS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        (r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+", "${1}****"),
        (
            r#"(?i)((?:api[_-]?key|access[_-]?token|token|secret|password|passwd|pwd|authorization|client[_-]?secret)["']?\s*[=:]\s*["']?)[^\s"',;]+"#,
            "${1}****",
        ),
        (r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}", MASK),
        (r"\bgh[pousr]_[A-Za-z0-9]{20,}", MASK),
        (r"\bxox[abprs]-[A-Za-z0-9-]{10,}", MASK),
        (r"\bAKIA[0-9A-Z]{16}\b", MASK),
        (r"\bbk_[A-Za-z0-9_-]{16,}", MASK),
        (r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", MASK),
    ]
    .into_iter()
    .filter_map(|(pattern, replacement)| Regex::new(pattern).ok().map(|re| (re, replacement)))
    .collect()
});

/// serde's rendering of a string it refused (`invalid type: string "…"`),
/// escapes included.
static QUOTED_STRING: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r#"\bstring "(?:[^"\\\n]|\\.)*""#).ok());

/// A configuration error as an operator may read it: a string value serde
/// quotes where it wanted another type (`env = "sk-…"` for a table) is not
/// shown, a TOML syntax error keeps its line and column but not the quoted
/// source line (` 3 | token = "…`, which may hold a secret), and anything
/// else credential-shaped is masked.
pub fn config_error(message: &str) -> String {
    let without_source: Vec<&str> = message
        .lines()
        .filter(|line| !is_source_line(line))
        .collect();
    let without_source = without_source.join("\n");
    let unquoted = match QUOTED_STRING.as_ref() {
        Some(re) => re.replace_all(&without_source, "a string (value not shown)"),
        None => without_source.as_str().into(),
    };
    mask(&unquoted, [])
}

/// A line of the source excerpt the `toml` crate puts in its errors: a
/// gutter (`  |`, `3 |`) and what follows it.
fn is_source_line(line: &str) -> bool {
    line.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ')
        .starts_with('|')
}

/// Masks `text` from upstream `entry`: its configured secrets (environment
/// values, headers, OAuth credentials) and anything credential-shaped.
pub fn mask_upstream(entry: &bulwark_supervisors::registry::ServerEntry, text: &str) -> String {
    mask(text, entry.spec.secrets())
}

/// Masks `secrets` (exact values) and credential-shaped text in `text`.
pub fn mask<'a>(text: &str, secrets: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        if secret.len() >= MIN_SECRET_LEN && out.contains(secret) {
            out = out.replace(secret, MASK);
        }
    }
    for (re, replacement) in PATTERNS.iter() {
        if re.is_match(&out) {
            out = re.replace_all(&out, *replacement).into_owned();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{config_error, mask};

    #[test]
    fn config_errors_show_no_refused_string() {
        let shown = config_error(
            r#"invalid type: string "hunter2-but-\"long\"", expected a map for key `upstreams.a.env`"#,
        );
        assert_eq!(
            shown,
            "invalid type: a string (value not shown), expected a map for key `upstreams.a.env`"
        );
        assert_eq!(
            config_error("unknown variant `sometimes`, expected `always`"),
            "unknown variant `sometimes`, expected `always`"
        );
        // A refused string above a source excerpt: each line on its own.
        assert_eq!(
            config_error("invalid type: string \"x\", expected a map\n3 | env = \"x"),
            "invalid type: a string (value not shown), expected a map"
        );
        let syntax = "TOML parse error at line 3, column 10\n  |\n3 | db = \"postgres://u:pa55@h\n  |          ^\ninvalid basic string";
        assert_eq!(
            config_error(syntax),
            "TOML parse error at line 3, column 10\ninvalid basic string"
        );
    }

    #[test]
    fn masks_known_values_and_credential_shapes() {
        let text = "token=abc123xyz Authorization: Bearer eyJhbGciOi.payload1234.sig12345678 my-value-secret ghp_abcdefghijklmnopqrstuvwxyz";
        let masked = mask(text, ["my-value-secret"]);
        assert!(!masked.contains("abc123xyz"), "{masked}");
        assert!(!masked.contains("my-value-secret"), "{masked}");
        assert!(!masked.contains("ghp_abc"), "{masked}");
        assert!(!masked.contains("payload1234"), "{masked}");
        assert!(masked.contains("token=****"), "{masked}");
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        assert_eq!(
            mask("demo-server echo started pid=42", ["abc"]),
            "demo-server echo started pid=42"
        );
    }
}
