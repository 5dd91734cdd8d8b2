//! Rows whose columns are only known at run time (the data API's app tables), decoded from
//! either engine into JSON values: integers, floats, text, booleans, JSON, UUIDs (as text),
//! timestamps (RFC 3339) and dates. SQLite stores values, not column types: a 16-byte blob reads
//! as a UUID (how UUIDs are bound), other blobs as base64, and booleans and times as the integer
//! or text they were stored as; callers that know the schema normalize those.

use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rusqlite::types::ValueRef;
use serde_json::{Map, Value};
use sqlx::postgres::PgRow;
use sqlx::{Column, Row as _, TypeInfo, ValueRef as _};
use uuid::Uuid;

use super::row::{DecodeError, EngineRow, FromRow, Row};

/// A row as JSON values, column by column in the order selected.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JsonRow(pub Vec<(String, Value)>);

impl JsonRow {
    /// The value of a column.
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.0.iter().find(|(name, _)| name == column).map(|(_, value)| value)
    }

    /// As a JSON object (keys sorted).
    pub fn into_object(self) -> Map<String, Value> {
        self.0.into_iter().collect()
    }

    /// The values alone, in the order selected.
    pub fn into_values(self) -> JsonValues {
        JsonValues(self.0.into_iter().map(|(_, value)| value).collect())
    }
}

/// A row as JSON values in the order selected, without the column names (for callers that
/// know them already: decoding is then one allocation less per column).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JsonValues(pub Vec<Value>);

impl FromRow for JsonValues {
    const COLUMNS: usize = 0;

    fn from_row(row: &Row<'_>) -> Result<Self, DecodeError> {
        match row.engine() {
            EngineRow::Sqlite(row) => {
                let count = row.as_ref().column_count();
                let mut out = Vec::with_capacity(count);
                for i in 0..count {
                    out.push(sqlite_value(row.get_ref(i).map_err(|err| DecodeError::new(i, err))?));
                }
                Ok(Self(out))
            }
            EngineRow::Postgres(row) => {
                let mut out = Vec::with_capacity(row.columns().len());
                for (i, column) in row.columns().iter().enumerate() {
                    out.push(postgres_value(row, i, column).map_err(|err| DecodeError::new(i, err))?);
                }
                Ok(Self(out))
            }
        }
    }
}

fn number(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

impl FromRow for JsonRow {
    const COLUMNS: usize = 0;

    fn from_row(row: &Row<'_>) -> Result<Self, DecodeError> {
        match row.engine() {
            EngineRow::Sqlite(row) => from_sqlite(row),
            EngineRow::Postgres(row) => from_postgres(row).map_err(|err| DecodeError::new("?", err)),
        }
    }
}

fn from_sqlite(row: &rusqlite::Row<'_>) -> Result<JsonRow, DecodeError> {
    let statement = row.as_ref();
    let mut out = Vec::with_capacity(statement.column_count());
    for i in 0..statement.column_count() {
        let name = statement.column_name(i).map_err(|err| DecodeError::new(i, err))?.to_owned();
        let value = sqlite_value(row.get_ref(i).map_err(|err| DecodeError::new(&name, err))?);
        out.push((name, value));
    }
    Ok(JsonRow(out))
}

fn sqlite_value(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => number(f),
        // Validating first is the quick path (the text is almost always UTF-8).
        ValueRef::Text(bytes) => Value::String(match std::str::from_utf8(bytes) {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(bytes).into_owned(),
        }),
        ValueRef::Blob(bytes) => match Uuid::from_slice(bytes) {
            Ok(uuid) if bytes.len() == 16 => Value::String(uuid.to_string()),
            _ => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        },
    }
}

fn from_postgres(row: &PgRow) -> Result<JsonRow, sqlx::Error> {
    let mut out = Vec::with_capacity(row.columns().len());
    for (i, column) in row.columns().iter().enumerate() {
        out.push((column.name().to_owned(), postgres_value(row, i, column)?));
    }
    Ok(JsonRow(out))
}

fn postgres_value(row: &PgRow, i: usize, column: &sqlx::postgres::PgColumn) -> Result<Value, sqlx::Error> {
    if row.try_get_raw(i)?.is_null() {
        return Ok(Value::Null);
    }
    Ok(match column.type_info().name() {
        "INT8" => Value::from(row.try_get::<i64, _>(i)?),
        "INT4" => Value::from(row.try_get::<i32, _>(i)?),
        "INT2" => Value::from(row.try_get::<i16, _>(i)?),
        "FLOAT8" => number(row.try_get::<f64, _>(i)?),
        "FLOAT4" => number(f64::from(row.try_get::<f32, _>(i)?)),
        "BOOL" => Value::Bool(row.try_get::<bool, _>(i)?),
        "UUID" => Value::String(row.try_get::<Uuid, _>(i)?.to_string()),
        "TIMESTAMPTZ" => Value::String(row.try_get::<DateTime<Utc>, _>(i)?.to_rfc3339()),
        // A time without zone (databases made elsewhere): read as UTC.
        "TIMESTAMP" => Value::String(row.try_get::<NaiveDateTime, _>(i)?.and_utc().to_rfc3339()),
        "DATE" => Value::String(row.try_get::<NaiveDate, _>(i)?.to_string()),
        "JSON" | "JSONB" => row.try_get::<Value, _>(i)?,
        "BYTEA" => Value::String(base64::engine::general_purpose::STANDARD.encode(row.try_get::<Vec<u8>, _>(i)?)),
        // NUMERIC has no lossless native decoding here: read as text by the query
        // (`CAST(x AS TEXT)`) when exact digits matter.
        _ => Value::String(row.try_get::<String, _>(i)?),
    })
}
