//! Staging of resumable uploads: each received part is one blob under `uploads/<id>/`, written
//! whole or not at all; once the upload is complete the parts are read back in order, as one
//! stream, into the content store, then deleted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use oppidum_store::ByteStream;
use uuid::Uuid;

use super::ContentStore;
use crate::error::DriveError;

impl ContentStore {
    /// Stores one part of upload `upload` (at most `limit` bytes, else `TooLarge` and nothing is
    /// kept). Returns its blob key and size.
    pub async fn stage_part(&self, upload: Uuid, body: ByteStream, limit: u64) -> Result<(String, u64), DriveError> {
        let key = format!("uploads/{}/{}", upload.simple(), Uuid::now_v7().simple());
        let mut seen = 0u64;
        let over = Arc::new(AtomicBool::new(false));
        let flag = over.clone();
        let bounded = body
            .map(move |chunk| {
                let chunk: Bytes = chunk?;
                seen += chunk.len() as u64;
                if seen > limit {
                    flag.store(true, Ordering::Relaxed);
                    return Err(std::io::Error::other(format!("more than the {limit} bytes announced")));
                }
                Ok(chunk)
            })
            .boxed();
        match self.blobs.put(&key, bounded).await {
            Ok(meta) => Ok((key, meta.size)),
            Err(_) if over.load(Ordering::Relaxed) => Err(DriveError::TooLarge(limit)),
            Err(err) => Err(DriveError::Upload(std::io::Error::other(err.to_string()))),
        }
    }

    /// The staged parts, concatenated in the order given.
    pub fn staged(&self, keys: Vec<String>) -> ByteStream {
        let blobs = self.blobs.clone();
        futures::stream::iter(keys)
            .then(move |key| {
                let blobs = blobs.clone();
                async move { blobs.get(&key, None).await.map(|read| read.body).map_err(std::io::Error::other) }
            })
            .try_flatten()
            .boxed()
    }

    /// Deletes staged parts (absent ones are fine).
    pub async fn unstage(&self, keys: &[String]) -> Result<(), DriveError> {
        for key in keys {
            self.blobs.delete(key).await?;
        }
        Ok(())
    }
}
