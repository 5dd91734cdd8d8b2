//! Retention: trashed files and folders are purged after `drive.trash_days`; old versions go
//! beyond `drive.keep_versions` per file or `drive.keep_version_days` of age (the current version
//! always stays). Run periodically by the server; the chunks freed are collected afterwards.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::Drive;
use crate::error::DriveError;

/// Most items handled in one pass (the next pass continues).
const BATCH: i64 = 1000;

/// What one retention pass removed.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Retention {
    pub purged_nodes: u64,
    pub deleted_versions: u64,
    pub expired_uploads: u64,
}

impl Drive {
    /// One retention pass as of `now`.
    pub async fn enforce_retention(&self, now: DateTime<Utc>) -> Result<Retention, DriveError> {
        let mut done = Retention { expired_uploads: self.expire_sessions(now).await?, ..Retention::default() };
        if self.config.trash_days > 0 {
            let cutoff = now - Duration::days(i64::try_from(self.config.trash_days).unwrap_or(i64::MAX / 86_400_000));
            let expired: Vec<(Uuid,)> = self
                .db
                .query("SELECT id FROM drive_nodes WHERE trashed_at IS NOT NULL AND trashed_at < $1 LIMIT $2")
                .bind(cutoff)
                .bind(BATCH)
                .fetch_all()
                .await?;
            for (id,) in expired {
                self.purge_node(id).await?;
                done.purged_nodes += 1;
            }
        }
        let keep = i64::try_from(self.config.keep_versions).unwrap_or(i64::MAX);
        let age_cutoff = (self.config.keep_version_days > 0).then(|| {
            now - Duration::days(i64::try_from(self.config.keep_version_days).unwrap_or(i64::MAX / 86_400_000))
        });
        let mut nodes: Vec<(Uuid,)> = Vec::new();
        if keep > 0 {
            nodes.extend(
                self.db
                    .query("SELECT node_id FROM drive_versions GROUP BY node_id HAVING COUNT(*) > $1 LIMIT $2")
                    .bind(keep + 1)
                    .bind(BATCH)
                    .fetch_all::<(Uuid,)>()
                    .await?,
            );
        }
        if let Some(cutoff) = age_cutoff {
            nodes.extend(
                self.db
                    .query(
                        "SELECT DISTINCT v.node_id FROM drive_versions v JOIN drive_nodes n ON n.id = v.node_id \
                         WHERE v.created_at < $1 AND v.id <> n.current_version LIMIT $2",
                    )
                    .bind(cutoff)
                    .bind(BATCH)
                    .fetch_all::<(Uuid,)>()
                    .await?,
            );
        }
        nodes.sort();
        nodes.dedup();
        for (node,) in nodes {
            done.deleted_versions += self.prune_versions(node, keep, age_cutoff).await?;
        }
        Ok(done)
    }

    async fn prune_versions(&self, node: Uuid, keep: i64, cutoff: Option<DateTime<Utc>>) -> Result<u64, DriveError> {
        let current: Option<(Option<Uuid>,)> =
            self.db.query("SELECT current_version FROM drive_nodes WHERE id = $1").bind(node).fetch_optional().await?;
        let current = current.and_then(|(c,)| c);
        let versions: Vec<(Uuid, Uuid, DateTime<Utc>)> = self
            .db
            .query("SELECT id, manifest_id, created_at FROM drive_versions WHERE node_id = $1 ORDER BY created_at DESC, id DESC")
            .bind(node)
            .fetch_all()
            .await?;
        let mut deleted = 0;
        // Rank among the versions other than the current one.
        let mut rank = 0i64;
        for (id, manifest, created) in versions {
            if Some(id) == current {
                continue;
            }
            rank += 1;
            let too_many = keep > 0 && rank > keep;
            let too_old = cutoff.is_some_and(|cutoff| created < cutoff);
            if too_many || too_old {
                self.db.query("DELETE FROM drive_versions WHERE id = $1").bind(id).execute().await?;
                self.content.delete(manifest).await?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}
