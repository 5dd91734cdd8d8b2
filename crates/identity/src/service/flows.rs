//! Account flows that go through mail: password reset, set-password for accounts created by an
//! administrator, email verification, invitations and email change. Each uses a single-use token
//! (256 random bits, stored hashed) with an expiry; a token is consumed atomically, so it works
//! once even under concurrent use.

use chrono::{DateTime, Duration, Utc};
use oppidum_core::Principal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Identity, normalize_email, normalize_name};
use crate::audit::Outcome;
use crate::cache::Change;
use crate::error::{IdentityError, Result};
use crate::model::{ClientInfo, Org, User};
use crate::password::{self, Verified};
use crate::permissions::MEMBERS_MANAGE;
use crate::service::in_org;
use crate::{repo, tokens};

#[derive(Debug, Clone, oppidum_store::FromRow)]
struct ActionToken {
    kind: String,
    user_id: Option<Uuid>,
    org_id: Option<Uuid>,
    email: Option<String>,
    role: Option<String>,
    created_by: Option<Uuid>,
}

/// An invitation as returned to the inviter (the token goes only to the invitee's mailbox).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Invitation {
    pub email: String,
    pub org_id: Uuid,
    pub role: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    #[schema(value_type = oppidum_core::email::EmailAddress)]
    pub email: String,
    #[schema(value_type = crate::shapes::RoleName)]
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitationRequest {
    #[schema(min_length = 1)]
    pub token: String,
    /// For a new account.
    #[schema(value_type = Option<crate::shapes::DisplayName>)]
    pub name: Option<String>,
    /// For a new account.
    #[schema(value_type = Option<crate::shapes::NewPassword>)]
    pub password: Option<String>,
}

fn invalid_token() -> IdentityError {
    IdentityError::Invalid("invalid_token", "The link is invalid, expired or already used.".into())
}

impl Identity {
    #[allow(clippy::too_many_arguments)]
    async fn issue_token(
        &self,
        kind: &str,
        user: Option<Uuid>,
        org: Option<Uuid>,
        email: Option<&str>,
        role: Option<&str>,
        created_by: Option<Uuid>,
        ttl: Duration,
    ) -> Result<String> {
        let token = tokens::random_token("oat_");
        let hash = tokens::hash_token(&token);
        let now = self.now();
        self.db
            .query(
                "INSERT INTO action_tokens (token_hash, kind, user_id, org_id, email, role, created_by, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(hash)
            .bind(kind)
            .bind(user)
            .bind(org)
            .bind(email)
            .bind(role)
            .bind(created_by)
            .bind(now)
            .bind(now + ttl)
            .execute()
            .await?;
        Ok(token)
    }

    /// Uses a token of one of `kinds`, once.
    async fn consume_token(&self, kinds: (&str, &str), token: &str) -> Result<ActionToken> {
        let hash = tokens::hash_token(token.trim());
        let now = self.now();
        let used = self
            .db
            .query(
                "UPDATE action_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
                 AND (kind = $3 OR kind = $4)",
            )
            .bind(hash.as_str())
            .bind(now)
            .bind(kinds.0)
            .bind(kinds.1)
            .execute()
            .await?;
        if used == 0 {
            return Err(invalid_token());
        }
        self.db
            .query("SELECT kind, user_id, org_id, email, role, created_by FROM action_tokens WHERE token_hash = $1")
            .bind(hash)
            .fetch_optional()
            .await?
            .ok_or_else(invalid_token)
    }

    fn link(&self, path: &str, token: &str) -> String {
        format!("{}{path}?token={token}", self.base_url.trim_end_matches('/'))
    }

    fn locale_of(&self, user: &User) -> Option<String> {
        user.locale.clone()
    }

    async fn mail_user(&self, user: &User, to: &str, template: &str, vars: serde_json::Value) {
        let locale = self.locale_of(user);
        if let Err(err) =
            self.mailer.send_template(Some(user.home_org_id), to, template, locale.as_deref(), &vars).await
        {
            tracing::error!(error = %err, template, "could not queue account mail");
        }
    }

    /// Sends a verification link to the user's address.
    pub(crate) async fn send_verification(&self, user: &User) -> Result<()> {
        let token =
            self.issue_token("verify", Some(user.id), None, Some(&user.email), None, None, Duration::hours(24)).await?;
        let vars = serde_json::json!({ "name": user.name, "link": self.link("/auth/verify-email", &token) });
        self.mail_user(user, &user.email, "verify_email", vars).await;
        Ok(())
    }

    /// Sends a set-password link to an account an administrator created.
    pub(crate) async fn send_welcome(&self, user: &User, org: &Org, by: Uuid) -> Result<()> {
        let token =
            self.issue_token("set_password", Some(user.id), None, None, None, Some(by), Duration::days(7)).await?;
        let vars = serde_json::json!({
            "name": user.name, "org_name": org.name, "link": self.link("/auth/set-password", &token),
        });
        self.mail_user(user, &user.email, "welcome", vars).await;
        Ok(())
    }

    /// Asks for a password-reset link. Answers the same whether the account exists or not.
    pub async fn forgot_password(&self, email: &str, client: &ClientInfo) -> Result<()> {
        self.limits.recovery_ip.check(client.ip.as_deref().unwrap_or("unknown"))?;
        let email = email.trim().to_lowercase();
        self.limits.recovery_account.check(&email)?;
        let mut event = Self::event_from(client, "auth.password_reset_request", Outcome::Success);
        event.details = serde_json::json!({ "email": email });
        match repo::get_user_by_email(&self.db, &email).await? {
            Some(user) if !user.disabled => {
                let token =
                    self.issue_token("reset", Some(user.id), None, None, None, None, Duration::hours(1)).await?;
                let vars = serde_json::json!({ "name": user.name, "link": self.link("/auth/reset-password", &token) });
                self.mail_user(&user, &user.email, "password_reset", vars).await;
                event.actor_id = Some(user.id);
                self.record(self.about_user(event, user.id).await).await;
            }
            _ => {
                event.outcome = Outcome::Failure;
                self.record(event).await;
            }
        }
        Ok(())
    }

    /// Sets a password with a reset or set-password token: every session ends, the address counts
    /// as verified (the link reached it), and after a reset the user is told.
    pub async fn reset_password(&self, token: &str, new_password: String, client: &ClientInfo) -> Result<()> {
        password::validate(&new_password)?;
        let found = self.consume_token(("reset", "set_password"), token).await?;
        let user_id = found.user_id.ok_or_else(invalid_token)?;
        let user = repo::get_user(&self.db, user_id).await?.ok_or_else(invalid_token)?;
        let hash = password::hash(new_password).await?;
        let now = self.now();
        repo::set_password(&self.db, user.id, &hash, true, now).await?;
        self.db
            .query("UPDATE users SET email_verified_at = COALESCE(email_verified_at, $2) WHERE id = $1")
            .bind(user.id)
            .bind(now)
            .execute()
            .await?;
        repo::revoke_sessions_of(&self.db, user.id, None, "password_reset", now).await?;
        self.auth_changed(Change::User(user.id)).await;
        if found.kind == "reset" {
            self.mail_user(&user, &user.email, "password_changed", serde_json::json!({ "name": user.name })).await;
        }
        let mut event = Self::event_from(client, "auth.password_reset", Outcome::Success);
        event.actor_id = Some(user.id);
        event.details = serde_json::json!({ "kind": found.kind });
        self.record(self.about_user(event, user.id).await).await;
        Ok(())
    }

    /// Confirms an address with the link sent to it.
    pub async fn verify_email(&self, token: &str) -> Result<()> {
        let found = self.consume_token(("verify", "verify"), token).await?;
        let user =
            repo::get_user(&self.db, found.user_id.ok_or_else(invalid_token)?).await?.ok_or_else(invalid_token)?;
        if found.email.as_deref() != Some(user.email.as_str()) {
            // The address changed since: this link proves nothing about the new one.
            return Err(invalid_token());
        }
        self.db
            .query("UPDATE users SET email_verified_at = $2 WHERE id = $1")
            .bind(user.id)
            .bind(self.now())
            .execute()
            .await?;
        let mut event = crate::audit::Event::new("auth.email_verified", Outcome::Success);
        event.actor_id = Some(user.id);
        self.record(self.about_user(event, user.id).await).await;
        Ok(())
    }

    /// Sends a new verification link (rate limited per user).
    pub async fn resend_verification(&self, principal: &Principal) -> Result<()> {
        self.limits.recovery_account.check(&format!("verify:{}", principal.user_id))?;
        let user = repo::get_user(&self.db, principal.user_id).await?.ok_or(IdentityError::NotFound("user"))?;
        if user.email_verified_at.is_some() {
            return Err(IdentityError::Conflict("already_verified", "This address is already verified.".into()));
        }
        self.send_verification(&user).await
    }

    /// Invites `email` to an organization with a role (`members.manage`, grantable role).
    pub async fn invite(&self, principal: &Principal, org_id: Uuid, request: InviteRequest) -> Result<Invitation> {
        let email = normalize_email(&request.email)?;
        let (org, access) = self.authorize(principal, org_id, MEMBERS_MANAGE).await?;
        self.check_grantable(&access, &org, &request.role).await?;
        let ttl = Duration::days(7);
        let token = self
            .issue_token("invite", None, Some(org.id), Some(&email), Some(&request.role), Some(principal.user_id), ttl)
            .await?;
        let inviter = repo::get_user(&self.db, principal.user_id).await?.map(|u| u.name).unwrap_or_default();
        let vars = serde_json::json!({
            "inviter": inviter, "org_name": org.name, "role": request.role,
            "link": self.link("/auth/accept-invitation", &token),
        });
        if let Err(err) = self.mailer.send_template(Some(org.id), &email, "invitation", None, &vars).await {
            tracing::error!(error = %err, "could not queue the invitation");
        }
        let mut event = Self::event_by(principal, "member.invite", Outcome::Success);
        event.details = serde_json::json!({ "email": email, "role": request.role });
        self.record(in_org(event, &org)).await;
        Ok(Invitation { email, org_id: org.id, role: request.role, expires_at: self.now() + ttl })
    }

    /// Accepts an invitation: an existing account joins; otherwise one is created (name and
    /// password required), its address verified by the link itself.
    pub async fn accept_invitation(&self, request: AcceptInvitationRequest, client: &ClientInfo) -> Result<User> {
        if let Some(password) = &request.password {
            password::validate(password)?;
        }
        let name = request.name.as_deref().map(|n| normalize_name(n, "name")).transpose()?;
        let found = self.consume_token(("invite", "invite"), &request.token).await?;
        let (Some(org_id), Some(email), Some(role)) = (found.org_id, found.email, found.role) else {
            return Err(invalid_token());
        };
        let org = repo::get_org(&self.db, org_id).await?.ok_or_else(invalid_token)?;
        let now = self.now();
        let user = match repo::get_user_by_email(&self.db, &email).await? {
            Some(user) => {
                repo::upsert_member(&self.db, org.id, user.id, &role, now).await?;
                self.auth_changed(Change::User(user.id)).await;
                user
            }
            None => {
                let (Some(name), Some(password)) = (name, request.password) else {
                    return Err(IdentityError::Invalid(
                        "invalid_request_body",
                        "A new account needs `name` and `password`.".into(),
                    ));
                };
                let hash = password::hash(password).await?;
                let user = self.insert_user(email, name, Some(hash), org.id, &role, false).await?;
                self.db
                    .query("UPDATE users SET email_verified_at = $2 WHERE id = $1")
                    .bind(user.id)
                    .bind(now)
                    .execute()
                    .await?;
                user
            }
        };
        let mut event = Self::event_from(client, "member.invitation_accepted", Outcome::Success);
        event.actor_id = Some(user.id);
        event.target = Some(("user", user.id.to_string()));
        event.details = serde_json::json!({ "role": role, "invited_by": found.created_by });
        self.record(in_org(event, &org)).await;
        repo::get_user(&self.db, user.id).await?.ok_or(IdentityError::NotFound("user"))
    }

    /// Starts an email change: the password is checked and a link goes to the new address.
    pub async fn request_email_change(&self, principal: &Principal, new_email: &str, password: String) -> Result<()> {
        if principal.impersonator.is_some() {
            return Err(IdentityError::Forbidden(
                "impersonation_forbidden",
                "Not while impersonating: the user must do this themselves.".into(),
            ));
        }
        let new_email = normalize_email(new_email)?;
        self.limits.recovery_account.check(&format!("email:{}", principal.user_id))?;
        let user = repo::get_user(&self.db, principal.user_id).await?.ok_or(IdentityError::NotFound("user"))?;
        if password::verify(password, user.password_hash.clone()).await? == Verified::No {
            return Err(IdentityError::Forbidden("wrong_password", "The password is wrong.".into()));
        }
        if repo::get_user_by_email(&self.db, &new_email).await?.is_some() {
            return Err(IdentityError::Conflict("email_taken", "An account with this email already exists.".into()));
        }
        let token = self
            .issue_token("email_change", Some(user.id), None, Some(&new_email), None, None, Duration::hours(24))
            .await?;
        let vars = serde_json::json!({
            "name": user.name, "new_email": new_email, "link": self.link("/auth/confirm-email", &token),
        });
        self.mail_user(&user, &new_email, "email_change", vars).await;
        let mut event = Self::event_by(principal, "user.email_change_request", Outcome::Success);
        event.details = serde_json::json!({ "new_email": new_email });
        self.record(self.about_user(event, user.id).await).await;
        Ok(())
    }

    /// Confirms an email change from the link sent to the new address.
    pub async fn confirm_email_change(&self, token: &str) -> Result<User> {
        let found = self.consume_token(("email_change", "email_change"), token).await?;
        let (Some(user_id), Some(email)) = (found.user_id, found.email) else { return Err(invalid_token()) };
        let now = self.now();
        let changed = self
            .db
            .query("UPDATE users SET email = $2, email_verified_at = $3, updated_at = $3 WHERE id = $1")
            .bind(user_id)
            .bind(email.as_str())
            .bind(now)
            .execute()
            .await;
        match changed {
            Err(err) if err.is_unique_violation() => {
                return Err(IdentityError::Conflict(
                    "email_taken",
                    "An account with this email already exists.".into(),
                ));
            }
            other => {
                other?;
            }
        }
        // App passwords sign in with the address.
        self.auth_changed(Change::User(user_id)).await;
        let mut event = crate::audit::Event::new("user.email_changed", Outcome::Success);
        event.actor_id = Some(user_id);
        event.details = serde_json::json!({ "email": email });
        self.record(self.about_user(event, user_id).await).await;
        repo::get_user(&self.db, user_id).await?.ok_or(IdentityError::NotFound("user"))
    }
}
