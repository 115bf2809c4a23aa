//! `limit`/`offset` pagination with a total, as every list answers it.
use serde::Deserialize;
use serde_json::{Value, json};

use super::problem::Problem;

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

/// Query parameters every list takes.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Most items to return (default 50, at most 500).
    pub limit: Option<usize>,
    /// Items to skip.
    pub offset: Option<usize>,
    /// Only items in this state (`ready`, `failed`, `disabled`, `active`, `revoked`, …).
    pub status: Option<String>,
    /// Only items of this project (keys).
    pub project: Option<String>,
    /// Only items from this source (`file` or `api`).
    pub source: Option<String>,
}

impl ListQuery {
    /// `{"items": [...], "total": N, "limit": L, "offset": O}` of `items`.
    pub fn page(&self, items: Vec<Value>) -> Result<Value, Problem> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(Problem::invalid(
                "limit",
                format!("`limit` must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let offset = self.offset.unwrap_or(0);
        let total = items.len();
        let items: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
        Ok(json!({ "items": items, "total": total, "limit": limit, "offset": offset }))
    }

    /// True when `value` passes the `field` filter (absent filter passes).
    pub fn keeps(filter: Option<&String>, value: &str) -> bool {
        filter.is_none_or(|wanted| wanted == value)
    }
}
