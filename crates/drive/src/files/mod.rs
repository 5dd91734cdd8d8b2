//! Files and folders of a drive, and their versions. Every operation is scoped to the drive of
//! the principal (their own, `u:<user>`), so another user's ids are "not found". Every write of
//! content creates a version; `If-Match` guards changes against concurrent edits.

use chrono::{DateTime, Utc};
use oppidum_core::Principal;
use oppidum_store::{ByteStream, Db};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::content::ContentStore;
use crate::error::DriveError;

/// `SELECT <every Node column> FROM drive_nodes <tail>`, as a static string.
macro_rules! select_nodes {
    ($tail:literal) => {
        concat!(
            "SELECT id, drive, parent_id, parent_key, name, kind, current_version, size, content_hash, created_at, ",
            "updated_at FROM drive_nodes ",
            $tail
        )
    };
}

mod trash;

pub use trash::Usage;

/// A file or folder.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Node {
    pub id: Uuid,
    #[serde(skip)]
    pub drive: String,
    pub parent_id: Option<Uuid>,
    #[serde(skip)]
    pub parent_key: String,
    pub name: String,
    /// `file` or `folder`.
    pub kind: String,
    #[serde(skip)]
    pub current_version: Option<Uuid>,
    pub size: i64,
    /// BLAKE3 of the content: the strong ETag of files.
    pub content_hash: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Node {
    /// The ETag of this node's current state.
    pub fn etag(&self) -> String {
        match &self.content_hash {
            Some(hash) => format!("\"{hash}\""),
            None => format!("\"{}-{}\"", self.id.simple(), self.updated_at.timestamp_micros()),
        }
    }
}

/// One version of a file.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Version {
    pub id: Uuid,
    #[serde(skip)]
    pub manifest_id: Uuid,
    pub size: i64,
    pub hash: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFolder {
    pub parent_id: Option<Uuid>,
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyNode {
    /// Destination folder; absent for the top level.
    pub parent_id: Option<Uuid>,
    /// New name; default the same.
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateNode {
    pub name: Option<String>,
    /// Move into this folder (`null` for the top level is not expressible here: use `to_root`).
    pub parent_id: Option<Uuid>,
    #[serde(default)]
    pub to_root: bool,
}

/// The drive service; cheap to clone.
#[derive(Clone, Debug)]
pub struct Drive {
    db: Db,
    content: ContentStore,
    max_file_size: u64,
    /// Logical bytes per user drive (all versions); 0: unlimited.
    user_quota: u64,
}

fn drive_of(principal: &Principal) -> String {
    format!("u:{}", principal.user_id)
}

/// Checks a file or folder name: no separators, no `.`/`..`, no control characters, not too long.
pub fn validate_name(name: &str) -> Result<String, DriveError> {
    let name = name.trim();
    let invalid = name.is_empty()
        || name.len() > 255
        || name == "."
        || name == ".."
        || name.contains(['/', '\\'])
        || name.chars().any(char::is_control);
    if invalid { Err(DriveError::InvalidName(name.chars().take(64).collect())) } else { Ok(name.to_owned()) }
}

impl Drive {
    pub fn new(db: Db, content: ContentStore, max_file_size: u64, user_quota: u64) -> Self {
        Self { db, content, max_file_size, user_quota }
    }

    /// The content store behind this drive.
    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    /// A node of the principal's drive, or "not found".
    pub async fn get(&self, principal: &Principal, id: Uuid) -> Result<Node, DriveError> {
        self.db
            .query(select_nodes!("WHERE id = $1 AND drive = $2 AND trashed_at IS NULL"))
            .bind(id)
            .bind(drive_of(principal))
            .fetch_optional()
            .await?
            .ok_or(DriveError::NotFound)
    }

    async fn folder_key(&self, principal: &Principal, parent: Option<Uuid>) -> Result<String, DriveError> {
        match parent {
            None => Ok("root".into()),
            Some(id) => {
                let node = self.get(principal, id).await?;
                if node.kind != "folder" {
                    return Err(DriveError::NotAFolder);
                }
                Ok(id.to_string())
            }
        }
    }

    /// The live children of a folder (`None`: the top level), folders first, by name.
    pub async fn list(&self, principal: &Principal, parent: Option<Uuid>) -> Result<Vec<Node>, DriveError> {
        let key = self.folder_key(principal, parent).await?;
        Ok(self
            .db
            .query(select_nodes!(
                "WHERE drive = $1 AND parent_key = $2 AND trashed_at IS NULL \
                 ORDER BY kind DESC, name LIMIT 10000"
            ))
            .bind(drive_of(principal))
            .bind(key)
            .fetch_all()
            .await?)
    }

    async fn find_child(&self, drive: &str, key: &str, name: &str) -> Result<Option<Node>, DriveError> {
        Ok(self
            .db
            .query(select_nodes!("WHERE drive = $1 AND parent_key = $2 AND name = $3 AND trashed_at IS NULL"))
            .bind(drive)
            .bind(key)
            .bind(name)
            .fetch_optional()
            .await?)
    }

    pub async fn create_folder(&self, principal: &Principal, request: CreateFolder) -> Result<Node, DriveError> {
        let name = validate_name(&request.name)?;
        let key = self.folder_key(principal, request.parent_id).await?;
        let now = self.now();
        let id = Uuid::now_v7();
        let inserted = self
            .db
            .query(
                "INSERT INTO drive_nodes (id, drive, parent_id, parent_key, name, kind, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, 'folder', $6, $7, $7)",
            )
            .bind(id)
            .bind(drive_of(principal))
            .bind(request.parent_id)
            .bind(key)
            .bind(name.as_str())
            .bind(principal.user_id)
            .bind(now)
            .execute()
            .await;
        match inserted {
            Err(err) if err.is_unique_violation() => return Err(DriveError::NameTaken(name)),
            other => {
                other?;
            }
        }
        self.get(principal, id).await
    }

    /// Stores `body` as `name` in `parent`: a new file, or a new version of the existing one.
    /// `if_match` must equal the current ETag when given (`*`: must exist). Returns the node and
    /// whether it was created.
    pub async fn upload(
        &self,
        principal: &Principal,
        parent: Option<Uuid>,
        name: &str,
        body: ByteStream,
        if_match: Option<&str>,
        declared_len: Option<u64>,
    ) -> Result<(Node, bool), DriveError> {
        let name = validate_name(name)?;
        // The quota is checked before the body is stored: against the declared length at once,
        // and as a hard limit while streaming.
        let mut limit = self.max_file_size;
        if self.user_quota > 0 {
            let used = u64::try_from(self.usage(principal).await?.versions_bytes).unwrap_or(u64::MAX);
            let left = self.user_quota.saturating_sub(used);
            if declared_len.is_some_and(|len| len > left) || left == 0 {
                return Err(DriveError::QuotaExceeded(self.user_quota));
            }
            limit = limit.min(left);
        }
        let key = self.folder_key(principal, parent).await?;
        let drive = drive_of(principal);
        let existing = self.find_child(&drive, &key, &name).await?;
        if let Some(node) = &existing
            && node.kind == "folder"
        {
            return Err(DriveError::NameTaken(name));
        }
        check_if_match(existing.as_ref(), if_match)?;
        // Content first: nothing becomes visible until every chunk is stored.
        let manifest = match self.content.ingest(body, limit).await {
            Err(DriveError::TooLarge(_)) if limit < self.max_file_size => {
                return Err(DriveError::QuotaExceeded(self.user_quota));
            }
            other => other?,
        };
        let manifest_id = self.content.commit(&manifest).await?;
        let now = self.now();
        let size = i64::try_from(manifest.size).unwrap_or(i64::MAX);
        let version = Uuid::now_v7();
        let mut tx = self.db.begin().await?;
        let (node_id, created) = match &existing {
            Some(node) => {
                // Another writer may have replaced it since: compare again inside the transaction.
                let changed = tx
                    .query(
                        "UPDATE drive_nodes SET current_version = $2, size = $3, content_hash = $4, updated_at = $5 \
                         WHERE id = $1 AND trashed_at IS NULL AND content_hash IS NOT DISTINCT FROM $6",
                    )
                    .bind(node.id)
                    .bind(version)
                    .bind(size)
                    .bind(manifest.hash.as_str())
                    .bind(now)
                    .bind(node.content_hash.clone())
                    .execute()
                    .await;
                let changed = changed?;
                if changed == 0 {
                    return Err(DriveError::PreconditionFailed);
                }
                (node.id, false)
            }
            None => {
                let id = Uuid::now_v7();
                let inserted = tx
                    .query(
                        "INSERT INTO drive_nodes (id, drive, parent_id, parent_key, name, kind, current_version, size, \
                         content_hash, created_by, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, 'file', $6, $7, $8, $9, $10, $10)",
                    )
                    .bind(id)
                    .bind(drive.as_str())
                    .bind(parent)
                    .bind(key.as_str())
                    .bind(name.as_str())
                    .bind(version)
                    .bind(size)
                    .bind(manifest.hash.as_str())
                    .bind(principal.user_id)
                    .bind(now)
                    .execute()
                    .await;
                match inserted {
                    Err(err) if err.is_unique_violation() => return Err(DriveError::PreconditionFailed),
                    other => {
                        other?;
                    }
                }
                (id, true)
            }
        };
        tx.query(
            "INSERT INTO drive_versions (id, node_id, manifest_id, size, hash, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(version)
        .bind(node_id)
        .bind(manifest_id)
        .bind(size)
        .bind(manifest.hash.as_str())
        .bind(principal.user_id)
        .bind(now)
        .execute()
        .await?;
        tx.commit().await?;
        Ok((self.get(principal, node_id).await?, created))
    }

    /// The content of a file (current version, or `version`), optionally a byte range.
    pub async fn download(
        &self,
        principal: &Principal,
        id: Uuid,
        version: Option<Uuid>,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<(Node, ByteStream), DriveError> {
        let node = self.get(principal, id).await?;
        if node.kind != "file" {
            return Err(DriveError::NotAFile);
        }
        let wanted = version.or(node.current_version).ok_or(DriveError::NotFound)?;
        let (manifest,): (Uuid,) = self
            .db
            .query("SELECT manifest_id FROM drive_versions WHERE id = $1 AND node_id = $2")
            .bind(wanted)
            .bind(node.id)
            .fetch_optional()
            .await?
            .ok_or(DriveError::NotFound)?;
        let body = self.content.read(manifest, range).await?;
        Ok((node, body))
    }

    pub async fn versions(&self, principal: &Principal, id: Uuid) -> Result<Vec<Version>, DriveError> {
        let node = self.get(principal, id).await?;
        Ok(self
            .db
            .query(
                "SELECT id, manifest_id, size, hash, created_by, created_at FROM drive_versions WHERE node_id = $1 \
                 ORDER BY created_at DESC, id DESC",
            )
            .bind(node.id)
            .fetch_all()
            .await?)
    }

    /// Renames or moves a node.
    pub async fn update(
        &self,
        principal: &Principal,
        id: Uuid,
        request: UpdateNode,
        if_match: Option<&str>,
    ) -> Result<Node, DriveError> {
        let node = self.get(principal, id).await?;
        check_if_match(Some(&node), if_match)?;
        let name = request.name.as_deref().map(validate_name).transpose()?.unwrap_or(node.name.clone());
        let (parent, key) = if request.to_root {
            (None, "root".to_owned())
        } else if let Some(parent) = request.parent_id {
            // A folder cannot move into itself or a descendant.
            let mut cursor = Some(parent);
            while let Some(current) = cursor {
                if current == node.id {
                    return Err(DriveError::InvalidMove);
                }
                cursor = self.get(principal, current).await?.parent_id;
            }
            (Some(parent), self.folder_key(principal, Some(parent)).await?)
        } else {
            (node.parent_id, node.parent_key.clone())
        };
        let changed = self
            .db
            .query(
                "UPDATE drive_nodes SET name = $3, parent_id = $4, parent_key = $5, updated_at = $6 \
                 WHERE id = $1 AND drive = $2 AND trashed_at IS NULL",
            )
            .bind(node.id)
            .bind(node.drive.as_str())
            .bind(name.as_str())
            .bind(parent)
            .bind(key)
            .bind(self.now())
            .execute()
            .await;
        match changed {
            Err(err) if err.is_unique_violation() => return Err(DriveError::NameTaken(name)),
            other => {
                other?;
            }
        }
        self.get(principal, node.id).await
    }

    /// Makes an old version current again, as a new version (history is never rewritten).
    pub async fn restore_version(&self, principal: &Principal, id: Uuid, version: Uuid) -> Result<Node, DriveError> {
        let node = self.get(principal, id).await?;
        let (manifest, size, hash): (Uuid, i64, String) = self
            .db
            .query("SELECT manifest_id, size, hash FROM drive_versions WHERE id = $1 AND node_id = $2")
            .bind(version)
            .bind(node.id)
            .fetch_optional()
            .await?
            .ok_or(DriveError::NotFound)?;
        let manifest = self.content.duplicate(manifest).await?;
        let now = self.now();
        let new_version = Uuid::now_v7();
        let mut tx = self.db.begin().await?;
        tx.query(
            "INSERT INTO drive_versions (id, node_id, manifest_id, size, hash, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new_version)
        .bind(node.id)
        .bind(manifest)
        .bind(size)
        .bind(hash.as_str())
        .bind(principal.user_id)
        .bind(now)
        .execute()
        .await?;
        tx.query(
            "UPDATE drive_nodes SET current_version = $2, size = $3, content_hash = $4, updated_at = $5 WHERE id = $1",
        )
        .bind(node.id)
        .bind(new_version)
        .bind(size)
        .bind(hash.as_str())
        .bind(now)
        .execute()
        .await?;
        tx.commit().await?;
        self.get(principal, node.id).await
    }

    /// Copies a file: a new file with the same content and no history, costing no stored bytes.
    pub async fn copy(&self, principal: &Principal, id: Uuid, request: CopyNode) -> Result<Node, DriveError> {
        let source = self.get(principal, id).await?;
        if source.kind != "file" {
            return Err(DriveError::NotAFile);
        }
        let name = validate_name(request.name.as_deref().unwrap_or(&source.name))?;
        let key = self.folder_key(principal, request.parent_id).await?;
        let current = source.current_version.ok_or(DriveError::NotFound)?;
        let (manifest,): (Uuid,) = self
            .db
            .query("SELECT manifest_id FROM drive_versions WHERE id = $1")
            .bind(current)
            .fetch_optional()
            .await?
            .ok_or(DriveError::NotFound)?;
        let manifest = self.content.duplicate(manifest).await?;
        let now = self.now();
        let (node_id, version) = (Uuid::now_v7(), Uuid::now_v7());
        let mut tx = self.db.begin().await?;
        let inserted = tx
            .query(
                "INSERT INTO drive_nodes (id, drive, parent_id, parent_key, name, kind, current_version, size, content_hash, \
                 created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'file', $6, $7, $8, $9, $10, $10)",
            )
            .bind(node_id)
            .bind(source.drive.as_str())
            .bind(request.parent_id)
            .bind(key)
            .bind(name.as_str())
            .bind(version)
            .bind(source.size)
            .bind(source.content_hash.clone())
            .bind(principal.user_id)
            .bind(now)
            .execute()
            .await;
        match inserted {
            Err(err) if err.is_unique_violation() => {
                drop(tx);
                self.content.delete(manifest).await?;
                return Err(DriveError::NameTaken(name));
            }
            other => {
                other?;
            }
        }
        tx.query(
            "INSERT INTO drive_versions (id, node_id, manifest_id, size, hash, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(version)
        .bind(node_id)
        .bind(manifest)
        .bind(source.size)
        .bind(source.content_hash.clone().unwrap_or_default())
        .bind(principal.user_id)
        .bind(now)
        .execute()
        .await?;
        tx.commit().await?;
        self.get(principal, node_id).await
    }

    /// Moves a node (and so its subtree) to the trash.
    pub async fn trash(&self, principal: &Principal, id: Uuid, if_match: Option<&str>) -> Result<(), DriveError> {
        let node = self.get(principal, id).await?;
        check_if_match(Some(&node), if_match)?;
        self.db
            .query("UPDATE drive_nodes SET trashed_at = $2 WHERE id = $1")
            .bind(node.id)
            .bind(self.now())
            .execute()
            .await?;
        Ok(())
    }
}

fn check_if_match(node: Option<&Node>, if_match: Option<&str>) -> Result<(), DriveError> {
    let Some(expected) = if_match.map(str::trim) else { return Ok(()) };
    match node {
        Some(_) if expected == "*" => Ok(()),
        Some(node) if expected.split(',').any(|tag| tag.trim().trim_start_matches("W/") == node.etag()) => Ok(()),
        _ => Err(DriveError::PreconditionFailed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_names_are_validated() {
        for bad in ["", ".", "..", "a/b", "a\\b", "nul\u{0}", &"x".repeat(256)] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(validate_name(" report.pdf ").expect("ok"), "report.pdf");
        assert!(validate_name("Ünïcode – ok").is_ok());
    }
}
