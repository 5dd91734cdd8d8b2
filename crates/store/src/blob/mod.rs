//! The blob store: one interface over local disk (default), S3-compatible object storage
//! (scale-out) and memory (unit tests). Reads and writes stream; a write becomes visible all at
//! once (local files are written aside and renamed, S3 completes a multipart upload), so a reader
//! never sees half an object.

mod buffers;
mod object;

use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;

pub use object::ObjectBlobStore;

use crate::error::StoreError;

/// A stream of body chunks.
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// What is known about a stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    pub key: String,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
}

/// A blob being read.
pub struct BlobRead {
    pub meta: BlobMeta,
    /// The byte range being returned.
    pub range: Range<u64>,
    pub body: ByteStream,
}

impl std::fmt::Debug for BlobRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobRead").field("meta", &self.meta).field("range", &self.range).finish_non_exhaustive()
    }
}

/// Where blobs live. Keys are relative paths of `[A-Za-z0-9._-]` segments separated by `/`.
#[async_trait]
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// `local`, `s3` or `memory`.
    fn backend(&self) -> &'static str;

    /// Stores `body` under `key`, replacing any previous blob, with memory bounded by a small buffer
    /// whatever the size. Nothing is visible under `key` until the whole body was stored; if the
    /// body stream fails, nothing is stored.
    async fn put(&self, key: &str, body: ByteStream) -> Result<BlobMeta, StoreError>;

    /// Stores a small body held in memory.
    async fn put_bytes(&self, key: &str, body: Bytes) -> Result<BlobMeta, StoreError>;

    /// Streams the blob, or the `range` of it.
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<BlobRead, StoreError>;

    /// Reads the blob, or the `range` of it, whole into memory: for chunk-sized blobs, one read
    /// instead of a stream of small ones (local files stream in 8 KiB reads, each a hop to a
    /// blocking thread).
    async fn get_bytes(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, StoreError>;

    /// Metadata, or `None` when absent.
    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, StoreError>;

    /// Deletes the blob; deleting an absent blob succeeds.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Blobs whose key starts with `prefix/`.
    async fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, StoreError>;

    /// Writes, reads back and deletes a probe, for readiness checks.
    async fn check(&self) -> Result<(), StoreError> {
        let key = "_oppidum/readiness-probe";
        let probe = Bytes::from_static(b"ok");
        self.put_bytes(key, probe.clone()).await?;
        let meta = self.head(key).await?;
        if meta.map(|m| m.size) != Some(probe.len() as u64) {
            return Err(StoreError::Config("the readiness probe could not be read back".into()));
        }
        Ok(())
    }
}

/// Checks a key: relative, no empty, `.` or `..` segments, restricted characters.
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    let valid = !key.is_empty()
        && key.len() <= 1024
        && key.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
    if valid { Ok(()) } else { Err(StoreError::InvalidKey(key.chars().take(100).collect())) }
}

#[cfg(test)]
mod tests;
