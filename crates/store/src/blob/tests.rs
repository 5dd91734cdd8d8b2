use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};

use super::*;

fn chunks(parts: Vec<Result<Bytes, std::io::Error>>) -> ByteStream {
    stream::iter(parts).boxed()
}

async fn read_all(store: &dyn BlobStore, key: &str, range: Option<Range<u64>>) -> Vec<u8> {
    let read = store.get(key, range).await.expect("get");
    let parts: Vec<Bytes> = read.body.try_collect().await.expect("body");
    parts.concat()
}

async fn exercise(store: &dyn BlobStore) {
    let body = vec![Ok(Bytes::from_static(b"hello ")), Ok(Bytes::from_static(b"world"))];
    let meta = store.put("a/b/greeting.txt", chunks(body)).await.expect("put");
    assert_eq!(meta.size, 11);
    assert_eq!(read_all(store, "a/b/greeting.txt", None).await, b"hello world");
    assert_eq!(read_all(store, "a/b/greeting.txt", Some(6..11)).await, b"world");
    // Read whole into memory: the same bytes, ranges included.
    assert_eq!(store.get_bytes("a/b/greeting.txt", None).await.expect("get_bytes"), &b"hello world"[..]);
    assert_eq!(store.get_bytes("a/b/greeting.txt", Some(0..5)).await.expect("range"), &b"hello"[..]);
    assert!(matches!(store.get_bytes("a/b/missing", None).await, Err(StoreError::BlobNotFound(_))));
    assert!(matches!(store.get_bytes("../escape", None).await, Err(StoreError::InvalidKey(_))));
    assert_eq!(store.head("a/b/greeting.txt").await.expect("head").map(|m| m.size), Some(11));
    assert_eq!(store.list("a").await.expect("list").len(), 1);

    // A failing upload stores nothing.
    let broken = vec![Ok(Bytes::from_static(b"partial")), Err(std::io::Error::other("client went away"))];
    assert!(matches!(store.put("a/broken", chunks(broken)).await, Err(StoreError::Upload(_))));
    assert_eq!(store.head("a/broken").await.expect("head"), None);

    // Larger than one upload part: goes through a multipart upload.
    let mib = Bytes::from((0..1024 * 1024).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let parts = (0..9).map(|_| Ok(mib.clone())).collect();
    let meta = store.put("a/large", chunks(parts)).await.expect("multipart put");
    assert_eq!(meta.size, 9 * 1024 * 1024);
    let tail = read_all(store, "a/large", Some(meta.size - 3..meta.size)).await;
    assert_eq!(tail, mib[mib.len() - 3..].to_vec());
    store.delete("a/large").await.expect("delete large");

    store.delete("a/b/greeting.txt").await.expect("delete");
    store.delete("a/b/greeting.txt").await.expect("delete is idempotent");
    assert!(matches!(store.get("a/b/greeting.txt", None).await, Err(StoreError::BlobNotFound(_))));
    store.check().await.expect("readiness probe");
}

#[tokio::test]
async fn blob_memory_backend_round_trips() {
    exercise(&ObjectBlobStore::memory()).await;
}

#[tokio::test]
async fn blob_local_backend_round_trips() {
    let dir = tempfile::tempdir().expect("tempdir");
    exercise(&ObjectBlobStore::local(dir.path()).expect("local")).await;
}

#[tokio::test]
async fn blob_local_reads_of_whole_blobs_check_their_range() {
    let dir = tempfile::tempdir().expect("dir");
    let store = ObjectBlobStore::local(dir.path()).expect("local");
    let data = Bytes::from((0..300_000).map(|i| (i % 253) as u8).collect::<Vec<u8>>());
    for key in ["chunks/ab/0123abcd/0190-x_y", "a/b/greeting.v2.txt", "a/.hidden"] {
        store.put_bytes(key, data.clone()).await.expect("put");
        assert_eq!(store.get_bytes(key, None).await.expect("whole"), data, "{key}");
        assert_eq!(store.get_bytes(key, Some(1000..1010)).await.expect("range"), data.slice(1000..1010), "{key}");
        let past = store.get_bytes(key, Some(299_990..300_100)).await.expect("past the end");
        assert_eq!(past, data.slice(299_990..), "{key}: a range past the end stops there");
    }
    assert!(matches!(store.get_bytes("chunks/ab/none", None).await, Err(StoreError::BlobNotFound(_))));
}

#[tokio::test]
async fn blob_local_write_is_invisible_until_complete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ObjectBlobStore::local(dir.path()).expect("local");
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let body = tokio_stream_from(rx);
    let writer = {
        let store = store.clone();
        tokio::spawn(async move { store.put("big/object", body).await })
    };
    // Larger than one part, so the upload is multipart.
    let part = Bytes::from(vec![7_u8; 3 * 1024 * 1024]);
    for _ in 0..4 {
        tx.send(Ok(part.clone())).await.expect("send");
        assert_eq!(store.head("big/object").await.expect("head"), None, "half an object is visible");
    }
    drop(tx);
    let meta = writer.await.expect("join").expect("put");
    assert_eq!(meta.size, 12 * 1024 * 1024);
    assert_eq!(store.head("big/object").await.expect("head").map(|m| m.size), Some(meta.size));
}

fn tokio_stream_from(mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>) -> ByteStream {
    stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

#[tokio::test]
async fn blob_keys_are_validated() {
    let store = ObjectBlobStore::memory();
    for key in ["", "/abs", "a//b", "../escape", "a/./b", "sp ace", "a/..", "ü"] {
        assert!(matches!(store.head(key).await, Err(StoreError::InvalidKey(_))), "{key:?} accepted");
    }
}

/// Runs against a real S3-compatible server when `OPPIDUM_TEST_S3_ENDPOINT` is set (CI starts one).
#[tokio::test]
async fn blob_s3_backend_round_trips() {
    let Ok(endpoint) = std::env::var("OPPIDUM_TEST_S3_ENDPOINT") else {
        eprintln!("SKIPPED blob_s3_backend_round_trips: set OPPIDUM_TEST_S3_ENDPOINT to run it");
        return;
    };
    // The S3 client's TLS stack needs a crypto provider, as in `main`.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = crate::testing::s3_config(&endpoint);
    exercise(&ObjectBlobStore::s3(&config).expect("s3")).await;
}
