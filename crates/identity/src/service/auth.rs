//! Sign-up, sign-in, refresh-token rotation with reuse detection, sign-out, password change,
//! sessions and switching organization.

use oppidum_core::Principal;
use oppidum_core::config::Registration;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Identity, normalize_email, normalize_name};
use crate::audit::Outcome;
use crate::cache::Change;
use crate::error::{IdentityError, Result};
use crate::model::{
    ChangePasswordRequest, ClientInfo, LoginRequest, LoginResponse, Me, RefreshRequest, RegisterRequest, Session,
    TokenResponse, User,
};
use crate::password::{self, Verified};
use crate::{repo, tokens};

/// A new access token for the same session (`switch-org`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccessTokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
}

fn ip_key(client: &ClientInfo) -> String {
    client.ip.clone().unwrap_or_else(|| "unknown".into())
}

impl Identity {
    /// Creates an account in the root organization, when registration is open.
    pub async fn register(&self, request: RegisterRequest, client: &ClientInfo) -> Result<TokenResponse> {
        if self.config.registration != Registration::Open {
            return Err(IdentityError::Forbidden(
                "registration_closed",
                "Registration is closed; ask an administrator for an account.".into(),
            ));
        }
        self.limits.register_ip.check(&ip_key(client))?;
        let email = normalize_email(&request.email)?;
        let name = normalize_name(&request.name, "name")?;
        password::validate(&request.password)?;
        let root =
            repo::root_org(&self.db).await?.ok_or_else(|| IdentityError::Internal("no root organization".into()))?;
        let hash = password::hash(request.password).await?;
        let now = self.now();
        let user = User {
            id: Uuid::now_v7(),
            email,
            name,
            password_hash: Some(hash),
            home_org_id: root.id,
            instance_admin: false,
            disabled: false,
            token_version: 1,
            locale: None,
            created_at: now,
            updated_at: now,
            last_login_at: Some(now),
            email_verified_at: None,
        };
        let mut tx = self.db.begin().await?;
        if let Err(err) = repo::create_user(&mut tx, &user, "member").await {
            return Err(if err.is_unique_violation() {
                IdentityError::Conflict("email_taken", "An account with this email already exists.".into())
            } else {
                err.into()
            });
        }
        if root.require_verified_email {
            // Created, but no session until the address is confirmed.
            tx.commit().await?;
            self.send_verification(&user).await?;
            let mut event = Self::event_from(client, "auth.register", Outcome::Success);
            event.actor_id = Some(user.id);
            self.record(self.about_user(event, user.id).await).await;
            return Err(IdentityError::Forbidden(
                "email_not_verified",
                "Account created. Confirm your email address with the link we sent, then sign in.".into(),
            ));
        }
        let response = self.open_session(tx, user, root.id, client, vec!["pwd".into()]).await?;
        self.send_verification(&response.user).await?;
        let mut event = Self::event_from(client, "auth.register", Outcome::Success);
        event.actor_id = Some(response.user.id);
        self.record(self.about_user(event, response.user.id).await).await;
        Ok(response)
    }

    /// Signs in with email and password.
    pub async fn login(&self, request: LoginRequest, client: &ClientInfo) -> Result<LoginResponse> {
        self.limits.login_ip.check(&ip_key(client))?;
        let email = request.email.trim().to_lowercase();
        self.limits.login_account.check(&email)?;
        let user = repo::get_user_by_email(&self.db, &email).await?;
        let stored = user.as_ref().and_then(|u| u.password_hash.clone());
        let verified = password::verify(request.password.clone(), stored).await?;
        let mut event = Self::event_from(client, "auth.login", Outcome::Failure);
        event.details = serde_json::json!({ "email": email });
        let known = user.as_ref().map(|u| u.id);
        let Some(user) = user.filter(|_| verified != Verified::No) else {
            let event = match known {
                Some(id) => self.about_user(event, id).await,
                None => event,
            };
            self.record(event).await;
            return Err(IdentityError::InvalidCredentials);
        };
        event.actor_id = Some(user.id);
        if user.disabled {
            event.outcome = Outcome::Denied;
            self.record(self.about_user(event, user.id).await).await;
            return Err(IdentityError::Forbidden("account_disabled", "This account is disabled.".into()));
        }
        if user.email_verified_at.is_none()
            && let Some(home) = repo::get_org(&self.db, user.home_org_id).await?
            && home.require_verified_email
        {
            event.outcome = Outcome::Denied;
            event.details["reason"] = serde_json::json!("email_not_verified");
            self.record(self.about_user(event, user.id).await).await;
            return Err(IdentityError::Forbidden(
                "email_not_verified",
                "Confirm your email address first: follow the link we sent you.".into(),
            ));
        }
        let now = self.now();
        if verified == Verified::YesRehash {
            let upgraded = password::hash(request.password).await?;
            repo::set_password(&self.db, user.id, &upgraded, false, now).await?;
        }
        let org = match request.org_id {
            Some(org_id) => {
                let access = self.access(user.id, user.instance_admin).await?;
                self.visible_org(&access, org_id).await?.id
            }
            None => user.home_org_id,
        };
        if let Some(challenge) = self.mfa_challenge(&user, org, client).await? {
            event.outcome = Outcome::Success;
            event.details["mfa"] = serde_json::json!("required");
            self.record(self.about_user(event, user.id).await).await;
            return Ok(LoginResponse::Mfa(challenge));
        }
        repo::touch_login(&self.db, user.id, now).await?;
        self.notify_new_device(&user, client).await;
        let tx = self.db.begin().await?;
        let response = self.open_session(tx, user, org, client, vec!["pwd".into()]).await?;
        event.outcome = Outcome::Success;
        self.record(self.about_user(event, response.user.id).await).await;
        Ok(LoginResponse::Tokens(Box::new(response)))
    }

    /// Tells the user when their account is used from a device (user agent) it has not seen.
    pub(crate) async fn notify_new_device(&self, user: &User, client: &ClientInfo) {
        let Some(agent) = client.user_agent.as_deref() else { return };
        let counts: Result<(i64, i64), _> = self
            .db
            .query(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN user_agent = $2 THEN 1 ELSE 0 END), 0) FROM sessions \
                 WHERE user_id = $1",
            )
            .bind(user.id)
            .bind(agent)
            .fetch_one()
            .await;
        let Ok((sessions, known)) = counts else { return };
        if sessions == 0 || known > 0 {
            return;
        }
        let vars = serde_json::json!({
            "name": user.name,
            "ip": client.ip.clone().unwrap_or_else(|| "unknown".into()),
            "user_agent": agent.chars().take(200).collect::<String>(),
            "at": self.now().format("%Y-%m-%d %H:%M UTC").to_string(),
        });
        if let Err(err) = self
            .mailer
            .send_template(Some(user.home_org_id), &user.email, "new_device", user.locale.as_deref(), &vars)
            .await
        {
            tracing::error!(error = %err, "could not queue the new-device notice");
        }
    }

    pub(crate) async fn open_session(
        &self,
        mut tx: oppidum_store::Tx,
        user: User,
        org: Uuid,
        client: &ClientInfo,
        amr: Vec<String>,
    ) -> Result<TokenResponse> {
        let now = self.now();
        let session = Session {
            id: Uuid::now_v7(),
            user_id: user.id,
            org_id: org,
            ip: client.ip.clone(),
            user_agent: client.user_agent.as_ref().map(|ua| ua.chars().take(400).collect()),
            created_at: now,
            last_used_at: now,
            expires_at: self.refresh_expiry(),
            revoked_at: None,
            amr: oppidum_store::Json(amr),
        };
        let (refresh_token, hash) = tokens::new_refresh_token();
        repo::insert_session(&mut tx, &session, &hash).await?;
        tx.commit().await?;
        let access_token = self.access_token(&user, session.id, org, &session.amr.0)?;
        Ok(self.token_response(access_token, refresh_token, user))
    }

    fn token_response(&self, access_token: String, refresh_token: String, user: User) -> TokenResponse {
        TokenResponse {
            access_token,
            refresh_token,
            token_type: "Bearer",
            expires_in: self.config.access_token_ttl_secs,
            user,
        }
    }

    /// Rotates a refresh token. Presenting one that was already rotated revokes the session.
    pub async fn refresh(&self, request: RefreshRequest, client: &ClientInfo) -> Result<TokenResponse> {
        self.limits.refresh_ip.check(&ip_key(client))?;
        let now = self.now();
        let old = tokens::hash_token(request.refresh_token.trim());
        let (session_id, used_at) =
            repo::find_refresh(&self.db, &old).await?.ok_or(IdentityError::InvalidRefreshToken)?;
        if used_at.is_some() {
            self.revoke_for_reuse(session_id, client).await?;
            return Err(IdentityError::RefreshTokenReused);
        }
        let session = repo::get_session(&self.db, session_id).await?.ok_or(IdentityError::InvalidRefreshToken)?;
        if session.revoked_at.is_some() || session.expires_at <= now {
            return Err(IdentityError::InvalidRefreshToken);
        }
        let user = repo::get_user(&self.db, session.user_id).await?.ok_or(IdentityError::InvalidRefreshToken)?;
        if user.disabled {
            return Err(IdentityError::InvalidRefreshToken);
        }
        let (refresh_token, new) = tokens::new_refresh_token();
        if !repo::rotate_refresh(&self.db, session.id, &old, &new, now, self.refresh_expiry()).await? {
            // Lost a race with another use of the same token: that is reuse too.
            self.revoke_for_reuse(session_id, client).await?;
            return Err(IdentityError::RefreshTokenReused);
        }
        let access_token = self.access_token(&user, session.id, session.org_id, &session.amr.0)?;
        Ok(self.token_response(access_token, refresh_token, user))
    }

    async fn revoke_for_reuse(&self, session: Uuid, client: &ClientInfo) -> Result<()> {
        let revoked = repo::revoke_session(&self.db, session, "refresh_token_reused", self.now()).await?;
        if revoked > 0 {
            tracing::warn!(%session, "refresh token reused; session revoked");
        }
        if let Some(found) = repo::get_session(&self.db, session).await? {
            self.auth_changed(Change::User(found.user_id)).await;
            let mut event = Self::event_from(client, "auth.refresh_reuse", Outcome::Failure);
            event.actor_id = Some(found.user_id);
            event.details = serde_json::json!({ "session_id": session });
            self.record(self.about_user(event, found.user_id).await).await;
        }
        Ok(())
    }

    /// Ends the principal's session.
    pub async fn logout(&self, principal: &Principal) -> Result<()> {
        if let Some(session) = principal.session_id() {
            repo::revoke_session(&self.db, session, "logout", self.now()).await?;
            self.auth_changed(Change::User(principal.user_id)).await;
            let event = Self::event_by(principal, "auth.logout", Outcome::Success);
            self.record(self.about_user(event, principal.user_id).await).await;
        }
        Ok(())
    }

    /// The principal's user, organization and permissions.
    pub async fn me(&self, principal: &Principal) -> Result<Me> {
        // One statement (one round trip on PostgreSQL) for both; which one is missing, if any,
        // is read apart.
        let (user, org) = match repo::get_user_and_org(&self.db, principal.user_id, principal.org_id).await? {
            Some(repo::UserAndOrg(user, org)) => (user, org),
            None => {
                let user = repo::get_user(&self.db, principal.user_id).await?;
                let org = repo::get_org(&self.db, principal.org_id).await?;
                (user.ok_or(IdentityError::NotFound("user"))?, org.ok_or(IdentityError::NotFound("organization"))?)
            }
        };
        Ok(Me { user, org, permissions: principal.permissions.clone(), session_id: principal.session_id() })
    }

    /// Changes the password: bumps the token version (every access token dies), revokes every
    /// other session, and hands the current session fresh tokens.
    pub async fn change_password(
        &self,
        principal: &Principal,
        request: ChangePasswordRequest,
        _client: &ClientInfo,
    ) -> Result<TokenResponse> {
        if principal.impersonator.is_some() {
            return Err(IdentityError::Forbidden(
                "impersonation_forbidden",
                "Not while impersonating: the user must do this themselves.".into(),
            ));
        }
        let session = principal.session_id().ok_or_else(|| {
            IdentityError::Forbidden("session_required", "Only a signed-in user can change their password.".into())
        })?;
        self.limits.login_account.check(&principal.user_id.to_string())?;
        let user = repo::get_user(&self.db, principal.user_id).await?.ok_or(IdentityError::NotFound("user"))?;
        if password::verify(request.current_password, user.password_hash.clone()).await? == Verified::No {
            let event = Self::event_by(principal, "auth.password_change", Outcome::Failure);
            self.record(self.about_user(event, user.id).await).await;
            return Err(IdentityError::Forbidden("wrong_password", "The current password is wrong.".into()));
        }
        password::validate(&request.new_password)?;
        let hash = password::hash(request.new_password).await?;
        let now = self.now();
        repo::set_password(&self.db, user.id, &hash, true, now).await?;
        repo::revoke_sessions_of(&self.db, user.id, Some(session), "password_changed", now).await?;
        self.auth_changed(Change::User(user.id)).await;
        let (refresh_token, new) = tokens::new_refresh_token();
        repo::replace_refresh(&self.db, session, &new, now).await?;
        let user = repo::get_user(&self.db, user.id).await?.ok_or(IdentityError::NotFound("user"))?;
        let event = Self::event_by(principal, "auth.password_change", Outcome::Success);
        self.record(self.about_user(event, user.id).await).await;
        let amr = repo::get_session(&self.db, session).await?.map(|s| s.amr.0).unwrap_or_default();
        let access_token = self.access_token(&user, session, principal.org_id, &amr)?;
        Ok(self.token_response(access_token, refresh_token, user))
    }

    /// The principal's live sessions.
    pub async fn sessions(&self, principal: &Principal) -> Result<Vec<Session>> {
        Ok(repo::active_sessions(&self.db, principal.user_id, self.now()).await?)
    }

    /// Revokes one of the principal's own sessions; another user's is "not found".
    pub async fn revoke_session(&self, principal: &Principal, id: Uuid) -> Result<()> {
        match repo::get_session(&self.db, id).await? {
            Some(session) if session.user_id == principal.user_id && session.revoked_at.is_none() => {
                repo::revoke_session(&self.db, id, "revoked_by_user", self.now()).await?;
                self.auth_changed(Change::User(principal.user_id)).await;
                let mut event = Self::event_by(principal, "auth.session_revoke", Outcome::Success);
                event.details = serde_json::json!({ "session_id": id });
                self.record(self.about_user(event, principal.user_id).await).await;
                Ok(())
            }
            _ => Err(IdentityError::NotFound("session")),
        }
    }

    /// Moves the session to another organization the user can see; returns a new access token.
    pub async fn switch_org(&self, principal: &Principal, org_id: Uuid) -> Result<AccessTokenResponse> {
        let session = principal.session_id().ok_or_else(|| {
            IdentityError::Forbidden("session_required", "Only a signed-in session can switch organization.".into())
        })?;
        let access = self.access_of(principal).await?;
        let org = self.visible_org(&access, org_id).await?;
        repo::set_session_org(&self.db, session, org.id).await?;
        let amr = repo::get_session(&self.db, session).await?.map(|s| s.amr.0).unwrap_or_default();
        let user = repo::get_user(&self.db, principal.user_id).await?.ok_or(IdentityError::NotFound("user"))?;
        Ok(AccessTokenResponse {
            access_token: self.access_token(&user, session, org.id, &amr)?,
            token_type: "Bearer",
            expires_in: self.config.access_token_ttl_secs,
        })
    }
}
