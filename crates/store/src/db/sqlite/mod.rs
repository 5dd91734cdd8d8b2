//! SQLite on dedicated threads: one writer thread that commits concurrent writes together (see
//! [`writer`]) and a few read-only reader threads sharing one queue (WAL lets them read while the
//! writer writes). A statement costs one hop: the caller sends a closure, the database thread
//! prepares (through its statement cache), binds, steps and decodes, and sends finished values
//! back. A quick read costs none: it runs on the caller's thread within a time budget (see
//! [`inline`]) and moves to a reader thread only when it takes longer.

mod inline;
mod inline_write;
mod statement;
pub(crate) mod time;
mod writer;

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use super::query::Value;
use super::row::FromRow;
use crate::error::StoreError;
pub(in crate::db) use statement::execute;
pub use writer::Synchronous;
use writer::{TxOp, WriterJob};

/// Work for a database thread; it answers through a channel it carries.
type Job = Box<dyn FnOnce(&Connection) + Send>;

/// How the engine is opened.
pub(crate) struct Options {
    pub readers: usize,
    pub busy_timeout: Duration,
    pub synchronous: Synchronous,
    pub tx_idle: Duration,
}

/// The threads and the queues to them.
pub struct Engine {
    writer: mpsc::Sender<WriterJob>,
    /// The writer's connection and queue length, shared with writes run inline.
    shared: Arc<inline_write::Shared>,
    /// `None` for an in-memory database, which only one connection can see: reads go to the writer.
    readers: Option<flume::Sender<Option<Job>>>,
    reader_count: usize,
    busy_readers: Arc<AtomicUsize>,
    /// Quick reads on the caller's thread; `None` for an in-memory database.
    inline: Option<inline::Pool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteEngine").field("readers", &self.reader_count).finish_non_exhaustive()
    }
}

/// Where the database lives, from `sqlite://path`, `sqlite:path` or `sqlite::memory:` (query
/// parameters such as `?mode=rwc` are accepted and ignored: the file is always created).
fn location(url: &str) -> Result<Option<PathBuf>, StoreError> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let path = rest.split('?').next().unwrap_or_default();
    if path == ":memory:" || url.contains("mode=memory") {
        return Ok(None);
    }
    if path.is_empty() {
        return Err(StoreError::Config("database.url names no SQLite file".into()));
    }
    Ok(Some(PathBuf::from(path)))
}

/// How much of the database file a connection maps (address space, not memory).
const MMAP_SIZE: i64 = 1 << 30;

/// Whether a connection reads pages through a mapping of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mapping {
    /// Pages read straight from a shared mapping rather than copied in by a `pread` each: long
    /// reads (listings of thousands of entries) otherwise spend their time in system calls.
    Mapped,
    /// Pages read with `pread`: SQLite unmaps the whole file whenever another connection has
    /// committed, and the `munmap` interrupts every core running the process (a TLB shootdown,
    /// costly in a virtual machine), which short reads between frequent writes pay on every call.
    Read,
}

pub(super) fn configure(conn: &Connection, busy_timeout: Duration, mapping: Mapping) -> Result<(), StoreError> {
    conn.busy_timeout(busy_timeout)?;
    conn.set_prepared_statement_cache_capacity(256);
    conn.pragma_update(None, "foreign_keys", true)?;
    // The page cache keeps its default size: a connection drops it whole whenever another one
    // committed.
    if mapping == Mapping::Mapped {
        conn.pragma_update(None, "mmap_size", MMAP_SIZE)?;
    }
    Ok(())
}

impl Engine {
    /// Opens (creating when missing) the database and starts its threads.
    pub(crate) fn open(url: &str, options: &Options) -> Result<Self, StoreError> {
        let path = location(url)?;
        let writer_conn = match &path {
            Some(path) => Connection::open(path)?,
            None => Connection::open_in_memory()?,
        };
        configure(&writer_conn, options.busy_timeout, Mapping::Mapped)?;
        if path.is_some() {
            let mode: String = writer_conn.pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Config(format!("SQLite refused write-ahead logging (journal mode {mode})")));
            }
            // After a checkpoint resets the write-ahead log, the file shrinks back to this.
            writer_conn.pragma_update(None, "journal_size_limit", 67_108_864)?;
        }
        writer_conn.pragma_update(None, "synchronous", options.synchronous.pragma())?;
        // Inline writes commit without an `fsync` only with `NORMAL` (see `inline_write`).
        let inline_writes = path.is_some() && options.synchronous == Synchronous::Normal;
        let shared =
            Arc::new(inline_write::Shared::new(writer_conn, inline_writes, path.is_some(), options.busy_timeout)?);

        let mut threads = Vec::new();
        let (writer, jobs) = mpsc::channel();
        let (checkpoints, tx_idle, on_writer) = (path.is_some(), options.tx_idle, shared.clone());
        threads.push(spawn("oppidum-sqlite-writer", move || writer::run(on_writer, jobs, checkpoints, tx_idle))?);

        let busy_readers = Arc::new(AtomicUsize::new(0));
        let (readers, reader_count) = match &path {
            None => (None, 0),
            Some(path) => {
                let (sender, queue) = flume::unbounded::<Option<Job>>();
                let count = options.readers.max(1);
                for index in 0..count {
                    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                    let conn = Connection::open_with_flags(path, flags)?;
                    configure(&conn, options.busy_timeout, Mapping::Mapped)?;
                    let (queue, busy) = (queue.clone(), busy_readers.clone());
                    threads.push(spawn(&format!("oppidum-sqlite-reader-{index}"), move || {
                        read_loop(&conn, &queue, &busy)
                    })?);
                }
                (Some(sender), count)
            }
        };
        let inline = match &path {
            None => None,
            Some(path) => {
                let cores = std::thread::available_parallelism().map_or(1, usize::from);
                Some(inline::Pool::open(path, cores.min(options.readers.max(1)))?)
            }
        };
        Ok(Self { writer, shared, readers, reader_count, busy_readers, inline, threads: Mutex::new(threads) })
    }

    /// Hands `job` to the writer thread, counted as waiting until it takes it.
    fn send(&self, job: WriterJob) -> Result<(), StoreError> {
        self.shared.queued.fetch_add(1, Ordering::AcqRel);
        self.writer.send(job).map_err(|_| {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            StoreError::Closed
        })
    }

    /// Runs `work` on a reader (on the writer for an in-memory database).
    pub(crate) async fn read<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let Some(readers) = &self.readers else { return self.write(work).await };
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = reply.send(work(conn));
        });
        readers.send(Some(job)).map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `work` on the writer, inside the next group commit; answered once that commit is
    /// durable (or failed).
    pub(crate) async fn write<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let unit = writer::unit(work, reply);
        self.send(WriterJob::Unit(unit))?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// A write that may run twice (its effects are rolled back in between): run at once on the
    /// caller's thread when the writer is idle (see [`inline_write`]), else as [`Self::write`].
    pub(crate) async fn write_again<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: Fn(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        if let Some((outcome, checkpoint_due)) = self.shared.try_run(&work) {
            if checkpoint_due {
                let _ = self.send(WriterJob::Checkpoint);
            }
            return outcome;
        }
        self.write(work).await
    }

    /// Opens an interactive transaction on the writer.
    pub(crate) fn begin(&self) -> Result<SqliteTx, StoreError> {
        let (ops, queue) = mpsc::channel();
        self.send(WriterJob::Tx(queue))?;
        Ok(SqliteTx { ops, engaged: AtomicBool::new(false) })
    }

    /// A statement's rows, on a reader or the writer.
    pub(crate) async fn fetch<T: FromRow>(
        &self,
        write: bool,
        sql: String,
        args: Vec<Value>,
        one: bool,
    ) -> Result<Vec<T>, StoreError> {
        if !write && let Some(done) = self.quick(&|conn| statement::fetch::<T>(conn, &sql, &args, one)) {
            return done;
        }
        let work = move |conn: &Connection| statement::fetch::<T>(conn, &sql, &args, one);
        if write { self.write_again(work).await } else { self.read(work).await }
    }

    /// A statement run for its effect, on the writer (or a reader for a read-only one).
    pub(crate) async fn execute(&self, write: bool, sql: String, args: Vec<Value>) -> Result<u64, StoreError> {
        if !write && let Some(done) = self.quick(&|conn| statement::execute(conn, &sql, &args)) {
            return done;
        }
        let work = move |conn: &Connection| statement::execute(conn, &sql, &args);
        if write { self.write_again(work).await } else { self.read(work).await }
    }

    /// A read run at once on the caller's thread, if it is quick: on the writer's connection when
    /// it is idle, else on one of the quick-read pool (see [`inline`]).
    fn quick<R>(&self, work: &dyn Fn(&Connection) -> Result<R, StoreError>) -> Option<Result<R, StoreError>> {
        match self.shared.try_read(work) {
            inline_write::Read::Done(outcome) => Some(outcome),
            inline_write::Read::Outran => {
                if let Some(pool) = &self.inline {
                    pool.moved.fetch_add(1, Ordering::Relaxed);
                }
                None
            }
            inline_write::Read::NotTried => self.inline.as_ref()?.try_run(work),
        }
    }

    /// (reads answered on the caller's thread, reads moved to a reader thread).
    pub(crate) fn inline_stats(&self) -> (u64, u64) {
        let on_writer = self.shared.reads_served.load(Ordering::Relaxed);
        self.inline.as_ref().map_or((on_writer, 0), |pool| {
            (on_writer + pool.served.load(Ordering::Relaxed), pool.moved.load(Ordering::Relaxed))
        })
    }

    /// (writes committed on the caller's thread, writes that went to the writer after trying).
    pub(crate) fn inline_write_stats(&self) -> (u64, u64) {
        (self.shared.served.load(Ordering::Relaxed), self.shared.moved.load(Ordering::Relaxed))
    }

    /// (reader threads, readers busy now).
    pub(crate) fn reader_stats(&self) -> (usize, usize) {
        (self.reader_count.max(1), self.busy_readers.load(Ordering::Relaxed))
    }

    /// Lets the queued work finish, then stops the threads.
    pub(crate) async fn close(&self) {
        self.shared.close();
        if let Some(pool) = &self.inline {
            pool.close();
        }
        if let Some(readers) = &self.readers {
            for _ in 0..self.reader_count {
                let _ = readers.send(None);
            }
        }
        let _ = self.send(WriterJob::Stop);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, StoreError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(body)
        .map_err(|err| StoreError::Config(format!("cannot start the SQLite thread {name}: {err}")))
}

fn read_loop(conn: &Connection, queue: &flume::Receiver<Option<Job>>, busy: &AtomicUsize) {
    loop {
        let next = queue.recv();
        let Ok(Some(job)) = next else { return };
        busy.fetch_add(1, Ordering::Relaxed);
        // A panic in one job drops its answer (the caller sees the engine as closed for that
        // call) and leaves the thread serving the next.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(conn)));
        busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How long a statement of an interactive transaction is watched for on the caller's thread
/// before the caller's task sleeps: the writer, given over to the transaction, answers most
/// statements within that, and a sleeping task costs two thread wake-ups to resume.
const WATCH_ANSWER: std::time::Duration = std::time::Duration::from_micros(50);

/// The writer's answer: watched for during [`WATCH_ANSWER`], then awaited.
async fn answered<T>(mut answer: oneshot::Receiver<T>) -> Result<T, oneshot::error::RecvError> {
    let started = std::time::Instant::now();
    while started.elapsed() < WATCH_ANSWER {
        match answer.try_recv() {
            Ok(value) => return Ok(value),
            Err(oneshot::error::TryRecvError::Empty) => std::hint::spin_loop(),
            Err(oneshot::error::TryRecvError::Closed) => break,
        }
    }
    answer.await
}

/// An interactive transaction: a savepoint on the writer thread, fed statement by statement.
/// Dropped without [`SqliteTx::commit`], it rolls back.
#[derive(Debug)]
pub struct SqliteTx {
    ops: mpsc::Sender<TxOp>,
    /// Whether the writer has taken this transaction up (it answered a statement): from then on
    /// it waits for this transaction only, and its answers are watched for. Before, it may still
    /// be committing others' writes.
    engaged: AtomicBool,
}

impl SqliteTx {
    async fn run<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = reply.send(work(conn));
        });
        self.ops.send(TxOp::Run(job)).map_err(|_| StoreError::TxAborted)?;
        let outcome = if self.engaged.load(Ordering::Relaxed) { answered(answer).await } else { answer.await };
        self.engaged.store(true, Ordering::Relaxed);
        outcome.map_err(|_| StoreError::TxAborted)?
    }

    pub(crate) async fn fetch<T: FromRow>(
        &self,
        sql: String,
        args: Vec<Value>,
        one: bool,
    ) -> Result<Vec<T>, StoreError> {
        self.run(move |conn| statement::fetch::<T>(conn, &sql, &args, one)).await
    }

    pub(crate) async fn execute(&self, sql: String, args: Vec<Value>) -> Result<u64, StoreError> {
        self.run(move |conn| statement::execute(conn, &sql, &args)).await
    }

    pub(crate) async fn execute_batch(&self, sql: String) -> Result<(), StoreError> {
        self.run(move |conn| conn.execute_batch(&sql).map_err(StoreError::from)).await
    }

    /// Commits; answered once the group commit holding it is durable.
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.ops.send(TxOp::Commit(reply)).map_err(|_| StoreError::TxAborted)?;
        let outcome = if self.engaged.load(Ordering::Relaxed) { answered(answer).await } else { answer.await };
        outcome.map_err(|_| StoreError::TxAborted)?
    }

    pub(crate) async fn rollback(self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.ops.send(TxOp::Rollback(reply)).map_err(|_| StoreError::TxAborted)?;
        answer.await.map_err(|_| StoreError::TxAborted)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(location("sqlite://data/o.db").ok().flatten(), Some(PathBuf::from("data/o.db")));
        assert_eq!(location("sqlite:///var/o.db?mode=rwc").ok().flatten(), Some(PathBuf::from("/var/o.db")));
        assert_eq!(location("sqlite:o.db").ok().flatten(), Some(PathBuf::from("o.db")));
        assert_eq!(location("sqlite::memory:").ok().flatten(), None);
        assert!(location("sqlite://").is_err());
    }
}
