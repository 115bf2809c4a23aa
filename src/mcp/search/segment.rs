//! One upstream's tools as an inverted index: each normalised word maps to
//! the tools it occurs in with a field-weighted term frequency (BM25F with
//! one shared length normalisation), so a word in a tool's name counts more
//! than the same word deep in its description.
use std::collections::HashMap;

use rmcp::model::Tool;

use super::tokens;

/// Weight of a word in the tool's name.
const NAME: f32 = 3.0;
/// In its title (the tool's or its annotations').
const TITLE: f32 = 2.0;
/// In one of its parameter names.
const PARAMETER: f32 = 1.5;
/// In its description.
const DESCRIPTION: f32 = 1.0;
/// In its server's name: `github issue` should find GitHub's issue tools.
const SERVER: f32 = 1.0;

/// Where one word occurs: a tool and its weighted frequency there.
#[derive(Debug, Clone, Copy)]
pub(super) struct Posting {
    pub doc: u32,
    pub tf: f32,
}

/// One indexed tool.
#[derive(Debug)]
pub(super) struct Doc {
    /// The definition as listed (upstream name, screened by the guardrails).
    pub tool: Tool,
    /// Its weighted length in words.
    pub len: f32,
}

/// The tools of one upstream, searchable.
#[derive(Debug, Default)]
pub struct Segment {
    pub(super) docs: Vec<Doc>,
    pub(super) postings: HashMap<String, Vec<Posting>>,
    pub(super) total_len: f32,
}

impl Segment {
    /// Indexes `tools` of `server`.
    pub fn build(server: &str, tools: Vec<Tool>) -> Self {
        let mut segment = Self::default();
        let server_words = tokens::words(server);
        for tool in tools {
            let Ok(doc) = u32::try_from(segment.docs.len()) else {
                break;
            };
            let mut frequencies: HashMap<String, f32> = HashMap::new();
            let mut add = |text: &str, weight: f32| {
                tokens::for_each(text, |word| *frequencies.entry(word).or_default() += weight);
            };
            add(&tool.name, NAME);
            if let Some(title) = &tool.title {
                add(title, TITLE);
            }
            if let Some(title) = tool.annotations.as_ref().and_then(|a| a.title.as_ref()) {
                add(title, TITLE);
            }
            if let Some(description) = &tool.description {
                add(description, DESCRIPTION);
            }
            if let Some(serde_json::Value::Object(properties)) = tool.input_schema.get("properties")
            {
                for name in properties.keys() {
                    add(name, PARAMETER);
                }
            }
            for word in &server_words {
                *frequencies.entry(word.clone()).or_default() += SERVER;
            }
            let len: f32 = frequencies.values().sum();
            for (word, tf) in frequencies {
                segment
                    .postings
                    .entry(word)
                    .or_default()
                    .push(Posting { doc, tf });
            }
            segment.total_len += len;
            segment.docs.push(Doc { tool, len });
        }
        segment
    }

    /// How many tools it holds.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// Whether it holds no tool.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// The indexed tools, in listing order.
    pub fn tools(&self) -> impl Iterator<Item = &Tool> {
        self.docs.iter().map(|doc| &doc.tool)
    }
}
