//! Identity's types: rows as stored (and, without their secrets, as shown) and request bodies.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use oppidum_store::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A user account.
#[derive(Debug, Clone, Serialize, oppidum_store::FromRow, ToSchema)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    #[serde(skip)]
    pub password_hash: Option<String>,
    pub home_org_id: Uuid,
    pub instance_admin: bool,
    pub disabled: bool,
    #[serde(skip)]
    pub token_version: i64,
    pub locale: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    /// When the user proved they receive mail at `email`.
    pub email_verified_at: Option<DateTime<Utc>>,
}

/// An organization in the tree.
#[derive(Debug, Clone, Serialize, oppidum_store::FromRow, ToSchema)]
pub struct Org {
    pub id: Uuid,
    pub parent_id: Option<Uuid>,
    #[serde(skip)]
    pub path: String,
    pub name: String,
    /// Operator-chosen label: `distributor`, `reseller`, `customer`, …
    pub kind: String,
    /// Users living here must verify their email address before they can sign in.
    pub require_verified_email: bool,
    /// Roles whose holders here must use a second factor.
    #[schema(value_type = Vec<String>)]
    pub mfa_required_roles: Json<Vec<String>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Org {
    /// Whether `self` is `other` or one of its descendants.
    pub fn is_within(&self, ancestor_path: &str) -> bool {
        self.path.starts_with(ancestor_path)
    }
}

/// A user's membership of an organization.
#[derive(Debug, Clone, Serialize, oppidum_store::FromRow, ToSchema)]
pub struct Member {
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
}

/// A role: built-in (no `org_id`) or defined by an organization for its subtree.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Role {
    pub name: String,
    pub org_id: Option<Uuid>,
    pub builtin: bool,
    pub description: String,
    pub permissions: BTreeSet<String>,
}

#[derive(Debug, Clone, oppidum_store::FromRow)]
pub struct RoleRow {
    pub id: Uuid,
    pub org_id: Option<Uuid>,
    pub name: String,
    pub description: String,
    pub permissions: Json<Vec<String>>,
}

/// A sign-in session as its owner sees it.
#[derive(Debug, Clone, Serialize, oppidum_store::FromRow, ToSchema)]
pub struct Session {
    pub id: Uuid,
    #[serde(skip)]
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    #[serde(skip)]
    pub revoked_at: Option<DateTime<Utc>>,
    /// How it authenticated: `pwd`, plus `otp` or `mfa` after a second factor.
    #[schema(value_type = Vec<String>)]
    pub amr: Json<Vec<String>>,
}

/// Where a request came from, for sessions and audit.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Tokens handed out at login and refresh.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub user: User,
}

/// A login that needs a second factor: finish it with `POST /api/auth/2fa/verify`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MfaChallenge {
    /// Always true.
    pub mfa_required: bool,
    /// Pass to the 2FA endpoints; valid 10 minutes.
    pub mfa_token: String,
    /// What can complete it: `totp`, `backup_code`, `email_code`; or `enroll` when the user must
    /// set up TOTP first.
    pub methods: Vec<String>,
}

/// What login answers: tokens, or a second-factor challenge.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginResponse {
    Tokens(Box<TokenResponse>),
    Mfa(MfaChallenge),
}

/// `GET /api/auth/me`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Me {
    pub user: User,
    pub org: Org,
    pub permissions: BTreeSet<String>,
    pub session_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(value_type = oppidum_core::email::EmailAddress)]
    pub email: String,
    #[schema(value_type = crate::shapes::NewPassword)]
    pub password: String,
    #[schema(value_type = crate::shapes::DisplayName)]
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// Organization to start in; default: the home organization.
    pub org_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    #[schema(value_type = crate::shapes::NewPassword)]
    pub new_password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchOrgRequest {
    pub org_id: Uuid,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrgRequest {
    pub parent_id: Uuid,
    #[schema(value_type = crate::shapes::DisplayName)]
    pub name: String,
    #[serde(default = "default_kind")]
    #[schema(value_type = crate::shapes::OrgKind)]
    pub kind: String,
}

fn default_kind() -> String {
    "organization".into()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrgRequest {
    #[schema(value_type = Option<crate::shapes::DisplayName>)]
    pub name: Option<String>,
    #[schema(value_type = Option<crate::shapes::OrgKind>)]
    pub kind: Option<String>,
    pub require_verified_email: Option<bool>,
    /// Roles that must use 2FA here (default: owner and admin).
    #[schema(value_type = Option<Vec<crate::shapes::RoleName>>)]
    pub mfa_required_roles: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMemberRequest {
    /// The user to add, by id or by email.
    pub user_id: Option<Uuid>,
    #[schema(value_type = Option<oppidum_core::email::EmailAddress>)]
    pub email: Option<String>,
    #[schema(value_type = crate::shapes::RoleName)]
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMemberRequest {
    #[schema(value_type = crate::shapes::RoleName)]
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    #[schema(value_type = crate::shapes::RoleName)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub permissions: BTreeSet<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoleRequest {
    pub description: Option<String>,
    pub permissions: Option<BTreeSet<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    #[schema(value_type = oppidum_core::email::EmailAddress)]
    pub email: String,
    #[schema(value_type = crate::shapes::DisplayName)]
    pub name: String,
    /// Optional initial password; without one the user cannot sign in until one is set.
    #[schema(value_type = Option<crate::shapes::NewPassword>)]
    pub password: Option<String>,
    pub org_id: Uuid,
    #[serde(default = "default_role")]
    #[schema(value_type = crate::shapes::RoleName)]
    pub role: String,
}

fn default_role() -> String {
    "member".into()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[schema(value_type = Option<crate::shapes::DisplayName>)]
    pub name: Option<String>,
    pub disabled: Option<bool>,
    #[schema(value_type = Option<Locale>)]
    pub locale: Option<String>,
}

/// A locale mail and pages can use.
#[derive(Debug, Clone, Copy, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Locale {
    En,
    Fr,
}

/// A page of results with the cursor of the next one.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}
