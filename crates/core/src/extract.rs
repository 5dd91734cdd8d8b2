//! Extractors whose rejections are our [`Error`], so malformed input gets the documented error
//! format instead of axum's plain-text defaults.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use http::header;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind};

/// A JSON body. Rejections:
/// - 415 `unsupported_media_type` when the content type is not JSON,
/// - 413 `request_body_too_large` past the body limit,
/// - 400 `invalid_request_body` naming the offending field (`user.email: invalid type ...`), or
///   saying the body is not a JSON object (serde would otherwise read `[…]` as a struct's fields
///   in order).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(req.headers()) {
            return Err(Error::new(
                ErrorKind::UnsupportedMediaType,
                "unsupported_media_type",
                "Expected a body with Content-Type: application/json.",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(bytes_rejection)?;
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(Error::invalid("invalid_request_body", "The request body must be a JSON object."));
        }
        parse_json(&bytes).map(Json)
    }
}

/// Written into one growing `Vec` handed to the body as it is (axum's own `Json` writes through
/// `BytesMut`, whose small writes cost a profile of the data API's lists a tenth of its time).
impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(1024);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
            Err(err) => Error::internal(format!("writing a JSON response: {err}")).into_response(),
        }
    }
}

/// Parses `bytes` as JSON into `T`, naming the path of the first offending field. A number with
/// no fractional part (`5.0`) counts as an integer, as JSON Schema says it is: a body that does
/// not fit `T` as sent is read again with such numbers rewritten, so the usual body costs one
/// parse.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|err| Error::invalid("invalid_request_body", format!("The request body is not valid JSON: {err}.")))?;
    integral_floats_to_integers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let (message, field) = if path.is_empty() || path == "." {
            (format!("The request body is not valid: {inner}."), None)
        } else {
            (format!("The request body is not valid at `{path}`: {inner}."), Some(path))
        };
        let mut error = Error::invalid("invalid_request_body", message);
        if let Some(field) = field {
            error = error.with_details(serde_json::json!({ "field": field }));
        }
        error
    })
}

/// Rewrites `5.0` as `5` (within the 64-bit integer ranges) throughout `value`.
fn integral_floats_to_integers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(number) => {
            if let Some(float) = number.as_f64().filter(|f| number.is_f64() && f.fract() == 0.0) {
                // Exact conversions only: beyond ±2^53 a float may not be the integer it shows.
                const EXACT: f64 = 9_007_199_254_740_992.0;
                if float.abs() <= EXACT {
                    #[allow(clippy::cast_possible_truncation)]
                    let integer = float as i64;
                    *number = serde_json::Number::from(integer);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

fn is_json_content_type(headers: &http::HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
        // Browsers send CSP violation reports with this type; the body is JSON.
        || essence == "application/csp-report"
}

fn bytes_rejection(rejection: BytesRejection) -> Error {
    let status = rejection.status();
    let kind = ErrorKind::from_status(status);
    if kind == ErrorKind::TooLarge {
        Error::from_kind(ErrorKind::TooLarge)
    } else {
        Error::invalid(
            "invalid_request_body",
            format!("The request body could not be read: {}.", rejection.body_text()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::extract::DefaultBodyLimit;
    use axum::routing::post;
    use http::StatusCode;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Person {
        name: String,
        address: Address,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Address {
        zip: u32,
    }

    async fn call(content_type: &str, body: &'static str) -> (StatusCode, serde_json::Value) {
        let app =
            Router::new().route("/", post(|Json(_p): Json<Person>| async { "ok" })).layer(DefaultBodyLimit::max(64));
        let request = http::Request::post("/")
            .header(header::CONTENT_TYPE, content_type)
            .body(axum::body::Body::from(body))
            .expect("request builds");
        let response = app.oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    #[tokio::test]
    async fn json_names_the_bad_field() {
        let (status, body) = call("application/json", r#"{"name":"a","address":{"zip":"x"}}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["code"], "invalid_request_body");
        assert_eq!(body["details"]["field"], "address.zip");
        assert!(body["message"].as_str().unwrap_or_default().contains("address.zip"));
    }

    #[tokio::test]
    async fn json_rejects_syntax_errors_and_wrong_type() {
        let (status, body) = call("application/json", "{not json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["code"], "invalid_request_body");
        let (status, body) = call("text/plain", "{}").await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(body["code"], "unsupported_media_type");
    }

    #[tokio::test]
    async fn json_over_limit_is_413() {
        let big =
            r#"{"name":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","address":{"zip":1}}"#;
        let (status, body) = call("application/json", big).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["code"], "request_body_too_large");
    }

    #[tokio::test]
    async fn json_takes_objects_only_and_integral_floats_as_integers() {
        let (status, body) = call("application/json", r#"["a", {"zip": 1}]"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["code"], "invalid_request_body");
        let (status, _) = call("application/json", r#"{"name":"a","address":{"zip":75.0}}"#).await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = call("application/json", r#"{"name":"a","address":{"zip":75.5}}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["details"]["field"], "address.zip");
        let (status, _) = call("application/json", r#"{"name":"a","address":{"zip":1}} x"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "trailing data");
    }
}
