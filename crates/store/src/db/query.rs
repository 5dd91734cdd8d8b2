//! The dispatch helper: a statement and its arguments, run on whichever engine is active.
//! Arguments are collected as typed [`Value`]s (a typed `NULL` too, which PostgreSQL needs) and
//! bound in order on the chosen connection.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, FromRow, PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool};
use uuid::Uuid;

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
    SqlitePool(&'c SqlitePool),
    PgPool(&'c PgPool),
    SqliteConn(&'c mut SqliteConnection),
    PgConn(&'c mut PgConnection),
}

/// A statement with its arguments, ready to run.
#[must_use = "a query does nothing until it is run"]
pub struct Query<'c> {
    target: Target<'c>,
    sql: Cow<'static, str>,
    args: Vec<Value>,
}

macro_rules! bind_all {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
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
    }};
}

/// Runs `$method` with a `query_as` built for the target's engine.
macro_rules! fetch {
    ($self:ident, $method:ident) => {{
        let Query { target, sql, args } = $self;
        let sql = AssertSqlSafe(sql);
        match target {
            Target::SqlitePool(pool) => bind_all!(sqlx::query_as::<Sqlite, T>(sql), args).$method(pool).await,
            Target::PgPool(pool) => bind_all!(sqlx::query_as::<Postgres, T>(sql), args).$method(pool).await,
            Target::SqliteConn(conn) => bind_all!(sqlx::query_as::<Sqlite, T>(sql), args).$method(conn).await,
            Target::PgConn(conn) => bind_all!(sqlx::query_as::<Postgres, T>(sql), args).$method(conn).await,
        }
        .map_err(StoreError::from)
    }};
}

/// A row type that decodes from both engines.
pub trait AnyRow: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}
impl<T> AnyRow for T where T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}

impl<'c> Query<'c> {
    pub(crate) fn new(target: Target<'c>, sql: Cow<'static, str>) -> Self {
        Self { target, sql, args: Vec::new() }
    }

    /// Binds the next `$n` argument.
    pub fn bind(mut self, value: impl Into<Value>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Exactly one row, or `RowNotFound`.
    pub async fn fetch_one<T: AnyRow>(self) -> Result<T, StoreError> {
        fetch!(self, fetch_one)
    }

    /// Zero or one row.
    pub async fn fetch_optional<T: AnyRow>(self) -> Result<Option<T>, StoreError> {
        fetch!(self, fetch_optional)
    }

    /// Every row.
    pub async fn fetch_all<T: AnyRow>(self) -> Result<Vec<T>, StoreError> {
        fetch!(self, fetch_all)
    }

    /// Runs the statement; returns the number of rows it changed.
    pub async fn execute(self) -> Result<u64, StoreError> {
        let Query { target, sql, args } = self;
        let sql = AssertSqlSafe(sql);
        let affected = match target {
            Target::SqlitePool(pool) => {
                bind_all!(sqlx::query::<Sqlite>(sql), args).execute(pool).await?.rows_affected()
            }
            Target::PgPool(pool) => bind_all!(sqlx::query::<Postgres>(sql), args).execute(pool).await?.rows_affected(),
            Target::SqliteConn(conn) => {
                bind_all!(sqlx::query::<Sqlite>(sql), args).execute(conn).await?.rows_affected()
            }
            Target::PgConn(conn) => bind_all!(sqlx::query::<Postgres>(sql), args).execute(conn).await?.rows_affected(),
        };
        Ok(affected)
    }
}
