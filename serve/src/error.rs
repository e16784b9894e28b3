//! One error format for every route (a leaf of the crate: it depends on no other module of it):
//! `{"error": {"code": "...", "message": "...", "field": "..."}}` (`field` when one field is at
//! fault, as a path like `instances[3].volt`). The Open Inference Protocol routes (`/v2/...`) use
//! that protocol's own shape, `{"error": "<message>"}`, plus `code` and `field` beside it, so that
//! standard v2 clients read the message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pm_core::features::online::OnlineError;
use serde::Serialize;

/// An error answer: status, stable machine-readable code, human message, optional field path.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Seconds a client should wait before retrying (sent as `Retry-After`).
    #[serde(skip)]
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), field: None, retry_after: None }
    }

    /// 422: the request is well-formed JSON but a value is wrong.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = message.into();
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_input",
            message: if field.is_empty() { message } else { format!("{field}: {message}") },
            field: (!field.is_empty()).then_some(field),
            retry_after: None,
        }
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(code: &'static str, message: impl Into<String>, retry_after: u32) -> Self {
        ApiError { retry_after: Some(retry_after), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message) }
    }

    pub fn no_model(reason: &str) -> Self {
        Self::unavailable("model_not_loaded", format!("no model is loaded yet: {reason}"), 5)
    }

    /// The body of this error inside a batch answer (per-item errors).
    pub fn to_item_json(&self) -> serde_json::Value {
        serde_json::json!({ "error": self })
    }

    /// The same error in the Open Inference Protocol's shape.
    pub fn into_oip(self) -> Response {
        let body = serde_json::json!({ "error": self.message, "code": self.code, "field": self.field });
        finish(self.status, self.retry_after, body)
    }
}

fn finish(status: StatusCode, retry_after: Option<u32>, body: serde_json::Value) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    if let Some(secs) = retry_after {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": &self });
        finish(self.status, self.retry_after, body)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status.as_u16(), self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// A machine buffer's refusal: a 409 for a reading that conflicts with the buffer (a different
/// one at that time, or one older than the buffer), a 404 for a machine with no readings, a 422
/// otherwise.
impl From<OnlineError> for ApiError {
    fn from(e: OnlineError) -> Self {
        match e {
            OnlineError::Duplicate { .. } => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            OnlineError::TooOld { .. } => ApiError::new(StatusCode::CONFLICT, "too_old", e.to_string()),
            OnlineError::NoReadings { machine } => ApiError::not_found(
                "unknown_machine",
                format!(
                    "machine {machine} has no readings in this server; POST its readings to /telemetry first, or send its recent history with the request"
                ),
            ),
            other => ApiError::invalid("", other.to_string()),
        }
    }
}
