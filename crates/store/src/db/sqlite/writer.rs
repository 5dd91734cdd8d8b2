//! The single writer and its group commit. Writes queue on one channel; the writer thread opens a
//! transaction, runs every unit already waiting (each after the first in a savepoint of its own,
//! so one failing unit undoes only itself), commits once, and only then answers each caller —
//! with its result, or with the commit's failure. Under load many callers share one commit (and,
//! with `synchronous = FULL`, one `fsync`); alone, a write costs what it did before.
//!
//! An interactive transaction ([`super::SqliteTx`]) has a transaction to itself, fed statement by
//! statement from its own channel; the writer waits for its next statement (at most the engine's
//! `tx_idle`, then it rolls back) and commits it with the group.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::Job;
use super::inline_write::{CHECKPOINT_COMMITS, Shared};
use crate::error::StoreError;

/// How many units one commit takes at most, and how long a batch may keep taking them: bounds the
/// wait of the first caller in a batch.
const MAX_UNITS: usize = 256;
const MAX_BATCH: Duration = Duration::from_millis(5);
/// How long the writer, given over to an interactive transaction, watches for its next statement
/// before it sleeps: the caller usually sends it within microseconds, and waking a sleeping
/// thread costs more than that (see [`next_op`]).
const WATCH: Duration = Duration::from_micros(50);
/// How often the write-ahead log is reset (see [`checkpoint`]).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// `PRAGMA synchronous`: `Normal` survives a crash of the process (WAL), `Full` also a loss of
/// power or an operating-system crash, at one `fsync` per group commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    #[default]
    Normal,
    Full,
}

impl Synchronous {
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
        }
    }
}

/// Answers a unit's caller once the commit's outcome is known.
type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A unit of work: runs on the writer (or, given no connection, does not run because its batch
/// failed), says whether it succeeded, and how to answer.
pub(super) type Unit = Box<dyn FnOnce(Option<&Connection>) -> (bool, Reply) + Send>;

pub(super) enum WriterJob {
    Unit(Unit),
    Tx(Receiver<TxOp>),
    /// Commits were made inline: time to see whether the write-ahead log needs a checkpoint.
    Checkpoint,
    Stop,
}

pub(crate) enum TxOp {
    Run(Job),
    Commit(oneshot::Sender<Result<(), StoreError>>),
    Rollback(oneshot::Sender<Result<(), StoreError>>),
}

/// Wraps `work` into a unit answering on `reply` after the commit.
pub(super) fn unit<R, F>(work: F, reply: oneshot::Sender<Result<R, StoreError>>) -> Unit
where
    R: Send + 'static,
    F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
{
    Box::new(move |conn: Option<&Connection>| {
        let result = conn.map(work);
        let ok = matches!(result, Some(Ok(_)));
        let answer: Reply = Box::new(move |commit| {
            let _ = reply.send(match (result, commit) {
                (Some(Err(err)), _) => Err(err),
                (Some(Ok(value)), Ok(())) => Ok(value),
                (_, Err(message)) => Err(StoreError::Commit(message)),
                (None, Ok(())) => Err(StoreError::Commit("the write was not run".into())),
            });
        });
        (ok, answer)
    })
}

/// The writer thread's loop; returns when told to stop or when every sender is gone.
pub(super) fn run(shared: Arc<Shared>, jobs: Receiver<WriterJob>, checkpoints: bool, tx_idle: Duration) {
    let mut last_checkpoint = Instant::now();
    let mut checkpointed_at = 0;
    // Each job stays counted as queued until its batch is done (see `inline_write`).
    let done = |jobs: usize| shared.queued.fetch_sub(jobs, Ordering::AcqRel);
    loop {
        let wait = CHECKPOINT_EVERY.saturating_sub(last_checkpoint.elapsed());
        let first = match jobs.recv_timeout(wait) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                if checkpoints {
                    checkpoint(&shared.lock());
                }
                last_checkpoint = Instant::now();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let (mut stop, mut taken, mut answers) = (false, 1, None);
        if !matches!(first, WriterJob::Checkpoint) {
            let conn = shared.lock();
            let mut batch = Batch::new(&conn, tx_idle);
            stop = batch.take(first);
            let started = Instant::now();
            while !stop && batch.units < MAX_UNITS && started.elapsed() < MAX_BATCH {
                match jobs.try_recv() {
                    Ok(job) => {
                        taken += 1;
                        stop = batch.take(job);
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        stop = true;
                    }
                }
            }
            answers = Some(batch.commit());
            shared.commits.fetch_add(1, Ordering::Relaxed);
        }
        // The connection is free and the queue shorter before anyone hears back: a caller writing
        // again at once may do it inline.
        done(taken);
        if let Some((replies, outcome)) = answers {
            for reply in replies {
                reply(outcome.clone());
            }
        }
        if stop {
            return;
        }
        if checkpoints && last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            checkpoint(&shared.lock());
            last_checkpoint = Instant::now();
            checkpointed_at = shared.commits.load(Ordering::Relaxed);
        } else if checkpoints && shared.inline {
            // SQLite's own checkpoints are off (see `inline_write`): do what they did.
            let commits = shared.commits.load(Ordering::Relaxed);
            if commits.saturating_sub(checkpointed_at) >= CHECKPOINT_COMMITS {
                passive_checkpoint(&shared.lock());
                checkpointed_at = commits;
            }
        }
    }
}

/// Copies what the write-ahead log holds into the database, as far as readers allow, without
/// waiting for them (what SQLite's automatic checkpoints do).
fn passive_checkpoint(conn: &Connection) {
    if let Err(err) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::debug!(error = %err, "passive checkpoint of the write-ahead log failed");
    }
}

/// Resets the write-ahead log. SQLite's own checkpoints are passive: under a steady stream of reads
/// the log is never reset and grows without bound (half a gigabyte after 50,000 inserts), and every
/// read then searches a bigger log. A `RESTART` checkpoint waits for the readers of the moment and
/// lets the next write start the log over; it waits 100 ms at most, then tries again a second later.
fn checkpoint(conn: &Connection) {
    let short = Duration::from_millis(100);
    let result = conn
        .busy_timeout(short)
        .and_then(|()| conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())))
        .and_then(|()| conn.busy_timeout(Duration::from_secs(5)));
    if let Err(err) = result {
        tracing::debug!(error = %err, "checkpoint of the write-ahead log failed; retried in a second");
    }
}

pub(super) fn exec(conn: &Connection, sql: &str) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// The savepoint around a unit that joins a transaction already holding others' changes.
const SAVEPOINT: (&str, &str, &str) = ("SAVEPOINT unit", "RELEASE unit", "ROLLBACK TO unit");

/// One group commit in the making.
struct Batch<'c> {
    conn: &'c Connection,
    /// Whether `BEGIN` succeeded; when not, every unit is answered with why.
    open: Result<(), String>,
    pending: Vec<Reply>,
    units: usize,
    /// Units (and interactive transactions) whose changes the open transaction holds. The first
    /// one runs without a savepoint — a failure rolls the whole transaction back, which held
    /// nothing else — so that a lone write pays no statement journal.
    kept: usize,
    /// How long an interactive transaction may send nothing before it is rolled back.
    tx_idle: Duration,
}

impl<'c> Batch<'c> {
    fn new(conn: &'c Connection, tx_idle: Duration) -> Self {
        let open = exec(conn, "BEGIN IMMEDIATE").map_err(|err| err.to_string());
        Self { conn, open, pending: Vec::new(), units: 0, kept: 0, tx_idle }
    }

    /// Runs one job; true when it was the order to stop.
    fn take(&mut self, job: WriterJob) -> bool {
        match job {
            WriterJob::Unit(unit) => self.unit(unit),
            WriterJob::Tx(ops) => self.interactive(&ops),
            // The batch's end looks at checkpoints anyway.
            WriterJob::Checkpoint => {}
            WriterJob::Stop => return true,
        }
        false
    }

    fn unit(&mut self, unit: Unit) {
        self.units += 1;
        let bare = self.kept == 0;
        let refused = match &self.open {
            Err(message) => Some(message.clone()),
            Ok(()) if bare => None,
            Ok(()) => exec(self.conn, SAVEPOINT.0).err().map(|err| err.to_string()),
        };
        if let Some(message) = refused {
            let (_, reply) = unit(None);
            reply(Err(message));
            return;
        }
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| unit(Some(self.conn))));
        let ok = matches!(outcome, Ok((true, _)));
        match (bare, ok) {
            (true, true) => {}
            (true, false) => self.restart(),
            (false, keep) => self.end_savepoint(keep),
        }
        if ok {
            self.kept += 1;
        }
        if let Ok((_, reply)) = outcome {
            self.pending.push(reply);
        }
        self.check_still_open();
    }

    /// Releases (keeps) or rolls back a unit's savepoint.
    fn end_savepoint(&mut self, keep: bool) {
        let (_, release, rollback) = SAVEPOINT;
        let result = if keep {
            exec(self.conn, release)
        } else {
            exec(self.conn, rollback).and_then(|()| exec(self.conn, release))
        };
        if let Err(err) = result {
            tracing::warn!(error = %err, "ending an SQLite savepoint failed");
        }
    }

    /// Some failures (disk full, I/O errors) roll back the whole transaction: the units before
    /// are lost, so their callers hear it now, and the batch starts over.
    fn check_still_open(&mut self) {
        if self.conn.is_autocommit() {
            let message = "the transaction was rolled back by SQLite (disk full or an I/O error)".to_owned();
            for reply in self.pending.drain(..) {
                reply(Err(message.clone()));
            }
            self.open = exec(self.conn, "BEGIN IMMEDIATE").map_err(|err| err.to_string());
            self.kept = 0;
        }
    }

    /// Rolls back the open transaction, which holds no one's kept changes, and opens another.
    fn restart(&mut self) {
        debug_assert_eq!(self.kept, 0);
        if !self.conn.is_autocommit()
            && let Err(err) = exec(self.conn, "ROLLBACK")
        {
            tracing::warn!(error = %err, "rolling back an SQLite transaction failed");
        }
        self.open = exec(self.conn, "BEGIN IMMEDIATE").map_err(|err| err.to_string());
    }

    /// An interactive transaction. Units already run are committed first, so their callers do not
    /// wait on a transaction that may take its time; it then has the transaction to itself and
    /// needs no savepoint.
    fn interactive(&mut self, ops: &Receiver<TxOp>) {
        self.units += 1;
        if !self.pending.is_empty() || self.kept > 0 {
            self.flush();
        }
        if let Err(message) = &self.open {
            let message = message.clone();
            drain_refusing(ops, self.tx_idle, &message);
            return;
        }
        loop {
            match next_op(ops, self.tx_idle) {
                Ok(TxOp::Run(job)) => {
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(self.conn)));
                    if self.conn.is_autocommit() {
                        self.check_still_open();
                        drain_refusing(ops, self.tx_idle, "the transaction was rolled back by SQLite");
                        return;
                    }
                }
                Ok(TxOp::Commit(reply)) => {
                    self.kept += 1;
                    self.pending.push(Box::new(move |outcome| {
                        let _ = reply.send(outcome.map_err(StoreError::Commit));
                    }));
                    return;
                }
                Ok(TxOp::Rollback(reply)) => {
                    self.restart();
                    let _ = reply.send(Ok(()));
                    return;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.restart();
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {
                    tracing::warn!(idle = ?self.tx_idle, "an SQLite transaction sent nothing and was rolled back");
                    self.restart();
                    return;
                }
            }
        }
    }

    /// Commits what is pending, answers its callers, and opens the next transaction.
    fn flush(&mut self) {
        self.finish();
        self.open = exec(self.conn, "BEGIN IMMEDIATE").map_err(|err| err.to_string());
        self.kept = 0;
    }

    fn finish(&mut self) {
        let outcome = self.end();
        for reply in self.pending.drain(..) {
            reply(outcome.clone());
        }
    }

    /// Commits the open transaction (or says why there is none).
    fn end(&mut self) -> Result<(), String> {
        match &self.open {
            Ok(()) => match exec(self.conn, "COMMIT") {
                Ok(()) => Ok(()),
                Err(err) => {
                    let _ = exec(self.conn, "ROLLBACK");
                    Err(err.to_string())
                }
            },
            Err(message) => Err(message.clone()),
        }
    }

    /// Commits; returns the callers to answer and the outcome, for the caller to answer once it
    /// let go of the connection.
    fn commit(mut self) -> (Vec<Reply>, Result<(), String>) {
        let outcome = self.end();
        (std::mem::take(&mut self.pending), outcome)
    }
}

/// The next operation of an interactive transaction: watched for during [`WATCH`] (the writer has
/// nothing else to do meanwhile, and a caller finding it awake pays no wake-up), then waited for
/// up to `idle`.
fn next_op(ops: &Receiver<TxOp>, idle: Duration) -> Result<TxOp, RecvTimeoutError> {
    let started = Instant::now();
    loop {
        match ops.try_recv() {
            Ok(op) => return Ok(op),
            Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
            Err(TryRecvError::Empty) if started.elapsed() < WATCH => std::hint::spin_loop(),
            Err(TryRecvError::Empty) => return ops.recv_timeout(idle.saturating_sub(started.elapsed())),
        }
    }
}

/// Answers every operation of a transaction that could not start.
fn drain_refusing(ops: &Receiver<TxOp>, idle: Duration, message: &str) {
    while let Ok(op) = ops.recv_timeout(idle) {
        match op {
            TxOp::Run(_) => {}
            TxOp::Commit(reply) | TxOp::Rollback(reply) => {
                let _ = reply.send(Err(StoreError::Commit(message.to_owned())));
                return;
            }
        }
    }
}
