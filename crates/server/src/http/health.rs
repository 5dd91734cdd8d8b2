//! Liveness and readiness: `/healthz` says the process answers; `/readyz` checks the database, the
//! blob store and the job queue, and fails while the server drains for shutdown.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use oppidum_core::{Error, ErrorKind};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;

/// How long one dependency check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    status: &'static str,
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    ok: bool,
    /// Milliseconds the check took.
    millis: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Extra facts (backend, queue depth).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    info: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`.
    status: &'static str,
    database: Check,
    blob_store: Check,
    queue: Check,
}

async fn check<F, T>(work: F, info: impl FnOnce(&T) -> Option<serde_json::Value>) -> Check
where
    F: Future<Output = Result<T, oppidum_store::StoreError>>,
{
    let started = Instant::now();
    let outcome = tokio::time::timeout(CHECK_TIMEOUT, work).await;
    let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match outcome {
        Ok(Ok(value)) => Check { ok: true, millis, error: None, info: info(&value) },
        Ok(Err(err)) => Check { ok: false, millis, error: Some(err.to_string()), info: None },
        Err(_) => Check { ok: false, millis, error: Some("timed out".into()), info: None },
    }
}

/// The server can take traffic: database, blob store and queue answer.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "system",
    responses(
        (status = 200, body = Readiness),
        (status = 503, description = "A dependency failed; `details` holds every check", body = oppidum_core::error::ErrorBody),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let backend = state.db.backend().name();
    let blob_backend = state.blobs.backend();
    let (database, blob_store, queue) = tokio::join!(
        check(state.db.ping(), |_| Some(serde_json::json!({ "backend": backend }))),
        check(state.blobs.check(), |_| Some(serde_json::json!({ "backend": blob_backend }))),
        check(state.queue.stats(), |stats| serde_json::to_value(stats).ok()),
    );
    let readiness = Readiness { status: "ready", database, blob_store, queue };
    let mut failed: Vec<&str> =
        [("database", &readiness.database), ("blob_store", &readiness.blob_store), ("queue", &readiness.queue)]
            .into_iter()
            .filter(|(_, c)| !c.ok)
            .map(|(name, _)| name)
            .collect();
    if state.is_draining() {
        failed.push("shutting_down");
    }
    if failed.is_empty() {
        return Json(readiness).into_response();
    }
    let details = serde_json::json!({
        "failed": failed,
        "checks": {
            "database": readiness.database,
            "blob_store": readiness.blob_store,
            "queue": readiness.queue,
        }
    });
    Error::new(ErrorKind::Unavailable, "not_ready", format!("Not ready: {} failed.", failed.join(", ")))
        .with_details(details)
        .with_retry_after(5)
        .into_response()
}
