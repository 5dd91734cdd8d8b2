//! Who is acting: the authenticated [`Principal`] every service takes, and its extractor. The
//! identity layer authenticates requests and places the principal in the request extensions; any
//! domain's handler asks for it without depending on identity.

use std::collections::BTreeSet;

use axum::extract::FromRequestParts;
use http::request::Parts;
use uuid::Uuid;

use crate::error::{Error, ErrorKind};

/// How the principal authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An access token of an interactive session.
    Session { session_id: Uuid },
    /// An organization's API key.
    ApiKey { key_id: Uuid },
    /// An app password (protocol endpoints only).
    AppPassword { id: Uuid, scopes: Vec<String> },
}

/// An authenticated actor, with its permissions in its current organization.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user (for API keys: the user who created the key).
    pub user_id: Uuid,
    /// The organization the principal acts in.
    pub org_id: Uuid,
    /// Effective permissions in `org_id` (granted there, or administrative ones on an ancestor).
    pub permissions: BTreeSet<String>,
    /// The role held in `org_id` (its own membership or the nearest ancestor's); `None` for API
    /// keys and for users who hold none there.
    pub role: Option<String>,
    /// Instance administrators may do everything everywhere.
    pub instance_admin: bool,
    pub credential: Credential,
    /// Set while an administrator impersonates this user.
    pub impersonator: Option<Uuid>,
    /// Where the request came from, for audit.
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Principal {
    /// Whether the principal holds `permission` in its current organization.
    pub fn can(&self, permission: &str) -> bool {
        self.instance_admin || self.permissions.contains(permission)
    }

    /// The same principal acting from the client at `ip` with `user_agent` (a cached
    /// verification answering a new request).
    pub fn from_client(mut self, ip: Option<String>, user_agent: Option<String>) -> Self {
        self.ip = ip;
        self.user_agent = user_agent;
        self
    }

    /// The session id, when authenticated by an access token.
    pub fn session_id(&self) -> Option<Uuid> {
        match self.credential {
            Credential::Session { session_id } => Some(session_id),
            _ => None,
        }
    }
}

/// The login (email) a protocol client authenticated with, next to its principal: protocol URLs
/// name users by it (`/dav/files/{email}/`).
#[derive(Debug, Clone)]
pub struct LoginName(pub String);

/// Why the request carries no principal; placed in the extensions by the authentication layer.
#[derive(Debug, Clone)]
pub struct AuthRejection {
    pub code: &'static str,
    pub message: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        Err(match parts.extensions.get::<AuthRejection>() {
            Some(rejection) => Error::new(ErrorKind::Unauthenticated, rejection.code, rejection.message.clone()),
            None => Error::new(ErrorKind::Unauthenticated, "unauthenticated", "Sign in first: send a bearer token."),
        })
    }
}

/// What a principal may do in an organization, as far as one permission goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgAccess {
    /// The organization is outside every subtree the principal belongs to: treat as absent.
    Hidden,
    /// Visible, but the permission is not held there.
    Denied,
    Allowed,
}

/// What domains that keep per-user and per-organization data (drives, calendars, apps) need to
/// know from identity, without depending on the identity crate, which implements it.
#[async_trait::async_trait]
pub trait Directory: Send + Sync + std::fmt::Debug {
    /// Whether `principal` holds `permission` in `org` (granted there or on an ancestor).
    async fn org_access(&self, principal: &Principal, org: Uuid, permission: &str) -> Result<OrgAccess, Error>;

    /// The user who signs in with `email`, if any.
    async fn user_by_email(&self, email: &str) -> Result<Option<Uuid>, Error>;

    /// Hashes a secret a person chose (a link password) the way account passwords are hashed.
    async fn hash_password(&self, password: &str) -> Result<String, Error>;

    /// Checks a secret against what [`Directory::hash_password`] stored, in constant time.
    async fn verify_password(&self, password: &str, stored: &str) -> Result<bool, Error>;

    /// Whether `org` is the instance's root organization (instance-wide permissions hold there).
    async fn is_instance_org(&self, _org: Uuid) -> Result<bool, Error> {
        Ok(false)
    }
}

/// Drive files as other domains see them (the data API's `file` fields refer to them).
#[async_trait::async_trait]
pub trait FileAccess: Send + Sync + std::fmt::Debug {
    /// Whether `principal` can read the file `file` (absent, trashed, a folder or not visible:
    /// `false`).
    async fn can_read_file(&self, principal: &Principal, file: Uuid) -> Result<bool, Error>;
}
