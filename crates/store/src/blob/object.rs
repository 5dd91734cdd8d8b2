//! The [`BlobStore`] over `object_store`: local filesystem, S3-compatible, or memory.

use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use oppidum_core::config::S3Config;
use tokio::io::AsyncWriteExt;

use super::{BlobMeta, BlobRead, BlobStore, ByteStream, validate_key};
use crate::error::StoreError;

/// Upload buffer: large enough for an S3 multipart part (≥ 5 MiB), small enough that memory does
/// not grow with the object.
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts in flight at once per upload.
const PART_CONCURRENCY: usize = 2;

/// A blob store backed by an `object_store` implementation.
#[derive(Debug, Clone)]
pub struct ObjectBlobStore {
    inner: Arc<dyn ObjectStore>,
    backend: &'static str,
    /// The directory of a local store, read directly by [`BlobStore::get_bytes`].
    root: Option<std::path::PathBuf>,
}

impl ObjectBlobStore {
    /// Files under `root`, created when missing.
    pub fn local(root: &FsPath) -> Result<Self, StoreError> {
        std::fs::create_dir_all(root)
            .map_err(|err| StoreError::Config(format!("cannot create blob directory {}: {err}", root.display())))?;
        let fs = LocalFileSystem::new_with_prefix(root)?.with_automatic_cleanup(true);
        Ok(Self { inner: Arc::new(fs), backend: "local", root: Some(root.to_path_buf()) })
    }

    /// An S3-compatible bucket.
    pub fn s3(config: &S3Config) -> Result<Self, StoreError> {
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(if config.region.is_empty() { "us-east-1" } else { &config.region })
            .with_allow_http(config.allow_http)
            .with_virtual_hosted_style_request(config.virtual_hosted_style);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
            builder = builder.with_access_key_id(id.expose()).with_secret_access_key(secret.expose());
        }
        let s3 = builder.build()?;
        let inner: Arc<dyn ObjectStore> = match config.prefix.as_deref().filter(|p| !p.is_empty()) {
            Some(prefix) => Arc::new(object_store::prefix::PrefixStore::new(s3, prefix)),
            None => Arc::new(s3),
        };
        Ok(Self { inner, backend: "s3", root: None })
    }

    /// In memory; lost on restart. For tests.
    pub fn memory() -> Self {
        Self { inner: Arc::new(InMemory::new()), backend: "memory", root: None }
    }

    /// Starts reading `key` (or its `range`).
    async fn open(&self, key: &str, range: Option<Range<u64>>) -> Result<object_store::GetResult, StoreError> {
        let path = Self::path(key)?;
        let options = GetOptions { range: range.map(GetRange::Bounded), ..GetOptions::default() };
        self.inner.get_opts(&path, options).await.map_err(|err| not_found(err, key))
    }

    fn path(key: &str) -> Result<Path, StoreError> {
        validate_key(key)?;
        Path::parse(key).map_err(|_| StoreError::InvalidKey(key.chars().take(100).collect()))
    }
}

/// The file holding `key` in a local store, when the key maps to a file name unchanged (the
/// content store's keys do; others go through object_store, which escapes some characters).
fn local_file(root: &FsPath, key: &str) -> Option<std::path::PathBuf> {
    let plain = key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'.'))
        && key.split('/').all(|segment| !segment.is_empty() && !segment.starts_with('.'));
    plain.then(|| root.join(key))
}

/// Reads `range` (or all) of `file` into a buffer filled by the read itself (object_store's local
/// reader zeroes its buffer first: a tenth of a download's time), reused from read to read.
fn read_file(file: &FsPath, key: &str, range: Option<Range<u64>>) -> Result<Bytes, StoreError> {
    use std::io::{Read, Seek, SeekFrom};
    let failed = |err: std::io::Error| match err.kind() {
        std::io::ErrorKind::NotFound => StoreError::BlobNotFound(key.to_owned()),
        _ => StoreError::Blob(object_store::Error::Generic { store: "local", source: Box::new(err) }),
    };
    let mut handle = std::fs::File::open(file).map_err(failed)?;
    let len = handle.metadata().map_err(failed)?.len();
    // A range reaching past the end stops at it, as object_store's readers do.
    let range = range.map_or(0..len, |r| r.start..r.end.min(len));
    if range.start > range.end {
        let message = format!("range {}..{} of a blob of {len} bytes", range.start, range.end);
        return Err(failed(std::io::Error::new(std::io::ErrorKind::InvalidInput, message)));
    }
    handle.seek(SeekFrom::Start(range.start)).map_err(failed)?;
    let wanted = range.end - range.start;
    let mut buffer = super::buffers::take(usize::try_from(wanted).unwrap_or(0));
    handle.take(wanted).read_to_end(&mut buffer).map_err(failed)?;
    if buffer.len() as u64 != wanted {
        return Err(failed(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the blob is shorter than it was")));
    }
    Ok(super::buffers::share(buffer))
}

fn meta_of(meta: &ObjectMeta) -> BlobMeta {
    BlobMeta { key: meta.location.to_string(), size: meta.size, last_modified: meta.last_modified }
}

fn not_found(err: object_store::Error, key: &str) -> StoreError {
    match err {
        object_store::Error::NotFound { .. } => StoreError::BlobNotFound(key.to_owned()),
        other => StoreError::Blob(other),
    }
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    fn backend(&self) -> &'static str {
        self.backend
    }

    async fn put(&self, key: &str, mut body: ByteStream) -> Result<BlobMeta, StoreError> {
        let path = Self::path(key)?;
        let mut writer = BufWriter::with_capacity(self.inner.clone(), path.clone(), PART_SIZE)
            .with_max_concurrency(PART_CONCURRENCY);
        let mut size = 0_u64;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(err) => {
                    let _ = writer.abort().await;
                    return Err(StoreError::Upload(err));
                }
            };
            size += chunk.len() as u64;
            if let Err(err) = writer.put(chunk).await {
                let _ = writer.abort().await;
                return Err(StoreError::Blob(err));
            }
        }
        if let Err(err) = writer.shutdown().await {
            let _ = writer.abort().await;
            return Err(StoreError::Blob(object_store::Error::Generic { store: "blob", source: Box::new(err) }));
        }
        Ok(BlobMeta { key: key.to_owned(), size, last_modified: chrono::Utc::now() })
    }

    async fn put_bytes(&self, key: &str, body: Bytes) -> Result<BlobMeta, StoreError> {
        let path = Self::path(key)?;
        let size = body.len() as u64;
        self.inner.put(&path, PutPayload::from_bytes(body)).await?;
        Ok(BlobMeta { key: key.to_owned(), size, last_modified: chrono::Utc::now() })
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<BlobRead, StoreError> {
        let result = self.open(key, range).await?;
        let meta = meta_of(&result.meta);
        let range = result.range.clone();
        let body = result.into_stream().map_err(std::io::Error::other).boxed();
        Ok(BlobRead { meta, range, body })
    }

    async fn get_bytes(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, StoreError> {
        validate_key(key)?;
        if let Some(file) = self.root.as_deref().and_then(|root| local_file(root, key)) {
            let key = key.to_owned();
            return tokio::task::spawn_blocking(move || read_file(&file, &key, range)).await.map_err(|err| {
                StoreError::Blob(object_store::Error::Generic { store: "local", source: Box::new(err) })
            })?;
        }
        Ok(self.open(key, range).await?.bytes().await?)
    }

    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, StoreError> {
        let path = Self::path(key)?;
        match self.inner.head(&path).await {
            Ok(meta) => Ok(Some(meta_of(&meta))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(StoreError::Blob(err)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = Self::path(key)?;
        match self.inner.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(StoreError::Blob(err)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, StoreError> {
        let path = Self::path(prefix)?;
        let metas: Vec<ObjectMeta> = self.inner.list(Some(&path)).try_collect().await?;
        Ok(metas.iter().map(meta_of).collect())
    }
}
