//! Rows decoded the same way on both engines. A [`Row`] is borrowed from the engine's own row
//! (SQLite rows on the database thread, PostgreSQL rows as sqlx returns them); [`FromRow`] types
//! read columns by name (`#[derive(FromRow)]`) or by position (tuples), each value through
//! [`Decode`]. SQLite stores values, not column types, so decoding there follows what Oppidum
//! binds: UUIDs as 16-byte blobs, times as RFC 3339 text, booleans as integers, JSON as text —
//! and accepts the other spellings SQLite itself produces (`CURRENT_TIMESTAMP`, integers as text).

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::types::ValueRef;
use sqlx::Row as _;
use sqlx::postgres::PgRow;
use uuid::Uuid;

pub use sqlx::types::Json;

use super::sqlite::time;

/// Why a row did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct DecodeError {
    pub column: String,
    pub message: String,
}

impl DecodeError {
    pub(crate) fn new(column: impl std::fmt::Display, message: impl std::fmt::Display) -> Self {
        Self { column: column.to_string(), message: message.to_string() }
    }
}

/// One row of a result, on either engine; or the columns of one from a position on (see
/// [`Row::after`]), for a statement selecting two tables' columns side by side.
pub struct Row<'r>(Inner<'r>, usize);

#[derive(Clone, Copy)]
enum Inner<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r PgRow),
}

impl<'r> Row<'r> {
    pub(crate) fn sqlite(row: &'r rusqlite::Row<'r>) -> Self {
        Self(Inner::Sqlite(row), 0)
    }

    pub(crate) fn postgres(row: &'r PgRow) -> Self {
        Self(Inner::Postgres(row), 0)
    }

    /// The columns from position `skip` on (of this view), as a row of their own: a statement
    /// selecting a user's columns then an organization's decodes each from its own view.
    pub fn after(&self, skip: usize) -> Row<'r> {
        Row(self.0, self.1 + skip)
    }

    /// The value of the column named `column` (the first of that name in this view).
    pub fn get<T: Decode>(&self, column: &str) -> Result<T, DecodeError> {
        let missing = || DecodeError::new(column, "no such column");
        match &self.0 {
            Inner::Sqlite(row) => {
                let statement = row.as_ref();
                let index = (self.1..statement.column_count())
                    .find(|&i| statement.column_name(i).is_ok_and(|name| name.eq_ignore_ascii_case(column)))
                    .ok_or_else(missing)?;
                let value = row.get_ref(index).map_err(|err| DecodeError::new(column, err))?;
                T::from_sqlite(value).map_err(|message| DecodeError::new(column, message))
            }
            Inner::Postgres(row) => {
                let index = (self.1..row.columns().len())
                    .find(|&i| sqlx::Column::name(&row.columns()[i]) == column)
                    .ok_or_else(missing)?;
                T::from_postgres(row, index).map_err(|err| DecodeError::new(column, err))
            }
        }
    }

    /// The value of the column named `column`, looked for at `index` first: the derived
    /// [`FromRow`] passes each field's position, which is where a query usually selects it.
    pub fn get_near<T: Decode>(&self, column: &str, index: usize) -> Result<T, DecodeError> {
        let index = index + self.1;
        let at_index = match &self.0 {
            Inner::Sqlite(row) => row.as_ref().column_name(index).is_ok_and(|name| name == column),
            Inner::Postgres(row) => row.columns().get(index).is_some_and(|c| sqlx::Column::name(c) == column),
        };
        if at_index {
            self.get_at(index - self.1).map_err(|err| DecodeError::new(column, err.message))
        } else {
            self.get(column)
        }
    }

    /// The value of the column at `index` (from 0, in this view).
    pub fn get_at<T: Decode>(&self, index: usize) -> Result<T, DecodeError> {
        let index = index + self.1;
        match &self.0 {
            Inner::Sqlite(row) => {
                let value = row.get_ref(index).map_err(|err| DecodeError::new(index, err))?;
                T::from_sqlite(value).map_err(|message| DecodeError::new(index, message))
            }
            Inner::Postgres(row) => T::from_postgres(row, index).map_err(|err| DecodeError::new(index, err)),
        }
    }

    /// How many columns the row (this view) has.
    pub fn len(&self) -> usize {
        let all = match &self.0 {
            Inner::Sqlite(row) => row.as_ref().column_count(),
            Inner::Postgres(row) => row.len(),
        };
        all.saturating_sub(self.1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole row, whatever the view: for decoders of every column.
    pub(crate) fn engine(&self) -> EngineRow<'_> {
        match &self.0 {
            Inner::Sqlite(row) => EngineRow::Sqlite(row),
            Inner::Postgres(row) => EngineRow::Postgres(row),
        }
    }
}

/// The engine's row, for decoders that look at column types ([`super::JsonRow`]).
pub(crate) enum EngineRow<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r PgRow),
}

/// A type a whole row decodes into: `#[derive(FromRow)]` structs and tuples.
pub trait FromRow: Sized + Send + 'static {
    /// How many columns, from the start of its view, a row of this type reads: one per field of
    /// a derived struct, one per element of a tuple; 0 for types taking every column there is.
    /// What [`Row::after`] skips to decode the next type selected alongside.
    const COLUMNS: usize;

    fn from_row(row: &Row<'_>) -> Result<Self, DecodeError>;
}

/// A type one column decodes into.
pub trait Decode: Sized {
    /// From an SQLite value (`NULL` included: only `Option` accepts it).
    fn from_sqlite(value: ValueRef<'_>) -> Result<Self, String>;
    /// From column `index` of a PostgreSQL row.
    fn from_postgres(row: &PgRow, index: usize) -> Result<Self, sqlx::Error>;
}

fn unexpected(value: ValueRef<'_>, wanted: &str) -> String {
    format!("a {} value where {wanted} was expected", value.data_type())
}

fn text<'a>(value: ValueRef<'a>, wanted: &str) -> Result<&'a str, String> {
    match value {
        ValueRef::Text(bytes) => std::str::from_utf8(bytes).map_err(|_| "text that is not UTF-8".to_owned()),
        other => Err(unexpected(other, wanted)),
    }
}

macro_rules! postgres_via_sqlx {
    () => {
        fn from_postgres(row: &PgRow, index: usize) -> Result<Self, sqlx::Error> {
            row.try_get(index)
        }
    };
}

impl Decode for i64 {
    fn from_sqlite(value: ValueRef<'_>) -> Result<Self, String> {
        match value {
            ValueRef::Integer(i) => Ok(i),
            #[allow(clippy::cast_possible_truncation)]
            ValueRef::Real(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
            ValueRef::Text(_) => text(value, "an integer")?.trim().parse().map_err(|_| unexpected(value, "an integer")),
            other => Err(unexpected(other, "an integer")),
        }
    }
    postgres_via_sqlx!();
}

macro_rules! narrow_integer {
    ($($ty:ty),*) => {$(
        impl Decode for $ty {
            fn from_sqlite(value: ValueRef<'_>) -> Result<Self, String> {
                let wide = i64::from_sqlite(value)?;
                <$ty>::try_from(wide).map_err(|_| format!("{wide} is out of range for {}", stringify!($ty)))
            }
            postgres_via_sqlx!();
        }
    )*};
}
narrow_integer!(i32, i16);

impl Decode for u32 {
    fn from_sqlite(value: ValueRef<'_>) -> Result<Self, String> {
        let wide = i64::from_sqlite(value)?;
        u32::try_from(wide).map_err(|_| format!("{wide} is out of range for u32"))
    }
    fn from_postgres(row: &PgRow, index: usize) -> Result<Self, sqlx::Error> {
        let wide: i64 = row.try_get(index)?;
        u32::try_from(wide).map_err(|err| sqlx::Error::Decode(Box::new(err)))
    }
}

impl Decode for f64 {
    fn from_sqlite(value: ValueRef<'_>) -> Result<Self, String> {
        match value {
            ValueRef::Real(f) => Ok(f),
            #[allow(clippy::cast_precision_loss)]
            ValueRef::Integer(i) => Ok(i as f64),
            ValueRef::Text(_) => text(value, "a number")?.trim().parse().map_err(|_| unexpected(value, "a number")),
            other => Err(unexpected(other, "a number")),
        }
    }
    postgres_via_sqlx!();
}

impl Decode for bool {
    fn from_sqlite(value: ValueRef<'_>) -> Result<Self, String> {
        match value {
            ValueRef::Integer(i) => Ok(i != 0),
            ValueRef::Real(f) => Ok(f != 0.0),
            other => Err(unexpected(other, "a boolean")),
        }
    }
    postgres_via_sqlx!();
}

impl Decode for String {
    fn from_sqlite(value: ValueRef<'_>) -> Result<Self, String> {
        match value {
            ValueRef::Text(_) => text(value, "text").map(str::to_owned),
            ValueRef::Integer(i) => Ok(i.to_string()),
            ValueRef::Real(f) => Ok(f.to_string()),
            ValueRef::Blob(bytes) => String::from_utf8(bytes.to_vec()).map_err(|_| unexpected(value, "text")),
            ValueRef::Null => Err(unexpected(value, "text")),
        }
    }
    postgres_via_sqlx!();
}

impl Decode for Vec<u8> {
    fn from_sqlite(value: ValueRef<'_>) -> Result<Self, String> {
        match value {
            ValueRef::Blob(bytes) | ValueRef::Text(bytes) => Ok(bytes.to_vec()),
            other => Err(unexpected(other, "bytes")),
        }
    }
    postgres_via_sqlx!();
}

impl Decode for Uuid {
    fn from_sqlite(value: ValueRef<'_>) -> Result<Self, String> {
        match value {
            ValueRef::Blob(bytes) => {
                Uuid::from_slice(bytes).map_err(|_| format!("a {}-byte blob for a UUID", bytes.len()))
            }
            ValueRef::Text(_) => text(value, "a UUID")?.parse().map_err(|_| unexpected(value, "a UUID")),
            other => Err(unexpected(other, "a UUID")),
        }
    }
    postgres_via_sqlx!();
}

impl Decode for DateTime<Utc> {
    fn from_sqlite(value: ValueRef<'_>) -> Result<Self, String> {
        let parsed = match value {
            ValueRef::Text(_) => time::parse(text(value, "a time")?),
            ValueRef::Integer(seconds) => DateTime::from_timestamp(seconds, 0),
            ValueRef::Real(julian_day) => time::from_julian_day(julian_day),
            other => return Err(unexpected(other, "a time")),
        };
        parsed.ok_or_else(|| unexpected(value, "a time"))
    }
    postgres_via_sqlx!();
}

impl Decode for NaiveDate {
    fn from_sqlite(value: ValueRef<'_>) -> Result<Self, String> {
        let raw = text(value, "a date")?;
        NaiveDate::parse_from_str(raw, "%F").map_err(|_| format!("`{raw}` is not a date"))
    }
    postgres_via_sqlx!();
}

impl Decode for serde_json::Value {
    fn from_sqlite(value: ValueRef<'_>) -> Result<Self, String> {
        match value {
            ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
                serde_json::from_slice(bytes).map_err(|err| format!("invalid JSON: {err}"))
            }
            ValueRef::Integer(i) => Ok(i.into()),
            ValueRef::Real(f) => Ok(serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, Into::into)),
            ValueRef::Null => Err(unexpected(value, "JSON")),
        }
    }
    postgres_via_sqlx!();
}

impl<T> Decode for Json<T>
where
    T: serde::de::DeserializeOwned,
{
    fn from_sqlite(value: ValueRef<'_>) -> Result<Self, String> {
        match value {
            ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
                serde_json::from_slice(bytes).map(Json).map_err(|err| format!("invalid JSON: {err}"))
            }
            other => Err(unexpected(other, "JSON")),
        }
    }
    fn from_postgres(row: &PgRow, index: usize) -> Result<Self, sqlx::Error> {
        let value: Json<serde_json::Value> = row.try_get(index)?;
        serde_json::from_value(value.0).map(Json).map_err(|err| sqlx::Error::Decode(Box::new(err)))
    }
}

impl<T: Decode> Decode for Option<T> {
    fn from_sqlite(value: ValueRef<'_>) -> Result<Self, String> {
        match value {
            ValueRef::Null => Ok(None),
            other => T::from_sqlite(other).map(Some),
        }
    }
    fn from_postgres(row: &PgRow, index: usize) -> Result<Self, sqlx::Error> {
        let raw = row.try_get_raw(index)?;
        if sqlx::ValueRef::is_null(&raw) { Ok(None) } else { T::from_postgres(row, index).map(Some) }
    }
}

macro_rules! tuple_rows {
    ($(($($ty:ident $index:tt),+))*) => {$(
        impl<$($ty: Decode + Send + 'static),+> FromRow for ($($ty,)+) {
            const COLUMNS: usize = [$(stringify!($ty)),+].len();

            fn from_row(row: &Row<'_>) -> Result<Self, DecodeError> {
                Ok(($(row.get_at::<$ty>($index)?,)+))
            }
        }
    )*};
}

tuple_rows! {
    (A 0)
    (A 0, B 1)
    (A 0, B 1, C 2)
    (A 0, B 1, C 2, D 3)
    (A 0, B 1, C 2, D 3, E 4)
    (A 0, B 1, C 2, D 3, E 4, F 5)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9)
}
