//! The identity service: every rule about who may do what lives here, taking a
//! [`Principal`] and returning [`Result`]. HTTP handlers only parse and map.

mod audit_log;
mod auth;
mod credentials;
mod flows;
mod impersonation;
mod mfa;
mod orgs;
#[cfg(test)]
mod rls_tests;
mod users;

pub use audit_log::{AuditPages, in_org};
pub use auth::AccessTokenResponse;
pub use credentials::{
    APP_PASSWORD_SCOPES, ApiKey, AppPassword, AppPasswordScope, CreateApiKeyRequest, CreateAppPasswordRequest,
    NewApiKey, NewAppPassword,
};
pub use flows::{AcceptInvitationRequest, Invitation, InviteRequest};
pub use impersonation::ImpersonateRequest;
pub use mfa::{BackupCodes, MfaVerifyRequest, TotpSetup};

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Duration, Utc};
use oppidum_core::config::IdentityConfig;
use oppidum_core::principal::Credential;
use oppidum_core::time::Clock;
use oppidum_core::vault::Vault;
use oppidum_core::{OrgAccess, Principal};
use oppidum_store::{Db, EventBus};
use uuid::Uuid;

use crate::cache::{AUTH_CHANGED, AuthCache, Change, Key};
use crate::error::{IdentityError, Result};
use crate::keys::Keys;
use crate::model::{Org, User};
use crate::ratelimit::Limiter;
use crate::{permissions, repo, tokens};

/// The identity service; cheap to clone.
#[derive(Clone)]
pub struct Identity(Arc<Inner>);

pub struct Inner {
    pub db: Db,
    pub keys: Keys,
    pub clock: Arc<dyn Clock>,
    pub config: IdentityConfig,
    pub issuer: String,
    /// Where links in mail point (`public_url`, or the listen address).
    pub base_url: String,
    pub mailer: oppidum_mail::Mailer,
    limits: Limits,
    /// Verified credentials and their principals (see [`crate::cache`]).
    cache: AuthCache,
    /// Where changes to principals are announced to the other nodes.
    events: OnceLock<EventBus>,
    /// Held while this node appends to the audit log (see [`Self::record`]).
    audit_turn: tokio::sync::Mutex<()>,
}

struct Limits {
    basic_ip: Limiter,
    recovery_ip: Limiter,
    recovery_account: Limiter,
    login_account: Limiter,
    login_ip: Limiter,
    register_ip: Limiter,
    refresh_ip: Limiter,
}

impl std::ops::Deref for Identity {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

/// What a user may do where: their grants (a role on an organization). A grant holds in full on
/// its own organization; below it, only its administrative permissions hold (see
/// [`permissions::inherited`]): a reseller's administrator manages its customers, while a plain
/// member of the root organization sees the root's directory, not every customer's.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub instance_admin: bool,
    grants: Vec<Grant>,
}

#[derive(Debug, Clone)]
struct Grant {
    path: String,
    /// The role of the membership this grant comes from.
    role: String,
    permissions: BTreeSet<String>,
    /// The part of `permissions` that holds on descendant organizations too.
    inherited: BTreeSet<String>,
}

impl Grant {
    fn new(path: String, role: String, permissions: BTreeSet<String>) -> Self {
        let inherited = permissions::inherited(&permissions);
        Self { path, role, permissions, inherited }
    }

    /// Whether this grant says anything about the organization at `path`.
    fn reaches(&self, path: &str) -> bool {
        path == self.path || (!self.inherited.is_empty() && path.starts_with(&self.path))
    }

    /// The permissions it gives on the organization at `path`.
    fn on(&self, path: &str) -> &BTreeSet<String> {
        if path == self.path { &self.permissions } else { &self.inherited }
    }
}

impl Access {
    /// Whether `org` is an organization the user is a member of, or below one where they hold an
    /// administrative permission.
    pub fn can_see(&self, org: &Org) -> bool {
        self.can_see_path(&org.path)
    }

    fn can_see_path(&self, path: &str) -> bool {
        self.instance_admin || self.grants.iter().any(|g| g.reaches(path))
    }

    /// Permissions effective on `org`: every role held on it, and the administrative permissions
    /// of roles held on its ancestors.
    pub fn permissions_on(&self, org: &Org) -> BTreeSet<String> {
        self.permissions_on_path(&org.path)
    }

    fn permissions_on_path(&self, path: &str) -> BTreeSet<String> {
        if self.instance_admin {
            return permissions::ALL.iter().map(|p| (*p).to_owned()).collect();
        }
        self.grants.iter().filter(|g| g.reaches(path)).flat_map(|g| g.on(path).iter().cloned()).collect()
    }

    /// What the user may hand out on `org` (roles, custom roles, API keys): every permission of
    /// the roles they hold on it or an ancestor. An administrator of a reseller may give a
    /// customer's user the `member` role, drive access included, without reading that drive
    /// themselves; nobody grants a permission their own role lacks.
    pub fn grantable_on(&self, org: &Org) -> BTreeSet<String> {
        if self.instance_admin {
            return permissions::ALL.iter().map(|p| (*p).to_owned()).collect();
        }
        self.grants.iter().filter(|g| g.reaches(&org.path)).flat_map(|g| g.permissions.iter().cloned()).collect()
    }

    /// The role held on `org`: the membership there, or the nearest administrative ancestor's.
    pub fn role_on(&self, org: &Org) -> Option<String> {
        self.role_on_path(&org.path)
    }

    fn role_on_path(&self, path: &str) -> Option<String> {
        self.grants
            .iter()
            .filter(|g| g.reaches(path))
            .max_by_key(|g| g.path.len())
            .map(|g| g.role.clone())
            .filter(|role| !role.is_empty())
    }

    /// The scope where the user holds `permission` (anything at all for `None`), as entries of
    /// organization paths: `<path>` for a whole subtree, `=<path>` for that organization alone
    /// (the form `Db::begin_scoped`, row-level security and the listing queries take).
    pub fn subtrees_with(&self, permission: Option<&str>) -> Vec<String> {
        if self.instance_admin {
            return vec!["/".into()];
        }
        let mut subtrees = Vec::new();
        let mut single = Vec::new();
        for grant in &self.grants {
            let (below, here) = match permission {
                None => (!grant.inherited.is_empty(), true),
                Some(p) => (grant.inherited.contains(p), grant.permissions.contains(p)),
            };
            if below {
                subtrees.push(grant.path.clone());
            } else if here {
                single.push(grant.path.clone());
            }
        }
        subtrees.sort();
        // Drop what a wider subtree already covers.
        let mut out: Vec<String> = Vec::new();
        for root in subtrees {
            if !out.iter().any(|r| root.starts_with(r.as_str())) {
                out.push(root);
            }
        }
        single.sort();
        single.dedup();
        single.retain(|path| !out.iter().any(|r| path.starts_with(r.as_str())));
        out.extend(single.into_iter().map(|p| format!("={p}")));
        out
    }
}

/// The organization ids along a materialized path.
fn path_ids(path: &str) -> Vec<Uuid> {
    path.split('/').filter_map(|s| s.parse().ok()).collect()
}

impl Identity {
    pub fn new(
        db: Db,
        vault: Vault,
        clock: Arc<dyn Clock>,
        config: IdentityConfig,
        issuer: String,
        mailer: oppidum_mail::Mailer,
        base_url: String,
    ) -> Self {
        let keys = Keys::new(db.clone(), vault);
        let limits = Limits {
            basic_ip: Limiter::per_minute(config.rate_limits.basic_auth_per_ip),
            recovery_ip: Limiter::per_minute(config.rate_limits.register_per_ip),
            recovery_account: Limiter::per_minute(3),
            login_account: Limiter::per_minute(config.rate_limits.login_per_account),
            login_ip: Limiter::per_minute(config.rate_limits.login_per_ip),
            register_ip: Limiter::per_minute(config.rate_limits.register_per_ip),
            refresh_ip: Limiter::per_minute(config.rate_limits.refresh_per_ip),
        };
        let cache = AuthCache::new(std::time::Duration::from_millis(config.auth_cache_ttl_ms));
        Self(Arc::new(Inner {
            db,
            keys,
            clock,
            config,
            issuer,
            base_url,
            mailer,
            limits,
            cache,
            events: OnceLock::new(),
            audit_turn: tokio::sync::Mutex::new(()),
        }))
    }

    /// Announces changes to principals on `bus` from now on (once; later calls are ignored).
    pub fn attach_events(&self, bus: EventBus) {
        let _ = self.events.set(bus);
    }

    /// Applies the changes other nodes announce, until the bus closes. A receiver that fell
    /// behind forgets everything: it cannot know what it missed.
    pub fn spawn_invalidation(&self) -> Option<tokio::task::JoinHandle<()>> {
        let bus = self.events.get()?;
        let (mut events, node) = (bus.subscribe_to(&[AUTH_CHANGED]), bus.node());
        let identity = self.clone();
        Some(tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match events.recv().await {
                    // This node's own announcements were applied when made.
                    Ok(event) if event.topic == AUTH_CHANGED && event.origin != node => {
                        identity.cache.invalidate(Change::from_payload(&event.payload));
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => identity.cache.invalidate(Change::All),
                    Err(RecvError::Closed) => return,
                }
            }
        }))
    }

    /// Records that principals changed: cached verifications of them end here at once, and on
    /// the other nodes as soon as they hear of it (within the cache's time to live at worst).
    /// Call it after the change is committed.
    pub(crate) async fn auth_changed(&self, change: Change) {
        self.cache.invalidate(change);
        if let Some(bus) = self.events.get()
            && let Err(err) = bus.publish(AUTH_CHANGED, change.payload()).await
        {
            tracing::warn!(error = %err, "could not announce a change of credentials to the other nodes");
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Prepares a fresh or existing instance: signing keys and the root organization.
    pub async fn ensure_ready(&self) -> Result<Org> {
        let now = self.now();
        self.keys.ensure(now).await?;
        if let Some(root) = repo::root_org(&self.db).await? {
            return Ok(root);
        }
        let id = Uuid::now_v7();
        let root = Org {
            id,
            parent_id: None,
            path: format!("/{id}/"),
            name: "Root".into(),
            kind: "instance".into(),
            require_verified_email: false,
            mfa_required_roles: oppidum_store::Json(vec!["owner".into(), "admin".into()]),
            created_at: now,
            updated_at: now,
        };
        match repo::insert_org(&self.db, &root).await {
            Ok(()) => Ok(root),
            // Another node created it first.
            Err(err) if err.is_unique_violation() => repo::root_org(&self.db)
                .await?
                .ok_or_else(|| IdentityError::Internal("root organization vanished".into())),
            Err(err) => Err(err.into()),
        }
    }

    /// Drops idle rate-limit keys.
    pub fn shrink_limits(&self) {
        for limiter in
            [&self.limits.login_account, &self.limits.login_ip, &self.limits.register_ip, &self.limits.refresh_ip]
        {
            limiter.shrink();
        }
    }

    /// The grants of `user`.
    pub async fn access(&self, user: Uuid, instance_admin: bool) -> Result<Access> {
        let memberships = repo::memberships_of(&self.db, user).await?;
        self.access_from(memberships, instance_admin).await
    }

    /// The access given by memberships (organization id, path, role) already read.
    async fn access_from(&self, memberships: Vec<(Uuid, String, String)>, instance_admin: bool) -> Result<Access> {
        let custom_needed = memberships.iter().any(|(_, _, role)| permissions::builtin(role).is_none());
        let custom = if custom_needed {
            let ids: Vec<Uuid> = memberships.iter().flat_map(|(_, path, _)| path_ids(path)).collect();
            repo::roles_on(&self.db, &ids).await?
        } else {
            Vec::new()
        };
        let grants = memberships
            .into_iter()
            .map(|(_, path, role)| {
                let permissions = permissions::builtin(&role).unwrap_or_else(|| {
                    // The custom role of that name defined closest to the membership wins.
                    let chain = path_ids(&path);
                    chain
                        .iter()
                        .rev()
                        .find_map(|org| custom.iter().find(|r| r.org_id == Some(*org) && r.name == role))
                        .map(|r| r.permissions.0.iter().cloned().collect())
                        .unwrap_or_default()
                });
                Grant::new(path, role, permissions)
            })
            .collect();
        Ok(Access { instance_admin, grants })
    }

    async fn access_of(&self, principal: &Principal) -> Result<Access> {
        match principal.credential {
            Credential::ApiKey { key_id } => self.api_key_access(key_id).await,
            _ => self.access(principal.user_id, principal.instance_admin).await,
        }
    }

    /// Loads `org` and checks `principal` holds `permission` there: 404 when the organization is
    /// not visible to them, 403 when visible but not allowed.
    pub async fn authorize(&self, principal: &Principal, org_id: Uuid, permission: &str) -> Result<(Org, Access)> {
        let access = self.access_of(principal).await?;
        let org = self.visible_org(&access, org_id).await?;
        if !access.permissions_on(&org).contains(permission) {
            return Err(IdentityError::Forbidden(
                "forbidden",
                format!("You need the `{permission}` permission in this organization."),
            ));
        }
        Ok((org, access))
    }

    /// What `principal` may do in `org` regarding `permission`, without an error for "no".
    pub async fn org_access(&self, principal: &Principal, org_id: Uuid, permission: &str) -> Result<OrgAccess> {
        match self.authorize(principal, org_id, permission).await {
            Ok(_) => Ok(OrgAccess::Allowed),
            Err(IdentityError::NotFound(_)) => Ok(OrgAccess::Hidden),
            Err(IdentityError::Forbidden(..)) => Ok(OrgAccess::Denied),
            Err(err) => Err(err),
        }
    }

    async fn visible_org(&self, access: &Access, org_id: Uuid) -> Result<Org> {
        match repo::get_org(&self.db, org_id).await? {
            Some(org) if access.can_see(&org) => Ok(org),
            _ => Err(IdentityError::NotFound("organization")),
        }
    }

    /// Signs an access token for a session.
    fn access_token(&self, user: &User, session: Uuid, org: Uuid, amr: &[String]) -> Result<String> {
        let now = self.now().timestamp();
        let claims = tokens::Claims {
            iss: self.issuer.clone(),
            aud: self.config.audience.clone(),
            sub: user.id,
            sid: session,
            org,
            ver: user.token_version,
            iat: now,
            exp: now + i64::try_from(self.config.access_token_ttl_secs).unwrap_or(900),
            jti: tokens::new_jti(),
            amr: amr.to_vec(),
            act: None,
        };
        tokens::sign(&self.keys, &claims)
    }

    fn refresh_expiry(&self) -> DateTime<Utc> {
        self.now() + Duration::days(i64::try_from(self.config.refresh_token_ttl_days).unwrap_or(30))
    }

    /// Turns a bearer access token into a principal, checking that its session is live, its user
    /// enabled and its token version current (so revocation works on every node). A token seen
    /// within the cache's time to live is answered from the cache, which every such change clears.
    pub async fn authenticate(&self, token: &str, client: &crate::model::ClientInfo) -> Result<Principal> {
        self.cached(Key::of(&["bearer", token]), client, self.verify_bearer(token)).await
    }

    /// Answers with the cached principal of `key`, or awaits `verify` (a verification against
    /// the database, returning the principal and the credential's own expiry) and caches it. The
    /// cache's epoch is taken before `verify` runs, so a change committed meanwhile wins.
    pub(crate) async fn cached(
        &self,
        key: Key,
        client: &crate::model::ClientInfo,
        verify: impl std::future::Future<Output = Result<(Principal, Option<i64>)>>,
    ) -> Result<Principal> {
        if let Some(principal) = self.cache.get(&key, self.now().timestamp()) {
            return Ok(principal.from_client(client.ip.clone(), client.user_agent.clone()));
        }
        let epoch = self.cache.epoch();
        let (principal, expires_at) = verify.await?;
        self.cache.put(key, principal.clone(), expires_at, epoch);
        Ok(principal.from_client(client.ip.clone(), client.user_agent.clone()))
    }

    async fn verify_bearer(&self, token: &str) -> Result<(Principal, Option<i64>)> {
        let now = self.now();
        let claims = tokens::verify(&self.keys, token, &self.issuer, &self.config.audience, now).await?;
        let invalid = |why: &str| IdentityError::InvalidToken(format!("The access token is not valid: {why}."));
        // One statement: the session and its user, the organization acted in, the memberships.
        let rows = repo::auth_snapshot(&self.db, claims.sid, claims.sub, claims.org).await?;
        let state = rows.first().ok_or_else(|| invalid("no such session"))?;
        if state.revoked_at.is_some() || state.expires_at <= now {
            return Err(invalid("the session has ended"));
        }
        if state.disabled {
            return Err(invalid("the account is disabled"));
        }
        if state.token_version != claims.ver {
            return Err(invalid("it was revoked"));
        }
        if state.impersonator_id != claims.act.as_ref().map(|a| a.sub) {
            return Err(invalid("it does not match its session"));
        }
        let memberships = rows
            .iter()
            .filter_map(|r| Some((r.member_org_id?, r.member_path.clone()?, r.member_role.clone()?)))
            .collect();
        let access = self.access_from(memberships, state.instance_admin).await?;
        let org_path = state.org_path.clone().ok_or_else(|| invalid("the organization is gone"))?;
        if !access.can_see_path(&org_path) {
            return Err(invalid("no longer a member of its organization"));
        }
        let principal = Principal {
            user_id: claims.sub,
            org_id: claims.org,
            permissions: access.permissions_on_path(&org_path),
            role: access.role_on_path(&org_path),
            instance_admin: state.instance_admin,
            credential: Credential::Session { session_id: claims.sid },
            impersonator: state.impersonator_id,
            ip: None,
            user_agent: None,
        };
        Ok((principal, Some(claims.exp)))
    }
}

/// Lower-cases and checks an email address.
pub fn normalize_email(email: &str) -> Result<String> {
    let email = email.trim().to_lowercase();
    if oppidum_core::email::is_valid(&email) {
        Ok(email)
    } else {
        Err(IdentityError::Invalid("invalid_email", "This is not a valid email address.".into()))
    }
}

/// Longest display name, in characters.
pub const NAME_MAX_CHARS: usize = 200;

/// Trims and checks a display name.
pub fn normalize_name(name: &str, what: &'static str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > NAME_MAX_CHARS || name.chars().any(char::is_control) {
        return Err(IdentityError::Invalid(
            "invalid_name",
            format!("The {what} must have 1 to {NAME_MAX_CHARS} printable characters."),
        ));
    }
    Ok(name.to_owned())
}

#[async_trait::async_trait]
impl oppidum_core::Directory for Identity {
    async fn org_access(
        &self,
        principal: &Principal,
        org: Uuid,
        permission: &str,
    ) -> std::result::Result<OrgAccess, oppidum_core::Error> {
        Identity::org_access(self, principal, org, permission).await.map_err(Into::into)
    }

    async fn user_by_email(&self, email: &str) -> std::result::Result<Option<Uuid>, oppidum_core::Error> {
        let user =
            repo::get_user_by_email(&self.db, &email.trim().to_lowercase()).await.map_err(IdentityError::from)?;
        Ok(user.map(|u| u.id))
    }

    async fn hash_password(&self, password: &str) -> std::result::Result<String, oppidum_core::Error> {
        Ok(crate::password::hash(password.to_owned()).await?)
    }

    async fn verify_password(&self, password: &str, stored: &str) -> std::result::Result<bool, oppidum_core::Error> {
        let verified = crate::password::verify(password.to_owned(), Some(stored.to_owned())).await?;
        Ok(verified != crate::password::Verified::No)
    }

    async fn is_instance_org(&self, org: Uuid) -> std::result::Result<bool, oppidum_core::Error> {
        let org = repo::get_org(&self.db, org).await.map_err(IdentityError::from)?;
        Ok(org.is_some_and(|o| o.parent_id.is_none()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_normalizes_emails() {
        assert_eq!(normalize_email(" Alice@Example.ORG ").expect("valid"), "alice@example.org");
        for bad in ["", "alice", "@example.org", "alice@", "alice@example", "a b@example.org", "alice@.org"] {
            assert!(normalize_email(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// An organization at `path`, for the access rules.
    fn org(path: &str) -> Org {
        Org {
            id: Uuid::now_v7(),
            parent_id: None,
            path: path.into(),
            name: "x".into(),
            kind: "x".into(),
            require_verified_email: false,
            mfa_required_roles: oppidum_store::Json(vec!["owner".into(), "admin".into()]),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn identity_access_follows_the_tree() {
        let access = Access {
            instance_admin: false,
            grants: vec![Grant::new(
                "/r/reseller/".into(),
                "admin".into(),
                permissions::builtin("admin").unwrap_or_default(),
            )],
        };
        assert!(access.can_see(&org("/r/reseller/")));
        assert!(access.can_see(&org("/r/reseller/customer/")));
        assert!(!access.can_see(&org("/r/")));
        assert!(!access.can_see(&org("/r/sibling/")));
        assert!(access.permissions_on(&org("/r/reseller/customer/")).contains(permissions::USERS_MANAGE));
        assert!(access.permissions_on(&org("/r/sibling/")).is_empty());
        assert_eq!(access.subtrees_with(Some(permissions::USERS_MANAGE)), vec!["/r/reseller/".to_owned()]);
        // Administrators keep their directory view below, not the files of the organizations there.
        let below = access.permissions_on(&org("/r/reseller/customer/"));
        assert!(below.contains(permissions::USERS_READ) && below.contains(permissions::ORGS_READ));
        assert!(!below.contains(permissions::DRIVE_READ), "customers' files are not the reseller's");
    }

    #[test]
    fn identity_plain_membership_stops_at_its_organization() {
        let member = permissions::builtin("member").unwrap_or_default();
        let access = Access {
            instance_admin: false,
            grants: vec![
                Grant::new("/r/".into(), "member".into(), member.clone()),
                Grant::new("/r/team/".into(), "member".into(), member),
            ],
        };
        assert!(access.can_see(&org("/r/")) && access.can_see(&org("/r/team/")));
        assert!(!access.can_see(&org("/r/customer/")), "a customer below the root is not a member's to see");
        assert!(access.permissions_on(&org("/r/customer/")).is_empty());
        assert!(access.permissions_on(&org("/r/")).contains(permissions::USERS_READ));
        assert_eq!(access.role_on(&org("/r/customer/")), None);
        assert_eq!(
            access.subtrees_with(Some(permissions::USERS_READ)),
            vec!["=/r/".to_owned(), "=/r/team/".to_owned()]
        );
        assert_eq!(access.subtrees_with(None), vec!["=/r/".to_owned(), "=/r/team/".to_owned()]);
        // An administrator role on the root covers the member grant below.
        let mut both = access.clone();
        both.grants.push(Grant::new("/r/".into(), "admin".into(), permissions::builtin("admin").unwrap_or_default()));
        assert_eq!(both.subtrees_with(Some(permissions::USERS_READ)), vec!["/r/".to_owned()]);
    }
}
