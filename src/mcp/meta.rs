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
