//! Short writes on the caller's own thread while the writer is idle. Queueing a write for the
//! writer thread and waking the caller with its answer costs two thread wake-ups, which on an idle
//! machine take longer than committing a few rows. So when nothing waits in the writer's queue and
//! its connection is free, a write takes that connection right where the caller runs, in a
//! transaction of its own, within the same time budget as quick reads (see [`super::inline`]).
//! When the budget is spent SQLite interrupts the statement, the transaction rolls back, and the
//! write goes to the writer's queue: only writes that can run again (statements with their
//! arguments) come here. Under load the queue is rarely empty, and writes share group commits
//! as before.
//!
//! Reads use the same connection the same way when it is idle (see [`Shared::try_read`]).
//!
//! Writes come here only with `synchronous = NORMAL`: a commit then appends to the write-ahead log
//! without an `fsync`. SQLite's automatic checkpoints (which do `fsync`) are turned off on the writer's
//! connection; the writer thread checkpoints instead, every [`CHECKPOINT_COMMITS`] commits.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::inline::{BUDGET, NONE, deadline_after, interrupt_at_deadline, moves};
use super::writer::exec;
use crate::error::StoreError;

/// What became of a read tried on the writer's connection.
pub(super) enum Read<R> {
    Done(Result<R, StoreError>),
    /// Interrupted at the end of its budget: a reader thread's work.
    Outran,
    /// The connection was busy (or reads do not come here).
    NotTried,
}

/// Commits between two checkpoints of the write-ahead log by the writer thread.
pub(super) const CHECKPOINT_COMMITS: u64 = 64;

/// What the writer thread and the callers writing inline share.
pub(super) struct Shared {
    pub(super) conn: Mutex<Connection>,
    /// Jobs sent to the writer and not yet done: while any is, inline work keeps off.
    pub(super) queued: AtomicUsize,
    /// Commits so far, inline or by the writer (for checkpoints).
    pub(super) commits: AtomicU64,
    /// Whether writes may run inline at all.
    pub(super) inline: bool,
    /// Whether reads may use the writer's connection (a database file, not memory).
    reads: bool,
    /// Cleared when the engine closes: nothing runs here any more.
    open: AtomicBool,
    /// Nanoseconds after `epoch` at which the statement running inline is interrupted.
    deadline: Arc<AtomicU64>,
    epoch: Instant,
    busy_timeout: Duration,
    /// Reads answered on the writer's connection.
    pub(super) reads_served: AtomicU64,
    /// Writes answered inline, and writes that went to the writer's queue after an attempt.
    pub(super) served: AtomicU64,
    pub(super) moved: AtomicU64,
}

impl Shared {
    /// The writer's connection, shared. `inline` turns the automatic checkpoints off and installs
    /// the budget's progress handler.
    pub(super) fn new(conn: Connection, inline: bool, reads: bool, busy_timeout: Duration) -> Result<Self, StoreError> {
        let epoch = Instant::now();
        if inline {
            conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        }
        // Without a deadline set (the writer thread's own work) the handler lets everything run.
        let deadline = interrupt_at_deadline(&conn, epoch)?;
        Ok(Self {
            conn: Mutex::new(conn),
            queued: AtomicUsize::new(0),
            commits: AtomicU64::new(0),
            inline,
            reads,
            open: AtomicBool::new(true),
            deadline,
            epoch,
            busy_timeout,
            reads_served: AtomicU64::new(0),
            served: AtomicU64::new(0),
            moved: AtomicU64::new(0),
        })
    }

    /// Nothing runs inline from now on.
    pub(super) fn close(&self) {
        self.open.store(false, Ordering::Release);
    }

    /// The writer's connection if it is free and nothing waits for it.
    fn idle_conn(&self) -> Option<std::sync::MutexGuard<'_, Connection>> {
        if self.queued.load(Ordering::Acquire) > 0 || !self.open.load(Ordering::Acquire) {
            return None;
        }
        match self.conn.try_lock() {
            Ok(conn) => Some(conn),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Runs the read `work` on the writer's connection if it is idle, within the budget. Its page
    /// cache is always current (every commit is its own, where a reader's cache is dropped after
    /// each of them) and it maps the file: a read right after a write finds its pages in memory.
    pub(super) fn try_read<R>(&self, work: &dyn Fn(&Connection) -> Result<R, StoreError>) -> Read<R> {
        let Some(conn) = self.reads.then(|| self.idle_conn()).flatten() else { return Read::NotTried };
        self.deadline.store(deadline_after(self.epoch, BUDGET), Ordering::Relaxed);
        // As on the quick-read pool, a lock held elsewhere (another process) moves the read to a
        // reader thread instead of making this thread wait.
        let _ = conn.busy_timeout(Duration::ZERO);
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| work(&conn)));
        let _ = conn.busy_timeout(self.busy_timeout);
        self.deadline.store(NONE, Ordering::Relaxed);
        match outcome {
            Ok(Err(err)) if moves(&err) => Read::Outran,
            Ok(outcome) => {
                self.reads_served.fetch_add(1, Ordering::Relaxed);
                Read::Done(outcome)
            }
            Err(panic) => {
                drop(conn);
                std::panic::resume_unwind(panic);
            }
        }
    }

    /// The writer's connection, for the writer thread (waits for an inline write to end).
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `work` and commits it here and now, or answers `None` for the caller to queue it:
    /// inline writes are off, something waits in the queue, the writer is busy, or the write
    /// outran its budget or found the database locked by another process (rolled back).
    /// Returns, with the outcome, whether the caller should ask the writer for a checkpoint.
    pub(super) fn try_run<R>(
        &self,
        work: &dyn Fn(&Connection) -> Result<R, StoreError>,
    ) -> Option<(Result<R, StoreError>, bool)> {
        if !self.inline {
            return None;
        }
        let conn = self.idle_conn()?;
        // Another process holding the write lock must not make this thread wait.
        let began = conn.busy_timeout(Duration::ZERO).and_then(|()| exec(&conn, "BEGIN IMMEDIATE"));
        let _ = conn.busy_timeout(self.busy_timeout);
        if began.is_err() {
            self.moved.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.deadline.store(deadline_after(self.epoch, BUDGET), Ordering::Relaxed);
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| work(&conn)));
        self.deadline.store(NONE, Ordering::Relaxed);
        let outcome = match outcome {
            Ok(Ok(value)) => match exec(&conn, "COMMIT") {
                Ok(()) => Ok(value),
                Err(err) => {
                    rollback(&conn);
                    Err(StoreError::Commit(err.to_string()))
                }
            },
            Ok(Err(err)) => {
                rollback(&conn);
                if moves(&err) {
                    self.moved.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                Err(err)
            }
            Err(panic) => {
                rollback(&conn);
                drop(conn);
                std::panic::resume_unwind(panic);
            }
        };
        self.served.fetch_add(1, Ordering::Relaxed);
        let checkpoint_due =
            outcome.is_ok() && (self.commits.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(CHECKPOINT_COMMITS);
        Some((outcome, checkpoint_due))
    }
}

fn rollback(conn: &Connection) {
    if !conn.is_autocommit()
        && let Err(err) = exec(conn, "ROLLBACK")
    {
        tracing::warn!(error = %err, "rolling back an SQLite write failed");
    }
}
