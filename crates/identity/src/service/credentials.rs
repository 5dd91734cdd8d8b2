//! Credentials other than passwords: organization API keys for machines (`Authorization: Bearer
//! oak_…`, a fixed subset of permissions on one organization's subtree) and app passwords for
//! desktop and mobile clients (HTTP Basic on protocol endpoints only, with scopes). Secrets are
//! shown once and stored as SHA-256 hashes, compared in constant time.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use oppidum_core::Principal;
use oppidum_core::principal::Credential;
use oppidum_store::Json;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Access, Grant, Identity, normalize_name};
use crate::audit::Outcome;
use crate::cache::{Change, Key};
use crate::error::{IdentityError, Result};
use crate::model::ClientInfo;
use crate::permissions::API_KEYS_MANAGE;
use crate::service::in_org;
use crate::{permissions, repo, tokens};

/// Scopes an app password may carry: the protocols it unlocks.
pub const APP_PASSWORD_SCOPES: [&str; 3] = ["dav", "mail", "sync"];

/// An API key as listed (never its secret).
#[derive(Debug, Clone, Serialize, oppidum_store::FromRow, ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    pub org_id: Uuid,
    pub created_by: Uuid,
    pub name: String,
    #[schema(value_type = Vec<String>)]
    pub permissions: Json<Vec<String>>,
    #[serde(skip)]
    pub secret_hash: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A new API key: `key` is shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NewApiKey {
    #[serde(flatten)]
    pub api_key: ApiKey,
    pub key: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    #[schema(value_type = crate::shapes::DisplayName)]
    pub name: String,
    pub permissions: BTreeSet<String>,
    /// Days until it expires, 1 to 3650; none: never.
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<u32>,
}

/// A protocol an app password unlocks (the OpenAPI shape of [`APP_PASSWORD_SCOPES`]).
#[derive(Debug, Clone, Copy, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum AppPasswordScope {
    Dav,
    Mail,
    Sync,
}

/// An app password as listed (never its secret).
#[derive(Debug, Clone, Serialize, oppidum_store::FromRow, ToSchema)]
pub struct AppPassword {
    pub id: Uuid,
    #[serde(skip)]
    pub user_id: Uuid,
    pub name: String,
    #[schema(value_type = Vec<String>)]
    pub scopes: Json<Vec<String>>,
    #[serde(skip)]
    pub secret_hash: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A new app password: `password` is shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NewAppPassword {
    #[serde(flatten)]
    pub app_password: AppPassword,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAppPasswordRequest {
    /// Where it is used: "Thunderbird on the laptop".
    #[schema(value_type = crate::shapes::DisplayName)]
    pub name: String,
    /// Protocols it unlocks: `dav`, `mail`, `sync`.
    #[schema(min_items = 1, value_type = Vec<AppPasswordScope>)]
    pub scopes: BTreeSet<String>,
}

fn hashes_match(stored: &str, candidate: &str) -> bool {
    stored.as_bytes().ct_eq(candidate.as_bytes()).into()
}

/// `xxxx-xxxx-xxxx-xxxx-xxxx-xxxx`: 24 characters of a-z and 2-9 (about 120 bits), easy to type.
fn new_app_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let bytes: [u8; 24] = rand::random();
    let chars: Vec<char> = bytes.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect();
    chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

impl Identity {
    pub async fn create_api_key(
        &self,
        principal: &Principal,
        org_id: Uuid,
        request: CreateApiKeyRequest,
    ) -> Result<NewApiKey> {
        let name = normalize_name(&request.name, "key name")?;
        if request.expires_in_days.is_some_and(|d| !(1..=3650).contains(&d)) {
            return Err(IdentityError::Invalid("invalid_expiry", "`expires_in_days` must be 1 to 3650.".into()));
        }
        let (org, access) = self.authorize(principal, org_id, API_KEYS_MANAGE).await?;
        if let Some(bad) = request.permissions.iter().find(|p| !permissions::is_valid(p)) {
            return Err(IdentityError::Invalid("unknown_permission", format!("`{bad}` is not a permission.")));
        }
        if !access.instance_admin && !request.permissions.is_subset(&access.grantable_on(&org)) {
            return Err(IdentityError::Forbidden(
                "privilege_escalation",
                "A key cannot hold permissions you do not hold.".into(),
            ));
        }
        let id = Uuid::now_v7();
        let secret = tokens::random_token("");
        let key = format!("oak_{}_{secret}", id.simple());
        let now = self.now();
        let api_key = ApiKey {
            id,
            org_id: org.id,
            created_by: principal.user_id,
            name,
            permissions: Json(request.permissions.into_iter().collect()),
            secret_hash: tokens::hash_token(&secret),
            created_at: now,
            last_used_at: None,
            expires_at: request.expires_in_days.map(|d| now + Duration::days(i64::from(d))),
        };
        self.db
            .query(
                "INSERT INTO api_keys (id, org_id, created_by, name, permissions, secret_hash, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(api_key.id)
            .bind(api_key.org_id)
            .bind(api_key.created_by)
            .bind(api_key.name.as_str())
            .bind(serde_json::Value::from(api_key.permissions.0.clone()))
            .bind(api_key.secret_hash.as_str())
            .bind(now)
            .bind(api_key.expires_at)
            .execute()
            .await?;
        let mut event = Self::event_by(principal, "api_key.create", Outcome::Success);
        event.target = Some(("api_key", id.to_string()));
        event.details = serde_json::json!({ "name": api_key.name, "permissions": api_key.permissions.0 });
        self.record(in_org(event, &org)).await;
        Ok(NewApiKey { api_key, key })
    }

    pub async fn list_api_keys(&self, principal: &Principal, org_id: Uuid) -> Result<Vec<ApiKey>> {
        let (org, _) = self.authorize(principal, org_id, API_KEYS_MANAGE).await?;
        Ok(self
            .db
            .query(
                "SELECT id, org_id, created_by, name, permissions, secret_hash, created_at, last_used_at, expires_at \
                 FROM api_keys WHERE org_id = $1 ORDER BY created_at",
            )
            .bind(org.id)
            .fetch_all()
            .await?)
    }

    pub async fn delete_api_key(&self, principal: &Principal, org_id: Uuid, key_id: Uuid) -> Result<()> {
        let (org, _) = self.authorize(principal, org_id, API_KEYS_MANAGE).await?;
        let deleted = self
            .db
            .query("DELETE FROM api_keys WHERE id = $1 AND org_id = $2")
            .bind(key_id)
            .bind(org.id)
            .execute()
            .await?;
        if deleted == 0 {
            return Err(IdentityError::NotFound("API key"));
        }
        self.auth_changed(Change::All).await;
        let mut event = Self::event_by(principal, "api_key.delete", Outcome::Success);
        event.target = Some(("api_key", key_id.to_string()));
        self.record(in_org(event, &org)).await;
        Ok(())
    }

    async fn get_api_key(&self, id: Uuid) -> Result<Option<ApiKey>> {
        Ok(self
            .db
            .query(
                "SELECT id, org_id, created_by, name, permissions, secret_hash, created_at, last_used_at, expires_at \
                 FROM api_keys WHERE id = $1",
            )
            .bind(id)
            .fetch_optional()
            .await?)
    }

    /// Authenticates `oak_<id>_<secret>`.
    pub async fn authenticate_api_key(&self, token: &str, client: &ClientInfo) -> Result<Principal> {
        self.cached(Key::of(&["api_key", token]), client, self.verify_api_key(token)).await
    }

    async fn verify_api_key(&self, token: &str) -> Result<(Principal, Option<i64>)> {
        let invalid = || IdentityError::InvalidToken("The API key is not valid.".into());
        let rest = token.strip_prefix("oak_").ok_or_else(invalid)?;
        let (id, secret) = rest.split_once('_').ok_or_else(invalid)?;
        let id: Uuid = id.parse().map_err(|_| invalid())?;
        let key = self.get_api_key(id).await?.ok_or_else(invalid)?;
        let now = self.now();
        if !hashes_match(&key.secret_hash, &tokens::hash_token(secret)) || key.expires_at.is_some_and(|e| e <= now) {
            return Err(invalid());
        }
        let creator = repo::get_user(&self.db, key.created_by).await?.ok_or_else(invalid)?;
        if creator.disabled {
            return Err(invalid());
        }
        // Last use at minute precision: no write per request.
        if key.last_used_at.is_none_or(|t| now - t > Duration::minutes(1)) {
            self.db.query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1").bind(id).bind(now).execute().await?;
        }
        let principal = Principal {
            user_id: key.created_by,
            org_id: key.org_id,
            permissions: key.permissions.0.iter().cloned().collect(),
            role: None,
            instance_admin: false,
            credential: Credential::ApiKey { key_id: id },
            impersonator: None,
            ip: None,
            user_agent: None,
        };
        Ok((principal, key.expires_at.map(|e| e.timestamp())))
    }

    /// The access of an API key: its permissions on its organization's subtree, nothing else.
    pub(crate) async fn api_key_access(&self, key_id: Uuid) -> Result<Access> {
        let key = self.get_api_key(key_id).await?.ok_or(IdentityError::NotFound("API key"))?;
        let org = repo::get_org(&self.db, key.org_id).await?.ok_or(IdentityError::NotFound("organization"))?;
        Ok(Access {
            instance_admin: false,
            grants: vec![Grant::new(org.path, String::new(), key.permissions.0.into_iter().collect())],
        })
    }

    pub async fn create_app_password(
        &self,
        principal: &Principal,
        request: CreateAppPasswordRequest,
    ) -> Result<NewAppPassword> {
        if principal.impersonator.is_some() {
            return Err(IdentityError::Forbidden(
                "impersonation_forbidden",
                "Not while impersonating: the user must do this themselves.".into(),
            ));
        }
        let Some(_) = principal.session_id() else {
            return Err(IdentityError::Forbidden("session_required", "Sign in to create app passwords.".into()));
        };
        let name = normalize_name(&request.name, "app password name")?;
        if request.scopes.is_empty() {
            return Err(IdentityError::Invalid("invalid_scopes", "Give at least one scope.".into()));
        }
        if let Some(bad) = request.scopes.iter().find(|s| !APP_PASSWORD_SCOPES.contains(&s.as_str())) {
            return Err(IdentityError::Invalid("invalid_scopes", format!("`{bad}` is not a scope (dav, mail, sync).")));
        }
        let password = new_app_password();
        let now = self.now();
        let app_password = AppPassword {
            id: Uuid::now_v7(),
            user_id: principal.user_id,
            name,
            scopes: Json(request.scopes.into_iter().collect()),
            secret_hash: tokens::hash_token(&password),
            created_at: now,
            last_used_at: None,
        };
        self.db
            .query(
                "INSERT INTO app_passwords (id, user_id, name, scopes, secret_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(app_password.id)
            .bind(app_password.user_id)
            .bind(app_password.name.as_str())
            .bind(serde_json::Value::from(app_password.scopes.0.clone()))
            .bind(app_password.secret_hash.as_str())
            .bind(now)
            .execute()
            .await?;
        let mut event = Self::event_by(principal, "app_password.create", Outcome::Success);
        event.details = serde_json::json!({ "name": app_password.name, "scopes": app_password.scopes.0 });
        self.record(self.about_user(event, principal.user_id).await).await;
        Ok(NewAppPassword { app_password, password })
    }

    async fn app_passwords_of(&self, user: Uuid) -> Result<Vec<AppPassword>> {
        Ok(self
            .db
            .query(
                "SELECT id, user_id, name, scopes, secret_hash, created_at, last_used_at FROM app_passwords \
                 WHERE user_id = $1 ORDER BY created_at",
            )
            .bind(user)
            .fetch_all()
            .await?)
    }

    pub async fn list_app_passwords(&self, principal: &Principal) -> Result<Vec<AppPassword>> {
        self.app_passwords_of(principal.user_id).await
    }

    pub async fn delete_app_password(&self, principal: &Principal, id: Uuid) -> Result<()> {
        let deleted = self
            .db
            .query("DELETE FROM app_passwords WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(principal.user_id)
            .execute()
            .await?;
        if deleted == 0 {
            return Err(IdentityError::NotFound("app password"));
        }
        self.auth_changed(Change::User(principal.user_id)).await;
        let event = Self::event_by(principal, "app_password.delete", Outcome::Success);
        self.record(self.about_user(event, principal.user_id).await).await;
        Ok(())
    }

    /// HTTP Basic for protocol endpoints (WebDAV, CalDAV, CardDAV, IMAP, SMTP): email and an app
    /// password carrying `scope`. Account passwords are not accepted here.
    pub async fn authenticate_basic(
        &self,
        email: &str,
        password: &str,
        scope: &str,
        client: &ClientInfo,
    ) -> Result<Principal> {
        let ip = client.ip.as_deref().unwrap_or("unknown");
        self.limits.basic_ip.check_blocked(ip)?;
        let key = Key::of(&["basic", scope, email, password]);
        self.cached(key, client, self.verify_basic(email, password, scope, client)).await
    }

    async fn verify_basic(
        &self,
        email: &str,
        password: &str,
        scope: &str,
        client: &ClientInfo,
    ) -> Result<(Principal, Option<i64>)> {
        let ip = client.ip.as_deref().unwrap_or("unknown");
        let email = email.trim().to_lowercase();
        let user = repo::get_user_by_email(&self.db, &email).await?;
        let candidate = tokens::hash_token(password.trim());
        let matching = match &user {
            Some(user) => {
                self.app_passwords_of(user.id).await?.into_iter().find(|p| hashes_match(&p.secret_hash, &candidate))
            }
            None => None,
        };
        let (Some(user), Some(app_password)) = (user, matching) else {
            let mut event = Self::event_from(client, "auth.basic", Outcome::Failure);
            event.details = serde_json::json!({ "email": email, "scope": scope });
            self.record(event).await;
            self.limits.basic_ip.record_failure(ip)?;
            return Err(IdentityError::InvalidCredentials);
        };
        if user.disabled || !app_password.scopes.0.iter().any(|s| s == scope) {
            return Err(IdentityError::Forbidden(
                "scope_denied",
                format!("This app password does not allow `{scope}`."),
            ));
        }
        let now = self.now();
        if app_password.last_used_at.is_none_or(|t| now - t > Duration::minutes(1)) {
            self.db
                .query("UPDATE app_passwords SET last_used_at = $2 WHERE id = $1")
                .bind(app_password.id)
                .bind(now)
                .execute()
                .await?;
        }
        let access = self.access(user.id, user.instance_admin).await?;
        let home = repo::get_org(&self.db, user.home_org_id).await?.ok_or(IdentityError::NotFound("organization"))?;
        let principal = Principal {
            user_id: user.id,
            org_id: home.id,
            permissions: access.permissions_on(&home),
            role: access.role_on(&home),
            instance_admin: user.instance_admin,
            credential: Credential::AppPassword { id: app_password.id, scopes: app_password.scopes.0 },
            impersonator: None,
            ip: None,
            user_agent: None,
        };
        Ok((principal, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_app_passwords_are_typable_and_distinct() {
        let a = new_app_password();
        assert_eq!(a.len(), 29);
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_lowercase() || c.is_ascii_digit()));
        assert_ne!(a, new_app_password());
    }
}

#[cfg(test)]
mod basic_auth_tests {
    use std::sync::Arc;

    use oppidum_core::config::IdentityConfig;
    use oppidum_core::time::SystemClock;
    use oppidum_core::vault::Vault;
    use oppidum_store::Db;

    use super::*;

    async fn identity() -> (Identity, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let db = Db::connect(&url, &Default::default()).await.expect("db");
        db.migrate().await.expect("migrate");
        let clock: Arc<dyn oppidum_core::time::Clock> = Arc::new(SystemClock);
        let bus = oppidum_store::EventBus::new(Uuid::now_v7(), None);
        let queue = oppidum_store::jobs::JobQueue::new(db.clone(), clock.clone(), bus, 3);
        let mailer = oppidum_mail::Mailer::new(db.clone(), queue, Default::default(), clock.clone(), false);
        let identity = Identity::new(
            db,
            Vault::from_master_key(&"k".repeat(40)),
            clock,
            IdentityConfig::default(),
            "oppidum".into(),
            mailer,
            "http://localhost".into(),
        );
        identity.ensure_ready().await.expect("ready");
        (identity, dir)
    }

    #[tokio::test]
    async fn basic_auth_takes_scoped_app_passwords_only() {
        let (identity, _dir) = identity().await;
        let root = identity.ensure_ready().await.expect("root");
        let hash = crate::password::hash("account password!".into()).await.expect("hash");
        let user = identity
            .insert_user("u@example.org".into(), "U".into(), Some(hash), root.id, "member", false)
            .await
            .expect("user");
        let principal = Principal {
            user_id: user.id,
            org_id: root.id,
            permissions: BTreeSet::new(),
            role: None,
            instance_admin: false,
            credential: Credential::Session { session_id: Uuid::now_v7() },
            impersonator: None,
            ip: None,
            user_agent: None,
        };
        let created = identity
            .create_app_password(
                &principal,
                CreateAppPasswordRequest { name: "DAVx5".into(), scopes: ["dav".to_owned()].into() },
            )
            .await
            .expect("create");
        let client = ClientInfo { ip: Some("127.0.0.1".into()), user_agent: None };
        let ok = identity.authenticate_basic("U@example.org", &created.password, "dav", &client).await.expect("dav");
        assert_eq!(ok.user_id, user.id);
        assert!(matches!(ok.credential, Credential::AppPassword { .. }));
        assert!(matches!(
            identity.authenticate_basic("u@example.org", &created.password, "mail", &client).await,
            Err(IdentityError::Forbidden("scope_denied", _))
        ));
        assert!(matches!(
            identity.authenticate_basic("u@example.org", "account password!", "dav", &client).await,
            Err(IdentityError::InvalidCredentials)
        ));
        assert!(matches!(
            identity.authenticate_basic("nobody@example.org", &created.password, "dav", &client).await,
            Err(IdentityError::InvalidCredentials)
        ));
        let listed = identity.list_app_passwords(&principal).await.expect("list");
        assert!(listed[0].last_used_at.is_some(), "last use recorded");
        identity.delete_app_password(&principal, created.app_password.id).await.expect("delete");
        assert!(identity.authenticate_basic("u@example.org", &created.password, "dav", &client).await.is_err());
        let invalid_scope = identity
            .create_app_password(
                &principal,
                CreateAppPasswordRequest { name: "x".into(), scopes: ["root".to_owned()].into() },
            )
            .await;
        assert!(matches!(invalid_scope, Err(IdentityError::Invalid("invalid_scopes", _))));
    }
}
