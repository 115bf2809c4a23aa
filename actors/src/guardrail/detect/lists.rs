//! A policy's own block lists: case-insensitive keywords and regexes.
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::RegexSet;

/// An invalid `regexes` entry; says which one, never what it matched.
#[derive(Debug, thiserror::Error)]
#[error("regexes[{index}] is not a valid regular expression: {reason}")]
pub struct ListError {
    /// Position in `regexes`.
    pub index: usize,
    /// Why it does not compile.
    pub reason: String,
}

/// Compiled keyword and regex lists of one policy.
#[derive(Debug, Clone, Default)]
pub struct BlockLists {
    keywords: Option<AhoCorasick>,
    regexes: Option<RegexSet>,
}

impl BlockLists {
    /// Compiles the lists once; empty lists match nothing.
    pub fn new(keywords: &[String], regexes: &[String]) -> Result<Self, ListError> {
        let keywords = keywords
            .iter()
            .filter(|k| !k.is_empty())
            .collect::<Vec<_>>();
        let keywords = if keywords.is_empty() {
            None
        } else {
            AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostFirst)
                .build(keywords)
                .map(Some)
                .map_err(|err| ListError {
                    index: 0,
                    reason: err.to_string(),
                })?
        };
        for (index, pattern) in regexes.iter().enumerate() {
            regex::Regex::new(pattern).map_err(|err| ListError {
                index,
                reason: err.to_string(),
            })?;
        }
        let regexes = if regexes.is_empty() {
            None
        } else {
            Some(RegexSet::new(regexes).map_err(|err| ListError {
                index: 0,
                reason: err.to_string(),
            })?)
        };
        Ok(Self { keywords, regexes })
    }

    /// Whether `text` contains a keyword.
    pub fn keyword_match(&self, text: &str) -> bool {
        self.keywords.as_ref().is_some_and(|ac| ac.is_match(text))
    }

    /// Whether `text` matches a regex.
    pub fn regex_match(&self, text: &str) -> bool {
        self.regexes.as_ref().is_some_and(|set| set.is_match(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists(keywords: &[&str], regexes: &[&str]) -> BlockLists {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        BlockLists::new(&own(keywords), &own(regexes)).unwrap()
    }

    #[test]
    fn keywords_ignore_case() {
        let lists = lists(&["drop table", "rm -rf"], &[]);
        assert!(lists.keyword_match("please DROP TABLE users"));
        assert!(lists.keyword_match("run rm -rf /"));
        assert!(!lists.keyword_match("select * from users"));
        assert!(!lists.regex_match("anything"));
    }

    #[test]
    fn regexes_match_and_bad_ones_name_their_index() {
        let lists = lists(&[], &[r"^internal-\d+$", r"(?i)project\s+x"]);
        assert!(lists.regex_match("internal-42"));
        assert!(lists.regex_match("about Project X"));
        assert!(!lists.regex_match("internal-42b"));
        let err = BlockLists::new(&[], &["ok".into(), "(".into()]).unwrap_err();
        assert_eq!(err.index, 1);
    }
}
