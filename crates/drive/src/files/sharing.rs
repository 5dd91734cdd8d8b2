//! Sharing a file or folder with a user or an organization (a group is an organization of kind
//! `group`; sharing with an organization reaches its members, and the administrators above it). A share
//! grants `read`, `write` or `manage` (share further, publish links) on the node and everything
//! below it, and nothing else of the drive.

use chrono::{DateTime, Utc};
use oppidum_core::{OrgAccess, Principal};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Drive, Node, Scope};
use crate::error::DriveError;

/// Deepest ancestry followed when checking subtrees and shares.
const MAX_DEPTH: usize = 256;

/// One share of a node.
#[derive(Debug, Clone, Serialize, oppidum_store::FromRow, ToSchema)]
pub struct Share {
    pub id: Uuid,
    pub node_id: Uuid,
    /// `user` or `org`.
    pub grantee_kind: String,
    pub grantee_id: Uuid,
    /// `read`, `write` or `manage`.
    pub access: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// Whom to share with (exactly one of `user_id`, `email`, `org_id`) and how.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewShare {
    pub user_id: Option<Uuid>,
    /// The user, by the email they sign in with.
    pub email: Option<String>,
    /// An organization or group: its members (and administrators above it) get access.
    pub org_id: Option<Uuid>,
    /// `read`, `write` or `manage`.
    pub access: String,
}

/// A node shared with the caller, and how.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SharedNode {
    pub node: Node,
    pub access: String,
    pub share_id: Uuid,
}

fn rank(access: &str) -> u8 {
    match access {
        "manage" => 3,
        "write" => 2,
        "read" => 1,
        _ => 0,
    }
}

impl Drive {
    /// The parent of a node, live or not.
    async fn parent_of(&self, id: Uuid) -> Result<Option<Uuid>, DriveError> {
        let row: Option<(Option<Uuid>,)> =
            self.db.query("SELECT parent_id FROM drive_nodes WHERE id = $1").bind(id).fetch_optional().await?;
        Ok(row.and_then(|(parent,)| parent))
    }

    /// The node and its ancestors, nearest first.
    async fn lineage(&self, id: Uuid) -> Result<Vec<Uuid>, DriveError> {
        let mut chain = vec![id];
        let mut current = id;
        while chain.len() < MAX_DEPTH {
            match self.parent_of(current).await? {
                Some(parent) => {
                    chain.push(parent);
                    current = parent;
                }
                None => break,
            }
        }
        Ok(chain)
    }

    /// Whether `node` is `root` or below it.
    pub(super) async fn is_within(&self, node: &Node, root: Uuid) -> Result<bool, DriveError> {
        if node.id == root {
            return Ok(true);
        }
        Ok(match node.parent_id {
            Some(parent) => self.lineage(parent).await?.contains(&root),
            None => false,
        })
    }

    async fn reaches(&self, principal: &Principal, share: &Share) -> Result<bool, DriveError> {
        Ok(match share.grantee_kind.as_str() {
            "user" => share.grantee_id == principal.user_id,
            _ => {
                let access = self.orgs.org_access(principal, share.grantee_id, "orgs.read").await;
                access.map_err(DriveError::Upstream)? == OrgAccess::Allowed
            }
        })
    }

    /// The best share reaching `principal` on `id` or one of its ancestors, as a scope limited
    /// to the shared subtree.
    pub(super) async fn share_scope(&self, principal: &Principal, drive: &str, id: Uuid) -> Result<Scope, DriveError> {
        let mut best: Option<Share> = None;
        for node in self.lineage(id).await? {
            let shares: Vec<Share> = self
                .db
                .query(
                    "SELECT id, node_id, grantee_kind, grantee_id, access, created_by, created_at FROM drive_shares \
                     WHERE node_id = $1",
                )
                .bind(node)
                .fetch_all()
                .await?;
            for share in shares {
                if best.as_ref().is_none_or(|b| rank(&share.access) > rank(&b.access))
                    && self.reaches(principal, &share).await?
                {
                    best = Some(share);
                }
            }
        }
        let share = best.ok_or(DriveError::NotFound)?;
        Ok(Scope {
            drive: drive.to_owned(),
            actor: principal.user_id,
            can_write: rank(&share.access) >= 2,
            can_manage: rank(&share.access) >= 3,
            root: Some(share.node_id),
        })
    }

    /// Shares `id` (a node of `scope`) with a user or an organization; sharing again with the
    /// same grantee changes the access.
    pub async fn share(
        &self,
        principal: &Principal,
        scope: &Scope,
        id: Uuid,
        request: NewShare,
    ) -> Result<Share, DriveError> {
        scope.require_manage()?;
        let node = self.get(scope, id).await?;
        if rank(&request.access) == 0 {
            return Err(DriveError::InvalidShare("`access` must be `read`, `write` or `manage`".into()));
        }
        let (kind, grantee) = match (request.user_id, request.email.as_deref(), request.org_id) {
            (Some(user), None, None) => ("user", user),
            (None, Some(email), None) => {
                let user = self.orgs.user_by_email(email).await.map_err(DriveError::Upstream)?;
                ("user", user.ok_or(DriveError::UnknownUser)?)
            }
            (None, None, Some(org)) => {
                if self.orgs.org_access(principal, org, "orgs.read").await.map_err(DriveError::Upstream)?
                    == OrgAccess::Hidden
                {
                    return Err(DriveError::UnknownOrg);
                }
                ("org", org)
            }
            _ => return Err(DriveError::InvalidShare("give exactly one of `user_id`, `email`, `org_id`".into())),
        };
        if kind == "user" && grantee == principal.user_id {
            return Err(DriveError::InvalidShare("you cannot share with yourself".into()));
        }
        self.db
            .query(
                "INSERT INTO drive_shares (id, node_id, grantee_kind, grantee_id, access, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (node_id, grantee_kind, grantee_id) DO UPDATE SET access = excluded.access",
            )
            .bind(Uuid::now_v7())
            .bind(node.id)
            .bind(kind)
            .bind(grantee)
            .bind(request.access.as_str())
            .bind(principal.user_id)
            .bind(self.now())
            .execute()
            .await?;
        let share: Share = self
            .db
            .query(
                "SELECT id, node_id, grantee_kind, grantee_id, access, created_by, created_at FROM drive_shares \
                 WHERE node_id = $1 AND grantee_kind = $2 AND grantee_id = $3",
            )
            .bind(node.id)
            .bind(kind)
            .bind(grantee)
            .fetch_one()
            .await?;
        Ok(share)
    }

    /// The shares of a node (managers only).
    pub async fn shares(&self, scope: &Scope, id: Uuid) -> Result<Vec<Share>, DriveError> {
        scope.require_manage()?;
        let node = self.get(scope, id).await?;
        Ok(self
            .db
            .query(
                "SELECT id, node_id, grantee_kind, grantee_id, access, created_by, created_at FROM drive_shares \
                 WHERE node_id = $1 ORDER BY created_at",
            )
            .bind(node.id)
            .fetch_all()
            .await?)
    }

    /// Ends a share (managers of the node; the grantee may also leave it).
    pub async fn unshare(&self, principal: &Principal, share_id: Uuid) -> Result<(), DriveError> {
        let row: Option<(Uuid, String, Uuid)> = self
            .db
            .query("SELECT node_id, grantee_kind, grantee_id FROM drive_shares WHERE id = $1")
            .bind(share_id)
            .fetch_optional()
            .await?;
        let (node, kind, grantee) = row.ok_or(DriveError::NotFound)?;
        let leaving = kind == "user" && grantee == principal.user_id;
        if !leaving {
            let scope = self.resolve(principal, node).await?;
            scope.require_manage()?;
        }
        self.db.query("DELETE FROM drive_shares WHERE id = $1").bind(share_id).execute().await?;
        Ok(())
    }

    /// What others shared with the principal, directly or through their organizations.
    pub async fn shared_with(&self, principal: &Principal) -> Result<Vec<SharedNode>, DriveError> {
        let candidates: Vec<Share> = self
            .db
            .query(
                "SELECT id, node_id, grantee_kind, grantee_id, access, created_by, created_at FROM drive_shares \
                 WHERE (grantee_kind = 'user' AND grantee_id = $1) OR grantee_kind = 'org' \
                 ORDER BY created_at DESC LIMIT 5000",
            )
            .bind(principal.user_id)
            .fetch_all()
            .await?;
        let mut out = Vec::new();
        for share in candidates {
            if !self.reaches(principal, &share).await? {
                continue;
            }
            let node: Option<Node> = self
                .db
                .query(select_nodes!("WHERE id = $1 AND trashed_at IS NULL"))
                .bind(share.node_id)
                .fetch_optional()
                .await?;
            // Your own files shared with a group you belong to are not "shared with you".
            if let Some(node) = node.filter(|n| n.drive != format!("u:{}", principal.user_id)) {
                out.push(SharedNode { node, access: share.access, share_id: share.id });
            }
        }
        Ok(out)
    }
}
