//! Public links: anyone holding the URL (and its password, when one is set) may read a file or
//! folder (`read`), or drop files into a folder without seeing it (`upload`), until the link
//! expires, runs out of downloads or is revoked. Tokens are stored hashed; the URL is shown once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use oppidum_core::Principal;
use oppidum_core::ids::{hash_token, random_token};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Drive, Node, Scope};
use crate::error::DriveError;

/// Shortest link password accepted.
const MIN_PASSWORD: usize = 8;
/// Wrong passwords allowed per link and node within [`GUESS_WINDOW`] before refusing.
const MAX_GUESSES: u32 = 10;
const GUESS_WINDOW: std::time::Duration = std::time::Duration::from_secs(600);

/// Wrong link passwords per link, so a link's password cannot be guessed at speed.
#[derive(Debug, Clone, Default)]
pub(super) struct LinkGuesses(Arc<Mutex<HashMap<Uuid, (u32, Instant)>>>);

impl LinkGuesses {
    fn check(&self, link: Uuid) -> Result<(), DriveError> {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        map.retain(|_, (_, since)| now.duration_since(*since) < GUESS_WINDOW);
        match map.get(&link) {
            Some((count, since)) if *count >= MAX_GUESSES => Err(DriveError::TooManyGuesses(
                GUESS_WINDOW.saturating_sub(now.duration_since(*since)).as_secs().max(1),
            )),
            _ => Ok(()),
        }
    }

    fn failed(&self, link: Uuid) {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(link).or_insert((0, Instant::now())).0 += 1;
    }
}

/// A public link, as its managers see it.
#[derive(Debug, Clone, Serialize, oppidum_store::FromRow, ToSchema)]
pub struct Link {
    pub id: Uuid,
    pub node_id: Uuid,
    /// `read` or `upload` (a file drop).
    pub mode: String,
    #[serde(skip)]
    pub password_hash: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_downloads: Option<i64>,
    pub download_count: i64,
    pub revoked_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl Link {
    /// Whether a password protects the link.
    pub fn protected(&self) -> bool {
        self.password_hash.is_some()
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLink {
    /// `read` (default) or `upload` (folders only: a file drop).
    #[serde(default)]
    pub mode: Option<String>,
    /// At least 8 characters; visitors send it in `X-Link-Password`.
    pub password: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Downloads allowed in all (read links).
    pub max_downloads: Option<i64>,
}

/// A link just created: the only time its token is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedLink {
    #[serde(flatten)]
    pub link: Link,
    pub token: String,
    /// Path of the public URL: `/s/<token>`.
    pub path: String,
}

/// A link opened by a visitor: what it points to and what it allows.
#[derive(Debug, Clone)]
pub struct OpenLink {
    pub link: Link,
    pub node: Node,
    /// The subtree the link exposes, read-only for `read` links.
    pub scope: Scope,
}

const SELECT: &str = "SELECT id, node_id, mode, password_hash, expires_at, max_downloads, download_count, revoked_at, \
     created_by, created_at FROM drive_links";

impl Drive {
    /// Publishes a node (managers only).
    pub async fn create_link(&self, scope: &Scope, id: Uuid, request: NewLink) -> Result<CreatedLink, DriveError> {
        scope.require_manage()?;
        let node = self.get(scope, id).await?;
        let mode = request.mode.unwrap_or_else(|| "read".into());
        match mode.as_str() {
            "read" => {}
            "upload" if node.kind == "folder" => {}
            "upload" => return Err(DriveError::InvalidLink("file drops are folders".into())),
            _ => return Err(DriveError::InvalidLink("`mode` must be `read` or `upload`".into())),
        }
        if request.expires_at.is_some_and(|at| at <= self.now()) {
            return Err(DriveError::InvalidLink("`expires_at` is in the past".into()));
        }
        if request.max_downloads.is_some_and(|n| n < 1) {
            return Err(DriveError::InvalidLink("`max_downloads` must be at least 1".into()));
        }
        let password_hash = match request.password.as_deref() {
            Some(p) if p.chars().count() < MIN_PASSWORD || p.len() > 1024 => {
                return Err(DriveError::InvalidLink(format!("a link password has {MIN_PASSWORD} to 1024 characters")));
            }
            Some(p) => Some(self.orgs.hash_password(p).await.map_err(DriveError::Upstream)?),
            None => None,
        };
        let token = random_token("");
        let id = Uuid::now_v7();
        self.db
            .query(
                "INSERT INTO drive_links (id, token_hash, node_id, mode, password_hash, expires_at, max_downloads, \
                 created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(id)
            .bind(hash_token(&token))
            .bind(node.id)
            .bind(mode.as_str())
            .bind(password_hash)
            .bind(request.expires_at)
            .bind(request.max_downloads)
            .bind(scope.actor)
            .bind(self.now())
            .execute()
            .await?;
        let link = self.link(id).await?.ok_or(DriveError::NotFound)?;
        Ok(CreatedLink { link, path: format!("/s/{token}"), token })
    }

    async fn link(&self, id: Uuid) -> Result<Option<Link>, DriveError> {
        Ok(self.db.query_dynamic(format!("{SELECT} WHERE id = $1")).bind(id).fetch_optional().await?)
    }

    /// The links of a node (managers only).
    pub async fn links(&self, scope: &Scope, id: Uuid) -> Result<Vec<Link>, DriveError> {
        scope.require_manage()?;
        let node = self.get(scope, id).await?;
        Ok(self
            .db
            .query_dynamic(format!("{SELECT} WHERE node_id = $1 ORDER BY created_at DESC"))
            .bind(node.id)
            .fetch_all()
            .await?)
    }

    /// Revokes a link at once (managers of its node).
    pub async fn revoke_link(&self, principal: &Principal, id: Uuid) -> Result<(), DriveError> {
        let link = self.link(id).await?.ok_or(DriveError::NotFound)?;
        let scope = self.resolve(principal, link.node_id).await?;
        scope.require_manage()?;
        self.db
            .query("UPDATE drive_links SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(self.now())
            .execute()
            .await?;
        Ok(())
    }

    /// Opens a link for a visitor: unknown or revoked → not found; expired or used up → gone;
    /// a password that is missing or wrong → `link_password_required`.
    pub async fn open_link(&self, token: &str, password: Option<&str>) -> Result<OpenLink, DriveError> {
        if token.len() > 128 {
            return Err(DriveError::NotFound);
        }
        let link: Link = self
            .db
            .query_dynamic(format!("{SELECT} WHERE token_hash = $1"))
            .bind(hash_token(token))
            .fetch_optional()
            .await?
            .ok_or(DriveError::NotFound)?;
        if link.revoked_at.is_some() {
            return Err(DriveError::NotFound);
        }
        let used_up = link.max_downloads.is_some_and(|max| link.download_count >= max);
        if link.expires_at.is_some_and(|at| at <= self.now()) || used_up {
            return Err(DriveError::LinkGone);
        }
        if let Some(stored) = &link.password_hash {
            let given = password.ok_or(DriveError::LinkPassword)?;
            self.link_guesses.check(link.id)?;
            if !self.orgs.verify_password(given, stored).await.map_err(DriveError::Upstream)? {
                self.link_guesses.failed(link.id);
                return Err(DriveError::LinkPassword);
            }
        }
        let node: Node = self
            .db
            .query(select_nodes!("WHERE id = $1 AND trashed_at IS NULL"))
            .bind(link.node_id)
            .fetch_optional()
            .await?
            .ok_or(DriveError::NotFound)?;
        let scope = Scope {
            drive: node.drive.clone(),
            actor: link.created_by.unwrap_or_default(),
            can_write: link.mode == "upload",
            can_manage: false,
            root: Some(node.id),
        };
        Ok(OpenLink { link, node, scope })
    }

    /// Counts one download through a read link; refuses once the allowance is used up (several
    /// visitors at once cannot exceed it).
    pub async fn count_download(&self, link: &Link) -> Result<(), DriveError> {
        let counted = self
            .db
            .query(
                "UPDATE drive_links SET download_count = download_count + 1 \
                 WHERE id = $1 AND (max_downloads IS NULL OR download_count < max_downloads)",
            )
            .bind(link.id)
            .execute()
            .await?;
        if counted == 0 { Err(DriveError::LinkGone) } else { Ok(()) }
    }
}
