//! Dead properties of files and folders (WebDAV PROPPATCH): arbitrary XML elements a client
//! stores on a node, kept across moves and copied with it.

use uuid::Uuid;

use super::Drive;
use crate::error::DriveError;

/// Most properties kept on one node.
const MAX_PROPERTIES: i64 = 256;
/// Largest property value, as XML.
const MAX_PROPERTY_BYTES: usize = 64 * 1024;

/// One stored property.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeadProperty {
    pub namespace: String,
    pub name: String,
    pub prefix: Option<String>,
    /// The whole element as XML.
    pub xml: Option<Vec<u8>>,
}

impl Drive {
    /// Every dead property of a node.
    pub async fn properties(&self, node: Uuid) -> Result<Vec<DeadProperty>, DriveError> {
        Ok(self
            .db
            .query(
                "SELECT namespace, name, prefix, xml FROM drive_properties WHERE node_id = $1 ORDER BY namespace, name",
            )
            .bind(node)
            .fetch_all()
            .await?)
    }

    /// Sets (adds or replaces) a property.
    pub async fn set_property(&self, node: Uuid, property: &DeadProperty) -> Result<(), DriveError> {
        if property.xml.as_ref().is_some_and(|xml| xml.len() > MAX_PROPERTY_BYTES)
            || property.name.len() > 1024
            || property.namespace.len() > 1024
        {
            return Err(DriveError::PropertyTooLarge);
        }
        let (count,): (i64,) =
            self.db.query("SELECT COUNT(*) FROM drive_properties WHERE node_id = $1").bind(node).fetch_one().await?;
        if count >= MAX_PROPERTIES {
            return Err(DriveError::PropertyTooLarge);
        }
        self.db
            .query(
                "INSERT INTO drive_properties (node_id, namespace, name, prefix, xml) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (node_id, namespace, name) DO UPDATE SET prefix = excluded.prefix, xml = excluded.xml",
            )
            .bind(node)
            .bind(property.namespace.as_str())
            .bind(property.name.as_str())
            .bind(property.prefix.clone())
            .bind(property.xml.clone())
            .execute()
            .await?;
        Ok(())
    }

    /// Removes a property (absent is fine).
    pub async fn remove_property(&self, node: Uuid, namespace: &str, name: &str) -> Result<(), DriveError> {
        self.db
            .query("DELETE FROM drive_properties WHERE node_id = $1 AND namespace = $2 AND name = $3")
            .bind(node)
            .bind(namespace)
            .bind(name)
            .execute()
            .await?;
        Ok(())
    }

    pub(super) async fn copy_properties(&self, from: Uuid, to: Uuid) -> Result<(), DriveError> {
        self.db
            .query(
                "INSERT INTO drive_properties (node_id, namespace, name, prefix, xml) \
                 SELECT $2, namespace, name, prefix, xml FROM drive_properties WHERE node_id = $1",
            )
            .bind(from)
            .bind(to)
            .execute()
            .await?;
        Ok(())
    }
}
