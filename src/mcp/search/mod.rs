//! Search over the tools a caller may use, for gateways with hundreds of
//! them (`bulwark__search_tools`, and the `search` tool listing).
//!
//! - [`tokens`]: the word normalisation shared by documents and queries.
//! - [`segment`]: one upstream's tools as a field-weighted inverted index.
//! - [`index`]: every upstream's segment and the BM25 query across them.
//!
//! Own code rather than a search engine crate: the corpus is a few thousand
//! short documents held in memory, replaced one upstream at a time on
//! `list_changed`, and filtered per caller by grants while ranking; a full
//! engine (tantivy) would bring segments on disk, a schema and a heavy build
//! for none of that.
pub mod index;
pub mod segment;
pub mod tokens;

pub use index::{Hit, ToolIndex};
pub use segment::Segment;
