//! Writing and reading content: uploads in three steps (check, store chunks, commit a version)
//! so that protocol front ends can commit only once a request completed, downloads, versions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use oppidum_store::{ByteStream, Statement, StoreError, Tx, Unit};
use uuid::Uuid;

use super::{Drive, Node, Scope, Version, check_if_match, validate_name};
use crate::antivirus::Verdict;
use crate::content::Manifest;
use crate::error::DriveError;
use crate::sniff::{self, SNIFF_LEN};

/// Uploads in progress per user on this node, for the concurrent-upload cap.
#[derive(Debug, Clone, Default)]
pub(super) struct UploadSlots(Arc<Mutex<HashMap<Uuid, usize>>>);

/// Holds one of a user's upload slots until dropped.
#[derive(Debug)]
pub(super) struct Slot {
    slots: UploadSlots,
    user: Uuid,
}

impl UploadSlots {
    pub(super) fn take(&self, user: Uuid, cap: usize) -> Result<Slot, DriveError> {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = map.entry(user).or_default();
        if cap > 0 && *count >= cap {
            return Err(DriveError::TooManyUploads(cap));
        }
        *count += 1;
        Ok(Slot { slots: self.clone(), user })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.slots.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = map.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.user);
            }
        }
    }
}

/// A version row to record, in the transaction that makes it current.
pub(super) struct NewVersion<'a> {
    pub id: Uuid,
    pub node: Uuid,
    pub manifest: Uuid,
    pub size: i64,
    pub hash: &'a str,
    pub by: Uuid,
    pub at: chrono::DateTime<chrono::Utc>,
    pub content_type: Option<&'a str>,
}

/// The statement recording a version.
fn version_row(version: NewVersion<'_>) -> Statement {
    Statement::new(
        "INSERT INTO drive_versions (id, node_id, manifest_id, size, hash, created_by, created_at, content_type) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(version.id)
    .bind(version.node)
    .bind(version.manifest)
    .bind(version.size)
    .bind(version.hash)
    .bind(version.by)
    .bind(version.at)
    .bind(version.content_type)
}

/// Records a version inside `tx`.
pub(super) async fn insert_version(tx: &mut Tx, version: NewVersion<'_>) -> Result<(), DriveError> {
    let mut unit = Unit::new();
    unit.push(version_row(version));
    tx.run_unit(unit).await?;
    Ok(())
}

/// Where an upload goes, resolved: the folder (`None`: the top), its key, the validated name and
/// the live node holding that name now.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub parent: Option<Uuid>,
    pub key: String,
    pub name: String,
    pub existing: Option<Node>,
}

/// An upload that passed its checks (name, permissions, quota, `If-Match`) and may now stream.
#[derive(Debug)]
pub struct PendingUpload {
    scope: Scope,
    parent: Option<Uuid>,
    key: String,
    name: String,
    existing: Option<Node>,
    /// Most bytes the body may have (size limit, or what the quota leaves).
    limit: u64,
    quota_bound: bool,
    /// The first bytes of the body, for content-type sniffing.
    head: Arc<Mutex<Vec<u8>>>,
    _slot: Slot,
}

impl PendingUpload {
    /// Whether the upload replaces an existing file (a new version) rather than creating one.
    pub fn replaces(&self) -> Option<&Node> {
        self.existing.as_ref()
    }
}

impl Drive {
    /// Checks an upload of `name` into `parent` before any byte is read: permissions, name,
    /// concurrent uploads, quota (against the declared length), `If-Match`.
    pub async fn begin_upload(
        &self,
        scope: &Scope,
        parent: Option<Uuid>,
        name: &str,
        if_match: Option<&str>,
        declared_len: Option<u64>,
    ) -> Result<PendingUpload, DriveError> {
        scope.require_write()?;
        let name = validate_name(name)?;
        let key = self.folder_key(scope, parent).await?;
        let existing = self.find_child(&scope.drive, &key, &name).await?;
        self.begin_resolved_upload(scope, Resolved { parent, key, name, existing }, if_match, declared_len).await
    }

    /// [`Self::begin_upload`] once the caller resolved the folder and what its name holds now
    /// (WebDAV did, walking the path): nothing read twice. A name taken by a file that changes in
    /// the meantime is caught by the commit, which compares again.
    pub(crate) async fn begin_resolved_upload(
        &self,
        scope: &Scope,
        target: Resolved,
        if_match: Option<&str>,
        declared_len: Option<u64>,
    ) -> Result<PendingUpload, DriveError> {
        scope.require_write()?;
        let Resolved { parent, key, name, existing } = target;
        let name = validate_name(&name)?;
        let slot = self.uploads.take(scope.actor, self.config.max_concurrent_uploads)?;
        let max = self.config.max_file_size.bytes();
        if declared_len.is_some_and(|len| len > max) {
            return Err(DriveError::TooLarge(max));
        }
        let mut limit = max;
        let quota = self.quota_of(scope);
        let mut quota_bound = false;
        if quota > 0 {
            let used = u64::try_from(self.usage(scope).await?.versions_bytes).unwrap_or(u64::MAX);
            let left = quota.saturating_sub(used);
            if declared_len.is_some_and(|len| len > left) || left == 0 {
                return Err(DriveError::QuotaExceeded(quota));
            }
            if left < limit {
                limit = left;
                quota_bound = true;
            }
        }
        if let Some(node) = &existing
            && node.kind == "folder"
        {
            return Err(DriveError::NameTaken(name));
        }
        check_if_match(existing.as_ref(), if_match)?;
        let head = Arc::new(Mutex::new(Vec::new()));
        Ok(PendingUpload { scope: scope.clone(), parent, key, name, existing, limit, quota_bound, head, _slot: slot })
    }

    /// Stores the chunks of `body`. Nothing is visible until [`Self::commit_upload`]; chunks of an
    /// upload never committed are collected as garbage.
    pub async fn ingest(&self, pending: &PendingUpload, body: ByteStream) -> Result<Manifest, DriveError> {
        let head = pending.head.clone();
        let body = body
            .map_ok(move |chunk| {
                let mut head = head.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if head.len() < SNIFF_LEN {
                    let take = (SNIFF_LEN - head.len()).min(chunk.len());
                    head.extend_from_slice(&chunk[..take]);
                }
                chunk
            })
            .boxed();
        let (body, scan) = match &self.antivirus {
            Some(antivirus) => {
                let (body, scan) = antivirus.scan(body);
                (body, Some((antivirus, scan)))
            }
            None => (body, None),
        };
        let manifest = match self.content.ingest(body, pending.limit).await {
            Err(DriveError::TooLarge(_)) if pending.quota_bound => {
                Err(DriveError::QuotaExceeded(self.quota_of(&pending.scope)))
            }
            other => other,
        }?;
        if let Some((antivirus, scan)) = scan {
            let (drive, name) = (&pending.scope.drive, &pending.name);
            match scan.verdict().await {
                Verdict::Clean => {}
                Verdict::Infected(virus) => {
                    tracing::warn!(%virus, %drive, %name, "upload refused: a virus was found");
                    return Err(DriveError::VirusDetected(virus));
                }
                Verdict::Unavailable(why) if antivirus.required => {
                    tracing::error!(%why, %drive, %name, "upload refused: the virus scanner is unavailable");
                    return Err(DriveError::ScannerUnavailable);
                }
                Verdict::Unavailable(why) => {
                    tracing::warn!(%why, %drive, %name, "upload accepted without a virus scan (scanner unavailable)");
                }
            }
        }
        Ok(manifest)
    }

    /// Makes the stored content the file's new current version (or a new file). Returns the node
    /// and whether it was created.
    pub async fn commit_upload(&self, pending: PendingUpload, manifest: &Manifest) -> Result<(Node, bool), DriveError> {
        let scope = &pending.scope;
        let content_type = {
            let head = pending.head.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            sniff::content_type(&head, &pending.name)
        };
        let now = self.now();
        let size = i64::try_from(manifest.size).unwrap_or(i64::MAX);
        let version = Uuid::now_v7();
        // The manifest, the file and its version are one unit of work: a refused commit leaves
        // nothing behind.
        let mut unit = Unit::new();
        let manifest_id = self.content.record(&mut unit, manifest);
        let (node_id, created, created_at) = match &pending.existing {
            Some(node) => {
                // Another writer may have replaced it since: compare again as part of the commit.
                unit.push(
                    Statement::new(
                        "UPDATE drive_nodes SET current_version = $2, size = $3, content_hash = $4, updated_at = $5, \
                         content_type = $7 WHERE id = $1 AND trashed_at IS NULL AND content_hash IS NOT DISTINCT FROM $6",
                    )
                    .bind(node.id)
                    .bind(version)
                    .bind(size)
                    .bind(manifest.hash.as_str())
                    .bind(now)
                    .bind(node.content_hash.clone())
                    .bind(content_type)
                    .must_change(),
                );
                (node.id, false, node.created_at)
            }
            None => {
                let id = Uuid::now_v7();
                unit.push(
                    Statement::new(
                        "INSERT INTO drive_nodes (id, drive, parent_id, parent_key, name, kind, current_version, size, \
                         content_hash, created_by, created_at, updated_at, content_type) \
                         VALUES ($1, $2, $3, $4, $5, 'file', $6, $7, $8, $9, $10, $10, $11)",
                    )
                    .bind(id)
                    .bind(scope.drive.as_str())
                    .bind(pending.parent)
                    .bind(pending.key.as_str())
                    .bind(pending.name.as_str())
                    .bind(version)
                    .bind(size)
                    .bind(manifest.hash.as_str())
                    .bind(scope.actor)
                    .bind(now)
                    .bind(content_type),
                );
                (id, true, now)
            }
        };
        let hash = manifest.hash.as_str();
        let row = NewVersion {
            id: version,
            node: node_id,
            manifest: manifest_id,
            size,
            hash,
            by: scope.actor,
            at: now,
            content_type: Some(content_type),
        };
        unit.push(version_row(row));
        match self.db.commit_unit(unit).await {
            // The file changed since it was read, or its name was taken meanwhile.
            Err(StoreError::Unchanged { .. }) => return Err(DriveError::PreconditionFailed),
            Err(err) if err.is_unique_violation() => return Err(DriveError::PreconditionFailed),
            other => other?,
        };
        self.emit(if created { "created" } else { "updated" }, node_id, &scope.drive, "file").await;
        // The node as the transaction left it (no read back).
        let node = Node {
            id: node_id,
            drive: scope.drive.clone(),
            parent_id: pending.parent,
            parent_key: pending.key,
            name: pending.name,
            kind: "file".into(),
            current_version: Some(version),
            size,
            content_hash: Some(manifest.hash.clone()),
            content_type: Some(content_type.to_owned()),
            created_at,
            updated_at: now,
        };
        Ok((node, created))
    }

    /// Stores `body` as `name` in `parent`: a new file, or a new version of the existing one.
    /// `if_match` must equal the current ETag when given (`*`: must exist). Returns the node and
    /// whether it was created.
    pub async fn upload(
        &self,
        scope: &Scope,
        parent: Option<Uuid>,
        name: &str,
        body: ByteStream,
        if_match: Option<&str>,
        declared_len: Option<u64>,
    ) -> Result<(Node, bool), DriveError> {
        let pending = self.begin_upload(scope, parent, name, if_match, declared_len).await?;
        let manifest = self.ingest(&pending, body).await?;
        self.commit_upload(pending, &manifest).await
    }

    /// The manifest holding a version (the current one by default) of a file.
    pub(super) async fn manifest_of(&self, node: &Node, version: Option<Uuid>) -> Result<Uuid, DriveError> {
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
        Ok(manifest)
    }

    /// The content of a file (current version, or `version`), optionally a byte range.
    pub async fn download(
        &self,
        scope: &Scope,
        id: Uuid,
        version: Option<Uuid>,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<(Node, ByteStream), DriveError> {
        let node = self.get(scope, id).await?;
        let manifest = self.manifest_of(&node, version).await?;
        let body = self.content.read(manifest, range).await?;
        Ok((node, body))
    }

    /// A byte range of the current content of `node` (already resolved in its scope).
    pub async fn read_node(&self, node: &Node, range: Option<std::ops::Range<u64>>) -> Result<ByteStream, DriveError> {
        let manifest = self.manifest_of(node, None).await?;
        self.content.read(manifest, range).await
    }

    pub async fn versions(&self, scope: &Scope, id: Uuid) -> Result<Vec<Version>, DriveError> {
        let node = self.get(scope, id).await?;
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

    /// Makes an old version current again, as a new version (history is never rewritten).
    pub async fn restore_version(&self, scope: &Scope, id: Uuid, version: Uuid) -> Result<Node, DriveError> {
        scope.require_write()?;
        let node = self.get(scope, id).await?;
        let (manifest, size, hash, content_type): (Uuid, i64, String, Option<String>) = self
            .db
            .query("SELECT manifest_id, size, hash, content_type FROM drive_versions WHERE id = $1 AND node_id = $2")
            .bind(version)
            .bind(node.id)
            .fetch_optional()
            .await?
            .ok_or(DriveError::NotFound)?;
        let manifest = self.content.duplicate(manifest).await?;
        let now = self.now();
        let new_version = Uuid::now_v7();
        let mut tx = self.db.begin().await?;
        let row = NewVersion {
            id: new_version,
            node: node.id,
            manifest,
            size,
            hash: &hash,
            by: scope.actor,
            at: now,
            content_type: content_type.as_deref(),
        };
        insert_version(&mut tx, row).await?;
        tx.query(
            "UPDATE drive_nodes SET current_version = $2, size = $3, content_hash = $4, updated_at = $5, \
             content_type = $6 WHERE id = $1",
        )
        .bind(node.id)
        .bind(new_version)
        .bind(size)
        .bind(hash.as_str())
        .bind(now)
        .bind(content_type)
        .execute()
        .await?;
        tx.commit().await?;
        self.emit("updated", node.id, &node.drive, "file").await;
        self.get(scope, node.id).await
    }
}
