//! `/api/orgs/{id}/api-keys` and `/api/auth/app-passwords`.

use axum::Json as AxumJson;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use oppidum_core::error::ErrorBody;
use oppidum_core::extract::Json;
use oppidum_core::{Error, Principal};
use uuid::Uuid;

use crate::Identity;
use crate::service::{ApiKey, AppPassword, CreateApiKeyRequest, CreateAppPasswordRequest, NewApiKey, NewAppPassword};

type Result<T> = std::result::Result<T, Error>;

/// Creates an API key with a subset of your permissions (`api_keys.manage`); the key is shown once.
#[utoipa::path(post, path = "/api/orgs/{id}/api-keys", tag = "orgs", params(("id" = Uuid, Path)), request_body = CreateApiKeyRequest,
    responses((status = 201, body = NewApiKey), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create_api_key(
    State(identity): State<Identity>,
    principal: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<CreateApiKeyRequest>,
) -> Result<(StatusCode, AxumJson<NewApiKey>)> {
    Ok((StatusCode::CREATED, AxumJson(identity.create_api_key(&principal, id, body).await?)))
}

#[utoipa::path(get, path = "/api/orgs/{id}/api-keys", tag = "orgs", params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<ApiKey>), (status = 404, body = ErrorBody)))]
pub async fn list_api_keys(
    State(identity): State<Identity>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<AxumJson<Vec<ApiKey>>> {
    Ok(AxumJson(identity.list_api_keys(&principal, id).await?))
}

#[utoipa::path(delete, path = "/api/orgs/{id}/api-keys/{key_id}", tag = "orgs", params(("id" = Uuid, Path), ("key_id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_api_key(
    State(identity): State<Identity>,
    principal: Principal,
    Path((id, key_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    identity.delete_api_key(&principal, id, key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates an app password for a client (Thunderbird, DAVx5, rclone); shown once.
#[utoipa::path(post, path = "/api/auth/app-passwords", tag = "auth", request_body = CreateAppPasswordRequest,
    responses((status = 201, body = NewAppPassword), (status = 400, body = ErrorBody)))]
pub async fn create_app_password(
    State(identity): State<Identity>,
    principal: Principal,
    Json(body): Json<CreateAppPasswordRequest>,
) -> Result<(StatusCode, AxumJson<NewAppPassword>)> {
    Ok((StatusCode::CREATED, AxumJson(identity.create_app_password(&principal, body).await?)))
}

#[utoipa::path(get, path = "/api/auth/app-passwords", tag = "auth", responses((status = 200, body = Vec<AppPassword>)))]
pub async fn list_app_passwords(
    State(identity): State<Identity>,
    principal: Principal,
) -> Result<AxumJson<Vec<AppPassword>>> {
    Ok(AxumJson(identity.list_app_passwords(&principal).await?))
}

#[utoipa::path(delete, path = "/api/auth/app-passwords/{id}", tag = "auth", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_app_password(
    State(identity): State<Identity>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    identity.delete_app_password(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
