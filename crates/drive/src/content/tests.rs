//! The content store on SQLite and (when configured) PostgreSQL.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{Duration, Utc};
use futures::{StreamExt, TryStreamExt};
use oppidum_core::time::ManualClock;
use oppidum_store::blob::ObjectBlobStore;
use oppidum_store::{ByteStream, Db};

use super::*;
use crate::chunker::tests::data;

struct Fixture {
    store: ContentStore,
    clock: Arc<ManualClock>,
    _dir: Option<tempfile::TempDir>,
}

async fn fixtures(test: &str) -> Vec<Fixture> {
    let mut urls = Vec::new();
    let dir = tempfile::tempdir().expect("tempdir");
    urls.push((format!("sqlite://{}", dir.path().join("t.db").display()), Some(dir)));
    if let Some(admin) = oppidum_store::testing::postgres_admin_url(test) {
        urls.push((oppidum_store::testing::create_postgres_database(&admin).await, None));
    }
    let mut out = Vec::new();
    for (url, dir) in urls {
        let db = Db::connect(&url, &Default::default()).await.expect("db");
        db.migrate().await.expect("migrate");
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let store = ContentStore::new(db, Arc::new(ObjectBlobStore::memory()), clock.clone());
        out.push(Fixture { store, clock, _dir: dir });
    }
    out
}

fn body(bytes: &[u8]) -> ByteStream {
    let parts: Vec<Result<Bytes, std::io::Error>> =
        bytes.chunks(100_000).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    futures::stream::iter(parts).boxed()
}

async fn read_all(store: &ContentStore, id: Uuid, range: Option<Range<u64>>) -> Vec<u8> {
    let parts: Vec<Bytes> = store.read(id, range).await.expect("read").try_collect().await.expect("body");
    parts.concat()
}

#[tokio::test]
async fn content_deduplicates_and_reads_back() {
    for f in fixtures("content_deduplicates_and_reads_back").await {
        let original = data(3 * 1024 * 1024, 3);
        let first = f.store.ingest(body(&original), u64::MAX).await.expect("ingest");
        assert_eq!(first.size, original.len() as u64);
        assert_eq!(first.hash, blake3::hash(&original).to_hex().to_string());
        assert_eq!(first.new_bytes, first.size);
        let id = f.store.commit(&first).await.expect("commit");
        assert_eq!(read_all(&f.store, id, None).await, original);
        assert_eq!(read_all(&f.store, id, Some(1_000_000..1_000_010)).await, original[1_000_000..1_000_010].to_vec());
        let tail = original.len() as u64 - 5;
        assert_eq!(
            read_all(&f.store, id, Some(tail..original.len() as u64)).await,
            original[original.len() - 5..].to_vec()
        );

        // The same content again stores nothing new.
        let again = f.store.ingest(body(&original), u64::MAX).await.expect("ingest");
        assert_eq!(again.new_bytes, 0);
        assert_eq!(again.chunks, first.chunks);

        // A 1 % edit stores only the chunks around it.
        let mut edited = original.clone();
        for b in &mut edited[1_500_000..1_531_000] {
            *b = b.wrapping_add(1);
        }
        let changed = f.store.ingest(body(&edited), u64::MAX).await.expect("ingest");
        assert!(changed.new_bytes < first.size / 4, "stored {} of {}", changed.new_bytes, first.size);
        let id2 = f.store.commit(&changed).await.expect("commit");
        assert_eq!(read_all(&f.store, id2, None).await, edited);
        assert!(f.store.stored_bytes().await.expect("stored") < 2 * first.size);
    }
}

#[tokio::test]
async fn content_limit_and_garbage_collection() {
    for f in fixtures("content_limit_and_garbage_collection").await {
        let bytes = data(2 * 1024 * 1024, 5);
        assert!(matches!(f.store.ingest(body(&bytes), 1024 * 1024).await, Err(DriveError::TooLarge(_))));
        // The aborted upload left chunks; they survive the grace period, then go.
        assert!(f.store.stored_bytes().await.expect("stored") > 0);
        assert_eq!(f.store.collect_garbage(Duration::hours(1)).await.expect("gc"), 0, "collected within grace");
        f.clock.advance(Duration::hours(2));
        assert!(f.store.collect_garbage(Duration::hours(1)).await.expect("gc") > 0);
        assert_eq!(f.store.stored_bytes().await.expect("stored"), 0);

        // Referenced chunks are never collected; a reused chunk is protected again by the touch.
        let manifest = f.store.ingest(body(&bytes), u64::MAX).await.expect("ingest");
        let id = f.store.commit(&manifest).await.expect("commit");
        f.clock.advance(Duration::hours(2));
        assert_eq!(f.store.collect_garbage(Duration::hours(1)).await.expect("gc"), 0);
        assert_eq!(read_all(&f.store, id, None).await, bytes);
        f.store.delete(id).await.expect("delete");
        // An upload in progress reuses the now unreferenced chunks: its touch saves them.
        let pending = f.store.ingest(body(&bytes), u64::MAX).await.expect("ingest");
        assert_eq!(pending.new_bytes, 0);
        assert_eq!(f.store.collect_garbage(Duration::hours(1)).await.expect("gc"), 0);
        let id = f.store.commit(&pending).await.expect("commit");
        assert_eq!(read_all(&f.store, id, None).await, bytes);
    }
}

#[tokio::test]
async fn content_compresses_where_it_pays() {
    for f in fixtures("content_compresses_where_it_pays").await {
        // Text compresses: it is stored smaller, and reads back whole and in ranges.
        let text: Vec<u8> =
            (0..200_000).flat_map(|i| format!("line {i}: the quick brown fox\n").into_bytes()).collect();
        let manifest = f.store.ingest(body(&text), u64::MAX).await.expect("ingest");
        assert!(manifest.new_bytes < manifest.size / 3, "stored {} of {}", manifest.new_bytes, manifest.size);
        let id = f.store.commit(&manifest).await.expect("commit");
        assert_eq!(read_all(&f.store, id, None).await, text);
        let (a, b) = (1_234_567, 1_300_000);
        assert_eq!(read_all(&f.store, id, Some(a..b)).await, text[a as usize..b as usize].to_vec());
        // Random bytes do not: stored as they are.
        let noise = data(2 * 1024 * 1024, 11);
        let manifest = f.store.ingest(body(&noise), u64::MAX).await.expect("ingest");
        assert_eq!(manifest.new_bytes, manifest.size);
        let id = f.store.commit(&manifest).await.expect("commit");
        assert_eq!(read_all(&f.store, id, Some(10..20)).await, noise[10..20].to_vec());
    }
}

#[tokio::test]
async fn content_small_chunks_live_in_the_database() {
    for f in fixtures("content_small_chunks_live_in_the_database").await {
        // A small file: nothing is stored before the commit, then it reads back whole and cut.
        let text: Vec<u8> = (0..300).flat_map(|i| format!("{i} small text\n").into_bytes()).collect();
        assert!(text.len() <= INLINE_MAX);
        let manifest = f.store.ingest(body(&text), u64::MAX).await.expect("ingest");
        assert_eq!(manifest.inline.len(), 1);
        assert!(manifest.inline[0].compression.is_some(), "text is compressed");
        assert_eq!(f.store.stored_bytes().await.expect("stored"), 0, "nothing written before the commit");
        let id = f.store.commit(&manifest).await.expect("commit");
        assert_eq!(read_all(&f.store, id, None).await, text);
        assert_eq!(read_all(&f.store, id, Some(5..50)).await, text[5..50].to_vec());
        assert!(f.store.stored_bytes().await.expect("stored") < text.len() as u64);

        // The same content again: known, nothing new, one row.
        let again = f.store.ingest(body(&text), u64::MAX).await.expect("ingest");
        assert_eq!(again.new_bytes, 0);
        // Collection removes the chunk once unreferenced, while the second upload is pending…
        f.store.delete(id).await.expect("delete");
        f.clock.advance(Duration::hours(2));
        assert_eq!(f.store.collect_garbage(Duration::hours(1)).await.expect("gc"), 1);
        assert_eq!(f.store.stored_bytes().await.expect("stored"), 0);
        // …and the pending upload's commit records it again, readable.
        let id = f.store.commit(&again).await.expect("commit");
        assert_eq!(read_all(&f.store, id, None).await, text);

        // An abandoned small upload leaves nothing at all.
        let noise = data(3000, 9);
        let _ = f.store.ingest(body(&noise), u64::MAX).await.expect("ingest");
        f.clock.advance(Duration::hours(2));
        assert_eq!(f.store.collect_garbage(Duration::hours(1)).await.expect("gc"), 0);
    }
}
