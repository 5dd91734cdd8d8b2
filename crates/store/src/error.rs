//! The store's error type, and how it becomes the shared [`oppidum_core::Error`].

use oppidum_core::{Error, ErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A query failed on PostgreSQL.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// A query failed on SQLite.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A row did not decode into the type asked for.
    #[error("database row: {0}")]
    Decode(#[from] crate::db::DecodeError),
    /// A statement that must return a row returned none.
    #[error("no rows returned by a query that expected one")]
    RowNotFound,
    /// A statement Oppidum could not run as written (parameters not of the form `$n`, too few
    /// arguments).
    #[error("invalid statement: {0}")]
    Statement(String),
    /// A statement of a unit of work that had to change a row changed none; nothing of the unit
    /// was kept.
    #[error("statement {statement} of a unit of work changed no row")]
    Unchanged { statement: usize },
    /// The group commit holding this write failed; nothing of it was kept.
    #[error("the commit failed: {0}")]
    Commit(String),
    /// The transaction had ended (rolled back after 30 s without a statement, or by a failure).
    #[error("the transaction is no longer open")]
    TxAborted,
    /// The database was closed.
    #[error("the database is closed")]
    Closed,
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database was migrated by a newer Oppidum.
    #[error(
        "the database schema is at version {database}, newer than this binary knows ({binary}); \
         run the newer oppidum or restore a backup taken before the upgrade"
    )]
    SchemaTooNew { database: i64, binary: i64 },
    /// Migrations are pending and were not applied.
    #[error("the database schema is at version {database} but this binary needs {binary}; run `oppidum migrate`")]
    SchemaBehind { database: i64, binary: i64 },
    /// The blob store failed.
    #[error("blob store error: {0}")]
    Blob(#[from] object_store::Error),
    /// No blob under this key.
    #[error("blob not found: {0}")]
    BlobNotFound(String),
    /// A blob key that is not a valid relative path.
    #[error("invalid blob key `{0}`")]
    InvalidKey(String),
    /// Reading the body being stored failed.
    #[error("reading the upload failed: {0}")]
    Upload(std::io::Error),
    /// A job lease was lost (expired and taken by another worker) before the job finished.
    #[error("the lease on job {0} was lost")]
    LeaseLost(uuid::Uuid),
    /// Bad store configuration.
    #[error("{0}")]
    Config(String),
}

/// Which integrity constraint a statement broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Constraint {
    Unique,
    ForeignKey,
    NotNull,
    Check,
}

impl StoreError {
    /// Whether this is a unique-constraint violation (turned into 409 by services).
    pub fn is_unique_violation(&self) -> bool {
        self.constraint() == Some(Constraint::Unique)
    }

    /// The constraint a statement broke, on either engine.
    pub fn constraint(&self) -> Option<Constraint> {
        match self {
            Self::Sqlite(rusqlite::Error::SqliteFailure(err, _)) => match err.extended_code {
                // SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY
                2067 | 1555 => Some(Constraint::Unique),
                787 => Some(Constraint::ForeignKey),
                1299 => Some(Constraint::NotNull),
                275 => Some(Constraint::Check),
                _ => None,
            },
            Self::Db(sqlx::Error::Database(db)) => match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation => Some(Constraint::Unique),
                sqlx::error::ErrorKind::ForeignKeyViolation => Some(Constraint::ForeignKey),
                sqlx::error::ErrorKind::NotNullViolation => Some(Constraint::NotNull),
                sqlx::error::ErrorKind::CheckViolation => Some(Constraint::Check),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether SQLite stayed locked past the busy timeout (another process holds the file).
    fn is_busy(&self) -> bool {
        matches!(self, Self::Sqlite(err) if matches!(err.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)))
            || matches!(self, Self::Db(sqlx::Error::PoolTimedOut))
    }

    /// Whether the database could not be reached (refused or dropped connection, timeout, a
    /// PostgreSQL server still starting up or out of connection slots): worth retrying later,
    /// unlike a bad URL or a wrong password.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::Db(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_)) => true,
            // 57P03 cannot_connect_now, 53300 too_many_connections.
            Self::Db(sqlx::Error::Database(db)) => db.code().is_some_and(|code| code == "57P03" || code == "53300"),
            _ => false,
        }
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        match &error {
            StoreError::BlobNotFound(_) => Error::not_found("The requested content does not exist."),
            StoreError::InvalidKey(_) => Error::invalid("invalid_key", error.to_string()),
            StoreError::Upload(_) => Error::invalid("invalid_request_body", error.to_string()),
            _ if error.is_busy() => {
                Error::new(ErrorKind::Unavailable, "database_busy", "The database is busy; retry shortly.")
                    .with_retry_after(1)
                    .with_source(error)
            }
            _ if error.is_unique_violation() => {
                Error::new(ErrorKind::Conflict, "conflict", "This already exists.").with_source(error)
            }
            _ => Error::internal(error),
        }
    }
}
