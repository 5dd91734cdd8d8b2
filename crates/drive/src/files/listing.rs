//! Folder listings for the JSON API: folders first, then sorted by name, last change or size,
//! either way, in pages chained by an opaque cursor (keyset pagination: stable under inserts,
//! no offsets).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Drive, Node, Scope};
use crate::error::DriveError;

/// Largest page.
pub const MAX_PAGE: i64 = 1000;

/// One page of a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodePage {
    pub items: Vec<Node>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// What a listing is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortKey {
    #[default]
    Name,
    Updated,
    Size,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    #[default]
    Asc,
    Desc,
}

/// Where the previous page ended.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    /// 0 for folders, 1 for files.
    r: i64,
    v: String,
    i: Uuid,
}

fn rank(node: &Node) -> i64 {
    i64::from(node.kind != "folder")
}

fn encode(node: &Node, sort: SortKey) -> String {
    let v = match sort {
        SortKey::Name => node.name.clone(),
        SortKey::Updated => node.updated_at.to_rfc3339(),
        SortKey::Size => node.size.to_string(),
    };
    let json = serde_json::to_vec(&Cursor { r: rank(node), v, i: node.id }).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

fn decode(cursor: &str) -> Result<Cursor, DriveError> {
    let invalid = || DriveError::InvalidCursor;
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| invalid())?;
    serde_json::from_slice(&bytes).map_err(|_| invalid())
}

impl Drive {
    /// A page of a folder's live children (`None`: the top of the drive).
    pub async fn list_page(
        &self,
        scope: &Scope,
        parent: Option<Uuid>,
        sort: SortKey,
        order: Order,
        cursor: Option<&str>,
        limit: Option<i64>,
    ) -> Result<NodePage, DriveError> {
        let key = self.folder_key(scope, parent).await?;
        let limit = limit.unwrap_or(200).clamp(1, MAX_PAGE);
        // Column and direction come from the enums above, never from the request text.
        let column = match sort {
            SortKey::Name => "name",
            SortKey::Updated => "updated_at",
            SortKey::Size => "size",
        };
        let (cmp, dir) = match order {
            Order::Asc => (">", "ASC"),
            Order::Desc => ("<", "DESC"),
        };
        let rank_sql = "CASE WHEN kind = 'folder' THEN 0 ELSE 1 END";
        let after = if cursor.is_some() {
            format!(
                "AND ({rank_sql} > $3 OR ({rank_sql} = $3 AND ({column} {cmp} $4 OR ({column} = $4 AND id {cmp} $5))))"
            )
        } else {
            String::new()
        };
        let sql = format!(
            "SELECT id, drive, parent_id, parent_key, name, kind, current_version, size, content_hash, content_type, \
             created_at, updated_at FROM drive_nodes WHERE drive = $1 AND parent_key = $2 AND trashed_at IS NULL {after} \
             ORDER BY {rank_sql}, {column} {dir}, id {dir} LIMIT {}",
            limit + 1
        );
        let mut query = self.db.query_dynamic(sql).bind(scope.drive.as_str()).bind(key);
        if let Some(cursor) = cursor {
            let cursor = decode(cursor)?;
            query = query.bind(cursor.r);
            query = match sort {
                SortKey::Name => query.bind(cursor.v),
                SortKey::Updated => {
                    let at: DateTime<Utc> = cursor.v.parse().map_err(|_| DriveError::InvalidCursor)?;
                    query.bind(at)
                }
                SortKey::Size => query.bind(cursor.v.parse::<i64>().map_err(|_| DriveError::InvalidCursor)?),
            };
            query = query.bind(cursor.i);
        }
        let mut items: Vec<Node> = query.fetch_all().await?;
        let more = items.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next_cursor = if more { items.last().map(|last| encode(last, sort)) } else { None };
        Ok(NodePage { items, next_cursor })
    }
}
