//! The one error type every service returns, and its JSON form (ARCHITECTURE §3):
//! `{"code": "...", "message": "...", "trace_id": "req_..."}` with a stable snake_case code.
//!
//! Domain crates keep their own `thiserror` enums and convert into [`Error`] at their boundary.
//! An [`Error`] turned into a response carries itself in the response extensions, so the server's
//! error-envelope middleware can add the `trace_id` and log internal failures in one place.

use std::borrow::Cow;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

/// Result with Oppidum's error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The small, shared set of failure kinds. Each maps to one HTTP status here, and protocol
/// adapters (DAV, SMTP, IMAP) map them to their own codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// 400: the request is malformed or fails validation.
    Invalid,
    /// 401: no or bad credentials.
    Unauthenticated,
    /// 403: authenticated but not allowed.
    Forbidden,
    /// 404: absent, or belongs to another tenant.
    NotFound,
    /// 405: the route exists but not with this method.
    MethodNotAllowed,
    /// 409: conflicts with the current state.
    Conflict,
    /// 410: existed, but is no longer available (expired links).
    Gone,
    /// 412: an `If-Match`-style precondition failed.
    PreconditionFailed,
    /// 413: the body is larger than allowed.
    TooLarge,
    /// 415: the body is not in a format this endpoint reads.
    UnsupportedMediaType,
    /// 416: the requested byte range is outside the content.
    RangeNotSatisfiable,
    /// 422: well-formed but semantically unacceptable.
    Unprocessable,
    /// 429: too many requests; `Retry-After` says when to come back.
    RateLimited,
    /// 507: a storage quota would be exceeded.
    InsufficientStorage,
    /// 503: a dependency is down or the server is shutting down.
    Unavailable,
    /// 504: the request took longer than the server allows.
    Timeout,
    /// 500: our fault. The detail is logged, never sent.
    Internal,
}

impl ErrorKind {
    /// The HTTP status of this kind.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Invalid => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::Gone => StatusCode::GONE,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The kind an error status produced outside our handlers (router, tower layers) stands for.
    pub fn from_status(status: StatusCode) -> Self {
        match status.as_u16() {
            401 => Self::Unauthenticated,
            403 => Self::Forbidden,
            404 => Self::NotFound,
            405 => Self::MethodNotAllowed,
            408 | 504 => Self::Timeout,
            409 => Self::Conflict,
            410 => Self::Gone,
            412 => Self::PreconditionFailed,
            413 => Self::TooLarge,
            415 => Self::UnsupportedMediaType,
            416 => Self::RangeNotSatisfiable,
            422 => Self::Unprocessable,
            429 => Self::RateLimited,
            503 => Self::Unavailable,
            507 => Self::InsufficientStorage,
            400..=499 => Self::Invalid,
            _ => Self::Internal,
        }
    }

    /// The stable code used when nothing more specific was given.
    pub fn default_code(self) -> &'static str {
        match self {
            Self::Invalid => "invalid_request",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::Gone => "gone",
            Self::PreconditionFailed => "precondition_failed",
            Self::TooLarge => "request_body_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RangeNotSatisfiable => "range_not_satisfiable",
            Self::Unprocessable => "unprocessable",
            Self::RateLimited => "rate_limited",
            Self::InsufficientStorage => "quota_exceeded",
            Self::Unavailable => "unavailable",
            Self::Timeout => "request_timeout",
            Self::Internal => "internal_error",
        }
    }

    fn default_message(self) -> &'static str {
        match self {
            Self::Invalid => "The request is invalid.",
            Self::Unauthenticated => "Authentication is required.",
            Self::Forbidden => "You are not allowed to do this.",
            Self::NotFound => "Nothing was found at this address.",
            Self::MethodNotAllowed => "This method is not allowed on this resource.",
            Self::Conflict => "The request conflicts with the current state.",
            Self::Gone => "This is no longer available.",
            Self::PreconditionFailed => "A precondition of the request failed.",
            Self::TooLarge => "The request body is larger than allowed.",
            Self::UnsupportedMediaType => "The request body has an unsupported content type.",
            Self::RangeNotSatisfiable => "The requested range is outside the content.",
            Self::Unprocessable => "The request could not be processed.",
            Self::RateLimited => "Too many requests; retry later.",
            Self::InsufficientStorage => "The storage quota would be exceeded.",
            Self::Unavailable => "The service is temporarily unavailable.",
            Self::Timeout => "The request took too long and was stopped.",
            Self::Internal => "An internal error occurred; it has been logged.",
        }
    }
}

/// An error on its way to the client.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    kind: ErrorKind,
    code: Cow<'static, str>,
    message: String,
    details: Option<serde_json::Value>,
    retry_after_secs: Option<u64>,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// An error of `kind` with a stable `code` and a human sentence.
    pub fn new(kind: ErrorKind, code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self { kind, code: code.into(), message: message.into(), details: None, retry_after_secs: None, source: None }
    }

    /// An error of `kind` with its default code and message.
    pub fn from_kind(kind: ErrorKind) -> Self {
        Self::new(kind, kind.default_code(), kind.default_message())
    }

    /// A 400 with a specific code.
    pub fn invalid(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, code, message)
    }

    /// A 404 for a resource that does not exist for this principal.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, "not_found", message)
    }

    /// A 500 whose cause is logged and never sent to the client.
    pub fn internal(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        let mut error = Self::from_kind(ErrorKind::Internal);
        error.source = Some(source.into());
        error
    }

    /// Attaches structured details (field errors, failed checks) to the JSON body.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Sets the `Retry-After` header, in seconds.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// Keeps the underlying cause for the logs.
    pub fn with_source(mut self, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        self.source = Some(source.into());
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn code(&self) -> &str {
        &self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The body this error is sent as, for a request with `trace_id`.
    pub fn body(&self, trace_id: &str) -> ErrorBody {
        ErrorBody {
            code: self.code.to_string(),
            message: self.message.clone(),
            trace_id: trace_id.to_owned(),
            details: self.details.clone(),
        }
    }
}

/// What every JSON error response looks like.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable snake_case identifier, e.g. `etag_mismatch`.
    pub code: String,
    /// A human sentence; may change between versions.
    pub message: String,
    /// The request id (`X-Request-Id`), to find the request in the logs.
    pub trace_id: String,
    /// Structured extra information (invalid fields, failed checks), when there is any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// Placed in the response extensions of every error response built from an [`Error`], so the
/// envelope middleware can add the trace id and log the cause.
#[derive(Debug, Clone)]
pub struct ErrorReport {
    pub kind: ErrorKind,
    pub code: String,
    pub message: String,
    pub details: Option<serde_json::Value>,
    /// The cause chain, rendered; only for the logs.
    pub cause: Option<String>,
}

impl ErrorReport {
    /// The body for `trace_id`.
    pub fn body(&self, trace_id: &str) -> ErrorBody {
        ErrorBody {
            code: self.code.clone(),
            message: self.message.clone(),
            trace_id: trace_id.to_owned(),
            details: self.details.clone(),
        }
    }
}

fn render_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let report = ErrorReport {
            kind: self.kind,
            code: self.code.to_string(),
            message: self.message.clone(),
            details: self.details.clone(),
            cause: self.source.as_deref().map(|s| render_cause(s)),
        };
        // The trace id is filled in by the envelope middleware; a response that escapes it (a
        // unit test through `oneshot`) still has the documented shape.
        let mut response = (self.kind.status(), Json(self.body(""))).into_response();
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(report);
        response
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Self::from_kind(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_round_trip_through_status() {
        for kind in [
            ErrorKind::Invalid,
            ErrorKind::Unauthenticated,
            ErrorKind::Forbidden,
            ErrorKind::NotFound,
            ErrorKind::MethodNotAllowed,
            ErrorKind::Conflict,
            ErrorKind::PreconditionFailed,
            ErrorKind::TooLarge,
            ErrorKind::UnsupportedMediaType,
            ErrorKind::RangeNotSatisfiable,
            ErrorKind::Unprocessable,
            ErrorKind::RateLimited,
            ErrorKind::InsufficientStorage,
            ErrorKind::Unavailable,
            ErrorKind::Timeout,
            ErrorKind::Internal,
        ] {
            assert_eq!(ErrorKind::from_status(kind.status()), kind);
        }
    }

    #[test]
    fn error_internal_hides_cause_from_body() {
        let error = Error::internal(std::io::Error::other("disk on fire"));
        let body = serde_json::to_value(error.body("req_1")).expect("serializes");
        assert_eq!(body["code"], "internal_error");
        assert!(!body.to_string().contains("disk on fire"));
        let response = error.into_response();
        let report = response.extensions().get::<ErrorReport>().expect("report attached");
        assert!(report.cause.as_deref().unwrap_or_default().contains("disk on fire"));
    }

    #[test]
    fn error_retry_after_sets_header() {
        let response = Error::from_kind(ErrorKind::RateLimited).with_retry_after(7).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
    }
}

/// Marks a response that speaks its own protocol's error format (WebDAV XML, …): the JSON error
/// envelope leaves it alone.
#[derive(Debug, Clone, Copy)]
pub struct ProtocolResponse;
