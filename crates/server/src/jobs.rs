//! Job kinds built into the server. Domains register their own (mail delivery, webhooks, …) when
//! they arrive; for now there are the diagnostic kinds an operator can enqueue to check a
//! deployment's queue end to end (`jobs.diagnostic_kinds = true`):
//! - `diag.sleep {"ms": N}` waits N milliseconds (at most ten minutes) and succeeds;
//! - `diag.fail {"message": "..."}` fails, to watch retries and dead-lettering.

use std::time::Duration;

use async_trait::async_trait;
use oppidum_store::jobs::{Job, JobError, JobHandler, Workers};

/// Registers the built-in handlers this configuration enables.
pub fn register(workers: &mut Workers, diagnostic: bool) {
    if diagnostic {
        workers.register("diag.sleep", DiagSleep);
        workers.register("diag.fail", DiagFail);
    }
}

struct DiagSleep;

#[async_trait]
impl JobHandler for DiagSleep {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let ms = job.payload.0.get("ms").and_then(serde_json::Value::as_u64).unwrap_or(0);
        if ms > 600_000 {
            return Err(JobError::Permanent("diag.sleep: ms must be at most 600000".into()));
        }
        tracing::info!(ms, "diag.sleep started");
        tokio::time::sleep(Duration::from_millis(ms)).await;
        tracing::info!(ms, "diag.sleep finished");
        Ok(())
    }
}

struct DiagFail;

#[async_trait]
impl JobHandler for DiagFail {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let message = job.payload.0.get("message").and_then(serde_json::Value::as_str).unwrap_or("diag.fail");
        Err(JobError::Retry(message.to_owned()))
    }
}
