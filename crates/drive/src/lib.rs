//! Drive: files and folders whose contents are split by content-defined chunking (FastCDC) into
//! chunks addressed by BLAKE3 hashes, so identical chunks are stored once across every version,
//! file, user and organization. This crate starts with the content store; files, versions,
//! sharing and WebDAV build on it.

pub mod antivirus;
pub mod chunker;
pub mod content;
pub mod dav;
pub mod error;
pub mod files;
pub mod http;
pub mod shapes;
pub mod sniff;
#[cfg(test)]
mod testing;

pub use content::{ContentStore, Manifest};
pub use error::DriveError;
pub use files::Drive;
