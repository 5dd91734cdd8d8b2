//! What the server is and says about itself: version, OpenAPI document, Prometheus metrics.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http::{HeaderValue, header};

use crate::app::AppState;
use crate::build_info::{BUILD, BuildInfo};

/// Version, commit and compiler of this server.
#[utoipa::path(get, path = "/api/version", tag = "system", responses((status = 200, body = BuildInfo)))]
pub async fn version() -> Json<BuildInfo> {
    Json(BUILD)
}

/// This document: the OpenAPI 3.1 description of every JSON route.
#[utoipa::path(get, path = "/api/openapi.json", tag = "system", responses((status = 200, description = "OpenAPI document", content_type = "application/json")))]
pub async fn openapi_json(Extension(doc): Extension<Arc<utoipa::openapi::OpenApi>>) -> Response {
    Json(doc.as_ref()).into_response()
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "system", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let pool = state.db.pool_stats();
    metrics::gauge!("oppidum_db_pool_connections", "state" => "open").set(f64::from(pool.size));
    metrics::gauge!("oppidum_db_pool_connections", "state" => "idle").set(pool.idle as f64);
    metrics::gauge!("oppidum_db_pool_max_connections").set(f64::from(pool.max));
    let (served, moved) = pool.quick_reads;
    metrics::counter!("oppidum_db_sqlite_quick_reads_total", "outcome" => "in_place").absolute(served);
    metrics::counter!("oppidum_db_sqlite_quick_reads_total", "outcome" => "moved").absolute(moved);
    let (served, moved) = pool.inline_writes;
    metrics::counter!("oppidum_db_sqlite_inline_writes_total", "outcome" => "in_place").absolute(served);
    metrics::counter!("oppidum_db_sqlite_inline_writes_total", "outcome" => "moved").absolute(moved);
    match state.queue.stats().await {
        Ok(stats) => {
            for (status, count) in
                [("queued", stats.queued), ("running", stats.running), ("done", stats.done), ("dead", stats.dead)]
            {
                metrics::gauge!("oppidum_jobs", "status" => status).set(count as f64);
            }
        }
        Err(err) => tracing::warn!(error = %err, "queue depth unavailable for metrics"),
    }
    metrics::gauge!("oppidum_uptime_seconds").set(state.started.elapsed().as_secs_f64());
    let body = state.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}
