//! Request bodies: the content type, the size limit, decompression, and the JSON parse (with its
//! refusal of repeated keys) that every route's body goes through; and [`cpu`], which runs work
//! too large for an async worker on the blocking pool.

use axum::http::{HeaderValue, StatusCode, header};

use crate::error::ApiError;
use crate::state::AppState;

/// Runs CPU work of a size that could hold a runtime thread too long on the blocking pool.
pub async fn cpu<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("worker failed: {e}")))
}

/// Refuses a body declared as something other than JSON (415); no Content-Type is taken as JSON.
/// `also`: one more media type accepted beside JSON.
pub fn check_content_type(content_type: Option<&HeaderValue>, also: Option<&str>) -> Result<(), ApiError> {
    if let Some(ct) = content_type {
        let ct = ct.to_str().unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        let json = mime.eq_ignore_ascii_case("application/json") || mime.to_ascii_lowercase().ends_with("+json");
        if !json && !also.is_some_and(|a| mime.eq_ignore_ascii_case(a)) {
            let expected = match also {
                Some(a) => format!("application/json or {a}"),
                None => "application/json".to_string(),
            };
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("expected Content-Type: {expected}, got {ct:?}"),
            ));
        }
    }
    Ok(())
}

/// Parses a request body as JSON: a 400 naming line and column for broken JSON, a 422 naming the
/// field for a key that appears twice in one object (JSON parsers disagree on which one counts,
/// so none is picked).
pub fn parse_json(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "the request body is empty; expected a JSON object",
        ));
    }
    let path = std::cell::RefCell::new(Vec::new());
    let duplicate = std::cell::RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = serde::de::DeserializeSeed::deserialize(Strict { path: &path, duplicate: &duplicate }, &mut de)
        .and_then(|v| de.end().map(|()| v));
    if let Some(field) = duplicate.into_inner() {
        return Err(
            ApiError::invalid(field, "appears twice in one object; send each field once").with_code("duplicate_field")
        );
    }
    parsed.map_err(|e| {
        let hint = match non_json_number(body, e.line(), e.column()) {
            Some(token) => format!(
                " ({token} is not a JSON number: send null for a missing value, or the Open Inference Protocol's binary tensors)"
            ),
            None => String::new(),
        };
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!(
                "the body is not valid JSON (line {}, column {}): {}{hint}",
                e.line(),
                e.column(),
                strip_position(&e)
            ),
        )
    })
}

/// One step of the path to a value: an object's key or an array's index.
enum Step {
    Key(String),
    Index(usize),
}

/// Deserializes a JSON value as `serde_json::Value` does, but refuses an object with a key twice:
/// the duplicate's path (`instances[0].machineID`) goes to `duplicate`. `path` is the way to the
/// value being read.
#[derive(Clone, Copy)]
struct Strict<'a> {
    path: &'a std::cell::RefCell<Vec<Step>>,
    duplicate: &'a std::cell::RefCell<Option<String>>,
}

impl Strict<'_> {
    fn rendered(&self, key: &str) -> String {
        let mut out = String::new();
        for step in self.path.borrow().iter() {
            match step {
                Step::Key(k) => out = crate::input::join(&out, k),
                Step::Index(i) => out = crate::input::at(&out, *i),
            }
        }
        crate::input::join(&out, key)
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Strict<'_> {
    type Value = serde_json::Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<serde_json::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Strict<'_> {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<serde_json::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_none<E>(self) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<serde_json::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        loop {
            self.path.borrow_mut().push(Step::Index(items.len()));
            let item = seq.next_element_seed(self);
            self.path.borrow_mut().pop();
            match item? {
                Some(v) => items.push(v),
                None => return Ok(serde_json::Value::Array(items)),
            }
        }
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<serde_json::Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                *self.duplicate.borrow_mut() = Some(self.rendered(&key));
                return Err(serde::de::Error::custom(format!("duplicate field {key:?}")));
            }
            self.path.borrow_mut().push(Step::Key(key.clone()));
            let value = map.next_value_seed(self);
            self.path.borrow_mut().pop();
            out.insert(key, value?);
        }
        Ok(serde_json::Value::Object(out))
    }
}

/// `NaN`, `Infinity` or `-Infinity` where the parser stopped at `line`, `column` (1-based): what
/// Python's `json.dumps` writes for such floats, and the likely cause of the error there.
fn non_json_number(body: &[u8], line: usize, column: usize) -> Option<&'static str> {
    let start = if line <= 1 {
        0
    } else {
        body.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(line - 2).map(|(i, _)| i + 1)?
    };
    let at = (start + column).saturating_sub(1);
    let near = body.get(at.saturating_sub(1)..)?;
    ["-Infinity", "Infinity", "NaN"]
        .into_iter()
        .find(|t| [near, near.get(1..).unwrap_or_default()].iter().any(|n| n.starts_with(t.as_bytes())))
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

impl axum::extract::FromRequest<AppState> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> Result<Self, ApiError> {
        check_content_type(req.headers().get(header::CONTENT_TYPE), None)?;
        read_body(req, state).await.map(JsonBytes)
    }
}

/// The whole request body, within the server's body limit (413 beyond it); decoded when it was
/// sent compressed (`Content-Encoding: gzip` or `deflate`), the limit holding for the decoded
/// bytes too.
pub async fn read_body(req: axum::extract::Request, state: &AppState) -> Result<bytes::Bytes, ApiError> {
    use http_body_util::BodyExt;
    let encoding = req.headers().get(header::CONTENT_ENCODING).cloned();
    let limit = state.cfg.body_limit_bytes;
    let body = match http_body_util::Limited::new(req.into_body(), limit).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large("the request body")),
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_body",
                format!("cannot read the request body: {e}"),
            ));
        }
    };
    let Some(encoding) = encoding else { return Ok(body) };
    let name = String::from_utf8_lossy(encoding.as_bytes()).trim().to_ascii_lowercase();
    match name.as_str() {
        "identity" => return Ok(body),
        "gzip" | "x-gzip" | "deflate" => {}
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                format!("Content-Encoding {name:?} is not supported; send the body as is, gzip or deflate"),
            ));
        }
    }
    if body.len() <= INLINE_DECODE {
        return decode(&name, &body, limit);
    }
    cpu(move || decode(&name, &body, limit)).await?
}

/// Compressed bodies up to this size are decoded on the async worker; larger ones on the
/// blocking pool.
const INLINE_DECODE: usize = 32 << 10;

fn too_large(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("{what} is larger than this server accepts (--body-limit-bytes)"),
    )
}

/// A gzip (one or more members) or deflate (zlib, as HTTP defines it) body, at most `limit`
/// bytes once decoded.
fn decode(encoding: &str, body: &[u8], limit: usize) -> Result<bytes::Bytes, ApiError> {
    use std::io::Read;
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let read = if encoding == "deflate" {
        flate2::read::ZlibDecoder::new(body).take(cap).read_to_end(&mut out)
    } else {
        flate2::read::MultiGzDecoder::new(body).take(cap).read_to_end(&mut out)
    };
    read.map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_body", format!("the body is not valid {encoding} data: {e}"))
    })?;
    if out.len() > limit {
        return Err(too_large("the request body, decompressed,"));
    }
    Ok(out.into())
}

/// A JSON request body, read by [`JsonBytes`] and parsed with [`parse_json`]; rejections are
/// [`ApiError`]s.
#[derive(Debug)]
pub struct JsonBody(pub serde_json::Value);

impl axum::extract::FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> Result<Self, ApiError> {
        JsonBytes::from_request(req, state).await?.parse().map(JsonBody)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_json;

    /// Python's `json.dumps` writes NaN and ±Infinity as bare words: the error says so, on any
    /// line; other broken JSON gets no such hint.
    #[test]
    fn a_non_json_number_is_named() {
        let cases = [
            (&b"{\"a\": [1.0, NaN]}"[..], Some("NaN")),
            (b"{\"a\": NaN}", Some("NaN")),
            (b"{\"a\": [Infinity]}", Some("Infinity")),
            (b"{\"a\":\n [1,\n -Infinity]}", Some("-Infinity")),
            (b"{\"a\": [1, 2", None),
            (b"{\"a\": Nope}", None),
            (b"{\"NaN\": x}", None),
        ];
        for (body, token) in cases {
            let e = parse_json(body).unwrap_err();
            let hinted = e.message.contains("is not a JSON number");
            assert_eq!(hinted, token.is_some(), "{}: {}", String::from_utf8_lossy(body), e.message);
            if let Some(t) = token {
                assert!(e.message.contains(&format!("({t} is not a JSON number")), "{}", e.message);
            }
        }
    }
}
