//! One error format for every route:
//! `{"error": {"code": "...", "message": "...", "field": "..."}}` (`field` when one field is at
//! fault, as a path like `instances[3].volt`). The Open Inference Protocol routes (`/v2/...`) use
//! that protocol's own shape, `{"error": "<message>"}`, plus `code` and `field` beside it, so that
//! standard v2 clients read the message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
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

/// Refuses a body declared as something other than JSON (415); no Content-Type is taken as JSON.
fn check_content_type(content_type: Option<&HeaderValue>) -> Result<(), ApiError> {
    if let Some(ct) = content_type {
        let ct = ct.to_str().unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        if !(mime.eq_ignore_ascii_case("application/json") || mime.to_ascii_lowercase().ends_with("+json")) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("expected Content-Type: application/json, got {ct:?}"),
            ));
        }
    }
    Ok(())
}

/// Parses a request body as JSON: a 400 naming line and column for broken JSON.
pub fn parse_json(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "the request body is empty; expected a JSON object",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON (line {}, column {}): {}", e.line(), e.column(), strip_position(&e)),
        )
    })
}

/// serde_json's message without its trailing " at line L column C" (we say it first).
fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// The bytes of a request body declared as JSON (or undeclared), not parsed yet: a clear 415 for
/// another content type, a 413 for a body over the limit (the limit layer cuts it off while
/// reading). [`JsonBytes::parse`] parses them.
#[derive(Debug)]
pub struct JsonBytes(pub bytes::Bytes);

impl JsonBytes {
    pub fn parse(&self) -> Result<serde_json::Value, ApiError> {
        parse_json(&self.0)
    }
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        check_content_type(req.headers().get(header::CONTENT_TYPE))?;
        let bytes = bytes::Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "the request body is larger than this server accepts (--body-limit-bytes)",
                )
            } else {
                ApiError::new(rej.status(), "bad_body", format!("cannot read the request body: {}", rej.body_text()))
            }
        })?;
        Ok(JsonBytes(bytes))
    }
}

/// A JSON request body, read by [`JsonBytes`] and parsed with [`parse_json`]; rejections are
/// [`ApiError`]s.
#[derive(Debug)]
pub struct JsonBody(pub serde_json::Value);

impl<S: Send + Sync> axum::extract::FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        JsonBytes::from_request(req, state).await?.parse().map(JsonBody)
    }
}
