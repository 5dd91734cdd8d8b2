//! Content-defined chunking: FastCDC (2020) over a byte stream, with BLAKE3 addresses.
//!
//! The size parameters are part of the storage format: changing them changes where chunk
//! boundaries fall, so existing content would stop deduplicating against new uploads. Never change
//! them silently.

use std::sync::LazyLock;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use oppidum_store::ByteStream;

/// Smallest chunk, except the last one of a file.
pub const MIN_CHUNK: usize = 64 * 1024;
/// Average chunk size.
pub const AVG_CHUNK: usize = 256 * 1024;
/// Largest chunk: bounds the memory an upload holds at once.
pub const MAX_CHUNK: usize = 1024 * 1024;

/// One chunk of content.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// BLAKE3 of `data`, hex.
    pub hash: String,
    pub offset: u64,
    pub data: Bytes,
}

/// Splits `body` into content-defined chunks as it streams; memory is bounded by `MAX_CHUNK`.
/// A content no longer than `MIN_CHUNK` is one chunk whatever the chunker would say (it never
/// cuts below that size), so small files skip it: no chunking buffer, no task.
pub fn chunks(mut body: ByteStream) -> impl Stream<Item = Result<Chunk, std::io::Error>> {
    futures::stream::once(async move {
        let (mut head, mut len) = (Vec::new(), 0_usize);
        while len <= MIN_CHUNK {
            match body.next().await {
                Some(Ok(piece)) => {
                    len += piece.len();
                    head.push(piece);
                }
                Some(Err(err)) => return futures::stream::iter(Some(Err(err))).left_stream(),
                None => return futures::stream::iter(whole(head, len).map(Ok)).left_stream(),
            }
        }
        let rest = futures::stream::iter(head.into_iter().map(Ok)).chain(body).boxed();
        content_defined(rest).right_stream()
    })
    .flatten()
}

/// The only chunk of a small content (none when it is empty).
fn whole(mut pieces: Vec<Bytes>, len: usize) -> Option<Chunk> {
    let data = match pieces.len() {
        0 => return None,
        1 => pieces.pop().unwrap_or_default(),
        _ => {
            let mut data = bytes::BytesMut::with_capacity(len);
            pieces.iter().for_each(|piece| data.extend_from_slice(piece));
            data.freeze()
        }
    };
    (!data.is_empty()).then(|| Chunk { hash: blake3::hash(&data).to_hex().to_string(), offset: 0, data })
}

/// The crate's gear tables (unseeded) and their shifted twins, as arrays: the scan indexes them by
/// a byte, with no bounds check.
static GEAR: LazyLock<([u64; 256], [u64; 256])> = LazyLock::new(|| {
    let (gear, gear_ls) = fastcdc::v2020::get_gear_with_seed(0);
    let mut tables = ([0; 256], [0; 256]);
    tables.0.iter_mut().zip(gear.iter()).for_each(|(to, from)| *to = *from);
    tables.1.iter_mut().zip(gear_ls.iter()).for_each(|(to, from)| *to = *from);
    tables
});

/// How much one chunking buffer holds: chunks are cut out of it without a copy, and only the
/// unchunked tail (under [`MAX_CHUNK`]) is copied when the next buffer starts.
const WINDOW: usize = 4 * MAX_CHUNK;

/// FastCDC 2020 (normalization level 1, as the crate's stream chunkers) over a buffer of its own:
/// pieces of the body are appended once, chunks are split off as shared views of the buffer.
///
/// The scan is the crate's [`fastcdc::v2020::cut`], made resumable: it goes over each byte once
/// as pieces arrive, and a chunk is cut as soon as its boundary is seen rather than once a
/// largest chunk is buffered, so storing it overlaps the rest of the upload. The boundaries are
/// the crate's: FastCDC tests byte pairs in order with a mask that depends only on the position,
/// so the first boundary found in what has arrived is the one the whole content has (a test
/// compares both on many ways of cutting the body into pieces).
struct Cutter {
    buffer: BytesMut,
    offset: u64,
    masks: (u64, u64),
    /// The next pair of bytes to test, and the rolling hash up to it.
    pair: usize,
    hash: u64,
}

impl Cutter {
    fn new() -> Self {
        let masks = fastcdc::v2020::select_masks(AVG_CHUNK, fastcdc::v2020::Normalization::Level1);
        Self { buffer: BytesMut::with_capacity(WINDOW), offset: 0, masks, pair: MIN_CHUNK / 2, hash: 0 }
    }

    fn append(&mut self, piece: &[u8]) {
        if self.buffer.capacity() - self.buffer.len() < piece.len() {
            let mut fresh = BytesMut::with_capacity(WINDOW.max(self.buffer.len() + piece.len()));
            fresh.extend_from_slice(&self.buffer);
            self.buffer = fresh;
        }
        self.buffer.extend_from_slice(piece);
    }

    /// The length of the next chunk, if what is buffered shows where it ends.
    fn boundary(&mut self) -> Option<usize> {
        let (mask_s, mask_l) = self.masks;
        let (gear, gear_ls) = &*GEAR;
        let data = &self.buffer[..self.buffer.len().min(MAX_CHUNK)];
        // Pairs whose both bytes have arrived; those before the average size are held to the
        // strict mask.
        let end = data.len() / 2;
        let (mut pair, mut hash) = (self.pair, self.hash);
        let found = 'scan: {
            for (limit, mask) in [(end.min(AVG_CHUNK / 2), mask_s), (end, mask_l)] {
                let mask_ls = mask << 1;
                let pairs = data.get(pair * 2..limit.max(pair) * 2).unwrap_or_default();
                for bytes in pairs.chunks_exact(2) {
                    hash = (hash << 2).wrapping_add(gear_ls[usize::from(bytes[0])]);
                    if hash & mask_ls == 0 {
                        break 'scan Some(pair * 2);
                    }
                    hash = hash.wrapping_add(gear[usize::from(bytes[1])]);
                    if hash & mask == 0 {
                        break 'scan Some(pair * 2 + 1);
                    }
                    pair += 1;
                }
            }
            None
        };
        (self.pair, self.hash) = (pair, hash);
        // No boundary in a whole largest chunk: it is cut there.
        found.or_else(|| (data.len() == MAX_CHUNK).then_some(MAX_CHUNK))
    }

    /// Splits off the next `len` bytes as a chunk.
    fn split(&mut self, len: usize) -> Chunk {
        let data = self.buffer.split_to(len.clamp(1, self.buffer.len())).freeze();
        let chunk = Chunk { hash: blake3::hash(&data).to_hex().to_string(), offset: self.offset, data };
        self.offset += chunk.data.len() as u64;
        (self.pair, self.hash) = (MIN_CHUNK / 2, 0);
        chunk
    }
}

fn content_defined(mut body: ByteStream) -> impl Stream<Item = Result<Chunk, std::io::Error>> {
    // Cutting and hashing run in a task of their own, a chunk ahead of whoever stores them.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let mut cutter = Cutter::new();
        loop {
            while let Some(len) = cutter.boundary() {
                if tx.send(Ok(cutter.split(len))).await.is_err() {
                    return;
                }
            }
            match body.next().await {
                Some(Ok(piece)) => cutter.append(&piece),
                Some(Err(err)) => {
                    let _ = tx.send(Err(err)).await;
                    return;
                }
                None => {
                    // The rest is the last chunk (shorter than a largest one, with no boundary).
                    if !cutter.buffer.is_empty() {
                        let rest = cutter.buffer.len();
                        let _ = tx.send(Ok(cutter.split(rest))).await;
                    }
                    return;
                }
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic pseudo-random bytes (xorshift), so chunk boundaries are content-defined.
    pub(crate) fn data(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.max(1);
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    async fn chunk_all(bytes: Vec<u8>, piece: usize) -> Vec<Chunk> {
        let parts: Vec<Result<Bytes, std::io::Error>> =
            bytes.chunks(piece).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        futures::TryStreamExt::try_collect(chunks(futures::stream::iter(parts).boxed())).await.expect("chunks")
    }

    #[tokio::test]
    async fn chunker_is_content_defined_and_lossless() {
        let original = data(5 * 1024 * 1024, 7);
        let a = chunk_all(original.clone(), 4096).await;
        // The way the stream is cut into pieces does not move boundaries.
        let b = chunk_all(original.clone(), 65_537).await;
        assert_eq!(a.iter().map(|c| &c.hash).collect::<Vec<_>>(), b.iter().map(|c| &c.hash).collect::<Vec<_>>());
        let joined: Vec<u8> = a.iter().flat_map(|c| c.data.iter().copied()).collect();
        assert_eq!(joined, original);
        assert!(a.iter().all(|c| c.data.len() <= MAX_CHUNK));
        assert!(a.len() >= 10, "{} chunks", a.len());
    }

    #[tokio::test]
    async fn large_contents_are_cut_where_fastcdc_cuts_them() {
        let bytes = data(9 * 1024 * 1024 + 333, 5);
        let reference: Vec<(u64, usize)> = fastcdc::v2020::FastCDC::new(&bytes, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK)
            .map(|c| (c.offset as u64, c.length))
            .collect();
        for piece in [1000, 16 * 1024, MAX_CHUNK + 1, 5 * MAX_CHUNK] {
            let got = chunk_all(bytes.clone(), piece).await;
            let cuts: Vec<(u64, usize)> = got.iter().map(|c| (c.offset, c.data.len())).collect();
            assert_eq!(cuts, reference, "pieces of {piece}");
            let joined: Vec<u8> = got.iter().flat_map(|c| c.data.iter().copied()).collect();
            assert_eq!(joined, bytes);
        }
    }

    #[tokio::test]
    async fn boundaries_do_not_move_with_odd_pieces_or_boundless_content() {
        // Pieces of odd sizes leave a byte pair split between two pieces; zeros hold no boundary,
        // so they are cut at the largest size.
        let mut bytes = data(2 * 1024 * 1024 + 77, 9);
        bytes.extend(std::iter::repeat_n(0_u8, 3 * MAX_CHUNK + 5));
        let reference: Vec<(u64, usize)> = fastcdc::v2020::FastCDC::new(&bytes, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK)
            .map(|c| (c.offset as u64, c.length))
            .collect();
        for piece in [7, 999, 65_537] {
            let got = chunk_all(bytes.clone(), piece).await;
            let cuts: Vec<(u64, usize)> = got.iter().map(|c| (c.offset, c.data.len())).collect();
            assert_eq!(cuts, reference, "pieces of {piece}");
        }
        assert!(reference.iter().filter(|(_, len)| *len == MAX_CHUNK).count() >= 3);
    }

    #[tokio::test]
    async fn chunker_localizes_edits() {
        let original = data(4 * 1024 * 1024, 11);
        let mut edited = original.clone();
        // Insert 100 bytes in the middle: only nearby chunks change.
        edited.splice(2_000_000..2_000_000, std::iter::repeat_n(42_u8, 100));
        let a = chunk_all(original, 8192).await;
        let b = chunk_all(edited, 8192).await;
        let before: std::collections::HashSet<_> = a.iter().map(|c| c.hash.clone()).collect();
        let reused = b.iter().filter(|c| before.contains(&c.hash)).count();
        assert!(reused + 2 >= b.len(), "only {reused} of {} chunks reused", b.len());
    }

    #[tokio::test]
    async fn small_contents_are_one_chunk_as_the_chunker_would_cut_them() {
        for len in [1, 1000, MIN_CHUNK - 1, MIN_CHUNK, MIN_CHUNK + 1, 2 * MIN_CHUNK + 7] {
            let bytes = data(len, len as u64);
            let reference: Vec<(u64, usize)> = fastcdc::v2020::FastCDC::new(&bytes, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK)
                .map(|c| (c.offset as u64, c.length))
                .collect();
            for piece in [7, 4096, len] {
                let got = chunk_all(bytes.clone(), piece).await;
                let cuts: Vec<(u64, usize)> = got.iter().map(|c| (c.offset, c.data.len())).collect();
                assert_eq!(cuts, reference, "{len} bytes in pieces of {piece}");
                let joined: Vec<u8> = got.iter().flat_map(|c| c.data.iter().copied()).collect();
                assert_eq!(joined, bytes);
                assert!(got.iter().all(|c| c.hash == blake3::hash(&c.data).to_hex().to_string()));
            }
        }
    }

    #[tokio::test]
    async fn a_body_failing_midway_ends_in_its_error() {
        for before in [0, 10, MIN_CHUNK + 1, 3 * MAX_CHUNK] {
            let parts: Vec<Result<Bytes, std::io::Error>> =
                vec![Ok(Bytes::from(data(before, 3))), Err(std::io::Error::other("client went away"))];
            let out: Vec<_> = chunks(futures::stream::iter(parts).boxed()).collect().await;
            let last = out.last().expect("an item");
            assert!(matches!(last, Err(e) if e.to_string().contains("client went away")), "{before}: {last:?}");
        }
    }

    #[tokio::test]
    async fn chunker_handles_empty_and_tiny_inputs() {
        assert!(chunk_all(Vec::new(), 10).await.is_empty());
        let tiny = chunk_all(b"hello".to_vec(), 2).await;
        assert_eq!(tiny.len(), 1);
        assert_eq!(tiny[0].hash, blake3::hash(b"hello").to_hex().to_string());
    }
}
