//! One database layer over SQLite and PostgreSQL, chosen from the URL at start-up.
//!
//! Queries are written once, as SQL both engines accept (`$1…$n`, `RETURNING`, `ON CONFLICT`), and
//! run through [`Db::query`] on whichever pool is active; one `#[derive(FromRow)]` struct decodes
//! rows from both. SQLite runs on threads of its own (see [`sqlite`]): one writer with group commit
//! and a few readers (WAL); statements that are not plain `SELECT`s go to the writer. PostgreSQL
//! runs through sqlx's pool.

#[cfg(test)]
mod engine_tests;
mod json_row;
mod migrate;
mod query;
mod row;
mod sqlite;
#[cfg(test)]
mod tests;
mod unit;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

pub use json_row::{JsonRow, JsonValues};
pub use migrate::SchemaStatus;
use query::Target;
pub use query::{Query, Value};
pub use row::{Decode, DecodeError, FromRow, Json, Row};
pub use sqlite::Synchronous;
use sqlite::{Engine as SqliteEngine, SqliteTx};
pub use unit::{Statement, Unit};

use crate::error::StoreError;

/// Which engine a [`Db`] runs on; for the few statements that must differ (job leasing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct DbOptions {
    pub max_connections: u32,
    pub busy_timeout: Duration,
    pub acquire_timeout: Duration,
    /// SQLite's durability (PostgreSQL's is the server's own `synchronous_commit`).
    pub synchronous: Synchronous,
    /// SQLite: an interactive transaction that sends nothing for this long is rolled back, so a
    /// stuck caller cannot hold the single writer (PostgreSQL: the server's
    /// `idle_in_transaction_session_timeout`).
    pub tx_idle: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            busy_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
            synchronous: Synchronous::Normal,
            tx_idle: Duration::from_secs(30),
        }
    }
}

/// A handle on the database; cheap to clone.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(Arc<SqliteEngine>),
    Postgres(PgPool),
}

/// Connection pool figures for `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    pub size: u32,
    pub idle: usize,
    pub max: u32,
    /// SQLite: reads answered on the caller's thread so far, and reads that moved to a reader
    /// thread (too long, database busy, or no connection free); 0 on PostgreSQL.
    pub quick_reads: (u64, u64),
    /// SQLite: writes committed on the caller's thread so far, and writes that went to the writer
    /// thread after trying (budget spent, database locked); 0 on PostgreSQL.
    pub inline_writes: (u64, u64),
}

impl Db {
    /// Connects to `url` (`sqlite://…` or `postgres://…`). SQLite files are created when missing.
    pub async fn connect(url: &str, options: &DbOptions) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Self::connect_sqlite(url, options).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let connect = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await?;
            Ok(Self::Postgres(pool))
        } else {
            Err(StoreError::Config("database.url must start with sqlite: or postgres://".into()))
        }
    }

    async fn connect_sqlite(url: &str, options: &DbOptions) -> Result<Self, StoreError> {
        let options = sqlite::Options {
            readers: usize::try_from(options.max_connections).unwrap_or(8),
            busy_timeout: options.busy_timeout,
            synchronous: options.synchronous,
            tx_idle: options.tx_idle,
        };
        let url = url.to_owned();
        // Opening touches the disk (and may wait on a lock): off the async threads.
        let engine = tokio::task::spawn_blocking(move || SqliteEngine::open(&url, &options))
            .await
            .map_err(|err| StoreError::Config(format!("opening SQLite failed: {err}")))??;
        Ok(Self::Sqlite(Arc::new(engine)))
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// The PostgreSQL pool, for `LISTEN/NOTIFY`; `None` on SQLite.
    pub fn pg_pool(&self) -> Option<&PgPool> {
        match self {
            Self::Postgres(pool) => Some(pool),
            Self::Sqlite(_) => None,
        }
    }

    /// A statement written once for both engines. `SELECT`s run on a reader, the rest on the writer.
    pub fn query(&self, sql: &'static str) -> Query<'_> {
        Query::new(self.target_for(sql), sql.into())
    }

    /// A statement built at run time (sea-query output, identifiers already validated).
    pub fn query_dynamic(&self, sql: String) -> Query<'_> {
        let target = self.target_for(&sql);
        Query::new(target, sql.into())
    }

    fn target_for(&self, sql: &str) -> Target<'_> {
        match self {
            Self::Sqlite(engine) => Target::Sqlite { engine: engine.as_ref(), write: !is_read_only(sql) },
            Self::Postgres(pool) => Target::PgPool(pool),
        }
    }

    /// Starts a transaction (on the SQLite writer).
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            Self::Sqlite(engine) => Tx::Sqlite(engine.begin()?),
            Self::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Starts a transaction scoped to one organization. On PostgreSQL it sets `oppidum.org_id` for
    /// this transaction only, which row-level-security policies read through
    /// `oppidum_current_org()`; SQLite relies on the repositories' own scoping.
    pub async fn begin_for_org(&self, org_id: Uuid) -> Result<Tx, StoreError> {
        let mut tx = self.begin().await?;
        if let Tx::Postgres(_) = tx {
            tx.query("SELECT set_config('oppidum.org_id', $1, true)").bind(org_id.to_string()).execute().await?;
        }
        Ok(tx)
    }

    /// Starts a transaction that may only see rows inside the organization subtrees `paths`
    /// (materialized paths like `/<root>/<org>/`). On PostgreSQL it sets `oppidum.scope`, which
    /// the row-level-security policies of tenant tables enforce; SQLite relies on the
    /// repositories' own scoping.
    pub async fn begin_scoped(&self, paths: &[String]) -> Result<Tx, StoreError> {
        let mut tx = self.begin().await?;
        if let Tx::Postgres(_) = tx {
            let scope = serde_json::to_string(paths).unwrap_or_else(|_| "[]".into());
            tx.query("SELECT set_config('oppidum.scope', $1, true)").bind(scope).execute().await?;
        }
        Ok(tx)
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        // BIGINT so both engines decode it as i64 (a bare 1 is int4 on PostgreSQL).
        let (one,): (i64,) = self.query("SELECT CAST(1 AS BIGINT)").fetch_one().await?;
        debug_assert_eq!(one, 1);
        Ok(())
    }

    /// Pool figures (the reader threads on SQLite).
    pub fn pool_stats(&self) -> PoolStats {
        match self {
            Self::Sqlite(engine) => {
                let (readers, busy) = engine.reader_stats();
                let size = u32::try_from(readers).unwrap_or(u32::MAX);
                PoolStats {
                    size,
                    idle: readers.saturating_sub(busy),
                    max: size,
                    quick_reads: engine.inline_stats(),
                    inline_writes: engine.inline_write_stats(),
                }
            }
            Self::Postgres(pool) => {
                let max = pool.options().get_max_connections();
                PoolStats { size: pool.size(), idle: pool.num_idle(), max, quick_reads: (0, 0), inline_writes: (0, 0) }
            }
        }
    }

    /// Closes every connection, waiting for the ones in use.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(engine) => engine.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

/// Whether a statement only reads, so SQLite may run it on a read-only connection.
fn is_read_only(sql: &str) -> bool {
    let head = sql.trim_start().get(..6).unwrap_or_default();
    head.eq_ignore_ascii_case("select")
}

/// An open transaction; dropped without [`Tx::commit`], it rolls back.
#[derive(Debug)]
pub enum Tx {
    Sqlite(SqliteTx),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    /// A statement inside this transaction.
    pub fn query(&mut self, sql: &'static str) -> Query<'_> {
        Query::new(self.target(), sql.into())
    }

    /// A run-time-built statement inside this transaction.
    pub fn query_dynamic(&mut self, sql: String) -> Query<'_> {
        Query::new(self.target(), sql.into())
    }

    /// A statement with its arguments bound already, inside this transaction.
    fn statement(&mut self, sql: std::borrow::Cow<'static, str>, args: Vec<Value>) -> Query<'_> {
        Query::new(self.target(), sql).with_args(args)
    }

    fn target(&mut self) -> Target<'_> {
        match self {
            Self::Sqlite(tx) => Target::SqliteTx(tx),
            Self::Postgres(tx) => Target::PgConn(tx),
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// Runs SQL without arguments, several statements at once (migrations); SQLite only.
    pub(crate) async fn execute_batch(&mut self, sql: String) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(tx) => tx.execute_batch(sql).await,
            Self::Postgres(_) => Err(StoreError::Statement("execute_batch is for SQLite".into())),
        }
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(tx) => tx.commit().await?,
            Self::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(tx) => tx.rollback().await?,
            Self::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod routing_tests {
    use super::*;

    #[test]
    fn db_routes_only_selects_to_readers() {
        assert!(is_read_only("  select 1"));
        assert!(is_read_only("SELECT * FROM jobs"));
        assert!(!is_read_only("INSERT INTO jobs"));
        assert!(!is_read_only("WITH x AS (SELECT 1) UPDATE t SET a = 1"));
        assert!(!is_read_only("sel"));
    }
}
