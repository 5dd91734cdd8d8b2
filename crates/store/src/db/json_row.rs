//! Rows whose columns are only known at run time (the data API's app tables), decoded from
//! either engine into JSON values: integers, floats, text, booleans, JSON, UUIDs (as text),
//! timestamps (RFC 3339) and dates. SQLite stores values, not column types: a 16-byte blob reads
//! as a UUID (how UUIDs are bound), other blobs as base64, and booleans and times as the integer
//! or text they were stored as; callers that know the schema normalize those.

use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Map, Value};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Column, FromRow, Row, TypeInfo, ValueRef};
use uuid::Uuid;

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

impl<'r> FromRow<'r, SqliteRow> for JsonRow {
    fn from_row(row: &'r SqliteRow) -> Result<Self, sqlx::Error> {
        let mut out = Vec::with_capacity(row.columns().len());
        for (i, column) in row.columns().iter().enumerate() {
            let raw = row.try_get_raw(i)?;
            let value = if raw.is_null() {
                Value::Null
            } else {
                match raw.type_info().name() {
                    "INTEGER" => Value::from(row.try_get::<i64, _>(i)?),
                    "REAL" => number(row.try_get::<f64, _>(i)?),
                    "BLOB" => {
                        let bytes: Vec<u8> = row.try_get(i)?;
                        match Uuid::from_slice(&bytes) {
                            Ok(uuid) if bytes.len() == 16 => Value::String(uuid.to_string()),
                            _ => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
                        }
                    }
                    _ => Value::String(row.try_get::<String, _>(i)?),
                }
            };
            out.push((column.name().to_owned(), value));
        }
        Ok(JsonRow(out))
    }
}

impl<'r> FromRow<'r, PgRow> for JsonRow {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
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
}
