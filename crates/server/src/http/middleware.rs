//! Layers every request goes through: the request id and its tracing span, metrics by route
//! template, the error envelope (our JSON error format with `trace_id`, also for errors produced by
//! the router and tower layers), timeouts and panics.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use oppidum_core::error::ErrorReport;
use oppidum_core::ids::RequestId;
use oppidum_core::{Error, ErrorKind};
use tracing::Instrument;

const REQUEST_ID: &str = "x-request-id";

pub use oppidum_core::error::ProtocolResponse;

/// Requests whose body streams for as long as an upload takes: a fixed overall time limit would
/// cut large uploads on slow links, so these are bounded by size limits and quotas instead.
const STREAMING_PATHS: [&str; 3] = ["/dav/", "/api/drive/upload", "/s/"];

/// Takes the client's `X-Request-Id` when it is safe, or makes one; returns it on the response and
/// runs the request inside a span carrying it. Logs one line per request.
pub async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(RequestId::from_client)
        .unwrap_or_else(RequestId::generate);
    req.extensions_mut().insert(id.clone());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!("request", request_id = %id, %method, path = %path);
    let started = Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let status = response.status().as_u16();
    let millis = started.elapsed().as_secs_f64() * 1_000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, millis, "request failed");
        } else {
            tracing::debug!(status, millis, "request");
        }
    });
    response
}

/// Counts requests and records their latency by method, route template and status.
pub async fn record_metrics(req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(req.method());
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method.to_owned()), ("route", route), ("status", status)];
    metrics::counter!("oppidum_http_requests_total", &labels).increment(1);
    metrics::histogram!("oppidum_http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    response
}

/// Bounded label values: unknown methods are grouped.
fn method_label(method: &http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "PROPFIND" => "PROPFIND",
        "PROPPATCH" => "PROPPATCH",
        "MKCOL" => "MKCOL",
        "COPY" => "COPY",
        "MOVE" => "MOVE",
        "LOCK" => "LOCK",
        "UNLOCK" => "UNLOCK",
        "REPORT" => "REPORT",
        _ => "OTHER",
    }
}

/// Gives every error response our JSON form with the request id as `trace_id`, whoever produced it
/// (a handler's [`Error`], the router's 404/405, a tower layer's 413/408), and logs 5xx causes.
pub async fn error_envelope(req: Request, next: Next) -> Response {
    let trace_id = req.extensions().get::<RequestId>().map(|id| id.as_str().to_owned()).unwrap_or_default();
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.extensions().get::<ProtocolResponse>().is_some()
    {
        return response;
    }
    let (mut parts, _body) = response.into_parts();
    let report = parts.extensions.remove::<ErrorReport>().unwrap_or_else(|| {
        let kind = ErrorKind::from_status(status);
        let error = Error::from_kind(kind);
        ErrorReport {
            kind,
            code: error.code().to_owned(),
            message: error.message().to_owned(),
            details: None,
            cause: None,
        }
    });
    if status.is_server_error() {
        tracing::error!(code = %report.code, cause = report.cause.as_deref().unwrap_or(""), "request failed");
    } else if let Some(cause) = &report.cause {
        tracing::debug!(code = %report.code, cause, "request rejected");
    }
    let body = serde_json::to_vec(&report.body(&trace_id)).unwrap_or_default();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_ENCODING);
    Response::from_parts(parts, Body::from(body))
}

/// Answers 504 `request_timeout` when the handler has not produced a response in time.
pub async fn timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    if STREAMING_PATHS.iter().any(|prefix| req.uri().path().starts_with(prefix)) {
        return next.run(req).await;
    }
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => Error::new(
            ErrorKind::Timeout,
            "request_timeout",
            format!("The request did not complete within {} seconds.", limit.as_secs()),
        )
        .into_response(),
    }
}

/// A panicking handler becomes a 500 in our format; the panic message goes to the logs only.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".to_owned());
    Error::internal(std::io::Error::other(format!("handler panicked: {message}"))).into_response()
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::get;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    use tower_http::catch_panic::CatchPanicLayer;

    use super::*;

    #[allow(clippy::unused_async)]
    async fn boom() -> &'static str {
        panic!("secret detail")
    }

    #[tokio::test]
    async fn middleware_turns_panics_into_json_500() {
        let app: Router = Router::new()
            .route("/boom", get(boom))
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(axum::middleware::from_fn(error_envelope))
            .layer(axum::middleware::from_fn(request_id));
        let request = http::Request::get("/boom").header(REQUEST_ID, "t-1").body(Body::empty()).expect("request");
        let response = app.oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), 500);
        let body = response.into_body().collect().await.expect("body").to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(body["code"], "internal_error");
        assert_eq!(body["trace_id"], "t-1");
        assert!(!body.to_string().contains("secret detail"));
    }
}
