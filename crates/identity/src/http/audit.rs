//! `/api/audit` and `/api/audit/export`.

use axum::Json as AxumJson;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, header};
use oppidum_core::error::ErrorBody;
use oppidum_core::{Error, Principal};

use crate::Identity;
use crate::audit::{Entry, Filter};
use crate::model::Page;

/// Audit entries of the organizations where you hold `audit.read`, newest first.
#[utoipa::path(get, path = "/api/audit", tag = "audit", params(Filter),
    responses((status = 200, body = Page<Entry>), (status = 403, body = ErrorBody)))]
pub async fn list_audit(
    State(identity): State<Identity>,
    principal: Principal,
    Query(filter): Query<Filter>,
) -> Result<AxumJson<Page<Entry>>, Error> {
    Ok(AxumJson(identity.list_audit(&principal, &filter).await?))
}

/// The same entries as JSON Lines, streamed.
#[utoipa::path(get, path = "/api/audit/export", tag = "audit", params(Filter),
    responses((status = 200, description = "One JSON entry per line", content_type = "application/x-ndjson"),
        (status = 403, body = ErrorBody)))]
pub async fn export_audit(
    State(identity): State<Identity>,
    principal: Principal,
    Query(filter): Query<Filter>,
) -> Result<Response, Error> {
    let pages = identity.audit_pages(&principal, filter).await?;
    let stream = futures::stream::unfold(Some(pages), |state| async move {
        let mut pages = state?;
        match pages.next_page().await {
            Ok(Some(entries)) => {
                let mut text = String::new();
                for entry in entries {
                    text.push_str(&serde_json::to_string(&entry).unwrap_or_default());
                    text.push('\n');
                }
                Some((Ok::<Bytes, std::io::Error>(Bytes::from(text)), Some(pages)))
            }
            Ok(None) => None,
            Err(err) => {
                tracing::error!(error = %err, "audit export failed");
                Some((Err(std::io::Error::other(err.to_string())), None))
            }
        }
    });
    let mut response = oppidum_core::body::streamed(stream).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    Ok(response)
}
