//! Every upstream's [`Segment`], replaced whole when that upstream's tool list
//! changes, and the ranked query over the segments a caller may see.
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;

use dashmap::DashMap;
use rmcp::model::Tool;

use super::segment::Segment;
use super::tokens;

/// BM25 term-frequency saturation.
const K1: f32 = 1.2;
/// BM25 length normalisation.
const B: f32 = 0.75;

/// Tools of every upstream the gateway has listed, searchable.
#[derive(Debug, Default)]
pub struct ToolIndex {
    slots: DashMap<Arc<str>, Slot>,
}

/// One upstream's segment and how many times its list was invalidated: a
/// list fetched before an invalidation must not be indexed after it.
#[derive(Debug, Default)]
struct Slot {
    generation: u64,
    segment: Option<Arc<Segment>>,
}

/// One search result.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The upstream.
    pub server: Arc<str>,
    /// The tool as the upstream lists it (upstream name).
    pub tool: Tool,
    /// Its BM25 score for the query; higher is better.
    pub score: f32,
}

impl ToolIndex {
    /// The generation of `server`'s list: read it before fetching the list,
    /// hand it to [`Self::insert`] after.
    pub fn generation(&self, server: &str) -> u64 {
        self.slots.get(server).map_or(0, |slot| slot.generation)
    }

    /// `server`'s segment, if its current list is indexed.
    pub fn segment(&self, server: &str) -> Option<Arc<Segment>> {
        self.slots.get(server).and_then(|slot| slot.segment.clone())
    }

    /// Indexes `segment` as `server`'s list, unless the list was invalidated
    /// since `generation` was read (then the fetched list is already stale).
    pub fn insert(&self, server: &str, generation: u64, segment: Segment) -> bool {
        let mut slot = self.slots.entry(Arc::from(server)).or_default();
        if slot.generation != generation {
            return false;
        }
        slot.segment = Some(Arc::new(segment));
        true
    }

    /// Drops `server`'s segment: its list changed (or its instance did).
    pub fn invalidate(&self, server: &str) {
        let mut slot = self.slots.entry(Arc::from(server)).or_default();
        slot.generation = slot.generation.wrapping_add(1);
        slot.segment = None;
    }

    /// The `limit` best tools for `query` among `servers`' indexed tools that
    /// `allow` admits, best first. Term statistics span the searched segments.
    pub fn search(
        &self,
        query: &str,
        limit: usize,
        servers: &[Arc<str>],
        allow: impl Fn(&str, &Tool) -> bool,
    ) -> Vec<Hit> {
        let segments: Vec<(Arc<str>, Arc<Segment>)> = servers
            .iter()
            .filter_map(|server| Some((server.clone(), self.segment(server)?)))
            .collect();
        search(&segments, query, limit, allow)
    }
}

/// The ranked query over `segments`; see [`ToolIndex::search`].
pub fn search(
    segments: &[(Arc<str>, Arc<Segment>)],
    query: &str,
    limit: usize,
    allow: impl Fn(&str, &Tool) -> bool,
) -> Vec<Hit> {
    let mut terms = tokens::words(query);
    terms.sort_unstable();
    terms.dedup();
    let docs: usize = segments.iter().map(|(_, s)| s.len()).sum();
    if terms.is_empty() || docs == 0 || limit == 0 {
        return Vec::new();
    }
    let n = docs as f32;
    let avg_len = segments.iter().map(|(_, s)| s.total_len).sum::<f32>() / n;
    let weights: Vec<f32> = terms
        .iter()
        .map(|term| {
            let df = segments
                .iter()
                .filter_map(|(_, s)| s.postings.get(term))
                .map(Vec::len)
                .sum::<usize>() as f32;
            (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
        })
        .collect();
    let mut best: BinaryHeap<Ranked> = BinaryHeap::with_capacity(limit.saturating_add(1));
    let mut scores: Vec<f32> = Vec::new();
    for (at, (_, segment)) in segments.iter().enumerate() {
        scores.clear();
        scores.resize(segment.len(), 0.0);
        let mut any = false;
        for (term, idf) in terms.iter().zip(&weights) {
            let Some(postings) = segment.postings.get(term) else {
                continue;
            };
            any = true;
            for posting in postings {
                let Some(doc) = segment.docs.get(posting.doc as usize) else {
                    continue;
                };
                let norm = K1 * (1.0 - B + B * doc.len / avg_len);
                if let Some(score) = scores.get_mut(posting.doc as usize) {
                    *score += idf * posting.tf * (K1 + 1.0) / (posting.tf + norm);
                }
            }
        }
        if !any {
            continue;
        }
        for (doc, &score) in scores.iter().enumerate() {
            if score <= 0.0 {
                continue;
            }
            let candidate = Ranked {
                score,
                segment: at,
                doc,
            };
            if best.len() == limit && best.peek().is_some_and(|worst| candidate >= *worst) {
                continue;
            }
            let (server, _) = &segments[at];
            if !allow(server, &segment.docs[doc].tool) {
                continue;
            }
            best.push(candidate);
            if best.len() > limit {
                best.pop();
            }
        }
    }
    best.into_sorted_vec()
        .into_iter()
        .map(|ranked| {
            let (server, segment) = &segments[ranked.segment];
            Hit {
                server: server.clone(),
                tool: segment.docs[ranked.doc].tool.clone(),
                score: ranked.score,
            }
        })
        .collect()
}

/// A scored tool; orders better-first, so the heap's top is the worst kept.
#[derive(Debug, Clone, Copy)]
struct Ranked {
    score: f32,
    segment: usize,
    doc: usize,
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        // Higher score first; ties in listing order, for stable answers.
        other
            .score
            .total_cmp(&self.score)
            .then(self.segment.cmp(&other.segment))
            .then(self.doc.cmp(&other.doc))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tool(name: &str, description: &str, params: &[&str]) -> Tool {
        let properties: serde_json::Map<String, serde_json::Value> = params
            .iter()
            .map(|p| ((*p).to_owned(), json!({"type": "string"})))
            .collect();
        let schema = json!({"type": "object", "properties": properties});
        let serde_json::Value::Object(schema) = schema else {
            unreachable!()
        };
        Tool::new(name.to_owned(), description.to_owned(), Arc::new(schema))
    }

    fn index() -> ToolIndex {
        let index = ToolIndex::default();
        let github = vec![
            tool(
                "create_issue",
                "Open a new issue in a repository",
                &["repo", "title"],
            ),
            tool(
                "list_pull_requests",
                "List pull requests of a repository",
                &["repo"],
            ),
            tool("search_code", "Search code across repositories", &["query"]),
        ];
        let weather = vec![
            tool(
                "get_forecast",
                "Weather forecast for a city",
                &["city", "days"],
            ),
            tool(
                "get_alerts",
                "Severe weather alerts for a US state",
                &["state"],
            ),
        ];
        let files = vec![tool("read_file", "Read a file from disk", &["path"])];
        for (server, tools) in [("github", github), ("weather", weather), ("files", files)] {
            let generation = index.generation(server);
            assert!(index.insert(server, generation, Segment::build(server, tools)));
        }
        index
    }

    fn servers() -> Vec<Arc<str>> {
        ["github", "weather", "files"].map(Arc::from).to_vec()
    }

    fn names(hits: &[Hit]) -> Vec<String> {
        hits.iter()
            .map(|h| format!("{}/{}", h.server, h.tool.name))
            .collect()
    }

    #[test]
    fn the_tool_whose_name_matches_ranks_first() {
        let hits = index().search("forecast for tomorrow", 3, &servers(), |_, _| true);
        assert_eq!(names(&hits)[0], "weather/get_forecast");
        let hits = index().search("open an issue", 3, &servers(), |_, _| true);
        assert_eq!(names(&hits)[0], "github/create_issue");
        let hits = index().search("pull request", 3, &servers(), |_, _| true);
        assert_eq!(names(&hits), ["github/list_pull_requests"]);
    }

    #[test]
    fn parameter_and_server_names_are_searchable() {
        let hits = index().search("path", 5, &servers(), |_, _| true);
        assert_eq!(names(&hits), ["files/read_file"]);
        let hits = index().search("weather", 5, &servers(), |_, _| true);
        assert_eq!(hits.len(), 2);
    }

    #[test]
    fn filters_apply_and_limits_hold() {
        let index = index();
        let hits = index.search("repository", 10, &servers(), |_, t| {
            t.name != "create_issue"
        });
        assert!(!names(&hits).contains(&"github/create_issue".to_owned()));
        assert_eq!(
            index.search("repository", 1, &servers(), |_, _| true).len(),
            1
        );
        let only_files = [Arc::from("files")];
        assert!(
            index
                .search("repository", 5, &only_files, |_, _| true)
                .is_empty()
        );
        assert!(index.search("", 5, &servers(), |_, _| true).is_empty());
    }

    #[test]
    fn a_list_fetched_before_an_invalidation_is_not_indexed() {
        let index = index();
        let before = index.generation("files");
        index.invalidate("files");
        assert!(index.segment("files").is_none());
        assert!(!index.insert("files", before, Segment::default()));
        assert!(index.insert("files", index.generation("files"), Segment::default()));
    }
}
