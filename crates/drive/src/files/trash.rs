//! The trash (list, restore, purge) and what a drive holds (logical and stored bytes).

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Drive, Node, Scope};
use crate::error::DriveError;

/// What a drive holds: logical bytes (current files, and all their versions) and the bytes the
/// chunks they use occupy once deduplicated.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Usage {
    /// Sum of the sizes of live files.
    pub logical_bytes: i64,
    /// Sum of the sizes of every version of every file, trash included.
    pub versions_bytes: i64,
    /// Bytes of distinct chunks those versions use.
    pub stored_bytes: i64,
    /// `versions_bytes / stored_bytes` (1.0 when empty).
    pub dedup_ratio: f64,
}

impl Drive {
    /// The trashed files and folders of the principal's drive, newest first.
    pub async fn trash_list(&self, scope: &Scope) -> Result<Vec<Node>, DriveError> {
        Ok(self
            .db
            .query(select_nodes!("WHERE drive = $1 AND trashed_at IS NOT NULL ORDER BY trashed_at DESC LIMIT 10000"))
            .bind(scope.drive.as_str())
            .fetch_all()
            .await?)
    }

    async fn trashed(&self, scope: &Scope, id: Uuid) -> Result<Node, DriveError> {
        self.db
            .query(select_nodes!("WHERE id = $1 AND drive = $2 AND trashed_at IS NOT NULL"))
            .bind(id)
            .bind(scope.drive.as_str())
            .fetch_optional()
            .await?
            .ok_or(DriveError::NotFound)
    }

    /// Brings a trashed node back (to the top level when its folder is gone or trashed).
    pub async fn restore(&self, scope: &Scope, id: Uuid) -> Result<Node, DriveError> {
        scope.require_write()?;
        let node = self.trashed(scope, id).await?;
        let parent_alive = match node.parent_id {
            Some(parent) => self.get(scope, parent).await.is_ok(),
            None => true,
        };
        let (parent, key) =
            if parent_alive { (node.parent_id, node.parent_key.clone()) } else { (None, "root".into()) };
        let restored = self
            .db
            .query("UPDATE drive_nodes SET trashed_at = NULL, parent_id = $2, parent_key = $3, updated_at = $4 WHERE id = $1")
            .bind(node.id)
            .bind(parent)
            .bind(key)
            .bind(self.now())
            .execute()
            .await;
        match restored {
            Err(err) if err.is_unique_violation() => return Err(DriveError::NameTaken(node.name)),
            other => {
                other?;
            }
        }
        self.emit("restored", node.id, &node.drive, &node.kind).await;
        self.get(scope, node.id).await
    }

    /// Deletes a trashed node for good, with its subtree and versions; their chunks become
    /// collectable.
    pub async fn purge(&self, scope: &Scope, id: Uuid) -> Result<(), DriveError> {
        scope.require_write()?;
        let node = self.trashed(scope, id).await?;
        self.purge_node(node.id).await
    }

    /// Deletes a node, its subtree and their versions, whoever owns it.
    pub(super) async fn purge_node(&self, id: Uuid) -> Result<(), DriveError> {
        // Every node of the subtree, to find the manifests of their versions.
        let mut ids = vec![id];
        let mut frontier = vec![id];
        while let Some(parent) = frontier.pop() {
            let children: Vec<(Uuid,)> =
                self.db.query("SELECT id FROM drive_nodes WHERE parent_id = $1").bind(parent).fetch_all().await?;
            for (child,) in children {
                ids.push(child);
                frontier.push(child);
            }
        }
        let mut manifests = Vec::new();
        for node_id in &ids {
            let rows: Vec<(Uuid,)> = self
                .db
                .query("SELECT manifest_id FROM drive_versions WHERE node_id = $1")
                .bind(*node_id)
                .fetch_all()
                .await?;
            manifests.extend(rows.into_iter().map(|(m,)| m));
        }
        let drive: Option<(String, String)> =
            self.db.query("SELECT drive, kind FROM drive_nodes WHERE id = $1").bind(id).fetch_optional().await?;
        self.db.query("DELETE FROM drive_nodes WHERE id = $1").bind(id).execute().await?;
        if let Some((drive, kind)) = drive {
            self.emit("purged", id, &drive, &kind).await;
        }
        for manifest in manifests {
            self.content.delete(manifest).await?;
        }
        Ok(())
    }

    /// Logical and stored bytes of the principal's drive.
    pub async fn usage(&self, scope: &Scope) -> Result<Usage, DriveError> {
        let drive = scope.drive.clone();
        let (logical,): (i64,) = self
            .db
            .query(
                "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM drive_nodes \
                 WHERE drive = $1 AND kind = 'file' AND trashed_at IS NULL",
            )
            .bind(drive.as_str())
            .fetch_one()
            .await?;
        let (versions,): (i64,) = self
            .db
            .query(
                "SELECT CAST(COALESCE(SUM(v.size), 0) AS BIGINT) FROM drive_versions v \
                 JOIN drive_nodes n ON n.id = v.node_id WHERE n.drive = $1",
            )
            .bind(drive.as_str())
            .fetch_one()
            .await?;
        let (stored,): (i64,) = self
            .db
            .query(
                "SELECT CAST(COALESCE(SUM(c.stored_size), 0) AS BIGINT) FROM drive_chunks c WHERE c.hash IN \
                 (SELECT mc.chunk_hash FROM drive_manifest_chunks mc JOIN drive_versions v ON v.manifest_id = mc.manifest_id \
                  JOIN drive_nodes n ON n.id = v.node_id WHERE n.drive = $1)",
            )
            .bind(drive.as_str())
            .fetch_one()
            .await?;
        let dedup_ratio = if stored > 0 { versions as f64 / stored as f64 } else { 1.0 };
        Ok(Usage { logical_bytes: logical, versions_bytes: versions, stored_bytes: stored, dedup_ratio })
    }
}
