//! Account flows over HTTP: password reset, email verification, invitations, email change.

use axum::Json as AxumJson;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use oppidum_core::error::ErrorBody;
use oppidum_core::extract::Json;
use oppidum_core::{Error, Principal};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Client;
use crate::Identity;
use crate::model::User;
use crate::service::{AcceptInvitationRequest, Invitation, InviteRequest};

type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotRequest {
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// From the reset or set-password link.
    #[schema(min_length = 1)]
    pub token: String,
    #[schema(value_type = crate::shapes::NewPassword)]
    pub new_password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    #[schema(min_length = 1)]
    pub token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailChangeRequest {
    #[schema(value_type = oppidum_core::email::EmailAddress)]
    pub new_email: String,
    pub password: String,
}

/// Sends a reset link when the account exists; always 202, so addresses cannot be probed.
#[utoipa::path(post, path = "/api/auth/password/forgot", tag = "auth", request_body = ForgotRequest,
    responses((status = 202), (status = 429, body = ErrorBody)))]
pub async fn forgot_password(
    State(identity): State<Identity>,
    Client(client): Client,
    Json(body): Json<ForgotRequest>,
) -> Result<StatusCode> {
    identity.forgot_password(&body.email, &client).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Sets a new password with a reset or set-password token; every session ends.
#[utoipa::path(post, path = "/api/auth/password/reset", tag = "auth", request_body = ResetRequest,
    responses((status = 204), (status = 400, description = "`invalid_token` or `weak_password`", body = ErrorBody)))]
pub async fn reset_password(
    State(identity): State<Identity>,
    Client(client): Client,
    Json(body): Json<ResetRequest>,
) -> Result<StatusCode> {
    identity.reset_password(&body.token, body.new_password, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Confirms the email address with the token sent to it.
#[utoipa::path(post, path = "/api/auth/verify-email", tag = "auth", request_body = TokenRequest,
    responses((status = 204), (status = 400, body = ErrorBody)))]
pub async fn verify_email(State(identity): State<Identity>, Json(body): Json<TokenRequest>) -> Result<StatusCode> {
    identity.verify_email(&body.token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a new verification link.
#[utoipa::path(post, path = "/api/auth/verify-email/resend", tag = "auth",
    responses((status = 202), (status = 409, description = "`already_verified`", body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn resend_verification(State(identity): State<Identity>, principal: Principal) -> Result<StatusCode> {
    identity.resend_verification(&principal).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Invites an address to the organization with a role (`members.manage`).
#[utoipa::path(post, path = "/api/orgs/{id}/invitations", tag = "orgs", params(("id" = Uuid, Path)), request_body = InviteRequest,
    responses((status = 201, body = Invitation), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn invite(
    State(identity): State<Identity>,
    principal: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<InviteRequest>,
) -> Result<(StatusCode, AxumJson<Invitation>)> {
    Ok((StatusCode::CREATED, AxumJson(identity.invite(&principal, id, body).await?)))
}

/// Accepts an invitation, creating the account when there is none.
#[utoipa::path(post, path = "/api/auth/invitations/accept", tag = "auth", request_body = AcceptInvitationRequest,
    responses((status = 200, body = User), (status = 400, body = ErrorBody)))]
pub async fn accept_invitation(
    State(identity): State<Identity>,
    Client(client): Client,
    Json(body): Json<AcceptInvitationRequest>,
) -> Result<AxumJson<User>> {
    Ok(AxumJson(identity.accept_invitation(body, &client).await?))
}

/// Asks to change the account's address; a link goes to the new one.
#[utoipa::path(post, path = "/api/auth/email", tag = "auth", request_body = EmailChangeRequest,
    responses((status = 202), (status = 403, description = "`wrong_password`", body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody)))]
pub async fn request_email_change(
    State(identity): State<Identity>,
    principal: Principal,
    Json(body): Json<EmailChangeRequest>,
) -> Result<StatusCode> {
    identity.request_email_change(&principal, &body.new_email, body.password).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Confirms an address change with the token sent to the new address.
#[utoipa::path(post, path = "/api/auth/email/confirm", tag = "auth", request_body = TokenRequest,
    responses((status = 200, body = User), (status = 400, body = ErrorBody)))]
pub async fn confirm_email_change(
    State(identity): State<Identity>,
    Json(body): Json<TokenRequest>,
) -> Result<AxumJson<User>> {
    Ok(AxumJson(identity.confirm_email_change(&body.token).await?))
}
