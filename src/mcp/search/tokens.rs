//! Words of tool names, descriptions and queries, normalised the same way on
//! both sides: split on anything not alphanumeric and at camelCase and
//! letter/digit boundaries (so `getCurrentTime`, `get_current_time` and
//! `get-current-time` agree), lower-cased, stop words dropped, and reduced by
//! a light suffix stemmer (plurals, `-ing`, `-ed`) that only has to agree
//! with itself.

/// Words too common in tool descriptions to rank anything.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "into", "is", "it",
    "its", "of", "on", "or", "that", "the", "this", "to", "with",
];

/// Calls `each` with every normalised word of `text`, in order.
pub fn for_each(text: &str, mut each: impl FnMut(String)) {
    let mut word = String::new();
    let mut previous: Option<char> = None;
    for c in text.chars() {
        if !c.is_alphanumeric() {
            flush(&mut word, &mut each);
            previous = None;
            continue;
        }
        if let Some(p) = previous {
            let camel = p.is_lowercase() && c.is_uppercase();
            let digits = p.is_ascii_digit() != c.is_ascii_digit();
            if camel || digits {
                flush(&mut word, &mut each);
            }
        }
        word.extend(c.to_lowercase());
        previous = Some(c);
    }
    flush(&mut word, &mut each);
}

/// Every normalised word of `text`.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each(text, |word| out.push(word));
    out
}

fn flush(word: &mut String, each: &mut impl FnMut(String)) {
    if word.is_empty() {
        return;
    }
    let taken = std::mem::take(word);
    if !STOP_WORDS.contains(&taken.as_str()) {
        each(stem(taken));
    }
}

/// A light suffix stemmer: enough that `files`/`file`, `searching`/`search`
/// and `created`/`create` meet, never so much that short words collapse.
fn stem(mut word: String) -> String {
    let len = word.len();
    if len > 4 && word.ends_with("ies") {
        word.truncate(len - 3);
        word.push('y');
    } else if len > 4
        && (word.ends_with("sses")
            || word.ends_with("xes")
            || word.ends_with("ches")
            || word.ends_with("shes"))
    {
        word.truncate(len - 2);
    } else if len > 3 && word.ends_with('s') && !word.ends_with("ss") && !word.ends_with("us") {
        word.truncate(len - 1);
    } else if len > 5 && word.ends_with("ing") {
        word.truncate(len - 3);
    } else if len > 4 && word.ends_with("ed") {
        word.truncate(len - 2);
        // `created` → `creat`, and `create` must meet it.
        return word;
    }
    if word.len() > 4 && word.ends_with('e') {
        word.pop();
    }
    word
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_every_case_style_agree() {
        assert_eq!(words("getCurrentTime"), ["get", "current", "time"]);
        assert_eq!(words("get_current_time"), words("get-current-time"));
        assert_eq!(words("getCurrentTime"), words("GET current times"));
    }

    #[test]
    fn stop_words_go_and_inflections_meet() {
        assert_eq!(words("List the files"), words("list file"));
        assert_eq!(words("searching"), words("search"));
        assert_eq!(words("created issues"), words("create issue"));
        assert_eq!(words("boxes"), ["box"]);
        assert_eq!(words("status"), ["status"]);
    }

    #[test]
    fn digits_split_from_letters() {
        assert_eq!(words("s3Bucket v2"), ["s", "3", "bucket", "v", "2"]);
    }
}
