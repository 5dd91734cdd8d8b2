//! The HTTP surface: router assembly and the layers every request goes through (request id,
//! tracing, metrics, error envelope, timeout, body limit, CORS, security headers, compression).
//! Domain crates contribute routers; each JSON route is registered with its OpenAPI description so
//! `/api/openapi.json` covers every one.

mod csp;
mod health;
mod meta;
pub mod middleware;
mod openapi_rules;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use http::{HeaderName, HeaderValue, Method, header};
use oppidum_core::config::Config;
use oppidum_core::{Error, ErrorKind};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Oppidum API", description = "JSON API of the Oppidum workspace server. Errors are `{code, message, trace_id}`."),
    components(schemas(oppidum_core::error::ErrorBody)),
    tags(
        (name = "system", description = "Health, readiness, metrics and version"),
        (name = "auth", description = "Sign-up, sign-in, tokens, sessions"),
        (name = "orgs", description = "Organization tree, members and roles"),
        (name = "users", description = "User administration"),
        (name = "audit", description = "Append-only, hash-chained audit log"),
        (name = "mail", description = "Transactional mail through the durable outbox"),
        (name = "drive", description = "Deduplicated, versioned files"),
        (name = "links", description = "Public links: what anyone holding one sees (`/s/{token}`)"),
        (name = "apps", description = "Data API: apps defined by a YAML schema, their tables' rows and data dictionaries"),
    )
)]
struct ApiDoc;

/// The system routes (health, metrics, version, OpenAPI, CSP reports).
fn system_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(meta::version))
        .routes(routes!(meta::openapi_json))
        .routes(routes!(meta::metrics))
        .routes(routes!(csp::report))
}

/// The OpenAPI document of every JSON route of every domain.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = system_routes().split_for_parts();
    let (_, identity) = oppidum_identity::http::routes().split_for_parts();
    doc.merge(identity);
    let (_, mail) = oppidum_mail::http::routes().split_for_parts();
    doc.merge(mail);
    let (_, drive) = oppidum_drive::http::routes().split_for_parts();
    doc.merge(drive);
    let (_, data) = oppidum_data::http::routes().split_for_parts();
    doc.merge(data);
    openapi_rules::complete(&mut doc);
    doc
}

/// The OpenAPI document as pretty JSON, as committed in `docs/openapi.json`.
pub fn openapi_pretty() -> String {
    openapi().to_pretty_json().unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"))
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let (system, mut doc) = system_routes().split_for_parts();
    let (identity, identity_doc) = oppidum_identity::http::routes().split_for_parts();
    doc.merge(identity_doc);
    let (mail, mail_doc) = oppidum_mail::http::routes().split_for_parts();
    doc.merge(mail_doc);
    let (drive, drive_doc) = oppidum_drive::http::routes().split_for_parts();
    doc.merge(drive_doc);
    let (data, data_doc) = oppidum_data::http::routes().split_for_parts();
    doc.merge(data_doc);
    openapi_rules::complete(&mut doc);
    let config = &state.config;
    let app: Router = Router::new()
        .merge(system.with_state(state.clone()))
        .merge(identity.with_state(state.identity.clone()))
        .merge(mail.with_state(state.mailer.clone()))
        .merge(drive.with_state(state.drive.clone()))
        .merge(data.with_state(state.data.clone()))
        .merge(oppidum_drive::dav::router(state.drive.clone()).route_layer(axum::middleware::from_fn_with_state(
            (state.identity.clone(), "dav"),
            oppidum_identity::http::authenticate_basic,
        )))
        .fallback(no_route)
        .layer(axum::Extension(Arc::new(doc)))
        .layer(DefaultBodyLimit::max(usize::try_from(config.http.body_limit.bytes()).unwrap_or(usize::MAX)))
        .layer(axum::middleware::from_fn_with_state(
            Duration::from_secs(config.http.request_timeout_secs),
            middleware::timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(state.identity.clone(), oppidum_identity::http::authenticate))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(axum::middleware::from_fn(middleware::record_metrics))
        .layer(axum::middleware::from_fn(middleware::error_envelope));
    let app = with_headers(app, config);
    let app = if config.http.compression { app.layer(CompressionLayer::new()) } else { app };
    let app = match cors(config) {
        Some(cors) => app.layer(cors),
        None => app,
    };
    app.layer(axum::middleware::from_fn(middleware::request_id))
}

/// 404 in our format for any path no route matches.
async fn no_route(method: Method, uri: http::Uri) -> Error {
    Error::new(ErrorKind::NotFound, "not_found", format!("There is no {method} {} on this server.", uri.path()))
}

const API_CSP: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; report-uri /api/csp-report";

fn with_headers(app: Router, config: &Config) -> Router {
    let fixed: [(HeaderName, &'static str); 6] = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CONTENT_SECURITY_POLICY, API_CSP),
        (HeaderName::from_static("cross-origin-opener-policy"), "same-origin"),
        (HeaderName::from_static("permissions-policy"), "camera=(), microphone=(), geolocation=()"),
    ];
    let mut app = app;
    for (name, value) in fixed {
        app = app.layer(SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value)));
    }
    let https = config.public_url.as_deref().is_some_and(|u| u.starts_with("https://"));
    if https {
        app = app.layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        ));
    }
    app
}

fn cors(config: &Config) -> Option<CorsLayer> {
    let origins = &config.cors.allowed_origins;
    if origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    let layer = CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([header::ETAG, header::RETRY_AFTER, HeaderName::from_static("x-request-id")])
        .allow_credentials(config.cors.allow_credentials)
        .max_age(Duration::from_secs(config.cors.max_age_secs));
    Some(layer)
}

#[cfg(test)]
mod tests {
    /// `docs/openapi.json` is generated from the code; regenerate it with
    /// `cargo run --bin oppidum -- openapi > docs/openapi.json`.
    #[test]
    fn openapi_document_in_docs_is_current() {
        let committed = include_str!("../../../../docs/openapi.json");
        assert_eq!(
            committed.trim(),
            super::openapi_pretty().trim(),
            "docs/openapi.json is stale: run `cargo run --bin oppidum -- openapi > docs/openapi.json`"
        );
    }
}
