//! Shared kernel of Oppidum: the types every crate speaks — configuration, the error type and its
//! JSON form, ids, time, and the axum extractors that turn bad input into our error format.

pub mod body;
pub mod config;
pub mod email;
pub mod error;
pub mod extract;
pub mod ids;
pub mod principal;
pub mod schema;
pub mod time;
pub mod vault;

pub use error::{Error, ErrorKind, Result};
pub use principal::{Directory, FileAccess, OrgAccess, Principal};
