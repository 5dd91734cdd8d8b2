//! Drive behaviour on SQLite and (when configured) PostgreSQL: retention, events.

use bytes::Bytes;
use chrono::{Duration, Utc};
use oppidum_core::config::DriveConfig;
use uuid::Uuid;

use super::Scope;
use crate::Drive;
use crate::testing::{drive_at, principal};

async fn drives(test: &str, config: DriveConfig) -> (Vec<Drive>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut urls = vec![format!("sqlite://{}", dir.path().join("t.db").display())];
    if let Some(admin) = oppidum_store::testing::postgres_admin_url(test) {
        urls.push(oppidum_store::testing::create_postgres_database(&admin).await);
    }
    let mut out = Vec::new();
    for url in urls {
        out.push(drive_at(&url, config.clone()).await);
    }
    (out, dir)
}

fn body(text: &str) -> oppidum_store::ByteStream {
    let bytes = Bytes::from(text.to_owned());
    futures::StreamExt::boxed(futures::stream::iter([Ok::<_, std::io::Error>(bytes)]))
}

#[tokio::test]
async fn retention_keeps_recent_versions_and_purges_old_trash() {
    let config = DriveConfig { keep_versions: 2, keep_version_days: 10, trash_days: 30, ..Default::default() };
    let (drives, _dir) = drives("retention_keeps_recent_versions_and_purges_old_trash", config).await;
    for drive in drives {
        let scope = Scope::personal(&principal(Uuid::now_v7()));
        let mut id = None;
        for n in 1..=5 {
            let (node, _) =
                drive.upload(&scope, None, "notes.txt", body(&format!("version {n}")), None, None).await.expect("v");
            id = Some(node.id);
        }
        let id = id.expect("uploaded");
        let now = Utc::now();
        let done = drive.enforce_retention(now).await.expect("retention");
        assert_eq!(done.deleted_versions, 2, "5 versions: the current one and 2 more stay");
        assert_eq!(drive.versions(&scope, id).await.expect("versions").len(), 3);
        // Eleven days later, only the current version is young enough... and it always stays.
        let done = drive.enforce_retention(now + Duration::days(11)).await.expect("retention");
        assert_eq!(done.deleted_versions, 2);
        let left = drive.versions(&scope, id).await.expect("versions");
        assert_eq!(left.len(), 1);
        let (_, content) = drive.download(&scope, id, None, None).await.expect("download");
        let content: Vec<Bytes> = futures::TryStreamExt::try_collect(content).await.expect("read");
        assert_eq!(content.concat(), b"version 5");

        // Trash: kept 30 days, then purged with its versions.
        let (doomed, _) = drive.upload(&scope, None, "old.txt", body("old"), None, None).await.expect("upload");
        drive.trash(&scope, doomed.id, None).await.expect("trash");
        assert_eq!(drive.enforce_retention(now + Duration::days(29)).await.expect("r").purged_nodes, 0);
        assert_eq!(drive.trash_list(&scope).await.expect("trash").len(), 1);
        assert_eq!(drive.enforce_retention(now + Duration::days(31)).await.expect("r").purged_nodes, 1);
        assert!(drive.trash_list(&scope).await.expect("trash").is_empty());
        let usage = drive.usage(&scope).await.expect("usage");
        assert_eq!(usage.versions_bytes, 9, "only `version 5` is left");
    }
}

#[tokio::test]
async fn drive_changes_are_announced() {
    let (drives, _dir) = drives("drive_changes_are_announced", DriveConfig::default()).await;
    for drive in drives {
        let bus = oppidum_store::EventBus::new(Uuid::now_v7(), None);
        let drive = drive.with_events(bus.clone());
        let mut events = bus.subscribe();
        let scope = Scope::personal(&principal(Uuid::now_v7()));
        let (node, _) = drive.upload(&scope, None, "a.txt", body("one"), None, None).await.expect("upload");
        drive.upload(&scope, None, "a.txt", body("two"), None, None).await.expect("upload");
        drive.trash(&scope, node.id, None).await.expect("trash");
        drive.restore(&scope, node.id).await.expect("restore");
        let mut seen = Vec::new();
        while let Ok(event) = events.try_recv() {
            assert_eq!(event.payload["id"], node.id.to_string());
            seen.push(event.topic.clone());
        }
        assert_eq!(seen, ["drive.file.created", "drive.file.updated", "drive.file.deleted", "drive.file.restored"]);
    }
}
