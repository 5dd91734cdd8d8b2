//! `/api/auth/2fa/*` and the administrators' 2FA reset.

use axum::Json as AxumJson;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use oppidum_core::error::ErrorBody;
use oppidum_core::extract::Json;
use oppidum_core::{Error, Principal};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::Client;
use crate::Identity;
use crate::model::LoginResponse;
use crate::service::{BackupCodes, MfaVerifyRequest, TotpSetup};

type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    pub code: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaTokenRequest {
    pub mfa_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableRequest {
    pub password: String,
    pub code: String,
}

/// Tokens, plus the backup codes when this completed an enrolment.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaVerifyResponse {
    #[serde(flatten)]
    pub login: LoginResponse,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_codes: Option<Vec<String>>,
}

/// Starts TOTP enrolment: secret, `otpauth://` URI and QR code.
#[utoipa::path(post, path = "/api/auth/2fa/totp/setup", tag = "auth", responses((status = 200, body = TotpSetup), (status = 409, body = ErrorBody)))]
pub async fn totp_setup(State(identity): State<Identity>, principal: Principal) -> Result<AxumJson<TotpSetup>> {
    Ok(AxumJson(identity.totp_setup(&principal).await?))
}

/// Confirms enrolment with a first code; returns ten single-use backup codes (shown once).
#[utoipa::path(post, path = "/api/auth/2fa/totp/confirm", tag = "auth", request_body = CodeRequest,
    responses((status = 200, body = BackupCodes), (status = 400, description = "`invalid_code`", body = ErrorBody)))]
pub async fn totp_confirm(
    State(identity): State<Identity>,
    principal: Principal,
    Client(client): Client,
    Json(body): Json<CodeRequest>,
) -> Result<AxumJson<BackupCodes>> {
    Ok(AxumJson(identity.totp_confirm(&principal, &body.code, &client).await?))
}

/// Completes a login that needs a second factor.
#[utoipa::path(post, path = "/api/auth/2fa/verify", tag = "auth", request_body = MfaVerifyRequest,
    responses((status = 200, body = MfaVerifyResponse), (status = 400, description = "`invalid_code` or `invalid_mfa_token`", body = ErrorBody),
        (status = 429, description = "Locked after repeated wrong codes", body = ErrorBody)))]
pub async fn verify(
    State(identity): State<Identity>,
    Client(client): Client,
    Json(body): Json<MfaVerifyRequest>,
) -> Result<AxumJson<MfaVerifyResponse>> {
    let (login, backup) = identity.mfa_verify(body, &client).await?;
    Ok(AxumJson(MfaVerifyResponse { login, backup_codes: backup.map(|b| b.backup_codes) }))
}

/// Emails a one-time code (6 digits, 10 minutes) for a pending login.
#[utoipa::path(post, path = "/api/auth/2fa/email-code", tag = "auth", request_body = MfaTokenRequest,
    responses((status = 202), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn email_code(State(identity): State<Identity>, Json(body): Json<MfaTokenRequest>) -> Result<StatusCode> {
    identity.send_email_code(&body.mfa_token).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Starts the enrolment a login requires (user who must use 2FA and has none yet).
#[utoipa::path(post, path = "/api/auth/2fa/enroll", tag = "auth", request_body = MfaTokenRequest,
    responses((status = 200, body = TotpSetup), (status = 400, body = ErrorBody)))]
pub async fn enroll(
    State(identity): State<Identity>,
    Json(body): Json<MfaTokenRequest>,
) -> Result<AxumJson<TotpSetup>> {
    Ok(AxumJson(identity.mfa_enroll(&body.mfa_token).await?))
}

/// Turns 2FA off (password and a current code).
#[utoipa::path(post, path = "/api/auth/2fa/disable", tag = "auth", request_body = DisableRequest,
    responses((status = 204), (status = 403, body = ErrorBody),
        (status = 409, description = "`mfa_disabled`: two-factor authentication is already off", body = ErrorBody)))]
pub async fn disable(
    State(identity): State<Identity>,
    principal: Principal,
    Client(client): Client,
    Json(body): Json<DisableRequest>,
) -> Result<StatusCode> {
    identity.mfa_disable(&principal, body.password, &body.code, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Resets a user's 2FA (`users.manage`); their sessions end.
#[utoipa::path(post, path = "/api/users/{id}/2fa/reset", tag = "users", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn reset(State(identity): State<Identity>, principal: Principal, Path(id): Path<Uuid>) -> Result<StatusCode> {
    identity.mfa_reset(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
