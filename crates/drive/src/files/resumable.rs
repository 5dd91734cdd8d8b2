//! Resumable uploads (served with the tus protocol): a session announces the name, folder and
//! length; parts arrive at the offset the server confirmed, each stored whole or not at all; the
//! last byte turns the staged parts into a version like any upload (quota, antivirus, sniffing).
//! Sessions belong to the user who opened them and expire after a day.

use chrono::{DateTime, Duration, Utc};
use oppidum_core::Principal;
use oppidum_store::ByteStream;
use serde::Serialize;
use uuid::Uuid;

use super::{Drive, Node, Scope, validate_name};
use crate::error::DriveError;

/// How long an unfinished upload may wait for its next part.
pub const SESSION_HOURS: i64 = 24;

/// An upload in progress.
#[derive(Debug, Clone, Serialize, oppidum_store::FromRow)]
pub struct UploadSession {
    pub id: Uuid,
    pub drive: String,
    pub actor: Uuid,
    pub parent_id: Option<Uuid>,
    pub name: String,
    pub length: i64,
    pub upload_offset: i64,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

const SELECT: &str = "SELECT id, drive, actor, parent_id, name, length, upload_offset, created_at, expires_at \
     FROM drive_uploads";

impl Drive {
    /// Opens an upload of `length` bytes named `name` into `parent` of `scope`, after the checks
    /// a whole upload gets (permissions, name, size limit, quota).
    pub async fn open_session(
        &self,
        scope: &Scope,
        parent: Option<Uuid>,
        name: &str,
        length: u64,
    ) -> Result<UploadSession, DriveError> {
        scope.require_write()?;
        let name = validate_name(name)?;
        let max = self.config.max_file_size.bytes();
        if length > max {
            return Err(DriveError::TooLarge(max));
        }
        let quota = self.quota_of(scope);
        if quota > 0 {
            let used = u64::try_from(self.usage(scope).await?.versions_bytes).unwrap_or(u64::MAX);
            if used.saturating_add(length) > quota {
                return Err(DriveError::QuotaExceeded(quota));
            }
        }
        let key = self.folder_key(scope, parent).await?;
        if self.find_child(&scope.drive, &key, &name).await?.is_some_and(|n| n.kind == "folder") {
            return Err(DriveError::NameTaken(name));
        }
        let id = Uuid::now_v7();
        let now = self.now();
        self.db
            .query(
                "INSERT INTO drive_uploads (id, drive, actor, parent_id, name, length, upload_offset, created_at, \
                 expires_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8)",
            )
            .bind(id)
            .bind(scope.drive.as_str())
            .bind(scope.actor)
            .bind(parent)
            .bind(name.as_str())
            .bind(i64::try_from(length).unwrap_or(i64::MAX))
            .bind(now)
            .bind(now + Duration::hours(SESSION_HOURS))
            .execute()
            .await?;
        self.session(scope.actor, id).await
    }

    /// A live session of `actor`; anyone else's, or an expired one, is "not found".
    pub async fn session(&self, actor: Uuid, id: Uuid) -> Result<UploadSession, DriveError> {
        self.db
            .query_dynamic(format!("{SELECT} WHERE id = $1 AND actor = $2 AND expires_at > $3"))
            .bind(id)
            .bind(actor)
            .bind(self.now())
            .fetch_optional()
            .await?
            .ok_or(DriveError::NotFound)
    }

    /// Appends `body` at `offset` (which must be where the upload stands). Returns the session
    /// and, when that was the last byte, the file it became.
    pub async fn append(
        &self,
        principal: &Principal,
        id: Uuid,
        offset: u64,
        body: ByteStream,
    ) -> Result<(UploadSession, Option<Node>), DriveError> {
        let session = self.session(principal.user_id, id).await?;
        let (current, length) =
            (u64::try_from(session.upload_offset).unwrap_or(0), u64::try_from(session.length).unwrap_or(0));
        if offset != current {
            return Err(DriveError::OffsetMismatch(current));
        }
        if current < length {
            let _slot = self.uploads.take(principal.user_id, self.config.max_concurrent_uploads)?;
            let (key, size) = self.content.stage_part(id, body, length - current).await?;
            let mut tx = self.db.begin().await?;
            let moved = tx
                .query(
                    "UPDATE drive_uploads SET upload_offset = upload_offset + $3 WHERE id = $1 AND upload_offset = $2",
                )
                .bind(id)
                .bind(session.upload_offset)
                .bind(i64::try_from(size).unwrap_or(i64::MAX))
                .execute()
                .await?;
            if moved == 0 {
                // Another request for the same upload got there first.
                drop(tx);
                self.content.unstage(&[key]).await?;
                return Err(DriveError::OffsetMismatch(current));
            }
            tx.query("INSERT INTO drive_upload_parts (upload_id, offset_at, blob_key, size) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(session.upload_offset)
                .bind(key.as_str())
                .bind(i64::try_from(size).unwrap_or(i64::MAX))
                .execute()
                .await?;
            tx.commit().await?;
        }
        let session = self.session(principal.user_id, id).await?;
        if session.upload_offset < session.length {
            return Ok((session, None));
        }
        let node = self.finish(principal, &session).await?;
        Ok((session, Some(node)))
    }

    /// Turns a complete upload into a version. On failure the session stays: an empty `PATCH`
    /// at the final offset tries again.
    async fn finish(&self, principal: &Principal, session: &UploadSession) -> Result<Node, DriveError> {
        let scope = match session.parent_id {
            Some(parent) => self.resolve(principal, parent).await?,
            None => self.scope_of_drive(principal, &session.drive).await?,
        };
        let keys = self.part_keys(session.id).await?;
        let length = u64::try_from(session.length).unwrap_or(0);
        let pending = self.begin_upload(&scope, session.parent_id, &session.name, None, Some(length)).await?;
        let manifest = self.ingest(&pending, self.content.staged(keys.clone())).await?;
        let (node, _) = self.commit_upload(pending, &manifest).await?;
        self.db.query("DELETE FROM drive_uploads WHERE id = $1").bind(session.id).execute().await?;
        self.content.unstage(&keys).await?;
        Ok(node)
    }

    async fn part_keys(&self, id: Uuid) -> Result<Vec<String>, DriveError> {
        let rows: Vec<(String,)> = self
            .db
            .query("SELECT blob_key FROM drive_upload_parts WHERE upload_id = $1 ORDER BY offset_at")
            .bind(id)
            .fetch_all()
            .await?;
        Ok(rows.into_iter().map(|(key,)| key).collect())
    }

    /// Abandons an upload and what it staged.
    pub async fn cancel_session(&self, principal: &Principal, id: Uuid) -> Result<(), DriveError> {
        let session = self.session(principal.user_id, id).await?;
        self.drop_session(session.id).await
    }

    async fn drop_session(&self, id: Uuid) -> Result<(), DriveError> {
        let keys = self.part_keys(id).await?;
        self.db.query("DELETE FROM drive_uploads WHERE id = $1").bind(id).execute().await?;
        self.content.unstage(&keys).await
    }

    /// Removes sessions that expired before `now`; returns how many.
    pub(super) async fn expire_sessions(&self, now: DateTime<Utc>) -> Result<u64, DriveError> {
        let expired: Vec<(Uuid,)> = self
            .db
            .query("SELECT id FROM drive_uploads WHERE expires_at <= $1 LIMIT 1000")
            .bind(now)
            .fetch_all()
            .await?;
        for (id,) in &expired {
            self.drop_session(*id).await?;
        }
        Ok(expired.len() as u64)
    }
}
