//! Copies of files and folder trees, within a drive or into another one the caller may write.
//! Copies share content with their source: they cost no stored bytes (logical bytes count
//! towards the destination's quota).

use uuid::Uuid;

use super::upload::{NewVersion, insert_version};
use super::{CopyNode, Drive, Node, Scope, validate_name};
use crate::error::DriveError;

/// Folders nested deeper than this are not copied (guards against runaway recursion).
const MAX_COPY_DEPTH: usize = 64;

impl Drive {
    /// Copies the node `id` of `from` into `request.parent_id` of `to` (its top level when
    /// absent), under `request.name` or the same name. Folders are copied with their subtree.
    pub async fn copy(&self, from: &Scope, id: Uuid, to: &Scope, request: CopyNode) -> Result<Node, DriveError> {
        to.require_write()?;
        let source = self.get(from, id).await?;
        let name = validate_name(request.name.as_deref().unwrap_or(&source.name))?;
        if source.kind == "folder"
            && let Some(parent) = request.parent_id
            && from.drive == to.drive
        {
            // A folder cannot be copied into itself or a descendant.
            let mut cursor = Some(parent);
            while let Some(current) = cursor {
                if current == source.id {
                    return Err(DriveError::InvalidMove);
                }
                cursor = self.get(to, current).await?.parent_id;
            }
        }
        self.copy_node(&source, to, request.parent_id, &name, 0).await
    }

    async fn copy_node(
        &self,
        source: &Node,
        to: &Scope,
        parent: Option<Uuid>,
        name: &str,
        depth: usize,
    ) -> Result<Node, DriveError> {
        if depth > MAX_COPY_DEPTH {
            return Err(DriveError::InvalidMove);
        }
        let copy = if source.kind == "file" {
            self.copy_file(source, to, parent, name).await?
        } else {
            let folder =
                self.create_folder(to, super::CreateFolder { parent_id: parent, name: name.to_owned() }).await?;
            let from =
                Scope { drive: source.drive.clone(), actor: to.actor, can_write: false, can_manage: false, root: None };
            for child in self.list(&from, Some(source.id)).await? {
                Box::pin(self.copy_node(&child, to, Some(folder.id), &child.name, depth + 1)).await?;
            }
            folder
        };
        self.copy_properties(source.id, copy.id).await?;
        Ok(copy)
    }

    async fn copy_file(&self, source: &Node, to: &Scope, parent: Option<Uuid>, name: &str) -> Result<Node, DriveError> {
        let quota = self.quota_of(to);
        if quota > 0 {
            let used = u64::try_from(self.usage(to).await?.versions_bytes).unwrap_or(u64::MAX);
            if used.saturating_add(u64::try_from(source.size).unwrap_or(0)) > quota {
                return Err(DriveError::QuotaExceeded(quota));
            }
        }
        let key = self.folder_key(to, parent).await?;
        let manifest = self.manifest_of(source, None).await?;
        let manifest = self.content.duplicate(manifest).await?;
        let now = self.now();
        let (node_id, version) = (Uuid::now_v7(), Uuid::now_v7());
        let mut tx = self.db.begin().await?;
        let inserted = tx
            .query(
                "INSERT INTO drive_nodes (id, drive, parent_id, parent_key, name, kind, current_version, size, content_hash, \
                 created_by, created_at, updated_at, content_type) \
                 VALUES ($1, $2, $3, $4, $5, 'file', $6, $7, $8, $9, $10, $10, $11)",
            )
            .bind(node_id)
            .bind(to.drive.as_str())
            .bind(parent)
            .bind(key)
            .bind(name)
            .bind(version)
            .bind(source.size)
            .bind(source.content_hash.clone())
            .bind(to.actor)
            .bind(now)
            .bind(source.content_type.clone())
            .execute()
            .await;
        match inserted {
            Err(err) if err.is_unique_violation() => {
                drop(tx);
                self.content.delete(manifest).await?;
                return Err(DriveError::NameTaken(name.to_owned()));
            }
            other => {
                other?;
            }
        }
        let row = NewVersion {
            id: version,
            node: node_id,
            manifest,
            size: source.size,
            hash: source.content_hash.as_deref().unwrap_or_default(),
            by: to.actor,
            at: now,
            content_type: source.content_type.as_deref(),
        };
        insert_version(&mut tx, row).await?;
        tx.commit().await?;
        self.emit("created", node_id, &to.drive, "file").await;
        self.get(to, node_id).await
    }
}
