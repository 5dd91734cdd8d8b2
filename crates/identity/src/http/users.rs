//! `/api/users/*`: administration of accounts.

use axum::Json as AxumJson;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use oppidum_core::error::ErrorBody;
use oppidum_core::extract::Json;
use oppidum_core::{Error, Principal};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::Identity;
use crate::model::{CreateUserRequest, Page, UpdateUserRequest, User};

type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListUsersQuery {
    /// Matches email or name.
    pub q: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<Uuid>)]
    pub cursor: Option<String>,
    /// 1 to 200, default 50.
    pub limit: Option<i64>,
}

/// Users living in organizations you administer (`users.read`).
#[utoipa::path(get, path = "/api/users", tag = "users", params(ListUsersQuery),
    responses((status = 200, body = Page<User>), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(identity): State<Identity>,
    principal: Principal,
    Query(query): Query<ListUsersQuery>,
) -> Result<AxumJson<Page<User>>> {
    let page = identity.list_users(&principal, query.q.as_deref(), query.cursor.as_deref(), query.limit).await?;
    Ok(AxumJson(page))
}

/// Creates a user in an organization you manage (`users.manage`).
#[utoipa::path(post, path = "/api/users", tag = "users", request_body = CreateUserRequest,
    responses((status = 201, body = User), (status = 409, description = "`email_taken`", body = ErrorBody)))]
pub async fn create_user(
    State(identity): State<Identity>,
    principal: Principal,
    Json(body): Json<CreateUserRequest>,
) -> Result<(StatusCode, AxumJson<User>)> {
    Ok((StatusCode::CREATED, AxumJson(identity.create_user(&principal, body).await?)))
}

#[utoipa::path(get, path = "/api/users/{id}", tag = "users", params(("id" = Uuid, Path)),
    responses((status = 200, body = User), (status = 404, body = ErrorBody)))]
pub async fn get_user(
    State(identity): State<Identity>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<AxumJson<User>> {
    Ok(AxumJson(identity.get_user(&principal, id).await?))
}

/// Renames, disables or enables a user; disabling ends their sessions at once.
#[utoipa::path(patch, path = "/api/users/{id}", tag = "users", params(("id" = Uuid, Path)), request_body = UpdateUserRequest,
    responses((status = 200, body = User), (status = 404, body = ErrorBody),
        (status = 409, description = "`cannot_disable_self`", body = ErrorBody)))]
pub async fn update_user(
    State(identity): State<Identity>,
    principal: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<UpdateUserRequest>,
) -> Result<AxumJson<User>> {
    Ok(AxumJson(identity.update_user(&principal, id, body).await?))
}

#[utoipa::path(delete, path = "/api/users/{id}", tag = "users", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "`cannot_delete_self`", body = ErrorBody)))]
pub async fn delete_user(
    State(identity): State<Identity>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    identity.delete_user(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
