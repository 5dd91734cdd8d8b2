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
}

fn number(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

impl FromRow for JsonRow {
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
        let value = match row.get_ref(i).map_err(|err| DecodeError::new(&name, err))? {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::from(i),
            ValueRef::Real(f) => number(f),
            ValueRef::Text(bytes) => Value::String(String::from_utf8_lossy(bytes).into_owned()),
            ValueRef::Blob(bytes) => match Uuid::from_slice(bytes) {
                Ok(uuid) if bytes.len() == 16 => Value::String(uuid.to_string()),
                _ => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
            },
        };
        out.push((name, value));
    }
    Ok(JsonRow(out))
}

fn from_postgres(row: &PgRow) -> Result<JsonRow, sqlx::Error> {
    let mut out = Vec::with_capacity(row.columns().len());
    for (i, column) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i)?;
        let value = if raw.is_null() {
            Value::Null
        } else {
            match column.type_info().name() {
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
                "BYTEA" => {
                    Value::String(base64::engine::general_purpose::STANDARD.encode(row.try_get::<Vec<u8>, _>(i)?))
                }
                // NUMERIC has no lossless native decoding here: read as text by the query
                // (`CAST(x AS TEXT)`) when exact digits matter.
                _ => Value::String(row.try_get::<String, _>(i)?),
            }
        };
        out.push((column.name().to_owned(), value));
    }
    Ok(JsonRow(out))
}
