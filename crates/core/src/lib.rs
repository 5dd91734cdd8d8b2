//! Shared kernel of Oppidum: the types every crate speaks — configuration, the error type and its
//! JSON form, ids, time, and the axum extractors that turn bad input into our error format.

pub mod config;
pub mod error;
pub mod extract;
pub mod ids;
pub mod time;

pub use error::{Error, ErrorKind, Result};
