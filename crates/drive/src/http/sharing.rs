//! Sharing and public links: `/api/drive/files/{id}/shares`, `/api/drive/shares/{id}`,
//! `/api/drive/shared`, `/api/drive/files/{id}/links`, `/api/drive/links/{id}`.

use axum::Json as AxumJson;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use oppidum_core::Principal;
use oppidum_core::error::ErrorBody;
use oppidum_core::extract::Json;
use uuid::Uuid;

use super::Result;
use crate::files::{CreatedLink, Drive, Link, NewLink, NewShare, Share, SharedNode};

/// Shares a file or folder with a user (`user_id` or `email`) or an organization (`org_id`),
/// with `read`, `write` or `manage` access to it and everything below it.
#[utoipa::path(post, path = "/api/drive/files/{id}/shares", tag = "drive", params(("id" = Uuid, Path)), request_body = NewShare,
    responses((status = 201, body = Share), (status = 400, description = "`invalid_share`", body = ErrorBody),
        (status = 403, description = "`not_manager`", body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn share(
    State(drive): State<Drive>,
    principal: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<NewShare>,
) -> Result<(StatusCode, AxumJson<Share>)> {
    let scope = drive.resolve(&principal, id).await?;
    Ok((StatusCode::CREATED, AxumJson(drive.share(&principal, &scope, id, body).await?)))
}

/// The shares of a file or folder.
#[utoipa::path(get, path = "/api/drive/files/{id}/shares", tag = "drive", params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<Share>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn shares(
    State(drive): State<Drive>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<AxumJson<Vec<Share>>> {
    let scope = drive.resolve(&principal, id).await?;
    Ok(AxumJson(drive.shares(&scope, id).await?))
}

/// Ends a share (its managers), or leaves it (its grantee).
#[utoipa::path(delete, path = "/api/drive/shares/{id}", tag = "drive", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unshare(State(drive): State<Drive>, principal: Principal, Path(id): Path<Uuid>) -> Result<StatusCode> {
    drive.unshare(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Files and folders others shared with you, directly or with one of your organizations.
#[utoipa::path(get, path = "/api/drive/shared", tag = "drive", responses((status = 200, body = Vec<SharedNode>)))]
pub async fn shared_with_me(State(drive): State<Drive>, principal: Principal) -> Result<AxumJson<Vec<SharedNode>>> {
    Ok(AxumJson(drive.shared_with(&principal).await?))
}

/// Publishes a file or folder at `/s/{token}`: read-only, or upload-only for a folder (a file
/// drop); optional password, expiry and download limit. The token is shown only here.
#[utoipa::path(post, path = "/api/drive/files/{id}/links", tag = "drive", params(("id" = Uuid, Path)), request_body = NewLink,
    responses((status = 201, body = CreatedLink), (status = 400, description = "`invalid_link`", body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create_link(
    State(drive): State<Drive>,
    principal: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<NewLink>,
) -> Result<(StatusCode, AxumJson<CreatedLink>)> {
    let scope = drive.resolve(&principal, id).await?;
    Ok((StatusCode::CREATED, AxumJson(drive.create_link(&scope, id, body).await?)))
}

/// The public links of a file or folder, with their download counts.
#[utoipa::path(get, path = "/api/drive/files/{id}/links", tag = "drive", params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<Link>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn links(
    State(drive): State<Drive>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<AxumJson<Vec<Link>>> {
    let scope = drive.resolve(&principal, id).await?;
    Ok(AxumJson(drive.links(&scope, id).await?))
}

/// Revokes a public link at once.
#[utoipa::path(delete, path = "/api/drive/links/{id}", tag = "drive", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_link(State(drive): State<Drive>, principal: Principal, Path(id): Path<Uuid>) -> Result<StatusCode> {
    drive.revoke_link(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
