//! The event bus: in-process broadcast, fanned out between nodes with PostgreSQL `LISTEN/NOTIFY`.
//!
//! Payloads are hints (ids and small facts), never the data itself: notifications can be lost
//! while a listener reconnects, so consumers re-read state from the database.

use std::sync::{Arc, PoisonError, RwLock};
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

/// How many events a subscriber may fall behind before it hears that it lagged.
const BACKLOG: usize = 1024;

/// Topics a subscriber hears: each one exact, or ending with `.` for every topic under it
/// (`drive.file.`); none for every topic.
#[derive(Debug)]
struct Subscription {
    topics: Vec<&'static str>,
    sender: broadcast::Sender<Arc<Event>>,
}

impl Subscription {
    fn wants(&self, topic: &str) -> bool {
        self.topics.is_empty()
            || self.topics.iter().any(|want| *want == topic || (want.ends_with('.') && topic.starts_with(want)))
    }
}

/// Publishes and subscribes to events; cheap to clone.
#[derive(Debug, Clone)]
pub struct EventBus {
    node: Uuid,
    /// Each subscriber has a channel of its own and hears only its topics: an event wakes the
    /// tasks that want it, not every listener of the process.
    subscriptions: Arc<RwLock<Vec<Subscription>>>,
    pg: Option<PgPool>,
}

impl EventBus {
    /// A bus for this process. With a PostgreSQL pool, events also go to every other node.
    pub fn new(node: Uuid, pg: Option<PgPool>) -> Self {
        Self { node, subscriptions: Arc::default(), pg }
    }

    /// This process's node id.
    pub fn node(&self) -> Uuid {
        self.node
    }

    /// Receives every event published from now on, by this node or (on PostgreSQL) any other.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.subscribe_to(&[])
    }

    /// Receives the events of `topics` published from now on (see [`Self::subscribe`]): each
    /// topic exact, or ending with `.` for every topic under it.
    pub fn subscribe_to(&self, topics: &[&'static str]) -> broadcast::Receiver<Arc<Event>> {
        let (sender, receiver) = broadcast::channel(BACKLOG);
        let mut subscriptions = self.subscriptions.write().unwrap_or_else(PoisonError::into_inner);
        // Subscribers that are gone are forgotten here, rarely enough not to matter.
        subscriptions.retain(|subscription| subscription.sender.receiver_count() > 0);
        subscriptions.push(Subscription { topics: topics.to_vec(), sender });
        receiver
    }

    /// Hands `event` to the local subscribers that want it.
    fn deliver(&self, event: Event) {
        let subscriptions = self.subscriptions.read().unwrap_or_else(PoisonError::into_inner);
        if !subscriptions.iter().any(|subscription| subscription.wants(&event.topic)) {
            return;
        }
        let event = Arc::new(event);
        for subscription in subscriptions.iter().filter(|subscription| subscription.wants(&event.topic)) {
            // A subscriber that is gone is not an error.
            let _ = subscription.sender.send(event.clone());
        }
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
        self.deliver(event);
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
                Ok(event) if event.origin != self.node => self.deliver(event),
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

    #[tokio::test]
    async fn subscribers_hear_only_their_topics() {
        let bus = EventBus::new(Uuid::now_v7(), None);
        let mut exact = bus.subscribe_to(&["auth.changed"]);
        let mut under = bus.subscribe_to(&["drive.file."]);
        let mut all = bus.subscribe();
        let gone = bus.subscribe_to(&["drive.file."]);
        drop(gone);
        for topic in ["drive.file.created", "auth.changed", "auth.changed.more", "drive.files", "drive.file.updated"] {
            bus.publish(topic, serde_json::json!({})).await.expect("publish");
        }
        let drain = |rx: &mut broadcast::Receiver<Arc<Event>>| {
            std::iter::from_fn(|| rx.try_recv().ok()).map(|event| event.topic.clone()).collect::<Vec<_>>()
        };
        assert_eq!(drain(&mut exact), ["auth.changed"]);
        assert_eq!(drain(&mut under), ["drive.file.created", "drive.file.updated"]);
        assert_eq!(drain(&mut all).len(), 5);
        // A subscriber that went away is forgotten at the next subscription.
        let _late = bus.subscribe_to(&["x"]);
        assert_eq!(bus.subscriptions.read().map(|s| s.len()).unwrap_or_default(), 4);
    }
}
