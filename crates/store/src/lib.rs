//! Oppidum's storage layer: one database layer over SQLite and PostgreSQL, embedded migrations, the
//! blob store, the event bus and the durable job queue. Domain crates build on these; nothing here
//! knows about users, files or mail.

// `#[derive(FromRow)]` names `::oppidum_store`, this crate included.
extern crate self as oppidum_store;

pub mod blob;
pub mod db;
pub mod error;
pub mod events;
pub mod jobs;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use blob::{BlobMeta, BlobStore, ByteStream};
pub use db::{Backend, Db, Decode, DecodeError, FromRow, Json, JsonRow, JsonValues, Row, Statement, Tx, Unit, Value};
pub use error::{Constraint, StoreError};
pub use events::{Event, EventBus};
/// `#[derive(FromRow)]`: decodes a struct with named fields from a row, by column name.
pub use oppidum_store_derive::FromRow;
