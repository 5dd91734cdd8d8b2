//! Dead properties of files and folders (WebDAV PROPPATCH): arbitrary XML elements a client
//! stores on a node, kept across moves and copied with it.

use std::collections::HashMap;

use uuid::Uuid;

use super::{Drive, Node, Scope};
use crate::error::DriveError;

/// Most properties kept on one node.
const MAX_PROPERTIES: i64 = 256;
/// Largest property value, as XML.
const MAX_PROPERTY_BYTES: usize = 64 * 1024;

/// One stored property.
#[derive(Debug, Clone, PartialEq, Eq, oppidum_store::FromRow)]
pub struct DeadProperty {
    pub namespace: String,
    pub name: String,
    pub prefix: Option<String>,
    /// The whole element as XML.
    pub xml: Option<Vec<u8>>,
}

/// A property with the node it belongs to: (node, namespace, name, prefix, xml).
type PropertyRow = (Uuid, String, String, Option<String>, Option<Vec<u8>>);

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

    /// Every live child of a folder already resolved in `scope` (`None`: the top), in name order,
    /// with their dead properties: two queries whatever the number of children, both read in index
    /// order (a WebDAV `PROPFIND Depth: 1` asks for both, and must see every child).
    pub async fn list_with_properties(
        &self,
        scope: &Scope,
        parent: Option<Uuid>,
    ) -> Result<(Vec<Node>, HashMap<Uuid, Vec<DeadProperty>>), DriveError> {
        let key = match parent {
            None => "root".to_owned(),
            Some(id) => id.to_string(),
        };
        let children: Vec<Node> = self
            .db
            .query(select_nodes!("WHERE drive = $1 AND parent_key = $2 AND trashed_at IS NULL ORDER BY name"))
            .bind(scope.drive.as_str())
            .bind(key.as_str())
            .fetch_all()
            .await?;
        let rows: Vec<PropertyRow> = self
            .db
            .query(
                "SELECT p.node_id, p.namespace, p.name, p.prefix, p.xml FROM drive_properties p \
                 JOIN drive_nodes n ON n.id = p.node_id \
                 WHERE n.drive = $1 AND n.parent_key = $2 AND n.trashed_at IS NULL ORDER BY p.namespace, p.name",
            )
            .bind(scope.drive.as_str())
            .bind(key)
            .fetch_all()
            .await?;
        let mut properties: HashMap<Uuid, Vec<DeadProperty>> = children.iter().map(|n| (n.id, Vec::new())).collect();
        for (node, namespace, name, prefix, xml) in rows {
            if let Some(list) = properties.get_mut(&node) {
                list.push(DeadProperty { namespace, name, prefix, xml });
            }
        }
        Ok((children, properties))
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
