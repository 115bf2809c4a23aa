//! RFC 9457 problem details: every management API error is
//! `application/problem+json` with a title, the status, a detail that says
//! what to do, and for validation errors the field at fault.
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::control::ControlError;
use crate::store::StoreError;

/// One API error.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    detail: String,
    field: Option<String>,
}

impl Problem {
    /// A problem with `status` and `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            field: None,
        }
    }

    /// 404: no such resource.
    pub fn not_found(what: &str, name: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("no {what} '{name}'"))
    }

    /// 409: the request conflicts with what exists.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    /// 422: `field` is invalid.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            detail: detail.into(),
            field: Some(field.into()),
        }
    }

    /// 409 for an entry that comes from the config file.
    pub fn from_file(what: &str, name: &str) -> Self {
        Self::conflict(format!(
            "{what} '{name}' comes from the config file (source: file) and cannot be changed \
             through the API: edit the file instead (it is reloaded on save)"
        ))
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let mut body = json!({
            "type": "about:blank",
            "title": title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let Some(field) = &self.field {
            body["field"] = json!(field);
            body["errors"] = json!([{ "field": field, "detail": self.detail }]);
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

impl From<StoreError> for Problem {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(what) => Self::conflict(format!("{what} already exists")),
            other => {
                tracing::error!(error = %other, "management store failed");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, other.to_string())
            }
        }
    }
}

impl From<ControlError> for Problem {
    fn from(err: ControlError) -> Self {
        match err {
            ControlError::Store(store) => store.into(),
            ControlError::Config(config) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, config.to_string())
            }
            ControlError::TreeGone => Self::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
        }
    }
}

/// Parses a JSON object body, or says why not.
pub fn json_object(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, Problem> {
    match serde_json::from_slice(body) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the body must be a JSON object",
        )),
        Err(err) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not valid JSON: {err}"),
        )),
    }
}

/// Takes the required string `field` out of `body`.
pub fn take_string(
    body: &mut serde_json::Map<String, serde_json::Value>,
    field: &str,
) -> Result<String, Problem> {
    match body.remove(field) {
        Some(serde_json::Value::String(value)) if !value.trim().is_empty() => Ok(value),
        Some(_) => Err(Problem::invalid(
            field,
            format!("`{field}` must be a non-empty string"),
        )),
        None => Err(Problem::invalid(field, format!("`{field}` is required"))),
    }
}
