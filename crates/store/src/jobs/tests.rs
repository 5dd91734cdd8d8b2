//! Queue behaviour, run on SQLite and (when configured) PostgreSQL.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{Duration, Utc};
use oppidum_core::time::{Clock, ManualClock};
use uuid::Uuid;

use super::*;
use crate::db::DbOptions;
use crate::events::EventBus;

struct Fixture {
    queue: JobQueue,
    clock: Arc<ManualClock>,
    _dir: Option<tempfile::TempDir>,
}

async fn fixtures(test: &str) -> Vec<Fixture> {
    let mut out = Vec::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    out.push(fixture(&url, Some(dir)).await);
    if let Some(admin) = crate::testing::postgres_admin_url(test) {
        let url = crate::testing::create_postgres_database(&admin).await;
        out.push(fixture(&url, None).await);
    }
    out
}

async fn fixture(url: &str, dir: Option<tempfile::TempDir>) -> Fixture {
    let db = Db::connect(url, &DbOptions::default()).await.expect("connect");
    db.migrate().await.expect("migrate");
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let bus = EventBus::new(Uuid::now_v7(), None);
    let queue = JobQueue::new(db, clock.clone(), bus, 3);
    Fixture { queue, clock, _dir: dir }
}

fn kinds() -> Vec<String> {
    vec!["mail.send".into()]
}

#[tokio::test]
async fn jobs_lease_complete_and_inspect() {
    for f in fixtures("jobs_lease_complete_and_inspect").await {
        let q = &f.queue;
        let id = q.enqueue(NewJob::new("mail.send", serde_json::json!({"to": "a@b"}))).await.expect("enqueue");
        let id = id.expect("inserted");
        assert!(q.lease("w", &["other".into()], Duration::seconds(30)).await.expect("lease").is_none());
        let lease = q.lease("w", &kinds(), Duration::seconds(30)).await.expect("lease").expect("a job");
        assert_eq!(lease.job.id, id);
        assert_eq!(lease.job.attempts, 1);
        assert_eq!(lease.job.payload.0["to"], "a@b");
        assert!(q.lease("w2", &kinds(), Duration::seconds(30)).await.expect("lease").is_none(), "leased twice");
        q.complete(&lease).await.expect("complete");
        let job = q.get(id).await.expect("get").expect("exists");
        assert_eq!(job.status, "done");
        assert!(job.finished_at.is_some());
        let attempts = q.attempts(id).await.expect("attempts");
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].outcome.as_deref(), Some("succeeded"));
        assert_eq!(q.stats().await.expect("stats").done, 1);
        assert!(matches!(q.complete(&lease).await, Err(StoreError::LeaseLost(_))));
    }
}

#[tokio::test]
async fn jobs_run_at_in_future_waits() {
    for f in fixtures("jobs_run_at_in_future_waits").await {
        let mut job = NewJob::new("mail.send", serde_json::json!({}));
        job.run_at = Some(f.clock.now() + Duration::minutes(5));
        f.queue.enqueue(job).await.expect("enqueue");
        assert!(f.queue.lease("w", &kinds(), Duration::seconds(30)).await.expect("lease").is_none());
        f.clock.advance(Duration::minutes(6));
        assert!(f.queue.lease("w", &kinds(), Duration::seconds(30)).await.expect("lease").is_some());
    }
}

#[tokio::test]
async fn jobs_fail_backs_off_then_dead_letters() {
    for f in fixtures("jobs_fail_backs_off_then_dead_letters").await {
        let q = &f.queue;
        let id = q.enqueue(NewJob::new("mail.send", serde_json::json!({}))).await.expect("enqueue").expect("id");
        for attempt in 1..=3 {
            let lease = q.lease("w", &kinds(), Duration::seconds(30)).await.expect("lease").expect("due");
            assert_eq!(lease.job.attempts, attempt);
            let outcome = q.fail(&lease, "relay refused", false).await.expect("fail");
            if attempt < 3 {
                let FailOutcome::Retry { at } = outcome else { panic!("expected a retry") };
                let delay = at - f.clock.now();
                assert!(delay >= backoff_floor(attempt), "attempt {attempt}: delay {delay}");
                assert!(q.lease("w", &kinds(), Duration::seconds(30)).await.expect("lease").is_none(), "ran early");
                f.clock.advance(Duration::hours(2));
            } else {
                assert_eq!(outcome, FailOutcome::Dead);
            }
        }
        let job = q.get(id).await.expect("get").expect("exists");
        assert_eq!(job.status, "dead");
        assert_eq!(job.last_error.as_deref(), Some("relay refused"));
        assert_eq!(q.stats().await.expect("stats").dead, 1);
        assert!(q.retry(id).await.expect("retry"));
        let lease = q.lease("w", &kinds(), Duration::seconds(30)).await.expect("lease").expect("retried job is due");
        assert_eq!(lease.job.attempts, 1);
        assert_eq!(q.fail(&lease, "bad payload", true).await.expect("fail"), FailOutcome::Dead);
    }
}

fn backoff_floor(attempt: i64) -> Duration {
    Duration::milliseconds((5_000 * (1 << (attempt - 1))) * 9 / 10)
}

#[tokio::test]
async fn jobs_expired_lease_runs_again_once() {
    for f in fixtures("jobs_expired_lease_runs_again_once").await {
        let q = &f.queue;
        let id = q.enqueue(NewJob::new("mail.send", serde_json::json!({}))).await.expect("enqueue").expect("id");
        let dead_worker = q.lease("dead", &kinds(), Duration::seconds(30)).await.expect("lease").expect("due");
        f.clock.advance(Duration::seconds(29));
        assert!(q.lease("w", &kinds(), Duration::seconds(30)).await.expect("lease").is_none(), "lease still valid");
        f.clock.advance(Duration::seconds(2));
        let second = q.lease("w", &kinds(), Duration::seconds(30)).await.expect("lease").expect("expired lease");
        assert_eq!(second.job.attempts, 2);
        assert!(q.lease("w3", &kinds(), Duration::seconds(30)).await.expect("lease").is_none());
        // The first worker wakes up: it can no longer complete or renew.
        assert!(matches!(q.complete(&dead_worker).await, Err(StoreError::LeaseLost(_))));
        assert!(matches!(q.heartbeat(&dead_worker, Duration::seconds(30)).await, Err(StoreError::LeaseLost(_))));
        q.complete(&second).await.expect("complete");
        let outcomes: Vec<_> = q.attempts(id).await.expect("attempts").into_iter().map(|a| a.outcome).collect();
        assert_eq!(outcomes, vec![Some("lease_expired".into()), Some("succeeded".into())]);
    }
}

#[tokio::test]
async fn jobs_last_attempt_expiry_is_dead_lettered() {
    for f in fixtures("jobs_last_attempt_expiry_is_dead_lettered").await {
        let q = &f.queue;
        let mut job = NewJob::new("mail.send", serde_json::json!({}));
        job.max_attempts = Some(1);
        let id = q.enqueue(job).await.expect("enqueue").expect("id");
        q.lease("dies", &kinds(), Duration::seconds(10)).await.expect("lease").expect("due");
        f.clock.advance(Duration::seconds(11));
        assert!(q.lease("w", &kinds(), Duration::seconds(10)).await.expect("lease").is_none());
        assert_eq!(q.reap_expired().await.expect("reap"), 1);
        assert_eq!(q.get(id).await.expect("get").expect("exists").status, "dead");
    }
}

#[tokio::test]
async fn jobs_unique_key_enqueues_once() {
    for f in fixtures("jobs_unique_key_enqueues_once").await {
        let mut job = NewJob::new("mail.send", serde_json::json!({}));
        job.unique_key = Some("cron:digest:2026-11-22T08:00".into());
        assert!(f.queue.enqueue(job.clone()).await.expect("enqueue").is_some());
        assert!(f.queue.enqueue(job).await.expect("enqueue").is_none());
        assert_eq!(f.queue.stats().await.expect("stats").queued, 1);
    }
}

#[tokio::test]
async fn jobs_concurrent_workers_never_share_a_job() {
    for f in fixtures("jobs_concurrent_workers_never_share_a_job").await {
        let total = 60;
        for i in 0..total {
            f.queue.enqueue(NewJob::new("mail.send", serde_json::json!({ "i": i }))).await.expect("enqueue");
        }
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..6 {
            let queue = f.queue.clone();
            tasks.spawn(async move {
                let mut mine = Vec::new();
                while let Some(lease) =
                    queue.lease(&format!("w{w}"), &kinds(), Duration::seconds(60)).await.expect("lease")
                {
                    queue.complete(&lease).await.expect("complete");
                    mine.push(lease.job.id);
                }
                mine
            });
        }
        let mut seen = HashSet::new();
        while let Some(ids) = tasks.join_next().await {
            for id in ids.expect("worker") {
                assert!(seen.insert(id), "job {id} ran twice");
            }
        }
        assert_eq!(seen.len(), total);
    }
}

#[test]
fn jobs_backoff_grows_and_is_capped() {
    let first = backoff(1);
    assert!(first >= Duration::milliseconds(4_500) && first <= Duration::milliseconds(5_500));
    let fourth = backoff(4);
    assert!(fourth >= Duration::milliseconds(36_000) && fourth <= Duration::milliseconds(44_000));
    assert!(backoff(50) <= Duration::milliseconds(3_960_000));
}
