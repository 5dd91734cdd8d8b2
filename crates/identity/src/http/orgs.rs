//! `/api/orgs/*`: the organization tree, members and roles.

use axum::Json as AxumJson;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use oppidum_core::error::ErrorBody;
use oppidum_core::extract::Json;
use oppidum_core::{Error, Principal};
use uuid::Uuid;

use crate::Identity;
use crate::model::{
    AddMemberRequest, CreateOrgRequest, Member, Org, Role, RoleRequest, UpdateMemberRequest, UpdateOrgRequest,
    UpdateRoleRequest,
};

type Result<T> = std::result::Result<T, Error>;

/// Organizations you can see: the subtrees of your memberships.
#[utoipa::path(get, path = "/api/orgs", tag = "orgs", responses((status = 200, body = Vec<Org>), (status = 401, body = ErrorBody)))]
pub async fn list_orgs(State(identity): State<Identity>, principal: Principal) -> Result<AxumJson<Vec<Org>>> {
    Ok(AxumJson(identity.list_orgs(&principal).await?))
}

/// Creates a child of an organization you manage (`orgs.manage`).
#[utoipa::path(post, path = "/api/orgs", tag = "orgs", request_body = CreateOrgRequest,
    responses((status = 201, body = Org), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create_org(
    State(identity): State<Identity>,
    principal: Principal,
    Json(body): Json<CreateOrgRequest>,
) -> Result<(StatusCode, AxumJson<Org>)> {
    Ok((StatusCode::CREATED, AxumJson(identity.create_org(&principal, body).await?)))
}

#[utoipa::path(get, path = "/api/orgs/{id}", tag = "orgs", params(("id" = Uuid, Path)),
    responses((status = 200, body = Org), (status = 404, body = ErrorBody)))]
pub async fn get_org(
    State(identity): State<Identity>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<AxumJson<Org>> {
    Ok(AxumJson(identity.get_org(&principal, id).await?))
}

#[utoipa::path(patch, path = "/api/orgs/{id}", tag = "orgs", params(("id" = Uuid, Path)), request_body = UpdateOrgRequest,
    responses((status = 200, body = Org), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_org(
    State(identity): State<Identity>,
    principal: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<UpdateOrgRequest>,
) -> Result<AxumJson<Org>> {
    Ok(AxumJson(identity.update_org(&principal, id, body).await?))
}

/// Deletes an empty organization (`orgs.manage` on its parent).
#[utoipa::path(delete, path = "/api/orgs/{id}", tag = "orgs", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 409, description = "`org_not_empty` or `root_org`", body = ErrorBody)))]
pub async fn delete_org(
    State(identity): State<Identity>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    identity.delete_org(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/orgs/{id}/members", tag = "orgs", params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<Member>), (status = 404, body = ErrorBody)))]
pub async fn list_members(
    State(identity): State<Identity>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<AxumJson<Vec<Member>>> {
    Ok(AxumJson(identity.list_members(&principal, id).await?))
}

/// Adds a user with a role (`members.manage`; you cannot grant more than you hold).
#[utoipa::path(post, path = "/api/orgs/{id}/members", tag = "orgs", params(("id" = Uuid, Path)), request_body = AddMemberRequest,
    responses((status = 201, body = Member), (status = 403, description = "`privilege_escalation`", body = ErrorBody)))]
pub async fn add_member(
    State(identity): State<Identity>,
    principal: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<AddMemberRequest>,
) -> Result<(StatusCode, AxumJson<Member>)> {
    Ok((StatusCode::CREATED, AxumJson(identity.add_member(&principal, id, body).await?)))
}

#[utoipa::path(patch, path = "/api/orgs/{id}/members/{user_id}", tag = "orgs",
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = UpdateMemberRequest,
    responses((status = 200, body = Member), (status = 404, body = ErrorBody)))]
pub async fn update_member(
    State(identity): State<Identity>,
    principal: Principal,
    Path((id, user_id)): Path<(Uuid, Uuid)>,
    Json(body): Json<UpdateMemberRequest>,
) -> Result<AxumJson<Member>> {
    Ok(AxumJson(identity.update_member(&principal, id, user_id, body).await?))
}

#[utoipa::path(delete, path = "/api/orgs/{id}/members/{user_id}", tag = "orgs",
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = 409, description = "`home_membership`", body = ErrorBody)))]
pub async fn remove_member(
    State(identity): State<Identity>,
    principal: Principal,
    Path((id, user_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    identity.remove_member(&principal, id, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Built-in roles and the custom roles defined here or on an ancestor.
#[utoipa::path(get, path = "/api/orgs/{id}/roles", tag = "orgs", params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<Role>), (status = 404, body = ErrorBody)))]
pub async fn list_roles(
    State(identity): State<Identity>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<AxumJson<Vec<Role>>> {
    Ok(AxumJson(identity.list_roles(&principal, id).await?))
}

/// Defines a custom role for this organization and its subtree (`roles.manage`).
#[utoipa::path(post, path = "/api/orgs/{id}/roles", tag = "orgs", params(("id" = Uuid, Path)), request_body = RoleRequest,
    responses((status = 201, body = Role), (status = 409, description = "`role_exists`", body = ErrorBody)))]
pub async fn create_role(
    State(identity): State<Identity>,
    principal: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<RoleRequest>,
) -> Result<(StatusCode, AxumJson<Role>)> {
    Ok((StatusCode::CREATED, AxumJson(identity.create_role(&principal, id, body).await?)))
}

#[utoipa::path(patch, path = "/api/orgs/{id}/roles/{role}", tag = "orgs",
    params(("id" = Uuid, Path), ("role" = String, Path)), request_body = UpdateRoleRequest,
    responses((status = 200, body = Role), (status = 403, description = "`builtin_role`", body = ErrorBody)))]
pub async fn update_role(
    State(identity): State<Identity>,
    principal: Principal,
    Path((id, role)): Path<(Uuid, String)>,
    Json(body): Json<UpdateRoleRequest>,
) -> Result<AxumJson<Role>> {
    Ok(AxumJson(identity.update_role(&principal, id, &role, body).await?))
}

#[utoipa::path(delete, path = "/api/orgs/{id}/roles/{role}", tag = "orgs",
    params(("id" = Uuid, Path), ("role" = String, Path)),
    responses((status = 204), (status = 409, description = "`role_in_use`", body = ErrorBody)))]
pub async fn delete_role(
    State(identity): State<Identity>,
    principal: Principal,
    Path((id, role)): Path<(Uuid, String)>,
) -> Result<StatusCode> {
    identity.delete_role(&principal, id, &role).await?;
    Ok(StatusCode::NO_CONTENT)
}
