//! Quick reads on the caller's own thread. Handing a statement to a reader thread and waking the
//! caller again costs two thread switches (and, on a busy machine, two cross-core wake-ups):
//! more than a primary-key lookup itself. So a read first tries an idle connection of this small
//! pool, right where the caller runs, within a time budget: SQLite's progress handler interrupts
//! a statement still running when the budget is spent, and the read is then run again on a reader
//! thread, where it may take as long as it needs. Reads have no effects, so running one twice is
//! safe; the async threads are never held longer than the budget (plus one VM step).
//!
//! A read also goes to the reader threads when every connection here is in use, or when SQLite
//! answers "busy" (these connections do not wait on locks).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::error::StoreError;

/// How long a read may run on the caller's thread before it moves to a reader thread.
pub(super) const BUDGET: Duration = Duration::from_millis(1);

/// SQLite VM instructions between two looks at the clock.
const STEPS_PER_CHECK: i32 = 500;

/// No deadline: the progress handler lets everything run.
pub(super) const NONE: u64 = u64::MAX;

struct Slot {
    conn: Connection,
    /// Nanoseconds after [`Pool::epoch`] at which the running statement is interrupted.
    deadline: Arc<AtomicU64>,
}

/// The idle connections, and what happened to the reads tried on them.
pub(super) struct Pool {
    idle: Mutex<Vec<Slot>>,
    epoch: Instant,
    /// Reads answered here.
    pub(super) served: AtomicU64,
    /// Reads that moved to a reader thread (interrupted, busy, or no idle connection).
    pub(super) moved: AtomicU64,
}

impl Pool {
    /// `count` read-only connections to the database at `path`.
    pub(super) fn open(path: &std::path::Path, count: usize) -> Result<Self, StoreError> {
        let epoch = Instant::now();
        let mut idle = Vec::with_capacity(count);
        for _ in 0..count {
            let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let conn = Connection::open_with_flags(path, flags)?;
            // Never wait on a lock here: a busy database sends the read to a reader thread.
            super::configure(&conn, Duration::ZERO, super::Mapping::Read)?;
            let deadline = interrupt_at_deadline(&conn, epoch)?;
            idle.push(Slot { conn, deadline });
        }
        Ok(Self { idle: Mutex::new(idle), epoch, served: AtomicU64::new(0), moved: AtomicU64::new(0) })
    }

    /// Runs `work` here and now on an idle connection, or answers `None` for the caller to run it
    /// on a reader thread: no connection idle, or the statement was interrupted or found the
    /// database busy.
    pub(super) fn try_run<R>(
        &self,
        work: impl FnOnce(&Connection) -> Result<R, StoreError>,
    ) -> Option<Result<R, StoreError>> {
        let Some(slot) = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop() else {
            self.moved.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        slot.deadline.store(deadline_after(self.epoch, BUDGET), Ordering::Relaxed);
        // The lease gives the connection back (deadline cleared) even if `work` panics.
        let lease = Lease { pool: self, slot: Some(slot) };
        let outcome = lease.slot.as_ref().map(|slot| work(&slot.conn))?;
        drop(lease);
        if matches!(&outcome, Err(err) if moves(err)) {
            self.moved.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.served.fetch_add(1, Ordering::Relaxed);
        Some(outcome)
    }

    /// Closes the idle connections (a connection in use is closed when its read ends).
    pub(super) fn close(&self) {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

/// Gives the connection back to the pool, even when the work panicked.
struct Lease<'p> {
    pool: &'p Pool,
    slot: Option<Slot>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.deadline.store(NONE, Ordering::Relaxed);
            self.pool.idle.lock().unwrap_or_else(PoisonError::into_inner).push(slot);
        }
    }
}

/// Makes SQLite interrupt `conn`'s statements once the clock passes the returned deadline
/// (nanoseconds after `epoch`; [`NONE`] lets everything run).
pub(super) fn interrupt_at_deadline(conn: &Connection, epoch: Instant) -> Result<Arc<AtomicU64>, StoreError> {
    let deadline = Arc::new(AtomicU64::new(NONE));
    let watched = deadline.clone();
    conn.progress_handler(STEPS_PER_CHECK, Some(move || nanos_since(epoch) >= watched.load(Ordering::Relaxed)))?;
    Ok(deadline)
}

/// The deadline `budget` from now.
pub(super) fn deadline_after(epoch: Instant, budget: Duration) -> u64 {
    nanos_since(epoch).saturating_add(u64::try_from(budget.as_nanos()).unwrap_or(NONE))
}

fn nanos_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(NONE - 1)
}

/// Whether a failed read should run again on a reader thread.
pub(super) fn moves(err: &StoreError) -> bool {
    matches!(
        err,
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(failure, _))
            if matches!(failure.code, ErrorCode::OperationInterrupted | ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}
