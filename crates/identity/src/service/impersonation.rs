//! Impersonation: an administrator with `users.impersonate` on a user's organization acts as that
//! user for one hour. The token's `act` claim names the administrator, every audit entry carries
//! both identities, there is no chaining, no self-impersonation, and only an instance
//! administrator may impersonate another.

use chrono::Duration;
use oppidum_core::Principal;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{AccessTokenResponse, Identity};
use crate::audit::Outcome;
use crate::cache::Change;
use crate::error::{IdentityError, Result};
use crate::permissions::USERS_IMPERSONATE;
use crate::service::in_org;
use crate::{repo, tokens};

/// How long an impersonation lasts.
const TTL_MINUTES: i64 = 60;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImpersonateRequest {
    pub user_id: Uuid,
}

impl Identity {
    /// Starts acting as another user; returns a one-hour access token with an `act` claim.
    pub async fn impersonate(&self, principal: &Principal, target: Uuid) -> Result<AccessTokenResponse> {
        if principal.impersonator.is_some() {
            return Err(IdentityError::Forbidden("no_chaining", "An impersonation cannot impersonate again.".into()));
        }
        if principal.session_id().is_none() {
            return Err(IdentityError::Forbidden("session_required", "Sign in to impersonate.".into()));
        }
        if target == principal.user_id {
            return Err(IdentityError::Conflict("self_impersonation", "You are already yourself.".into()));
        }
        let user = repo::get_user(&self.db, target).await?.ok_or(IdentityError::NotFound("user"))?;
        let (org, _) = self.authorize(principal, user.home_org_id, USERS_IMPERSONATE).await.map_err(|e| match e {
            IdentityError::NotFound(_) => IdentityError::NotFound("user"),
            other => other,
        })?;
        if user.instance_admin && !principal.instance_admin {
            return Err(IdentityError::Forbidden(
                "forbidden",
                "Only an instance administrator may impersonate another.".into(),
            ));
        }
        if user.disabled {
            return Err(IdentityError::Conflict("account_disabled", "This account is disabled.".into()));
        }
        let now = self.now();
        let session = Uuid::now_v7();
        let expires_at = now + Duration::minutes(TTL_MINUTES);
        self.db
            .query(
                "INSERT INTO sessions (id, user_id, org_id, ip, user_agent, created_at, last_used_at, expires_at, amr, \
                 impersonator_id) VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9)",
            )
            .bind(session)
            .bind(user.id)
            .bind(user.home_org_id)
            .bind(principal.ip.clone())
            .bind(principal.user_agent.clone())
            .bind(now)
            .bind(expires_at)
            .bind(serde_json::json!(["imp"]))
            .bind(principal.user_id)
            .execute()
            .await?;
        let claims = tokens::Claims {
            iss: self.issuer.clone(),
            aud: self.config.audience.clone(),
            sub: user.id,
            sid: session,
            org: user.home_org_id,
            ver: user.token_version,
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            jti: tokens::new_jti(),
            amr: vec!["imp".into()],
            act: Some(tokens::Actor { sub: principal.user_id }),
        };
        let access_token = tokens::sign(&self.keys, &claims)?;
        let mut event = Self::event_by(principal, "auth.impersonate", Outcome::Success);
        event.target = Some(("user", user.id.to_string()));
        event.details = serde_json::json!({ "session_id": session });
        self.record(in_org(event, &org)).await;
        Ok(AccessTokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: u64::try_from(TTL_MINUTES * 60).unwrap_or(3_600),
        })
    }

    /// Ends the impersonation the principal is in.
    pub async fn exit_impersonation(&self, principal: &Principal) -> Result<()> {
        let (Some(_), Some(session)) = (principal.impersonator, principal.session_id()) else {
            return Err(IdentityError::Conflict("not_impersonating", "This session is not an impersonation.".into()));
        };
        repo::revoke_session(&self.db, session, "impersonation_ended", self.now()).await?;
        self.auth_changed(Change::User(principal.user_id)).await;
        let event = Self::event_by(principal, "auth.impersonate_exit", Outcome::Success);
        self.record(self.about_user(event, principal.user_id).await).await;
        Ok(())
    }
}
