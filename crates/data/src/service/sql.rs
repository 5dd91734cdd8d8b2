//! Building statements over an app's tables: numbered parameters collected as typed values,
//! compiled expressions appended with the right numbering, the columns a row is read with, and
//! rows decoded back into the JSON callers see (the same on SQLite and PostgreSQL).

use chrono::{DateTime, SecondsFormat, Utc};
use oppidum_core::{Error, ErrorKind};
use oppidum_store::{Db, JsonValues, Tx, Value};
use serde_json::{Map, Value as Json};
use uuid::Uuid;

use crate::compile::{Auth, compile};
use crate::ddl::owner_field;
use crate::expr::Expr;
use crate::schema::{Field, FieldType, SchemaFile, Scope, Table};
use crate::values::Typed;

/// A statement under construction and its parameters (`$1`, `$2`, … in order).
#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub params: Vec<Value>,
}

impl Sql {
    /// Adds a parameter; returns its placeholder.
    pub fn param(&mut self, value: impl Into<Value>) -> String {
        self.params.push(value.into());
        format!("${}", self.params.len())
    }

    /// Compiles `expr` over `table` for `auth`, numbering its parameters after the ones so far.
    pub fn expr(&mut self, schema: &SchemaFile, table: &Table, expr: &Expr, auth: &Auth) -> Result<String, String> {
        let condition = compile(schema, table, expr, auth, self.params.len() + 1)?;
        self.params.extend(condition.params.into_iter().map(Value::from));
        Ok(format!("({})", condition.sql))
    }

    pub fn run<'c>(self, db: &'c Db, text: String) -> oppidum_store::db::Query<'c> {
        bind(db.query_dynamic(text), self.params)
    }

    pub fn run_in<'c>(self, tx: &'c mut Tx, text: String) -> oppidum_store::db::Query<'c> {
        bind(tx.query_dynamic(text), self.params)
    }
}

fn bind(mut query: oppidum_store::db::Query<'_>, params: Vec<Value>) -> oppidum_store::db::Query<'_> {
    for param in params {
        query = query.bind(param);
    }
    query
}

impl From<Typed> for Value {
    fn from(value: Typed) -> Self {
        match value {
            Typed::Null => Value::Text(None),
            Typed::Int(v) => Value::I64(Some(v)),
            Typed::Float(v) => Value::F64(Some(v)),
            Typed::Bool(v) => Value::Bool(Some(v)),
            Typed::Text(v) => Value::Text(Some(v)),
            Typed::Date(v) => Value::Date(Some(v)),
            Typed::DateTime(v) => Value::Time(Some(v)),
            Typed::Uuid(v) => Value::Uuid(Some(v)),
            Typed::Json(v) => Value::Json(Some(v)),
        }
    }
}

/// A typed value for binding into a column of `field`: `NULL` keeps the column's type (PostgreSQL
/// refuses a text `NULL` for a UUID column).
pub(crate) fn bindable(schema: &SchemaFile, field: &Field, value: Typed) -> Value {
    if value != Typed::Null {
        return value.into();
    }
    if field.encrypt || field.hash {
        return Value::Text(None);
    }
    match schema.value_kind(field) {
        FieldType::Int => Value::I64(None),
        FieldType::Float | FieldType::Decimal => Value::F64(None),
        FieldType::Bool => Value::Bool(None),
        FieldType::Date => Value::Date(None),
        FieldType::Datetime => Value::Time(None),
        FieldType::Json => Value::Json(None),
        FieldType::Uuid | FieldType::File | FieldType::Relation => Value::Uuid(None),
        FieldType::String | FieldType::Text | FieldType::Enum => Value::Text(None),
    }
}

/// `"name"`: names are checked identifiers, quoting keeps them from clashing with keywords.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{name}\"")
}

/// The primary field of a table (schemas have exactly one).
pub(crate) fn primary(table: &Table) -> (&str, &Field) {
    table
        .fields
        .iter()
        .find(|(_, f)| f.primary)
        .map(|(n, f)| (n.as_str(), f))
        .unwrap_or_else(|| table.fields.first().map(|(n, f)| (n.as_str(), f)).unwrap_or(("id", &FALLBACK)))
}

/// Never used: loaded schemas have exactly one primary field.
static FALLBACK: std::sync::LazyLock<Field> = std::sync::LazyLock::new(|| Field::plain(FieldType::Uuid));

/// A row id from a URL, typed as the primary key; `None` when it cannot be one (so: not found).
pub(crate) fn parse_id(schema: &SchemaFile, table: &Table, id: &str) -> Option<Value> {
    let (_, field) = primary(table);
    match schema.value_kind(field) {
        FieldType::Int => id.parse::<i64>().ok().map(Value::from),
        FieldType::Uuid => Uuid::parse_str(id).ok().map(Value::from),
        _ if !id.is_empty() && id.len() <= 1024 => Some(Value::from(id)),
        _ => None,
    }
}

/// A value callers saw (or a row read as JSON) bound again as `column`'s type; `None` for null
/// or a value that cannot be one.
pub(crate) fn json_value(schema: &SchemaFile, table: &Table, column: &str, value: &Json) -> Option<Value> {
    if value.is_null() {
        return None;
    }
    match table.fields.get(column) {
        Some(field) => {
            let typed = crate::values::convert(schema, field, value).ok()?;
            Some(bindable(schema, field, typed))
        }
        None if column == "row_version" => value.as_i64().map(Value::from),
        None if matches!(column, "created_at" | "updated_at" | "deleted_at") => {
            value.as_str().and_then(time_text).as_deref().and_then(parse_time).map(Value::from)
        }
        None => value.as_str().and_then(|t| Uuid::parse_str(t).ok()).map(Value::from),
    }
}

/// How a selected column is turned into JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Out {
    Plain,
    Bool,
    Json,
    Time,
    Decimal,
    Sealed,
}

/// A column a row is read with.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub name: String,
    pub out: Out,
}

/// The columns callers may see, in order: declared fields (never `hash` ones), the owner or
/// organization, then the managed ones.
pub(crate) fn columns(schema: &SchemaFile, table: &Table) -> Vec<Column> {
    let mut out = Vec::new();
    for (name, field) in &table.fields {
        if field.hash {
            continue;
        }
        let kind = if field.encrypt {
            Out::Sealed
        } else {
            match schema.value_kind(field) {
                FieldType::Bool => Out::Bool,
                FieldType::Json => Out::Json,
                FieldType::Datetime => Out::Time,
                FieldType::Decimal => Out::Decimal,
                _ => Out::Plain,
            }
        };
        out.push(Column { name: name.clone(), out: kind });
    }
    match table.scope {
        Scope::Owner if !table.fields.contains_key(owner_field(table)) => {
            out.push(Column { name: owner_field(table).to_owned(), out: Out::Plain });
        }
        Scope::Org if !table.fields.contains_key("org_id") => {
            out.push(Column { name: "org_id".into(), out: Out::Plain });
        }
        _ => {}
    }
    for managed in ["created_at", "updated_at"] {
        out.push(Column { name: managed.into(), out: Out::Time });
    }
    out.push(Column { name: "row_version".into(), out: Out::Plain });
    if table.soft_delete {
        out.push(Column { name: "deleted_at".into(), out: Out::Time });
    }
    out
}

/// The select list for `columns`, qualified by `alias` (decimals read as text: exact digits).
pub(crate) fn select_list(columns: &[Column]) -> String {
    columns
        .iter()
        .map(|c| match c.out {
            Out::Decimal => format!("CAST({0} AS TEXT) AS {0}", quote(&c.name)),
            _ => quote(&c.name),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A stored time as callers see it: RFC 3339, UTC, microseconds.
pub(crate) fn time_text(value: &str) -> Option<String> {
    if let Some(text) = utc_text(value) {
        return Some(text);
    }
    let parsed = DateTime::parse_from_rfc3339(value)
        .or_else(|_| DateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .ok()?;
    Some(parsed.to_utc().to_rfc3339_opts(SecondsFormat::Micros, true))
}

/// The common case without parsing: a time already in UTC, `YYYY-MM-DDTHH:MM:SS[.f…]` followed by
/// `+00:00` or `Z` (how both engines store times), with its fraction cut or padded to six digits —
/// what formatting the parsed time would give.
fn utc_text(value: &str) -> Option<String> {
    let rest = value.strip_suffix("+00:00").or_else(|| value.strip_suffix('Z'))?;
    let (seconds, fraction) = rest.split_at_checked(19)?;
    let shape = seconds.bytes().enumerate().all(|(i, b)| match i {
        4 | 7 => b == b'-',
        10 => b == b'T',
        13 | 16 => b == b':',
        _ => b.is_ascii_digit(),
    });
    let digits = match fraction.strip_prefix('.') {
        Some(digits) if (1..=9).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) => digits,
        None if fraction.is_empty() => "",
        _ => return None,
    };
    // Field ranges (a month 13, a minute 61) are left to the parser.
    let field = |at: usize| seconds[at..at + 2].parse::<u32>().unwrap_or(99);
    if !shape || field(5) > 12 || field(8) > 31 || field(11) > 23 || field(14) > 59 || field(17) > 59 {
        return None;
    }
    let mut out = String::with_capacity(27);
    out.push_str(seconds);
    out.push('.');
    out.push_str(&digits[..digits.len().min(6)]);
    out.extend(std::iter::repeat_n('0', 6 - digits.len().min(6)));
    out.push('Z');
    Some(out)
}

/// Parses a time callers were given back (cursors).
pub(crate) fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value).ok().map(|t| t.to_utc())
}

/// Opens sealed values for callers allowed to read them (`open` returns `None` otherwise).
pub(crate) type Opener<'a> = &'a dyn Fn(&str, &str) -> Option<Json>;

/// A row as callers see it.
pub(crate) fn output(columns: &[Column], row: JsonValues, open: Option<Opener<'_>>) -> Map<String, Json> {
    let mut out = Map::new();
    for (column, value) in columns.iter().zip(row.0) {
        if let Some(value) = value_out(column, value, open) {
            out.insert(column.name.clone(), value);
        }
    }
    out
}

/// A column's stored value as callers see it; `None` for a sealed value they may not open.
pub(crate) fn value_out(column: &Column, value: Json, open: Option<Opener<'_>>) -> Option<Json> {
    Some(match (column.out, value) {
        (_, Json::Null) => Json::Null,
        (Out::Bool, Json::Number(n)) => Json::Bool(n.as_i64().unwrap_or(0) != 0),
        (Out::Json, Json::String(text)) => serde_json::from_str(&text).unwrap_or(Json::String(text)),
        (Out::Time, Json::String(text)) => Json::String(time_text(&text).unwrap_or(text)),
        (Out::Decimal, Json::String(text)) => {
            text.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or(Json::String(text), Json::Number)
        }
        (Out::Sealed, Json::String(sealed)) => open?(&column.name, &sealed)?,
        (_, value) => value,
    })
}

/// An error of the data API.
pub(crate) fn err(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Error {
    Error::new(kind, code, message)
}

#[cfg(test)]
mod time_tests {
    use super::*;

    /// What parsing and formatting gives, for the fast path to agree with.
    fn slow(value: &str) -> Option<String> {
        let parsed = DateTime::parse_from_rfc3339(value).ok()?;
        Some(parsed.to_utc().to_rfc3339_opts(SecondsFormat::Micros, true))
    }

    #[test]
    fn stored_utc_times_are_rewritten_as_parsing_would() {
        for value in [
            "2026-12-03T07:02:48+00:00",
            "2026-12-03T07:02:48.8+00:00",
            "2026-12-03T07:02:48.814124+00:00",
            "2026-12-03T07:02:48.814124781+00:00",
            "2026-12-03T07:02:48.814124781Z",
            "2026-01-31T23:59:59.000001Z",
        ] {
            assert_eq!(utc_text(value), slow(value), "{value}");
            assert_eq!(time_text(value), slow(value), "{value}");
        }
    }

    #[test]
    fn other_spellings_go_to_the_parser() {
        for value in [
            "2026-12-03T08:02:48+01:00",
            "2026-12-03 07:02:48+00:00",
            "2026-13-03T07:02:48Z",
            "2026-12-03T07:02:48.Z",
            "2026-12-03T07:02:48.1234567890Z",
            "2026-12-03T07:02Z",
            "é026-12-03T07:02:48Z",
            "",
        ] {
            assert_eq!(utc_text(value), None, "{value}");
        }
        assert_eq!(time_text("2026-12-03T08:02:48+01:00").as_deref(), Some("2026-12-03T07:02:48.000000Z"));
        assert_eq!(time_text("2026-12-03 07:02:48.5+00:00").as_deref(), Some("2026-12-03T07:02:48.500000Z"));
    }
}
