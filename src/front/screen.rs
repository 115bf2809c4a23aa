//! Reads each MCP POST body within bounds before rmcp parses it: byte and
//! JSON-value limits by method, a body-read deadline, JSON-RPC errors for
//! malformed input (-32700 parse error, -32600 invalid request, -32602 bad
//! `tools/call` params) and duplicate ids in flight on one session.
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use rmcp::transport::common::http_header::names;
use serde_json::{Value, json};

use super::inflight::{Claim, InFlight};
use super::limits::FrontLimits;
use super::shape::{self, Kind, Shape, ShapeError};

/// State of the screening layer, shared by every MCP route.
pub struct Screen {
    limits: FrontLimits,
    inflight: Arc<InFlight>,
}

impl Screen {
    /// A screen enforcing `limits`.
    pub fn new(limits: FrontLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            inflight: Arc::default(),
        })
    }
}

/// JSON-RPC error codes the front door answers itself.
mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
}

/// The layer: screens POST bodies, passes everything else through.
pub async fn layer(State(screen): State<Arc<Screen>>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST || !is_json(&request) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = match read_body(&screen.limits, &parts.headers, body).await {
        Ok(bytes) => bytes,
        Err(response) => return response,
    };
    let shape = match check(&screen.limits, &bytes) {
        Ok(shape) => shape,
        Err(response) => return *response,
    };
    let claim = match claim_id(&screen.inflight, &parts.headers, &shape) {
        Ok(claim) => claim,
        Err(response) => return *response,
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    match claim {
        Some(claim) => hold_until_sent(response, claim),
        None => response,
    }
}

fn is_json(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let essence = v.split_once(';').map_or(v, |(essence, _)| essence);
            essence.trim().eq_ignore_ascii_case("application/json")
        })
}

/// The whole body, within the largest byte limit and the read deadline.
async fn read_body(
    limits: &FrontLimits,
    headers: &axum::http::HeaderMap,
    body: Body,
) -> Result<Bytes, Response> {
    let max = limits.max_any_body_bytes();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Err(too_large(max));
    }
    let read = Limited::new(body, max).collect();
    match tokio::time::timeout(limits.body_read_timeout(), read).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => Err(too_large(max)),
        Ok(Err(_)) => Err(rpc_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            code::PARSE_ERROR,
            "the request body could not be read",
        )),
        Err(_) => Err(rpc_error(
            StatusCode::REQUEST_TIMEOUT,
            Value::Null,
            code::INVALID_REQUEST,
            "the request body was not sent in time",
        )),
    }
}

/// The body's shape within its method's limits, or the answer refusing it.
fn check(limits: &FrontLimits, bytes: &[u8]) -> Result<Shape, Box<Response>> {
    let shape = shape::read(
        bytes,
        limits.max_tool_json_values.max(limits.max_json_values),
        limits.max_json_depth,
    )
    .map_err(|err| Box::new(shape_refusal(&err)))?;
    // Only a refusal quotes the id back.
    let id = || {
        shape
            .id
            .as_deref()
            .and_then(|id| serde_json::from_str(id).ok())
            .unwrap_or(Value::Null)
    };
    let (max_bytes, max_values) = limits.for_method(shape.method.as_deref());
    if bytes.len() > max_bytes {
        return Err(Box::new(too_large(max_bytes)));
    }
    if shape.values > max_values {
        return Err(Box::new(shape_refusal(&ShapeError::TooManyValues(
            max_values,
        ))));
    }
    if shape.method_too_long {
        tracing::info!("request refused: method name too long");
        return Err(Box::new(rpc_error(
            StatusCode::OK,
            id(),
            code::METHOD_NOT_FOUND,
            "method not found",
        )));
    }
    if shape.method.as_deref() == Some("tools/call") {
        let arguments_ok = matches!(shape.arguments, None | Some(Kind::Object | Kind::Null));
        if shape.params != Some(Kind::Object) || !arguments_ok {
            return Err(Box::new(rpc_error(
                StatusCode::OK,
                id(),
                code::INVALID_PARAMS,
                "tools/call needs params {name, arguments} with arguments an object",
            )));
        }
    }
    Ok(shape)
}

fn shape_refusal(err: &ShapeError) -> Response {
    tracing::info!(reason = %err, "request body refused");
    let (status, code) = match err {
        ShapeError::Parse(_) => (StatusCode::BAD_REQUEST, code::PARSE_ERROR),
        ShapeError::NotAnObject => (StatusCode::BAD_REQUEST, code::INVALID_REQUEST),
        ShapeError::TooManyValues(_) | ShapeError::TooDeep(_) => {
            (StatusCode::PAYLOAD_TOO_LARGE, code::INVALID_REQUEST)
        }
    };
    rpc_error(status, Value::Null, code, &err.to_string())
}

/// Claims the request's id on its session, or answers the duplicate.
fn claim_id(
    inflight: &Arc<InFlight>,
    headers: &axum::http::HeaderMap,
    shape: &Shape,
) -> Result<Option<Claim>, Box<Response>> {
    let (Some(session), Some(id), Some(_)) = (
        headers
            .get(&names::MCP_SESSION_ID)
            .and_then(|v| v.to_str().ok()),
        shape.id.as_deref(),
        shape.method.as_deref(),
    ) else {
        return Ok(None);
    };
    match inflight.claim(session, id) {
        Some(claim) => Ok(Some(claim)),
        None => {
            tracing::info!("request refused: its id is already in flight on the session");
            let id = serde_json::from_str(id).unwrap_or(Value::Null);
            Err(Box::new(rpc_error(
                StatusCode::CONFLICT,
                id,
                code::INVALID_REQUEST,
                "a request with this id is already in flight on this session",
            )))
        }
    }
}

/// Keeps `claim` until the response body (an SSE stream) is sent or dropped.
fn hold_until_sent(response: Response, claim: Claim) -> Response {
    let (parts, body) = response.into_parts();
    let stream = body.into_data_stream().map(move |chunk| {
        let _held = &claim;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

fn too_large(max: usize) -> Response {
    tracing::info!(max, "request body refused: too large");
    rpc_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        Value::Null,
        code::INVALID_REQUEST,
        &format!("the request body is larger than this method allows ({max} bytes)"),
    )
}

/// A JSON-RPC error response with HTTP `status`.
pub fn rpc_error(status: StatusCode, id: Value, code: i64, message: &str) -> Response {
    let body = json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": code, "message": message },
    });
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
