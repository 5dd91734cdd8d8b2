//! Files and folders of a drive, and their versions. Every operation runs in a [`Scope`]: one
//! drive (a user's own, `u:<user>`, or an organization's shared drive, `o:<org>`) as one caller
//! may use it, so ids of other drives are "not found". Every write of content creates a version;
//! `If-Match` guards changes against concurrent edits.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use oppidum_core::Directory;
use oppidum_core::config::DriveConfig;
use oppidum_store::{Db, EventBus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::antivirus::Antivirus;
use crate::content::ContentStore;
use crate::error::DriveError;

/// `SELECT <every Node column> FROM drive_nodes <tail>`, as a static string.
macro_rules! select_nodes {
    ($tail:literal) => {
        concat!(
            "SELECT id, drive, parent_id, parent_key, name, kind, current_version, size, content_hash, content_type, ",
            "created_at, updated_at FROM drive_nodes ",
            $tail
        )
    };
}

mod access;
mod copy;
#[cfg(test)]
mod db_tests;
mod links;
mod listing;
mod paths;
mod properties;
mod resumable;
mod retention;
mod sharing;
mod trash;
mod upload;

pub use access::Scope;
pub use links::{CreatedLink, Link, NewLink, OpenLink};
pub use listing::{NodePage, Order, SortKey};
pub(crate) use paths::MAX_DEPTH;
pub use properties::DeadProperty;
pub use resumable::{SESSION_HOURS, UploadSession};
pub use retention::Retention;
pub use sharing::{NewShare, Share, SharedNode};
pub use trash::Usage;
pub use upload::PendingUpload;
pub(crate) use upload::Resolved;

/// A file or folder.
#[derive(Debug, Clone, Serialize, oppidum_store::FromRow, ToSchema)]
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
    /// BLAKE3 of the content (its first 128 bits are the file's strong ETag).
    pub content_hash: Option<String>,
    /// The media type found in the content's first bytes.
    pub content_type: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Node {
    /// The ETag of this node's current state: for files the first 128 bits of the content's
    /// BLAKE3 hash (a strong validator, short enough for clients that cap `If` header lengths).
    pub fn etag(&self) -> String {
        match &self.content_hash {
            Some(hash) => format!("\"{}\"", hash.get(..32).unwrap_or(hash)),
            None => format!("\"{}-{}\"", self.id.simple(), self.updated_at.timestamp_micros()),
        }
    }
}

/// One version of a file.
#[derive(Debug, Clone, Serialize, oppidum_store::FromRow, ToSchema)]
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
    #[schema(value_type = crate::shapes::NodeName)]
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyNode {
    /// Destination folder; absent for the top level.
    pub parent_id: Option<Uuid>,
    /// New name; default the same.
    #[schema(value_type = Option<crate::shapes::NodeName>)]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateNode {
    #[schema(value_type = Option<crate::shapes::NodeName>)]
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
    config: DriveConfig,
    orgs: Arc<dyn Directory>,
    uploads: upload::UploadSlots,
    antivirus: Option<Antivirus>,
    events: Option<EventBus>,
    link_guesses: links::LinkGuesses,
}

/// Device names Windows reserves: a file called so cannot be synced to a Windows machine.
const RESERVED: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9", "LPT1", "LPT2",
    "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Checks a file or folder name: no separators, no `.`/`..`, no control characters, no reserved
/// device name, at most 255 bytes.
pub fn validate_name(name: &str) -> Result<String, DriveError> {
    let name = name.trim();
    let invalid = name.is_empty()
        || name.len() > 255
        || name == "."
        || name == ".."
        || name.contains(['/', '\\'])
        || name.chars().any(char::is_control)
        || RESERVED.iter().any(|reserved| reserved.eq_ignore_ascii_case(name));
    if invalid { Err(DriveError::InvalidName(name.chars().take(64).collect())) } else { Ok(name.to_owned()) }
}

impl Drive {
    pub fn new(db: Db, content: ContentStore, config: DriveConfig, orgs: Arc<dyn Directory>) -> Self {
        let antivirus = Antivirus::from_config(&config.antivirus);
        Self {
            db,
            content,
            config,
            orgs,
            uploads: upload::UploadSlots::default(),
            antivirus,
            events: None,
            link_guesses: links::LinkGuesses::default(),
        }
    }

    /// Announces changes on `bus`: `drive.file.created|updated|deleted|restored|purged` with the
    /// node's id, drive and kind (hints: readers fetch the node).
    pub fn with_events(mut self, bus: EventBus) -> Self {
        self.events = Some(bus);
        self
    }

    pub(crate) async fn emit(&self, change: &str, id: Uuid, drive: &str, kind: &str) {
        if let Some(bus) = &self.events {
            let payload = serde_json::json!({ "id": id, "drive": drive, "kind": kind });
            if let Err(err) = bus.publish(&format!("drive.file.{change}"), payload).await {
                tracing::warn!(error = %err, change, "publishing a drive event failed");
            }
        }
    }

    /// Who is who: organizations, permissions, users.
    pub fn directory(&self) -> &dyn Directory {
        self.orgs.as_ref()
    }

    /// Largest file accepted.
    pub fn max_file_size(&self) -> u64 {
        self.config.max_file_size.bytes()
    }

    /// The database behind this drive.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The content store behind this drive.
    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    /// Now, to the microsecond: what both engines store, so a node built in memory after a write
    /// equals the one read back.
    fn now(&self) -> DateTime<Utc> {
        chrono::SubsecRound::trunc_subsecs(Utc::now(), 6)
    }

    /// A live node of the drive (within the shared subtree for a share), or "not found".
    pub async fn get(&self, scope: &Scope, id: Uuid) -> Result<Node, DriveError> {
        let node: Node = self
            .db
            .query(select_nodes!("WHERE id = $1 AND drive = $2 AND trashed_at IS NULL"))
            .bind(id)
            .bind(scope.drive.as_str())
            .fetch_optional()
            .await?
            .ok_or(DriveError::NotFound)?;
        if let Some(root) = scope.root
            && !self.is_within(&node, root).await?
        {
            return Err(DriveError::NotFound);
        }
        Ok(node)
    }

    async fn folder_key(&self, scope: &Scope, parent: Option<Uuid>) -> Result<String, DriveError> {
        match parent {
            // Through a share, only the shared subtree exists.
            None if scope.root.is_some() => Err(DriveError::NotFound),
            None => Ok("root".into()),
            Some(id) => {
                let node = self.get(scope, id).await?;
                if node.kind != "folder" {
                    return Err(DriveError::NotAFolder);
                }
                Ok(id.to_string())
            }
        }
    }

    /// The live children of a folder (`None`: the top level), folders first, by name.
    pub async fn list(&self, scope: &Scope, parent: Option<Uuid>) -> Result<Vec<Node>, DriveError> {
        let key = self.folder_key(scope, parent).await?;
        Ok(self
            .db
            .query(select_nodes!(
                "WHERE drive = $1 AND parent_key = $2 AND trashed_at IS NULL \
                 ORDER BY kind DESC, name LIMIT 10000"
            ))
            .bind(scope.drive.as_str())
            .bind(key)
            .fetch_all()
            .await?)
    }

    /// `name`, or `name (2)`, `name (3)`… : the first not taken in `folder`.
    pub async fn free_name(&self, scope: &Scope, folder: Uuid, name: &str) -> Result<String, DriveError> {
        let name = validate_name(name)?;
        let key = self.folder_key(scope, Some(folder)).await?;
        let (stem, ext) = match name.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() => (stem.to_owned(), format!(".{ext}")),
            _ => (name.clone(), String::new()),
        };
        for n in 1..100 {
            let candidate = if n == 1 { name.clone() } else { format!("{stem} ({n}){ext}") };
            if self.find_child(&scope.drive, &key, &candidate).await?.is_none() {
                return validate_name(&candidate);
            }
        }
        Err(DriveError::NameTaken(name))
    }

    pub(crate) async fn find_child(&self, drive: &str, key: &str, name: &str) -> Result<Option<Node>, DriveError> {
        Ok(self
            .db
            .query(select_nodes!("WHERE drive = $1 AND parent_key = $2 AND name = $3 AND trashed_at IS NULL"))
            .bind(drive)
            .bind(key)
            .bind(name)
            .fetch_optional()
            .await?)
    }

    pub async fn create_folder(&self, scope: &Scope, request: CreateFolder) -> Result<Node, DriveError> {
        scope.require_write()?;
        let name = validate_name(&request.name)?;
        let key = self.folder_key(scope, request.parent_id).await?;
        let now = self.now();
        let id = Uuid::now_v7();
        let inserted = self
            .db
            .query(
                "INSERT INTO drive_nodes (id, drive, parent_id, parent_key, name, kind, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, 'folder', $6, $7, $7)",
            )
            .bind(id)
            .bind(scope.drive.as_str())
            .bind(request.parent_id)
            .bind(key)
            .bind(name.as_str())
            .bind(scope.actor)
            .bind(now)
            .execute()
            .await;
        match inserted {
            Err(err) if err.is_unique_violation() => return Err(DriveError::NameTaken(name)),
            other => {
                other?;
            }
        }
        self.emit("created", id, &scope.drive, "folder").await;
        self.get(scope, id).await
    }

    /// Renames or moves a node.
    pub async fn update(
        &self,
        scope: &Scope,
        id: Uuid,
        request: UpdateNode,
        if_match: Option<&str>,
    ) -> Result<Node, DriveError> {
        scope.require_write()?;
        let node = self.get(scope, id).await?;
        check_if_match(Some(&node), if_match)?;
        let name = request.name.as_deref().map(validate_name).transpose()?.unwrap_or(node.name.clone());
        let (parent, key) = if request.to_root {
            if scope.root.is_some() {
                return Err(DriveError::NotFound);
            }
            (None, "root".to_owned())
        } else if let Some(parent) = request.parent_id {
            // A folder cannot move into itself or a descendant.
            let mut cursor = Some(parent);
            while let Some(current) = cursor {
                if current == node.id {
                    return Err(DriveError::InvalidMove);
                }
                cursor = self.get(scope, current).await?.parent_id;
            }
            (Some(parent), self.folder_key(scope, Some(parent)).await?)
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
        self.emit("updated", node.id, &node.drive, &node.kind).await;
        self.get(scope, node.id).await
    }

    /// Moves a node (and so its subtree) to the trash.
    pub async fn trash(&self, scope: &Scope, id: Uuid, if_match: Option<&str>) -> Result<(), DriveError> {
        scope.require_write()?;
        let node = self.get(scope, id).await?;
        check_if_match(Some(&node), if_match)?;
        self.db
            .query("UPDATE drive_nodes SET trashed_at = $2 WHERE id = $1")
            .bind(node.id)
            .bind(self.now())
            .execute()
            .await?;
        self.emit("deleted", node.id, &node.drive, &node.kind).await;
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
        for bad in ["", ".", "..", "a/b", "a\\b", "nul\u{0}", &"x".repeat(256), "CON", "nul", "Lpt1"] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(validate_name(" report.pdf ").expect("ok"), "report.pdf");
        assert!(validate_name("Ünïcode – ok").is_ok());
    }
}
