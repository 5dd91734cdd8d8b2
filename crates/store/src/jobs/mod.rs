//! The durable job queue, stored in the database: enqueue with a run-at time, lease with a timeout,
//! complete, fail with exponential backoff, dead-letter after the last attempt, and inspect.
//!
//! A lease carries a random token: only the holder of the current token can complete, fail or renew
//! it, so a worker whose lease expired (and whose job was taken by another) cannot overwrite the
//! newer outcome. A job whose worker died runs again once its lease expires. On PostgreSQL,
//! `FOR UPDATE SKIP LOCKED` keeps two workers from leasing the same job; SQLite has one writer.

mod worker;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use oppidum_core::time::Clock;
use oppidum_store::Json;
use serde::Serialize;
use uuid::Uuid;

pub use worker::{JobError, JobHandler, Workers, WorkersConfig};

use crate::db::{Backend, Db};
use crate::error::StoreError;
use crate::events::EventBus;

/// The topic announcing new due jobs, so idle workers wake before their next poll.
pub const ENQUEUED_TOPIC: &str = "jobs.enqueued";

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, oppidum_store::FromRow)]
pub struct Job {
    pub id: Uuid,
    pub kind: String,
    pub payload: Json<serde_json::Value>,
    /// `queued`, `running`, `done` or `dead`.
    pub status: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at: DateTime<Utc>,
    pub unique_key: Option<String>,
    #[serde(skip)]
    pub lease_token: Option<Uuid>,
    pub leased_by: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// One attempt at running a job.
#[derive(Debug, Clone, PartialEq, Serialize, oppidum_store::FromRow)]
pub struct Attempt {
    pub attempt: i64,
    pub worker: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// `succeeded`, `failed`, `lease_expired`, `released`, or none while running.
    pub outcome: Option<String>,
    pub error: Option<String>,
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    pub payload: serde_json::Value,
    /// Not before this time; `None` for now.
    pub run_at: Option<DateTime<Utc>>,
    /// `None` for the queue's default.
    pub max_attempts: Option<u32>,
    /// At most one job with this key ever exists (cron ticks, idempotent requests).
    pub unique_key: Option<String>,
}

impl NewJob {
    pub fn new(kind: impl Into<String>, payload: serde_json::Value) -> Self {
        Self { kind: kind.into(), payload, run_at: None, max_attempts: None, unique_key: None }
    }
}

/// A leased job: the job and the proof of holding it.
#[derive(Debug, Clone)]
pub struct Lease {
    pub job: Job,
    pub token: Uuid,
}

/// What became of a failed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    Retry { at: DateTime<Utc> },
    Dead,
}

/// Job counts by status, for metrics and readiness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    pub queued: i64,
    pub running: i64,
    pub done: i64,
    pub dead: i64,
}

/// The queue; cheap to clone.
#[derive(Debug, Clone)]
pub struct JobQueue {
    db: Db,
    clock: Arc<dyn Clock>,
    bus: EventBus,
    default_max_attempts: u32,
}

/// Delay before retry `attempt` (1-based): 5 s doubling up to one hour, with ±10 % jitter so
/// failed batches do not retry in lockstep.
pub fn backoff(attempt: i64) -> Duration {
    let exp = attempt.clamp(1, 20) - 1;
    let base_ms = (5_000_i64.saturating_mul(1_i64 << exp)).min(3_600_000);
    let jitter = rand::random_range(-0.1..=0.1);
    Duration::milliseconds(base_ms + (base_ms as f64 * jitter) as i64)
}

impl JobQueue {
    pub fn new(db: Db, clock: Arc<dyn Clock>, bus: EventBus, default_max_attempts: u32) -> Self {
        Self { db, clock, bus, default_max_attempts: default_max_attempts.max(1) }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Stores a job. With a `unique_key` already used, stores nothing and returns `None`.
    pub async fn enqueue(&self, job: NewJob) -> Result<Option<Uuid>, StoreError> {
        let now = self.clock.now();
        let id = Uuid::now_v7();
        let max_attempts = i64::from(job.max_attempts.unwrap_or(self.default_max_attempts).max(1));
        let inserted = self
            .db
            .query(
                "INSERT INTO jobs (id, kind, payload, status, attempts, max_attempts, run_at, unique_key, created_at, updated_at) \
                 VALUES ($1, $2, $3, 'queued', 0, $4, $5, $6, $7, $7) ON CONFLICT (unique_key) DO NOTHING",
            )
            .bind(id)
            .bind(job.kind.as_str())
            .bind(job.payload)
            .bind(max_attempts)
            .bind(job.run_at.unwrap_or(now))
            .bind(job.unique_key)
            .bind(now)
            .execute()
            .await?;
        if inserted == 0 {
            return Ok(None);
        }
        metrics::counter!("oppidum_jobs_enqueued_total", "kind" => job.kind.clone()).increment(1);
        if let Err(err) = self.bus.publish(ENQUEUED_TOPIC, serde_json::json!({ "id": id, "kind": job.kind })).await {
            // Workers still find the job at their next poll.
            tracing::warn!(error = %err, "could not announce enqueued job");
        }
        Ok(Some(id))
    }

    /// Leases the next due job of one of `kinds` for `lease`, or returns `None`. A running job
    /// whose lease expired counts as due: its worker is presumed dead.
    pub async fn lease(&self, worker: &str, kinds: &[String], lease: Duration) -> Result<Option<Lease>, StoreError> {
        let now = self.clock.now();
        let token = Uuid::now_v7();
        let kinds = serde_json::Value::from(kinds.to_vec());
        // A read first, so idle workers polling an empty queue never take the (SQLite) writer.
        let due_sql = match self.db.backend() {
            Backend::Postgres => DUE_POSTGRES,
            Backend::Sqlite => DUE_SQLITE,
        };
        let due: Option<(Uuid,)> = self.db.query(due_sql).bind(now).bind(kinds.clone()).fetch_optional().await?;
        if due.is_none() {
            return Ok(None);
        }
        let mut tx = self.db.begin().await?;
        let sql = match tx.backend() {
            Backend::Postgres => LEASE_POSTGRES,
            Backend::Sqlite => LEASE_SQLITE,
        };
        let job: Option<Job> =
            tx.query(sql).bind(now).bind(kinds).bind(token).bind(worker).bind(now + lease).fetch_optional().await?;
        let Some(job) = job else {
            tx.rollback().await?;
            return Ok(None);
        };
        tx.query(
            "UPDATE job_attempts SET outcome = 'lease_expired', finished_at = $2 WHERE job_id = $1 AND outcome IS NULL",
        )
        .bind(job.id)
        .bind(now)
        .execute()
        .await?;
        // Numbered on their own: a retried dead job starts its attempts count afresh.
        tx.query(
            "INSERT INTO job_attempts (job_id, attempt, lease_token, worker, started_at) \
             VALUES ($1, (SELECT COALESCE(MAX(attempt), 0) + 1 FROM job_attempts WHERE job_id = $1), $2, $3, $4)",
        )
        .bind(job.id)
        .bind(token)
        .bind(worker)
        .bind(now)
        .execute()
        .await?;
        tx.commit().await?;
        Ok(Some(Lease { job, token }))
    }

    /// Extends a lease held by a worker that is still busy.
    pub async fn heartbeat(&self, lease: &Lease, by: Duration) -> Result<(), StoreError> {
        let now = self.clock.now();
        let changed = self
            .db
            .query(
                "UPDATE jobs SET lease_expires_at = $3, updated_at = $4 \
                 WHERE id = $1 AND lease_token = $2 AND status = 'running'",
            )
            .bind(lease.job.id)
            .bind(lease.token)
            .bind(now + by)
            .bind(now)
            .execute()
            .await?;
        if changed == 0 { Err(StoreError::LeaseLost(lease.job.id)) } else { Ok(()) }
    }

    /// Marks a leased job done.
    pub async fn complete(&self, lease: &Lease) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let changed = tx
            .query(
                "UPDATE jobs SET status = 'done', finished_at = $3, updated_at = $3, lease_token = NULL, \
                 lease_expires_at = NULL, last_error = NULL WHERE id = $1 AND lease_token = $2 AND status = 'running'",
            )
            .bind(lease.job.id)
            .bind(lease.token)
            .bind(now)
            .execute()
            .await?;
        if changed == 0 {
            return Err(StoreError::LeaseLost(lease.job.id));
        }
        finish_attempt(&mut tx, lease, now, "succeeded", None).await?;
        tx.commit().await
    }

    /// Records a failure: retried after [`backoff`], or dead-lettered when `permanent` or out of
    /// attempts.
    pub async fn fail(&self, lease: &Lease, error: &str, permanent: bool) -> Result<FailOutcome, StoreError> {
        let now = self.clock.now();
        let error: String = error.chars().take(4_000).collect();
        let outcome = if permanent || lease.job.attempts >= lease.job.max_attempts {
            FailOutcome::Dead
        } else {
            FailOutcome::Retry { at: now + backoff(lease.job.attempts) }
        };
        let (status, run_at, finished_at) = match outcome {
            FailOutcome::Dead => ("dead", lease.job.run_at, Some(now)),
            FailOutcome::Retry { at } => ("queued", at, None),
        };
        let mut tx = self.db.begin().await?;
        let changed = tx
            .query(
                "UPDATE jobs SET status = $3, run_at = $4, finished_at = $5, last_error = $6, updated_at = $7, \
                 lease_token = NULL, lease_expires_at = NULL WHERE id = $1 AND lease_token = $2 AND status = 'running'",
            )
            .bind(lease.job.id)
            .bind(lease.token)
            .bind(status)
            .bind(run_at)
            .bind(finished_at)
            .bind(error.as_str())
            .bind(now)
            .execute()
            .await?;
        if changed == 0 {
            return Err(StoreError::LeaseLost(lease.job.id));
        }
        finish_attempt(&mut tx, lease, now, "failed", Some(&error)).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Gives a leased job back untouched (shutdown): it is due again at once and the attempt does
    /// not count.
    pub async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let changed = tx
            .query(
                "UPDATE jobs SET status = 'queued', attempts = attempts - 1, run_at = $3, updated_at = $3, \
                 lease_token = NULL, lease_expires_at = NULL WHERE id = $1 AND lease_token = $2 AND status = 'running'",
            )
            .bind(lease.job.id)
            .bind(lease.token)
            .bind(now)
            .execute()
            .await?;
        if changed > 0 {
            finish_attempt(&mut tx, lease, now, "released", None).await?;
        }
        tx.commit().await
    }

    /// Dead-letters running jobs whose lease expired on their last attempt. Returns how many.
    pub async fn reap_expired(&self) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let (expired,): (i64,) = self
            .db
            .query(
                "SELECT COUNT(*) FROM jobs WHERE status = 'running' AND lease_expires_at <= $1 \
                 AND attempts >= max_attempts",
            )
            .bind(now)
            .fetch_one()
            .await?;
        if expired == 0 {
            return Ok(0);
        }
        let mut tx = self.db.begin().await?;
        tx.query(
            "UPDATE job_attempts SET outcome = 'lease_expired', finished_at = $1 WHERE outcome IS NULL AND job_id IN \
             (SELECT id FROM jobs WHERE status = 'running' AND lease_expires_at <= $1 AND attempts >= max_attempts)",
        )
        .bind(now)
        .execute()
        .await?;
        let reaped = tx
            .query(
                "UPDATE jobs SET status = 'dead', finished_at = $1, updated_at = $1, lease_token = NULL, \
                 lease_expires_at = NULL, last_error = 'the lease of the last attempt expired (worker died?)' \
                 WHERE status = 'running' AND lease_expires_at <= $1 AND attempts >= max_attempts",
            )
            .bind(now)
            .execute()
            .await?;
        tx.commit().await?;
        Ok(reaped)
    }

    /// Deletes finished (done or dead) jobs that finished before `before`. Returns how many.
    pub async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.db
            .query("DELETE FROM jobs WHERE status IN ('done', 'dead') AND finished_at < $1")
            .bind(before)
            .execute()
            .await
    }

    /// Puts a dead or queued job back to run now with a fresh set of attempts.
    pub async fn retry(&self, id: Uuid) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let changed = self
            .db
            .query(
                "UPDATE jobs SET status = 'queued', attempts = 0, run_at = $2, finished_at = NULL, updated_at = $2 \
                 WHERE id = $1 AND status IN ('dead', 'queued')",
            )
            .bind(id)
            .bind(now)
            .execute()
            .await?;
        if changed > 0 {
            let _ = self.bus.publish(ENQUEUED_TOPIC, serde_json::json!({ "id": id })).await;
        }
        Ok(changed > 0)
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<Job>, StoreError> {
        self.db.query(GET_JOB).bind(id).fetch_optional().await
    }

    /// The attempts of a job, oldest first.
    pub async fn attempts(&self, id: Uuid) -> Result<Vec<Attempt>, StoreError> {
        self.db
            .query(
                "SELECT attempt, worker, started_at, finished_at, outcome, error FROM job_attempts \
                 WHERE job_id = $1 ORDER BY attempt",
            )
            .bind(id)
            .fetch_all()
            .await
    }

    /// The newest jobs, optionally of one status.
    pub async fn list(&self, status: Option<&str>, limit: i64) -> Result<Vec<Job>, StoreError> {
        self.db.query(LIST_JOBS).bind(status).bind(limit.clamp(1, 1_000)).fetch_all().await
    }

    /// Counts by status.
    pub async fn stats(&self) -> Result<QueueStats, StoreError> {
        let rows: Vec<(String, i64)> =
            self.db.query("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetch_all().await?;
        let mut stats = QueueStats::default();
        for (status, count) in rows {
            match status.as_str() {
                "queued" => stats.queued = count,
                "running" => stats.running = count,
                "done" => stats.done = count,
                "dead" => stats.dead = count,
                _ => {}
            }
        }
        Ok(stats)
    }
}

async fn finish_attempt(
    tx: &mut crate::db::Tx,
    lease: &Lease,
    now: DateTime<Utc>,
    outcome: &str,
    error: Option<&str>,
) -> Result<(), StoreError> {
    tx.query(
        "UPDATE job_attempts SET outcome = $3, finished_at = $4, error = $5 WHERE job_id = $1 AND lease_token = $2",
    )
    .bind(lease.job.id)
    .bind(lease.token)
    .bind(outcome)
    .bind(now)
    .bind(error)
    .execute()
    .await?;
    Ok(())
}

// `$1` now, `$2` JSON array of kinds, `$3` lease token, `$4` worker, `$5` lease expiry.
const LEASE_POSTGRES: &str = "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_token = $3, \
     leased_by = $4, lease_expires_at = $5, updated_at = $1 \
     WHERE id = (SELECT id FROM jobs WHERE attempts < max_attempts \
       AND ((status = 'queued' AND run_at <= $1) OR (status = 'running' AND lease_expires_at <= $1)) \
       AND kind IN (SELECT jsonb_array_elements_text($2)) \
       ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
     RETURNING id, kind, payload, status, attempts, max_attempts, run_at, unique_key, lease_token, \
     leased_by, lease_expires_at, last_error, created_at, updated_at, finished_at";

// Whether a lease would find a job; `$1` now, `$2` JSON array of kinds.
const DUE_POSTGRES: &str = "SELECT id FROM jobs WHERE attempts < max_attempts \
     AND ((status = 'queued' AND run_at <= $1) OR (status = 'running' AND lease_expires_at <= $1)) \
     AND kind IN (SELECT jsonb_array_elements_text($2)) LIMIT 1";

const DUE_SQLITE: &str = "SELECT id FROM jobs WHERE attempts < max_attempts \
     AND ((status = 'queued' AND run_at <= $1) OR (status = 'running' AND lease_expires_at <= $1)) \
     AND kind IN (SELECT value FROM json_each($2)) LIMIT 1";

// SQLite has a single writer, so the sub-select and update cannot interleave with another lease.
const LEASE_SQLITE: &str = "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_token = $3, \
     leased_by = $4, lease_expires_at = $5, updated_at = $1 \
     WHERE id = (SELECT id FROM jobs WHERE attempts < max_attempts \
       AND ((status = 'queued' AND run_at <= $1) OR (status = 'running' AND lease_expires_at <= $1)) \
       AND kind IN (SELECT value FROM json_each($2)) \
       ORDER BY run_at, id LIMIT 1) \
     RETURNING id, kind, payload, status, attempts, max_attempts, run_at, unique_key, lease_token, \
     leased_by, lease_expires_at, last_error, created_at, updated_at, finished_at";

const GET_JOB: &str = "SELECT id, kind, payload, status, attempts, max_attempts, run_at, unique_key, lease_token, \
     leased_by, lease_expires_at, last_error, created_at, updated_at, finished_at FROM jobs WHERE id = $1";

const LIST_JOBS: &str = "SELECT id, kind, payload, status, attempts, max_attempts, run_at, unique_key, lease_token, \
     leased_by, lease_expires_at, last_error, created_at, updated_at, finished_at FROM jobs \
     WHERE ($1 IS NULL OR status = $1) ORDER BY created_at DESC, id DESC LIMIT $2";

#[cfg(test)]
mod tests;
