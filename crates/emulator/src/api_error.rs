//! Google API errors: `{"error": {"code", "message", "status", "details"}}` with the
//! HTTP status that goes with each canonical code.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub http: u16,
    pub status: &'static str,
    pub message: String,
    pub(crate) details: Vec<Value>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(http: u16, message: impl Into<String>) -> ApiError {
        ApiError { http, status: status_for(http), message: message.into(), details: Vec::new(), retry_after: None }
    }

    pub(crate) fn invalid(field: &str, description: impl Into<String>) -> ApiError {
        let description = description.into();
        ApiError::new(400, format!("Invalid value for field '{field}': {description}"))
            .detail(json!({"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": field, "description": description}]}))
    }

    pub(crate) fn not_found(what: &str) -> ApiError {
        ApiError::new(404, format!("Resource '{what}' was not found"))
            .detail(json!({"@type": "type.googleapis.com/google.rpc.ResourceInfo", "resourceName": what}))
    }

    pub(crate) fn aborted(message: impl Into<String>) -> ApiError {
        ApiError::new(409, message).with_status("ABORTED")
    }

    pub(crate) fn already_exists(message: impl Into<String>) -> ApiError {
        ApiError::new(409, message).with_status("ALREADY_EXISTS")
    }

    pub(crate) fn failed_precondition(message: impl Into<String>) -> ApiError {
        ApiError::new(400, message).with_status("FAILED_PRECONDITION")
    }

    pub(crate) fn with_status(mut self, status: &'static str) -> ApiError {
        self.status = status;
        self
    }

    pub(crate) fn detail(mut self, detail: Value) -> ApiError {
        self.details.push(detail);
        self
    }

    /// Asks the client to wait, both as a header and as `google.rpc.RetryInfo`.
    pub(crate) fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds);
        self.detail(json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format!("{seconds}s")}))
    }

    pub(crate) fn body(&self) -> Value {
        let mut error = json!({"code": self.http, "message": self.message, "status": self.status});
        if !self.details.is_empty() {
            error["details"] = Value::Array(self.details.clone());
        }
        json!({ "error": error })
    }
}

/// The canonical status a Google API sends with each HTTP code.
pub(crate) fn status_for(http: u16) -> &'static str {
    match http {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        412 => "FAILED_PRECONDITION",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (code, axum::Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert("retry-after", value);
        }
        response
    }
}
