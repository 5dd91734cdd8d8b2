//! Oppidum's storage layer: one database layer over SQLite and PostgreSQL, embedded migrations, the
//! blob store, the event bus and the durable job queue. Domain crates build on these; nothing here
//! knows about users, files or mail.

pub mod blob;
pub mod db;
pub mod error;
pub mod events;
pub mod jobs;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use blob::{BlobMeta, BlobStore, ByteStream};
pub use db::{Backend, Db, JsonRow, Tx, Value};
pub use error::StoreError;
pub use events::{Event, EventBus};
