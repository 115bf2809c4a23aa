//! What of a client's request `_meta` may travel upstream. The upstream
//! session has its own progress tokens (mapped back per call) and its own
//! negotiated protocol; the client's lifecycle keys would confuse it.
use rmcp::model::{PaginatedRequestParams, RequestMetaObject};

const PROGRESS_TOKEN: &str = "progressToken";
const PROTOCOL_KEYS: &str = "io.modelcontextprotocol/";

/// Drops the progress token and the per-request protocol keys.
pub fn strip(mut meta: RequestMetaObject) -> RequestMetaObject {
    meta.retain(|key, _| key != PROGRESS_TOKEN && !key.starts_with(PROTOCOL_KEYS));
    meta
}

/// List parameters with a forwardable `_meta`.
pub fn forwardable(mut params: PaginatedRequestParams) -> PaginatedRequestParams {
    params.meta = params.meta.map(strip);
    params
}

/// Marks a result from an upstream as `complete` when it does not say.
///
/// Upstream sessions speak the 2025 protocol, whose results carry no
/// `resultType`; 2026-07-28 clients require it. rmcp strips it again for
/// legacy clients, so setting it is right for both.
pub fn mark_complete(result: &mut rmcp::model::ServerResult) {
    use rmcp::model::{ResultType, ServerResult};
    let result_type = match result {
        ServerResult::CompleteResult(r) => &mut r.result_type,
        ServerResult::GetPromptResult(r) => &mut r.result_type,
        ServerResult::ListPromptsResult(r) => &mut r.result_type,
        ServerResult::ListResourcesResult(r) => &mut r.result_type,
        ServerResult::ListResourceTemplatesResult(r) => &mut r.result_type,
        ServerResult::ReadResourceResult(r) => &mut r.result_type,
        ServerResult::ListToolsResult(r) => &mut r.result_type,
        ServerResult::CallToolResult(r) => &mut r.result_type,
        _ => return,
    };
    result_type.get_or_insert(ResultType::COMPLETE);
}
