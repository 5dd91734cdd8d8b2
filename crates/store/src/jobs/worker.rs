//! Job workers: a fixed number of slots lease due jobs of the kinds this process has handlers for,
//! renew their leases while running, and record the outcome. Idle slots wake on `jobs.enqueued`
//! events and otherwise poll. On shutdown they stop leasing, let running jobs finish within the
//! grace period, and release the rest so another node runs them at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{ENQUEUED_TOPIC, FailOutcome, Job, JobQueue, Lease};

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth retrying later (network down, relay busy).
    #[error("{0}")]
    Retry(String),
    /// Will never succeed (bad payload): dead-lettered at once.
    #[error("{0}")]
    Permanent(String),
}

/// Runs the jobs of one kind. Handlers must tolerate running twice: a worker that dies after the
/// work but before recording it leaves the job to be run again.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    async fn run(&self, job: &Job) -> Result<(), JobError>;
}

/// How the workers of this process behave.
#[derive(Debug, Clone)]
pub struct WorkersConfig {
    /// Name recorded on leases and attempts (`host:pid:node`).
    pub name: String,
    pub concurrency: usize,
    pub poll_interval: StdDuration,
    pub lease: StdDuration,
    /// Finished jobs older than this are pruned.
    pub retention: StdDuration,
}

/// The workers of this process.
pub struct Workers {
    queue: JobQueue,
    handlers: HashMap<String, Arc<dyn JobHandler>>,
    config: WorkersConfig,
}

impl Workers {
    pub fn new(queue: JobQueue, config: WorkersConfig) -> Self {
        Self { queue, handlers: HashMap::new(), config }
    }

    /// Registers the handler of `kind`.
    pub fn register(&mut self, kind: &str, handler: impl JobHandler) -> &mut Self {
        self.handlers.insert(kind.to_owned(), Arc::new(handler));
        self
    }

    /// The kinds this process runs.
    pub fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self.handlers.keys().cloned().collect();
        kinds.sort();
        kinds
    }

    /// Runs until `stop` is cancelled, then waits up to `grace` for running jobs.
    pub async fn run(self, stop: CancellationToken, grace: StdDuration) {
        let shared = Arc::new(Shared {
            kinds: self.kinds(),
            queue: self.queue,
            handlers: self.handlers,
            config: self.config,
            wake: Notify::new(),
        });
        let mut tasks = JoinSet::new();
        // Stops leasing at once; running jobs get the grace period.
        let leasing = stop.clone();
        let hard_stop = CancellationToken::new();
        // Without handlers there is nothing to lease, but expired leases are still reaped.
        let slots = if shared.kinds.is_empty() { 0 } else { shared.config.concurrency.max(1) };
        for slot in 0..slots {
            tasks.spawn(slot_loop(shared.clone(), slot, leasing.clone(), hard_stop.clone()));
        }
        tasks.spawn(wake_on_events(shared.clone(), leasing.clone()));
        tasks.spawn(maintenance(shared.clone(), leasing.clone()));

        stop.cancelled().await;
        shared.wake.notify_waiters();
        let drained = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!("job workers did not finish within the grace period; releasing their jobs");
            hard_stop.cancel();
            while tasks.join_next().await.is_some() {}
        }
    }
}

struct Shared {
    queue: JobQueue,
    handlers: HashMap<String, Arc<dyn JobHandler>>,
    kinds: Vec<String>,
    config: WorkersConfig,
    wake: Notify,
}

async fn slot_loop(shared: Arc<Shared>, slot: usize, stop: CancellationToken, hard_stop: CancellationToken) {
    let lease_for = Duration::from_std(shared.config.lease).unwrap_or(Duration::seconds(60));
    let worker = format!("{}#{slot}", shared.config.name);
    while !stop.is_cancelled() {
        match shared.queue.lease(&worker, &shared.kinds, lease_for).await {
            Ok(Some(lease)) => {
                let span = tracing::info_span!("job", id = %lease.job.id, kind = %lease.job.kind, attempt = lease.job.attempts);
                run_leased(&shared, lease, &hard_stop).instrument(span).await
            }
            Ok(None) => {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = shared.wake.notified() => {}
                    _ = tokio::time::sleep(shared.config.poll_interval) => {}
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "leasing a job failed");
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = tokio::time::sleep(shared.config.poll_interval) => {}
                }
            }
        }
    }
}

async fn run_leased(shared: &Shared, lease: Lease, hard_stop: &CancellationToken) {
    let kind = lease.job.kind.clone();
    let Some(handler) = shared.handlers.get(&kind).cloned() else {
        // Cannot happen: we lease only kinds we have.
        let _ = shared.queue.release(&lease).await;
        return;
    };
    let started = std::time::Instant::now();
    let lease_for = Duration::from_std(shared.config.lease).unwrap_or(Duration::seconds(60));
    let renew_every = shared.config.lease / 3;
    let job = lease.job.clone();
    let work = handler.run(&job);
    tokio::pin!(work);
    let result = loop {
        tokio::select! {
            result = &mut work => break Some(result),
            _ = hard_stop.cancelled() => break None,
            _ = tokio::time::sleep(renew_every) => {
                if let Err(err) = shared.queue.heartbeat(&lease, lease_for).await {
                    tracing::warn!(error = %err, "could not renew job lease");
                }
            }
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let outcome = match result {
        None => {
            if let Err(err) = shared.queue.release(&lease).await {
                tracing::warn!(error = %err, "could not release job at shutdown");
            }
            "released"
        }
        Some(Ok(())) => match shared.queue.complete(&lease).await {
            Ok(()) => {
                tracing::info!(seconds, "job succeeded");
                "succeeded"
            }
            Err(err) => {
                tracing::error!(error = %err, "job ran but its success could not be recorded");
                "lost"
            }
        },
        Some(Err(error)) => {
            let permanent = matches!(error, JobError::Permanent(_));
            match shared.queue.fail(&lease, &error.to_string(), permanent).await {
                Ok(FailOutcome::Retry { at }) => {
                    tracing::warn!(error = %error, retry_at = %at, "job failed; will retry");
                    "retry"
                }
                Ok(FailOutcome::Dead) => {
                    tracing::error!(error = %error, "job failed for good; dead-lettered");
                    "dead"
                }
                Err(err) => {
                    tracing::error!(error = %err, "job failure could not be recorded");
                    "lost"
                }
            }
        }
    };
    metrics::counter!("oppidum_jobs_finished_total", "kind" => kind.clone(), "outcome" => outcome).increment(1);
    metrics::histogram!("oppidum_job_duration_seconds", "kind" => kind).record(seconds);
}

async fn wake_on_events(shared: Arc<Shared>, stop: CancellationToken) {
    let mut events = shared.queue.bus.subscribe_to(&[ENQUEUED_TOPIC]);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            event = events.recv() => match event {
                Ok(event) if event.topic == ENQUEUED_TOPIC => shared.wake.notify_waiters(),
                Ok(_) => {}
                // Missed some events: wake anyway, the queue is the truth.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => shared.wake.notify_waiters(),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

/// Dead-letters jobs whose last lease expired and prunes old finished jobs.
async fn maintenance(shared: Arc<Shared>, stop: CancellationToken) {
    let every = (shared.config.poll_interval * 10).clamp(StdDuration::from_secs(1), StdDuration::from_secs(30));
    let mut last_prune: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match shared.queue.reap_expired().await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(count = n, "dead-lettered jobs whose last lease expired"),
            Err(err) => tracing::warn!(error = %err, "reaping expired jobs failed"),
        }
        if last_prune.is_none_or(|at| at.elapsed() > StdDuration::from_secs(3_600)) {
            last_prune = Some(std::time::Instant::now());
            let retention = Duration::from_std(shared.config.retention).unwrap_or(Duration::days(7));
            match shared.queue.prune(shared.queue.now() - retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(count = n, "pruned finished jobs"),
                Err(err) => tracing::warn!(error = %err, "pruning finished jobs failed"),
            }
        }
    }
}
