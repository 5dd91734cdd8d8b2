//! The event bus: in-process broadcast, fanned out between nodes with PostgreSQL `LISTEN/NOTIFY`.
//!
//! Payloads are hints (ids and small facts), never the data itself: notifications can be lost
//! while a listener reconnects, so consumers re-read state from the database.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::StoreError;

/// The PostgreSQL channel events travel on.
pub const CHANNEL: &str = "oppidum_events";
/// PostgreSQL refuses notification payloads of 8000 bytes or more.
const MAX_NOTIFY_BYTES: usize = 7_900;

/// Something that happened, e.g. `jobs.enqueued` or `drive.file.created`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub topic: String,
    pub payload: serde_json::Value,
    /// The node that published it.
    pub origin: Uuid,
}

/// Publishes and subscribes to events; cheap to clone.
#[derive(Debug, Clone)]
pub struct EventBus {
    node: Uuid,
    local: broadcast::Sender<Arc<Event>>,
    pg: Option<PgPool>,
}

impl EventBus {
    /// A bus for this process. With a PostgreSQL pool, events also go to every other node.
    pub fn new(node: Uuid, pg: Option<PgPool>) -> Self {
        let (local, _) = broadcast::channel(1024);
        Self { node, local, pg }
    }

    /// This process's node id.
    pub fn node(&self) -> Uuid {
        self.node
    }

    /// Receives every event published from now on, by this node or (on PostgreSQL) any other.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.local.subscribe()
    }

    /// Publishes to local subscribers and, on PostgreSQL, to the other nodes.
    pub async fn publish(&self, topic: &str, payload: serde_json::Value) -> Result<(), StoreError> {
        let event = Event { topic: topic.to_owned(), payload, origin: self.node };
        if let Some(pg) = &self.pg {
            let text = serde_json::to_string(&event).unwrap_or_default();
            if text.len() <= MAX_NOTIFY_BYTES {
                sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(text).execute(pg).await?;
            } else {
                tracing::warn!(topic, bytes = text.len(), "event too large for NOTIFY; delivered locally only");
            }
        }
        // No subscriber is not an error.
        let _ = self.local.send(Arc::new(event));
        Ok(())
    }

    /// On PostgreSQL, relays events published by other nodes to local subscribers until `stop`.
    /// Reconnects after failures; events sent meanwhile are lost (they are hints).
    pub fn spawn_listener(&self, stop: CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
        let pg = self.pg.clone()?;
        let bus = self.clone();
        Some(tokio::spawn(async move {
            loop {
                let outcome = tokio::select! {
                    _ = stop.cancelled() => return,
                    outcome = bus.listen(&pg) => outcome,
                };
                if let Err(err) = outcome {
                    tracing::warn!(error = %err, "event listener lost its connection; reconnecting");
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }))
    }

    async fn listen(&self, pg: &PgPool) -> Result<(), StoreError> {
        let mut listener = PgListener::connect_with(pg).await?;
        listener.listen(CHANNEL).await?;
        loop {
            let notification = listener.recv().await?;
            match serde_json::from_str::<Event>(notification.payload()) {
                Ok(event) if event.origin != self.node => {
                    let _ = self.local.send(Arc::new(event));
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "ignoring malformed event notification"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_reach_local_subscribers() {
        let bus = EventBus::new(Uuid::now_v7(), None);
        let mut rx = bus.subscribe();
        bus.publish("drive.file.created", serde_json::json!({"id": 1})).await.expect("publish");
        let event = rx.recv().await.expect("event");
        assert_eq!(event.topic, "drive.file.created");
        assert_eq!(event.origin, bus.node());
    }
}
