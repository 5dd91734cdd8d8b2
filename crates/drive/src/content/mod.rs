//! The content store: ingests a byte stream into deduplicated chunks, records the ordered chunk
//! list as a manifest, streams contents back (whole or a byte range), and collects chunks no
//! manifest references.
//!
//! Safety against concurrent collection: reusing a chunk bumps its `touched_at`, and collection
//! deletes only chunks untouched for the grace period and unreferenced, in one conditional
//! statement; a missing chunk is written under a fresh blob key, so deleting an old copy never
//! removes a new one. A manifest is committed only after all its chunks are stored.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use chrono::Duration;
use futures::StreamExt;
use oppidum_core::time::Clock;
use oppidum_store::{BlobStore, ByteStream, Db, Statement, Unit};
use uuid::Uuid;

use crate::chunker;
use crate::error::DriveError;

/// Chunks read ahead of the client on a download.
const READ_AHEAD: usize = 4;
/// Chunks of an upload being stored at once.
const STORE_AHEAD: usize = 3;
/// The sample of a chunk compressed first: when it does not shrink, the chunk is stored as is
/// without compressing the rest (media, archives, encrypted data).
const COMPRESS_SAMPLE: usize = 16 * 1024;
/// Chunks up to this size are compressed right where they arrive (a few microseconds); larger
/// ones on a blocking thread.
const COMPRESS_INLINE: usize = 16 * 1024;
/// Manifest rows written per statement.
const CHUNK_ROWS: usize = 200;
/// Chunks up to this size (the whole content of small files) are kept in the database, written
/// in the transaction that commits their manifest: no blob write, one commit per small upload.
pub(crate) const INLINE_MAX: usize = 16 * 1024;

/// What an ingested content is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// BLAKE3 of the whole content, hex: the strong ETag.
    pub hash: String,
    pub size: u64,
    /// Chunk hashes and sizes, in order.
    pub chunks: Vec<(String, u64)>,
    /// Bytes this ingest added to the store (0 when every chunk existed).
    pub new_bytes: u64,
    /// Small chunks to record with the manifest (see [`INLINE_MAX`]), as stored.
    pub inline: Vec<InlineChunk>,
}

/// A small chunk kept in the database, written when its manifest is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineChunk {
    pub hash: String,
    pub size: u64,
    pub stored: Bytes,
    pub compression: Option<&'static str>,
}

/// A chunk of a manifest as read: (size, blob key, compression, data kept in the row).
type ChunkRow = (i64, String, Option<String>, Option<Vec<u8>>);

/// What storing a chunk did.
enum Stored {
    /// Written to the blob store: this many bytes.
    Written(u64),
    /// It was there already.
    Known,
    /// Small: it goes into the database with the manifest (true: it existed when read).
    Inline(InlineChunk, bool),
}

/// Stores and reads deduplicated content; cheap to clone.
#[derive(Clone)]
pub struct ContentStore {
    db: Db,
    blobs: Arc<dyn BlobStore>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ContentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentStore").finish_non_exhaustive()
    }
}

impl ContentStore {
    pub fn new(db: Db, blobs: Arc<dyn BlobStore>, clock: Arc<dyn Clock>) -> Self {
        Self { db, blobs, clock }
    }

    /// Chunks and stores `body`, at most `limit` bytes. Nothing is visible until
    /// [`ContentStore::commit`]; chunks of an abandoned ingest are collected later.
    pub async fn ingest(&self, body: ByteStream, limit: u64) -> Result<Manifest, DriveError> {
        let mut hasher = blake3::Hasher::new();
        let mut size = 0_u64;
        let mut new_bytes = 0_u64;
        let mut list = Vec::new();
        let mut inline = Vec::new();
        // Chunks arrive in order; up to STORE_AHEAD of them are being stored at once (blob writes
        // and compression overlap the next chunks' hashing), still answered in order. Memory stays
        // bounded by that many chunks.
        {
            let stored = chunker::chunks(body)
                .map(|chunk| {
                    let chunk = chunk.map_err(DriveError::Upload);
                    let accepted = chunk.and_then(|chunk| {
                        size += chunk.data.len() as u64;
                        if size > limit {
                            return Err(DriveError::TooLarge(limit));
                        }
                        hasher.update(&chunk.data);
                        Ok(chunk)
                    });
                    async move {
                        let chunk = accepted?;
                        let written = self.store_chunk(&chunk.hash, chunk.data.clone()).await?;
                        Ok::<_, DriveError>((chunk.hash, chunk.data.len() as u64, written))
                    }
                })
                .buffered(STORE_AHEAD);
            let mut stored = std::pin::pin!(stored);
            while let Some(outcome) = stored.next().await {
                let (hash, len, written) = outcome?;
                match written {
                    Stored::Written(bytes) => new_bytes += bytes,
                    Stored::Known => {}
                    Stored::Inline(chunk, known) => {
                        if !known {
                            new_bytes += chunk.stored.len() as u64;
                        }
                        inline.push(chunk);
                    }
                }
                list.push((hash, len));
            }
        }
        Ok(Manifest { hash: hasher.finalize().to_hex().to_string(), size, chunks: list, new_bytes, inline })
    }

    /// Makes sure the chunk is stored. Whether it exists is read first (a read costs no commit);
    /// an existing chunk is then touched, which fails only if collection removed it in between,
    /// and it is stored again. A small chunk is only prepared: the manifest's commit records it
    /// (or touches it when it exists by then), so it needs neither a touch nor a write now.
    async fn store_chunk(&self, hash: &str, data: Bytes) -> Result<Stored, DriveError> {
        let now = self.clock.now();
        let known: Option<(i64,)> =
            self.db.query("SELECT size FROM drive_chunks WHERE hash = $1").bind(hash).fetch_optional().await?;
        if data.len() <= INLINE_MAX {
            let size = data.len() as u64;
            // A known chunk is carried all the same (as is, uncompressed): collection may remove it
            // before the commit, which then records it again.
            let (stored, compression) = if known.is_some() { (data, None) } else { compress(data).await };
            let chunk = InlineChunk { hash: hash.to_owned(), size, stored, compression };
            return Ok(Stored::Inline(chunk, known.is_some()));
        }
        if known.is_some() && self.touch(hash, now).await? {
            return Ok(Stored::Known);
        }
        // A fresh key per write (see `drive_chunks.blob_key`), in one of 256 folders: a folder per
        // chunk (as before, `chunks/ab/<hash>/<id>`; such keys stay readable) cost a directory to
        // create with every chunk, and left it behind, empty, when the chunk was collected.
        let key = format!("chunks/{}/{hash}.{}", &hash[..2], Uuid::now_v7().simple());
        let len = data.len() as u64;
        let (stored, compression) = compress(data).await;
        let stored_len = stored.len() as u64;
        self.blobs.put_bytes(&key, stored).await?;
        let inserted = self
            .db
            .query(
                "INSERT INTO drive_chunks (hash, size, stored_size, blob_key, touched_at, compression) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (hash) DO NOTHING",
            )
            .bind(hash)
            .bind(i64::try_from(len).unwrap_or(i64::MAX))
            .bind(i64::try_from(stored_len).unwrap_or(i64::MAX))
            .bind(key.as_str())
            .bind(now)
            .bind(compression)
            .execute()
            .await?;
        if inserted == 0 {
            // Another upload stored it meanwhile: keep theirs.
            self.blobs.delete(&key).await?;
            self.touch(hash, now).await?;
            return Ok(Stored::Known);
        }
        Ok(Stored::Written(stored_len))
    }

    /// Marks a chunk as just used (collection spares it); false when it no longer exists.
    async fn touch(&self, hash: &str, now: chrono::DateTime<chrono::Utc>) -> Result<bool, DriveError> {
        let touched = self
            .db
            .query("UPDATE drive_chunks SET touched_at = $2 WHERE hash = $1")
            .bind(hash)
            .bind(now)
            .execute()
            .await?;
        Ok(touched == 1)
    }

    /// Records a manifest; from now on its chunks are safe from collection.
    pub async fn commit(&self, manifest: &Manifest) -> Result<Uuid, DriveError> {
        let mut unit = Unit::new();
        let id = self.record(&mut unit, manifest);
        self.db.commit_unit(unit).await?;
        Ok(id)
    }

    /// Adds to `unit` (the one that makes the manifest a file's version) the statements that record
    /// a manifest: its chunks kept in the database, and its chunk list in statements of up to
    /// [`CHUNK_ROWS`] rows. Returns the manifest's id.
    pub fn record(&self, unit: &mut Unit, manifest: &Manifest) -> Uuid {
        let id = Uuid::now_v7();
        let now = self.clock.now();
        for chunk in &manifest.inline {
            // Recorded, or touched when it exists (stored in the blob store or here): collection
            // spares it, and this unit references it before committing.
            unit.push(
                Statement::new(
                    "INSERT INTO drive_chunks (hash, size, stored_size, blob_key, touched_at, compression) \
                     VALUES ($1, $2, $3, '', $4, $5) ON CONFLICT (hash) DO UPDATE SET touched_at = $4",
                )
                .bind(chunk.hash.as_str())
                .bind(i64::try_from(chunk.size).unwrap_or(i64::MAX))
                .bind(i64::try_from(chunk.stored.len()).unwrap_or(i64::MAX))
                .bind(now)
                .bind(chunk.compression),
            );
            unit.push(
                Statement::new(
                    "INSERT INTO drive_chunk_data (hash, data) SELECT $1, $2 \
                     WHERE EXISTS (SELECT 1 FROM drive_chunks WHERE hash = $1 AND blob_key = '') \
                     ON CONFLICT (hash) DO NOTHING",
                )
                .bind(chunk.hash.as_str())
                .bind(chunk.stored.to_vec()),
            );
        }
        unit.push(
            Statement::new("INSERT INTO drive_manifests (id, hash, size, created_at) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(manifest.hash.as_str())
                .bind(i64::try_from(manifest.size).unwrap_or(i64::MAX))
                .bind(now),
        );
        for (batch, rows) in manifest.chunks.chunks(CHUNK_ROWS).enumerate() {
            let values: Vec<String> =
                (0..rows.len()).map(|i| format!("($1, ${}, ${}, ${})", 3 * i + 2, 3 * i + 3, 3 * i + 4)).collect();
            let sql = format!(
                "INSERT INTO drive_manifest_chunks (manifest_id, seq, chunk_hash, size) VALUES {}",
                values.join(", ")
            );
            let mut statement = Statement::dynamic(sql).bind(id);
            for (i, (hash, size)) in rows.iter().enumerate() {
                let seq = batch * CHUNK_ROWS + i;
                statement = statement
                    .bind(i64::try_from(seq).unwrap_or(i64::MAX))
                    .bind(hash.as_str())
                    .bind(i64::try_from(*size).unwrap_or(i64::MAX));
            }
            unit.push(statement);
        }
        id
    }

    /// A new manifest with the same content: copies cost no stored bytes, and deleting one never
    /// affects the other.
    pub async fn duplicate(&self, manifest: Uuid) -> Result<Uuid, DriveError> {
        let id = Uuid::now_v7();
        let mut tx = self.db.begin().await?;
        let copied = tx
            .query(
                "INSERT INTO drive_manifests (id, hash, size, created_at) SELECT $2, hash, size, $3 FROM drive_manifests \
                 WHERE id = $1",
            )
            .bind(manifest)
            .bind(id)
            .bind(self.clock.now())
            .execute()
            .await?;
        if copied == 0 {
            return Err(DriveError::NotFound);
        }
        tx.query(
            "INSERT INTO drive_manifest_chunks (manifest_id, seq, chunk_hash, size) \
             SELECT $2, seq, chunk_hash, size FROM drive_manifest_chunks WHERE manifest_id = $1",
        )
        .bind(manifest)
        .bind(id)
        .execute()
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Forgets a manifest (its chunks become collectable once nothing else uses them).
    pub async fn delete(&self, manifest: Uuid) -> Result<(), DriveError> {
        self.db.query("DELETE FROM drive_manifests WHERE id = $1").bind(manifest).execute().await?;
        Ok(())
    }

    /// Streams the content of `manifest`, or the byte `range` of it, a chunk at a time.
    pub async fn read(&self, manifest: Uuid, range: Option<Range<u64>>) -> Result<ByteStream, DriveError> {
        let rows: Vec<ChunkRow> = self
            .db
            .query(
                "SELECT mc.size, c.blob_key, c.compression, d.data FROM drive_manifest_chunks mc \
                 JOIN drive_chunks c ON c.hash = mc.chunk_hash LEFT JOIN drive_chunk_data d ON d.hash = c.hash \
                 WHERE mc.manifest_id = $1 ORDER BY mc.seq",
            )
            .bind(manifest)
            .fetch_all()
            .await?;
        let total: u64 = rows.iter().map(|(size, ..)| u64::try_from(*size).unwrap_or(0)).sum();
        let range = range.unwrap_or(0..total);
        let mut plan = Vec::new();
        let mut offset = 0_u64;
        for (size, key, compression, inline) in rows {
            let size = u64::try_from(size).unwrap_or(0);
            let (start, end) = (offset, offset + size);
            offset = end;
            if end <= range.start || start >= range.end {
                continue;
            }
            let from = range.start.saturating_sub(start);
            let to = size - end.saturating_sub(range.end);
            plan.push((key, from..to, size, compression, inline.map(Bytes::from)));
        }
        let blobs = self.blobs.clone();
        // Each chunk is read whole in one request, and the next ones are read while the client
        // takes this one: at most READ_AHEAD chunks (≤ 4 MiB) in memory, whatever the file size.
        let stream = futures::stream::iter(plan)
            .map(move |(key, part, size, compression, inline)| {
                let blobs = blobs.clone();
                async move {
                    let io = std::io::Error::other;
                    let cut = |data: Bytes| {
                        data.slice(usize::try_from(part.start).unwrap_or(0)..usize::try_from(part.end).unwrap_or(0))
                    };
                    if let Some(stored) = inline {
                        let data = if compression.is_some() { decompress(stored, size).await? } else { stored };
                        if data.len() as u64 != size {
                            return Err(std::io::Error::other("a stored chunk has the wrong size"));
                        }
                        return Ok(cut(data));
                    }
                    if compression.is_some() {
                        // Compressed chunks are read whole, then cut.
                        let stored = blobs.get_bytes(&key, None).await.map_err(io)?;
                        let data = decompress(stored, size).await?;
                        return Ok::<_, std::io::Error>(cut(data));
                    }
                    let whole = part.start == 0 && part.end == size;
                    blobs.get_bytes(&key, (!whole).then_some(part)).await.map_err(io)
                }
            })
            .buffered(READ_AHEAD);
        Ok(stream.boxed())
    }

    /// Deletes chunks that no manifest references and no upload touched within `grace`.
    /// Returns how many.
    pub async fn collect_garbage(&self, grace: Duration) -> Result<u64, DriveError> {
        let cutoff = self.clock.now() - grace;
        let candidates: Vec<(String,)> = self
            .db
            .query(
                "SELECT hash FROM drive_chunks c WHERE touched_at < $1 AND NOT EXISTS \
                 (SELECT 1 FROM drive_manifest_chunks mc WHERE mc.chunk_hash = c.hash) LIMIT 10000",
            )
            .bind(cutoff)
            .fetch_all()
            .await?;
        let mut collected = 0;
        for (hash,) in candidates {
            let deleted: Option<(String,)> = self
                .db
                .query(
                    "DELETE FROM drive_chunks WHERE hash = $1 AND touched_at < $2 AND NOT EXISTS \
                     (SELECT 1 FROM drive_manifest_chunks mc WHERE mc.chunk_hash = $1) RETURNING blob_key",
                )
                .bind(hash.as_str())
                .bind(cutoff)
                .fetch_optional()
                .await?;
            if let Some((key,)) = deleted {
                // Small chunks live in their row (no blob key): deleting the row was all.
                if !key.is_empty() {
                    self.blobs.delete(&key).await?;
                }
                collected += 1;
            }
        }
        Ok(collected)
    }

    /// Bytes held by chunks (in the blob store, and small ones in the database).
    pub async fn stored_bytes(&self) -> Result<u64, DriveError> {
        let (bytes,): (i64,) =
            self.db.query("SELECT CAST(COALESCE(SUM(stored_size), 0) AS BIGINT) FROM drive_chunks").fetch_one().await?;
        Ok(u64::try_from(bytes).unwrap_or(0))
    }
}

mod staging;
#[cfg(test)]
mod tests;

/// Compresses a chunk with LZ4 when that saves at least a tenth of it (text, office files,
/// logs); already compressed data (media, archives) is stored as is.
async fn compress(data: Bytes) -> (Bytes, Option<&'static str>) {
    let original = data.clone();
    let pack = move || {
        let sample = &data[..data.len().min(COMPRESS_SAMPLE)];
        if data.len() > COMPRESS_SAMPLE && !saves_a_tenth(sample.len(), lz4_flex::block::compress(sample).len()) {
            return None;
        }
        Some(lz4_flex::block::compress(&data))
    };
    let packed =
        if original.len() <= COMPRESS_INLINE { pack() } else { tokio::task::spawn_blocking(pack).await.ok().flatten() };
    match packed {
        Some(packed) if saves_a_tenth(original.len(), packed.len()) => (Bytes::from(packed), Some("lz4")),
        _ => (original, None),
    }
}

fn saves_a_tenth(original: usize, packed: usize) -> bool {
    packed < original - original / 10
}

/// The data of a compressed chunk of `size` bytes.
async fn decompress(stored: Bytes, size: u64) -> Result<Bytes, std::io::Error> {
    let size = usize::try_from(size).map_err(std::io::Error::other)?;
    let unpack = move || lz4_flex::block::decompress(&stored, size);
    let unpacked = if size <= COMPRESS_INLINE {
        unpack()
    } else {
        tokio::task::spawn_blocking(unpack).await.map_err(std::io::Error::other)?
    };
    let data = unpacked.map_err(|err| std::io::Error::other(format!("a stored chunk does not decompress: {err}")))?;
    if data.len() != size {
        return Err(std::io::Error::other("a stored chunk decompresses to the wrong size"));
    }
    Ok(Bytes::from(data))
}
