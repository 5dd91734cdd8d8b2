//! Who may use which drive. A user's own drive (`u:<user>`) is theirs alone; an organization's
//! shared drive (`o:<org>`) follows the `drive.read` / `drive.write` permissions held in that
//! organization or an ancestor. Anything else is "not found", never "forbidden", so ids and names
//! of other drives leak nothing.

use oppidum_core::{OrgAccess, Principal};
use uuid::Uuid;

use super::Drive;
use crate::error::DriveError;

/// One drive as one caller may use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `u:<user id>` or `o:<org id>`.
    pub drive: String,
    /// Who acts (recorded as creator of what they add).
    pub actor: Uuid,
    pub can_write: bool,
    /// May share, publish links and change shares.
    pub can_manage: bool,
    /// Set when access comes from a share: only this node and what is below it.
    pub root: Option<Uuid>,
}

impl Scope {
    /// The principal's own drive.
    pub fn personal(principal: &Principal) -> Self {
        let user = principal.user_id;
        Self { drive: format!("u:{user}"), actor: user, can_write: true, can_manage: true, root: None }
    }

    /// Refuses changes when the caller may only read.
    pub fn require_write(&self) -> Result<(), DriveError> {
        if self.can_write { Ok(()) } else { Err(DriveError::ReadOnly) }
    }

    /// Refuses sharing and links without the right to manage.
    pub fn require_manage(&self) -> Result<(), DriveError> {
        if self.can_manage { Ok(()) } else { Err(DriveError::NotManager) }
    }

    /// The organization of a shared drive.
    pub fn org(&self) -> Option<Uuid> {
        self.drive.strip_prefix("o:").and_then(|id| Uuid::parse_str(id).ok())
    }
}

impl Drive {
    /// The drive a request names: absent or `me` for the caller's own, `org:<id>` for an
    /// organization's shared drive.
    pub async fn scope(&self, principal: &Principal, drive: Option<&str>) -> Result<Scope, DriveError> {
        match selected_org(drive)? {
            None => Ok(Scope::personal(principal)),
            Some(org) => self.org_scope(principal, org).await,
        }
    }

    /// An organization's shared drive, when the principal may read it.
    pub async fn org_scope(&self, principal: &Principal, org: Uuid) -> Result<Scope, DriveError> {
        match self.orgs.org_access(principal, org, "drive.read").await.map_err(DriveError::Upstream)? {
            OrgAccess::Hidden | OrgAccess::Denied => return Err(DriveError::NotFound),
            OrgAccess::Allowed => {}
        }
        let write = self.orgs.org_access(principal, org, "drive.write").await.map_err(DriveError::Upstream)?;
        let write = write == OrgAccess::Allowed;
        Ok(Scope {
            drive: format!("o:{org}"),
            actor: principal.user_id,
            can_write: write,
            can_manage: write,
            root: None,
        })
    }

    /// The scope in which the principal sees node `id` (live or trashed): its whole drive when
    /// they own it or their organization role allows, else the subtree of a share that reaches
    /// it; "not found" otherwise.
    pub async fn resolve(&self, principal: &Principal, id: Uuid) -> Result<Scope, DriveError> {
        let (drive,): (String,) = self
            .db
            .query("SELECT drive FROM drive_nodes WHERE id = $1")
            .bind(id)
            .fetch_optional()
            .await?
            .ok_or(DriveError::NotFound)?;
        match self.scope_of_drive(principal, &drive).await {
            Err(DriveError::NotFound) => self.share_scope(principal, &drive, id).await,
            other => other,
        }
    }

    /// The principal's scope on a whole drive named as stored (`u:<id>`, `o:<id>`).
    pub(super) async fn scope_of_drive(&self, principal: &Principal, drive: &str) -> Result<Scope, DriveError> {
        let personal = Scope::personal(principal);
        if drive == personal.drive {
            return Ok(personal);
        }
        match drive.strip_prefix("o:").and_then(|id| Uuid::parse_str(id).ok()) {
            Some(org) => self.org_scope(principal, org).await,
            None => Err(DriveError::NotFound),
        }
    }

    /// The byte quota of a drive (0: unlimited).
    pub(crate) fn quota_of(&self, scope: &Scope) -> u64 {
        if scope.org().is_some() { self.config.org_quota.bytes() } else { self.config.user_quota.bytes() }
    }
}

#[async_trait::async_trait]
impl oppidum_core::FileAccess for Drive {
    async fn can_read_file(
        &self,
        principal: &oppidum_core::Principal,
        file: Uuid,
    ) -> Result<bool, oppidum_core::Error> {
        let scope = match self.resolve(principal, file).await {
            Ok(scope) => scope,
            Err(DriveError::NotFound) => return Ok(false),
            Err(err) => return Err(err.into()),
        };
        match self.get(&scope, file).await {
            Ok(node) => Ok(node.kind == "file"),
            Err(DriveError::NotFound) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }
}

/// The organization a drive selector names: `None` for the personal drive
/// (absent, empty or `me`), exactly as the OpenAPI pattern says — no trimming.
fn selected_org(drive: Option<&str>) -> Result<Option<Uuid>, DriveError> {
    match drive {
        None | Some("" | "me") => Ok(None),
        Some(name) => name
            .strip_prefix("org:")
            .filter(|id| id.len() == 36)
            .and_then(|id| Uuid::parse_str(id).ok())
            .map(Some)
            .ok_or_else(|| DriveError::UnknownDrive(name.chars().take(64).collect())),
    }
}

#[cfg(test)]
mod selector_tests {
    use super::*;

    #[test]
    fn selectors_are_taken_exactly() {
        let org = Uuid::new_v4();
        assert_eq!(selected_org(None).ok(), Some(None));
        assert_eq!(selected_org(Some("")).ok(), Some(None));
        assert_eq!(selected_org(Some("me")).ok(), Some(None));
        assert_eq!(selected_org(Some(&format!("org:{org}"))).ok(), Some(Some(org)));
        for bad in ["\r", " me", "me ", "ME", "org:", "org:x", &format!("org:{}", org.simple()), &format!(" org:{org}")]
        {
            assert!(matches!(selected_org(Some(bad)), Err(DriveError::UnknownDrive(_))), "{bad:?} accepted");
        }
    }
}
