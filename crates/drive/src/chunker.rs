//! Content-defined chunking: FastCDC (2020) over a byte stream, with BLAKE3 addresses.
//!
//! The size parameters are part of the storage format: changing them changes where chunk
//! boundaries fall, so existing content would stop deduplicating against new uploads. Never change
//! them silently.

use bytes::Bytes;
use fastcdc::v2020::AsyncStreamCDC;
use futures::{Stream, StreamExt};
use oppidum_store::ByteStream;
use tokio_util::io::StreamReader;

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

fn content_defined(body: ByteStream) -> impl Stream<Item = Result<Chunk, std::io::Error>> {
    let reader = StreamReader::new(body);
    let mut cdc = AsyncStreamCDC::new(reader, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK);
    // The chunker borrows itself while streaming: drive it to a channel of owned chunks.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(cdc.as_stream());
        while let Some(item) = stream.next().await {
            let item = item.map_err(|e| std::io::Error::other(e.to_string())).map(|c| Chunk {
                hash: blake3::hash(&c.data).to_hex().to_string(),
                offset: c.offset,
                data: Bytes::from(c.data),
            });
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                return;
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
