//! Paths inside a drive (`/Projects/2026/plan.odt`), for protocols that name files by path.

use super::{Drive, Node, Scope};
use crate::error::DriveError;

/// Deepest path followed (guards the walk, one query per segment).
pub(crate) const MAX_DEPTH: usize = 128;

impl Drive {
    /// The live node at `segments` below the top of the drive; `None` for the top itself.
    pub async fn lookup(&self, scope: &Scope, segments: &[&str]) -> Result<Option<Node>, DriveError> {
        if segments.len() > MAX_DEPTH {
            return Err(DriveError::NotFound);
        }
        let mut current: Option<Node> = None;
        for segment in segments {
            let key = match &current {
                None => "root".to_owned(),
                Some(node) if node.kind == "folder" => node.id.to_string(),
                Some(_) => return Err(DriveError::NotFound),
            };
            current = Some(self.find_child(&scope.drive, &key, segment).await?.ok_or(DriveError::NotFound)?);
        }
        Ok(current)
    }
}
