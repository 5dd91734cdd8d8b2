//! `/api/auth/*` and `/.well-known/jwks.json`.

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
use crate::keys::JwkSet;
use crate::model::{
    ChangePasswordRequest, LoginRequest, LoginResponse, Me, RefreshRequest, RegisterRequest, Session, SwitchOrgRequest,
    TokenResponse, User,
};
use crate::service::AccessTokenResponse;

type Result<T> = std::result::Result<T, Error>;

/// Creates an account (when registration is open) and signs it in.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = TokenResponse), (status = 403, description = "`registration_closed`", body = ErrorBody),
        (status = 409, description = "`email_taken`", body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn register(
    State(identity): State<Identity>,
    Client(client): Client,
    Json(body): Json<RegisterRequest>,
) -> Result<(StatusCode, AxumJson<TokenResponse>)> {
    let tokens = identity.register(body, &client).await?;
    Ok((StatusCode::CREATED, AxumJson(tokens)))
}

/// Signs in with email and password.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, description = "Tokens, or `{mfa_required, mfa_token, methods}` when a second factor is needed", body = LoginResponse),
        (status = 401, description = "`invalid_credentials`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody)))]
pub async fn login(
    State(identity): State<Identity>,
    Client(client): Client,
    Json(body): Json<LoginRequest>,
) -> Result<AxumJson<LoginResponse>> {
    Ok(AxumJson(identity.login(body, &client).await?))
}

/// Exchanges a refresh token for new tokens; the old refresh token stops working. Presenting it
/// again revokes the whole session (`refresh_token_reused`).
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, description = "`invalid_refresh_token` or `refresh_token_reused`", body = ErrorBody)))]
pub async fn refresh(
    State(identity): State<Identity>,
    Client(client): Client,
    Json(body): Json<RefreshRequest>,
) -> Result<AxumJson<TokenResponse>> {
    Ok(AxumJson(identity.refresh(body, &client).await?))
}

/// Ends the current session.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(State(identity): State<Identity>, principal: Principal) -> Result<StatusCode> {
    identity.logout(&principal).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user, current organization and effective permissions.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth", responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
pub async fn me(State(identity): State<Identity>, principal: Principal) -> Result<AxumJson<Me>> {
    Ok(AxumJson(identity.me(&principal).await?))
}

/// Changes the password; every other session is revoked and this one gets new tokens.
#[utoipa::path(post, path = "/api/auth/password", tag = "auth", request_body = ChangePasswordRequest,
    responses((status = 200, body = TokenResponse), (status = 403, description = "`wrong_password`", body = ErrorBody)))]
pub async fn change_password(
    State(identity): State<Identity>,
    principal: Principal,
    Client(client): Client,
    Json(body): Json<ChangePasswordRequest>,
) -> Result<AxumJson<TokenResponse>> {
    Ok(AxumJson(identity.change_password(&principal, body, &client).await?))
}

/// The user's live sessions.
#[utoipa::path(get, path = "/api/auth/sessions", tag = "auth", responses((status = 200, body = Vec<Session>)))]
pub async fn list_sessions(State(identity): State<Identity>, principal: Principal) -> Result<AxumJson<Vec<Session>>> {
    Ok(AxumJson(identity.sessions(&principal).await?))
}

/// Revokes one of the user's sessions.
#[utoipa::path(delete, path = "/api/auth/sessions/{id}", tag = "auth", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_session(
    State(identity): State<Identity>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    identity.revoke_session(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Moves the session to another organization the user belongs to.
#[utoipa::path(post, path = "/api/auth/switch-org", tag = "auth", request_body = SwitchOrgRequest,
    responses((status = 200, body = AccessTokenResponse), (status = 404, body = ErrorBody)))]
pub async fn switch_org(
    State(identity): State<Identity>,
    principal: Principal,
    Json(body): Json<SwitchOrgRequest>,
) -> Result<AxumJson<AccessTokenResponse>> {
    Ok(AxumJson(identity.switch_org(&principal, body.org_id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BootstrapRequest {
    /// The one-time token printed by `oppidum serve` or `oppidum admin bootstrap`.
    #[schema(min_length = 1)]
    pub token: String,
    #[schema(value_type = oppidum_core::email::EmailAddress)]
    pub email: String,
    #[schema(value_type = crate::shapes::DisplayName)]
    pub name: String,
    #[schema(value_type = crate::shapes::NewPassword)]
    pub password: String,
}

/// Creates the first instance administrator with a one-time bootstrap token.
#[utoipa::path(post, path = "/api/auth/bootstrap", tag = "auth", request_body = BootstrapRequest,
    responses((status = 201, body = User), (status = 403, description = "`invalid_bootstrap_token`", body = ErrorBody),
        (status = 409, description = "`already_bootstrapped`", body = ErrorBody)))]
pub async fn bootstrap(
    State(identity): State<Identity>,
    Json(body): Json<BootstrapRequest>,
) -> Result<(StatusCode, AxumJson<User>)> {
    let user = identity.bootstrap(&body.token, &body.email, &body.name, body.password).await?;
    Ok((StatusCode::CREATED, AxumJson(user)))
}

/// The public keys that verify access tokens (RFC 7517).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth", responses((status = 200, body = JwkSet)))]
pub async fn jwks(State(identity): State<Identity>) -> AxumJson<JwkSet> {
    AxumJson(identity.keys.jwks())
}

/// Acts as another user for one hour (`users.impersonate`); the token's `act` claim names you.
#[utoipa::path(post, path = "/api/auth/impersonate", tag = "auth", request_body = crate::service::ImpersonateRequest,
    responses((status = 200, body = AccessTokenResponse), (status = 403, description = "`no_chaining` or `forbidden`", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn impersonate(
    State(identity): State<Identity>,
    principal: Principal,
    Json(body): Json<crate::service::ImpersonateRequest>,
) -> Result<AxumJson<AccessTokenResponse>> {
    Ok(AxumJson(identity.impersonate(&principal, body.user_id).await?))
}

/// Ends the current impersonation.
#[utoipa::path(post, path = "/api/auth/impersonate/exit", tag = "auth", responses((status = 204), (status = 409, body = ErrorBody)))]
pub async fn exit_impersonation(State(identity): State<Identity>, principal: Principal) -> Result<StatusCode> {
    identity.exit_impersonation(&principal).await?;
    Ok(StatusCode::NO_CONTENT)
}
