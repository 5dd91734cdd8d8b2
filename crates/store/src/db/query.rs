//! The dispatch helper: a statement and its arguments, run on whichever engine is active.
//! Arguments are collected as typed [`Value`]s (a typed `NULL` too, which PostgreSQL needs) and
//! bound in order on the chosen connection.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Postgres};
use uuid::Uuid;

use super::row::{FromRow, Row};
use super::sqlite::{Engine as SqliteEngine, SqliteTx};
use crate::error::StoreError;

/// One bound argument. Each variant carries an `Option` so `NULL` keeps its SQL type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(Option<bool>),
    I64(Option<i64>),
    F64(Option<f64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
    Uuid(Option<Uuid>),
    Time(Option<DateTime<Utc>>),
    Date(Option<NaiveDate>),
    Json(Option<serde_json::Value>),
}

macro_rules! value_from {
    ($($ty:ty => $variant:ident $(via $conv:expr)?),* $(,)?) => {$(
        impl From<$ty> for Value {
            fn from(v: $ty) -> Self {
                Value::$variant(Some(value_from!(@conv v $(, $conv)?)))
            }
        }
        impl From<Option<$ty>> for Value {
            fn from(v: Option<$ty>) -> Self {
                Value::$variant(v.map(|v| value_from!(@conv v $(, $conv)?)))
            }
        }
    )*};
    (@conv $v:ident) => { $v };
    (@conv $v:ident, $conv:expr) => { ($conv)($v) };
}

value_from! {
    bool => Bool,
    i64 => I64,
    i32 => I64 via i64::from,
    u32 => I64 via i64::from,
    f64 => F64,
    String => Text,
    &str => Text via str::to_owned,
    Vec<u8> => Bytes,
    Uuid => Uuid,
    DateTime<Utc> => Time,
    NaiveDate => Date,
    serde_json::Value => Json,
}

pub(crate) enum Target<'c> {
    /// SQLite outside a transaction: on a reader unless `write`.
    Sqlite {
        engine: &'c SqliteEngine,
        write: bool,
    },
    SqliteTx(&'c SqliteTx),
    PgPool(&'c PgPool),
    PgConn(&'c mut PgConnection),
}

/// A statement with its arguments, ready to run.
#[must_use = "a query does nothing until it is run"]
pub struct Query<'c> {
    target: Target<'c>,
    sql: Cow<'static, str>,
    args: Vec<Value>,
}

/// The statement with its arguments bound, for PostgreSQL.
pub(super) fn pg_query(sql: Cow<'static, str>, args: Vec<Value>) -> sqlx::query::Query<'static, Postgres, PgArguments> {
    let mut query = sqlx::query::<Postgres>(AssertSqlSafe(sql));
    for arg in args {
        query = match arg {
            Value::Bool(v) => query.bind(v),
            Value::I64(v) => query.bind(v),
            Value::F64(v) => query.bind(v),
            Value::Text(v) => query.bind(v),
            Value::Bytes(v) => query.bind(v),
            Value::Uuid(v) => query.bind(v),
            Value::Time(v) => query.bind(v),
            Value::Date(v) => query.bind(v),
            Value::Json(v) => query.bind(v.map(Json)),
        };
    }
    query
}

fn decode_pg<T: FromRow>(rows: &[PgRow]) -> Result<Vec<T>, StoreError> {
    rows.iter().map(|row| T::from_row(&Row::postgres(row)).map_err(StoreError::from)).collect()
}

impl<'c> Query<'c> {
    pub(crate) fn new(target: Target<'c>, sql: Cow<'static, str>) -> Self {
        Self { target, sql, args: Vec::new() }
    }

    pub(crate) fn with_args(mut self, args: Vec<Value>) -> Self {
        self.args = args;
        self
    }

    /// Binds the next `$n` argument.
    pub fn bind(mut self, value: impl Into<Value>) -> Self {
        self.args.push(value.into());
        self
    }

    /// The rows (only the first when `one`), decoded.
    async fn rows<T: FromRow>(self, one: bool) -> Result<Vec<T>, StoreError> {
        count_statement();
        let Query { target, sql, args } = self;
        match target {
            Target::Sqlite { engine, write } => engine.fetch(write, sql.into_owned(), args, one).await,
            Target::SqliteTx(tx) => tx.fetch(sql.into_owned(), args, one).await,
            Target::PgPool(pool) => pg_rows(pg_query(sql, args), pool, one).await,
            Target::PgConn(conn) => pg_rows(pg_query(sql, args), conn, one).await,
        }
    }

    /// Exactly one row, or `RowNotFound`.
    pub async fn fetch_one<T: FromRow>(self) -> Result<T, StoreError> {
        self.rows(true).await?.into_iter().next().ok_or(StoreError::RowNotFound)
    }

    /// Zero or one row.
    pub async fn fetch_optional<T: FromRow>(self) -> Result<Option<T>, StoreError> {
        Ok(self.rows(true).await?.into_iter().next())
    }

    /// Every row.
    pub async fn fetch_all<T: FromRow>(self) -> Result<Vec<T>, StoreError> {
        self.rows(false).await
    }

    /// Runs the statement; returns the number of rows it changed.
    pub async fn execute(self) -> Result<u64, StoreError> {
        count_statement();
        let Query { target, sql, args } = self;
        Ok(match target {
            Target::Sqlite { engine, write } => engine.execute(write, sql.into_owned(), args).await?,
            Target::SqliteTx(tx) => tx.execute(sql.into_owned(), args).await?,
            Target::PgPool(pool) => pg_query(sql, args).execute(pool).await?.rows_affected(),
            Target::PgConn(conn) => pg_query(sql, args).execute(conn).await?.rows_affected(),
        })
    }
}

/// Statements run, for `/metrics` (`oppidum_db_statements_total`): divided by requests, the
/// queries per request the benchmarks print.
pub(super) fn count_statement() {
    metrics::counter!("oppidum_db_statements_total").increment(1);
}

/// Runs a PostgreSQL statement; only its first row is fetched when `one`.
async fn pg_rows<'e, T, E>(
    query: sqlx::query::Query<'static, Postgres, PgArguments>,
    executor: E,
    one: bool,
) -> Result<Vec<T>, StoreError>
where
    T: FromRow,
    E: sqlx::Executor<'e, Database = Postgres>,
{
    let rows = if one {
        query.fetch_optional(executor).await?.into_iter().collect()
    } else {
        query.fetch_all(executor).await?
    };
    decode_pg::<T>(&rows)
}
