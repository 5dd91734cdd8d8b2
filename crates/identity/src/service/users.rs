//! Administration of users, scoped to the organizations the principal administers, and the
//! first-administrator bootstrap.

use chrono::Duration;
use oppidum_core::Principal;
use uuid::Uuid;

use super::{Identity, normalize_email, normalize_name};
use crate::audit::Outcome;
use crate::cache::Change;
use crate::error::{IdentityError, Result};
use crate::model::{CreateUserRequest, Page, UpdateUserRequest, User};
use crate::permissions::{USERS_MANAGE, USERS_READ};
use crate::{password, repo, tokens};

/// Largest page of users.
const MAX_PAGE: i64 = 200;

impl Identity {
    /// Users whose home organization the principal can read, by id order.
    pub async fn list_users(
        &self,
        principal: &Principal,
        search: Option<&str>,
        cursor: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Page<User>> {
        let access = self.access_of(principal).await?;
        let roots = access.subtrees_with(Some(USERS_READ));
        if roots.is_empty() {
            return Err(IdentityError::Forbidden("forbidden", "You need the `users.read` permission.".into()));
        }
        let after = match cursor {
            Some(c) => Some(
                c.parse::<Uuid>()
                    .map_err(|_| IdentityError::Invalid("invalid_cursor", "The cursor is not valid.".into()))?,
            ),
            None => None,
        };
        let limit = limit.unwrap_or(50).clamp(1, MAX_PAGE);
        let search = search.map(str::trim).filter(|s| !s.is_empty());
        let mut tx = self.db.begin_scoped(&roots).await?;
        let mut items = repo::list_users_in(&mut tx, &roots, search, after, limit + 1).await?;
        tx.commit().await?;
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(usize::try_from(limit).unwrap_or(50));
            items.last().map(|u| u.id.to_string())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// A user the principal may see: themselves, or one living in an organization where they hold
    /// `permission`. Others are "not found".
    async fn user_for(&self, principal: &Principal, id: Uuid, permission: &str) -> Result<User> {
        let user = repo::get_user(&self.db, id).await?.ok_or(IdentityError::NotFound("user"))?;
        let access = self.access_of(principal).await?;
        let home = repo::get_org(&self.db, user.home_org_id).await?.ok_or(IdentityError::NotFound("user"))?;
        if !access.can_see(&home) && user.id != principal.user_id {
            return Err(IdentityError::NotFound("user"));
        }
        if user.id != principal.user_id && !access.permissions_on(&home).contains(permission) {
            // Visible org but no right over its users: still not theirs to see.
            return Err(if access.permissions_on(&home).contains(USERS_READ) {
                IdentityError::Forbidden("forbidden", format!("You need the `{permission}` permission."))
            } else {
                IdentityError::NotFound("user")
            });
        }
        Ok(user)
    }

    pub async fn get_user(&self, principal: &Principal, id: Uuid) -> Result<User> {
        self.user_for(principal, id, USERS_READ).await
    }

    /// Creates a user living in `org_id` with `role` there.
    pub async fn create_user(&self, principal: &Principal, request: CreateUserRequest) -> Result<User> {
        let email = normalize_email(&request.email)?;
        let name = normalize_name(&request.name, "name")?;
        if let Some(password) = &request.password {
            password::validate(password)?;
        }
        let (org, access) = self.authorize(principal, request.org_id, USERS_MANAGE).await?;
        self.check_grantable(&access, &org, &request.role).await?;
        let password_hash = match request.password {
            Some(p) => Some(password::hash(p).await?),
            None => None,
        };
        let user = self.insert_user(email, name, password_hash, org.id, &request.role, false).await?;
        self.send_welcome(&user, &org, principal.user_id).await?;
        let mut event = Self::event_by(principal, "user.create", Outcome::Success);
        event.details = serde_json::json!({ "email": user.email, "role": request.role });
        self.record(self.about_user(event, user.id).await).await;
        Ok(user)
    }

    /// Inserts a user without permission checks (CLI and bootstrap).
    pub async fn insert_user(
        &self,
        email: String,
        name: String,
        password_hash: Option<String>,
        org: Uuid,
        role: &str,
        instance_admin: bool,
    ) -> Result<User> {
        let now = self.now();
        let user = User {
            id: Uuid::now_v7(),
            email,
            name,
            password_hash,
            home_org_id: org,
            instance_admin,
            disabled: false,
            token_version: 1,
            locale: None,
            created_at: now,
            updated_at: now,
            last_login_at: None,
            email_verified_at: None,
        };
        let mut tx = self.db.begin().await?;
        if let Err(err) = repo::create_user(&mut tx, &user, role).await {
            return Err(if err.is_unique_violation() {
                IdentityError::Conflict("email_taken", "An account with this email already exists.".into())
            } else {
                err.into()
            });
        }
        tx.commit().await?;
        Ok(user)
    }

    /// Renames, disables or enables a user. Users may rename themselves; disabling needs
    /// `users.manage` and ends the user's sessions at once.
    pub async fn update_user(&self, principal: &Principal, id: Uuid, request: UpdateUserRequest) -> Result<User> {
        let name = request.name.as_deref().map(|n| normalize_name(n, "name")).transpose()?;
        let locale = request.locale.as_deref().map(str::trim).map(str::to_owned);
        if let Some(locale) = &locale
            && !matches!(locale.as_str(), "en" | "fr")
        {
            return Err(IdentityError::Invalid("invalid_locale", "Supported locales: en, fr.".into()));
        }
        let managing = request.disabled.is_some() || id != principal.user_id;
        let user = self.user_for(principal, id, if managing { USERS_MANAGE } else { USERS_READ }).await?;
        if managing && user.id == principal.user_id && request.disabled == Some(true) {
            return Err(IdentityError::Conflict("cannot_disable_self", "You cannot disable your own account.".into()));
        }
        let now = self.now();
        repo::update_user(&self.db, user.id, name.as_deref(), request.disabled, locale.as_deref(), now).await?;
        if request.disabled == Some(true) {
            repo::revoke_sessions_of(&self.db, user.id, None, "account_disabled", now).await?;
        }
        if request.disabled.is_some() {
            self.auth_changed(Change::User(user.id)).await;
        }
        let mut event = Self::event_by(principal, "user.update", Outcome::Success);
        event.details = serde_json::json!({ "name": name, "disabled": request.disabled, "locale": locale });
        self.record(self.about_user(event, user.id).await).await;
        repo::get_user(&self.db, user.id).await?.ok_or(IdentityError::NotFound("user"))
    }

    pub async fn delete_user(&self, principal: &Principal, id: Uuid) -> Result<()> {
        if id == principal.user_id {
            return Err(IdentityError::Conflict("cannot_delete_self", "You cannot delete your own account.".into()));
        }
        let user = self.user_for(principal, id, USERS_MANAGE).await?;
        if user.instance_admin && !principal.instance_admin {
            return Err(IdentityError::Forbidden("forbidden", "Only instance administrators delete them.".into()));
        }
        let mut event = Self::event_by(principal, "user.delete", Outcome::Success);
        event.details = serde_json::json!({ "email": user.email });
        let event = self.about_user(event, user.id).await;
        repo::delete_user(&self.db, user.id).await?;
        self.auth_changed(Change::User(user.id)).await;
        self.record(event).await;
        Ok(())
    }

    /// A one-time token that creates the first instance administrator, valid for 24 hours, or
    /// `None` when one exists already.
    pub async fn bootstrap_token(&self) -> Result<Option<String>> {
        if repo::count_instance_admins(&self.db).await? > 0 {
            return Ok(None);
        }
        let token = tokens::random_token("obt_");
        let now = self.now();
        self.db
            .query("INSERT INTO bootstrap_tokens (token_hash, created_at, expires_at) VALUES ($1, $2, $3)")
            .bind(tokens::hash_token(&token))
            .bind(now)
            .bind(now + Duration::hours(24))
            .execute()
            .await?;
        Ok(Some(token))
    }

    /// Uses a bootstrap token: creates the first instance administrator, owner of the root.
    pub async fn bootstrap(&self, token: &str, email: &str, name: &str, password: String) -> Result<User> {
        let email = normalize_email(email)?;
        let name = normalize_name(name, "name")?;
        password::validate(&password)?;
        if repo::count_instance_admins(&self.db).await? > 0 {
            return Err(IdentityError::Conflict("already_bootstrapped", "An administrator already exists.".into()));
        }
        let now = self.now();
        let used = self
            .db
            .query("UPDATE bootstrap_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2")
            .bind(tokens::hash_token(token.trim()))
            .bind(now)
            .execute()
            .await?;
        if used == 0 {
            return Err(IdentityError::Forbidden(
                "invalid_bootstrap_token",
                "The bootstrap token is not valid.".into(),
            ));
        }
        let root = self.ensure_ready().await?;
        let hash = password::hash(password).await?;
        let user = self.insert_user(email, name, Some(hash), root.id, "owner", true).await?;
        let mut event = crate::audit::Event::new("auth.bootstrap", Outcome::Success);
        event.actor_id = Some(user.id);
        self.record(self.about_user(event, user.id).await).await;
        Ok(user)
    }
}
