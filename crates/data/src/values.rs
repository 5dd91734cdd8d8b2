//! Checking a request's row against its table: every field's type, constraints and writability,
//! with every problem listed (field and reason), and defaults applied on create. The result holds
//! typed values only, ready to be bound as SQL parameters.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::schema::{Field, FieldType, SchemaFile, Table};

/// A value ready to bind.
#[derive(Debug, Clone, PartialEq)]
pub enum Typed {
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
    Uuid(Uuid),
    Json(Value),
}

/// One field's problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Create,
    /// Only the fields present change.
    Update,
}

/// Checks `body` for `table`; returns the fields to write, in schema order.
pub fn check(
    schema: &SchemaFile,
    table: &Table,
    body: &Map<String, Value>,
    mode: Mode,
) -> Result<Vec<(String, Typed)>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut error = |field: &str, reason: String| errors.push(FieldError { field: field.to_owned(), reason });
    for key in body.keys() {
        if !table.fields.contains_key(key) {
            error(key, "unknown field".into());
        }
    }
    let mut out = Vec::new();
    for (name, field) in &table.fields {
        let given = body.get(name);
        if field.auto {
            if given.is_some() {
                error(name, "set by the server".into());
            }
            continue;
        }
        if field.primary && mode == Mode::Update && given.is_some() {
            error(name, "a primary key does not change".into());
            continue;
        }
        let value = match (given, mode) {
            (Some(value), _) => value.clone(),
            (None, Mode::Update) => continue,
            (None, Mode::Create) => match &field.default {
                Some(default) => default.clone(),
                None if field.required || field.primary => {
                    error(name, "required".into());
                    continue;
                }
                None => continue,
            },
        };
        match typed(schema, field, &value) {
            Ok(Typed::Null) if field.required || field.primary => error(name, "required: cannot be null".into()),
            Ok(typed) => out.push((name.clone(), typed)),
            Err(reason) => error(name, reason),
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

pub(crate) fn typed(schema: &SchemaFile, field: &Field, value: &Value) -> Result<Typed, String> {
    if field.kind == FieldType::Enum
        && let Value::String(s) = value
        && !field.values.contains(s)
    {
        return Err(format!("one of {}", field.values.join(", ")));
    }
    let out = convert(schema, field, value)?;
    bounds(field, &out)?;
    Ok(out)
}

/// A value as its field's type, without the field's constraints: for values already stored
/// (keys of cursors, related rows), which stay valid when a schema tightens a constraint.
pub(crate) fn convert(schema: &SchemaFile, field: &Field, value: &Value) -> Result<Typed, String> {
    if value.is_null() {
        return Ok(Typed::Null);
    }
    Ok(match (schema.value_kind(field), value) {
        (FieldType::Int, Value::Number(n)) => Typed::Int(n.as_i64().ok_or("a whole number")?),
        (FieldType::Float | FieldType::Decimal, Value::Number(n)) => Typed::Float(n.as_f64().ok_or("a number")?),
        (FieldType::Bool, Value::Bool(b)) => Typed::Bool(*b),
        (FieldType::String | FieldType::Text | FieldType::Enum, Value::String(s)) => Typed::Text(s.clone()),
        (FieldType::Enum, _) => return Err(format!("one of {}", field.values.join(", "))),
        (FieldType::Date, Value::String(s)) => {
            Typed::Date(NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| "a date like 2026-11-22")?)
        }
        (FieldType::Datetime, Value::String(s)) => Typed::DateTime(
            DateTime::parse_from_rfc3339(s).map_err(|_| "an RFC 3339 time like 2026-11-22T10:00:00Z")?.to_utc(),
        ),
        (FieldType::Uuid, Value::String(s)) => Typed::Uuid(Uuid::parse_str(s).map_err(|_| "a UUID")?),
        (FieldType::Json, other) => Typed::Json(other.clone()),
        (kind, _) => return Err(format!("a {} value", format!("{kind:?}").to_lowercase())),
    })
}

fn bounds(field: &Field, value: &Typed) -> Result<(), String> {
    let (min, max) = (field.min, field.max);
    match value {
        Typed::Int(_) | Typed::Float(_) => {
            let n = match value {
                Typed::Int(i) => *i as f64,
                Typed::Float(f) => *f,
                _ => 0.0,
            };
            if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
                return Err(range("between", min, max));
            }
        }
        Typed::Text(text) => {
            let len = text.chars().count() as f64;
            if min.is_some_and(|m| len < m) || max.is_some_and(|m| len > m) {
                return Err(range("a length between", min, max));
            }
            if let Some(pattern) = &field.pattern {
                let whole = format!("^(?:{pattern})$");
                let matched = regex::Regex::new(&whole).map(|re| re.is_match(text)).unwrap_or(false);
                if !matched {
                    return Err(format!("does not match `{pattern}`"));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn range(what: &str, min: Option<f64>, max: Option<f64>) -> String {
    let show = |v: Option<f64>| v.map_or("…".to_owned(), |v| v.to_string());
    format!("{what} {} and {}", show(min), show(max))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::load;

    const SCHEMA: &str = r#"
tables:
  projects:
    fields:
      id: { type: uuid, primary: true, auto: true }
      name: { type: string, max: 20, min: 2, required: true, pattern: "[A-Za-z ]+" }
      position: { type: int, default: 0, min: 0, max: 100 }
  tasks:
    fields:
      id: { type: int, primary: true, auto: true }
      project_id: { type: relation, foreign: projects.id, required: true }
      status: { type: enum, values: [todo, done], default: todo }
      due: { type: date }
      at: { type: datetime }
      meta: { type: json }
      ratio: { type: float, max: 1 }
"#;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn rows_are_typed_with_defaults() {
        let app = load("name: t\n", SCHEMA).expect("schema");
        let projects = &app.schema.tables["projects"];
        let row = check(&app.schema, projects, &object(json!({"name": "Alpha"})), Mode::Create).expect("valid");
        assert_eq!(row, [("name".to_owned(), Typed::Text("Alpha".into())), ("position".to_owned(), Typed::Int(0))]);
        let tasks = &app.schema.tables["tasks"];
        let project = Uuid::now_v7();
        let body = json!({"project_id": project.to_string(), "due": "2026-12-01", "at": "2026-12-01T10:00:00+02:00",
            "meta": {"k": [1]}, "ratio": 0.5});
        let row = check(&app.schema, tasks, &object(body), Mode::Create).expect("valid");
        assert!(row.contains(&("project_id".to_owned(), Typed::Uuid(project))));
        assert!(row.contains(&("status".to_owned(), Typed::Text("todo".into()))));
        let update = check(&app.schema, tasks, &object(json!({"status": "done"})), Mode::Update).expect("valid");
        assert_eq!(update, [("status".to_owned(), Typed::Text("done".into()))]);
    }

    #[test]
    fn every_bad_field_is_reported() {
        let app = load("name: t\n", SCHEMA).expect("schema");
        let tasks = &app.schema.tables["tasks"];
        let body = json!({"id": 4, "project_id": "nope", "status": "later", "due": "1/12/2026", "at": "soon",
            "ratio": 2, "colour": "red"});
        let errors = check(&app.schema, tasks, &object(body), Mode::Create).expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["colour", "id", "project_id", "status", "due", "at", "ratio"], "{errors:?}");
        let projects = &app.schema.tables["projects"];
        for (name, reason) in
            [(json!("A"), "a length between"), (json!("Robert'); DROP"), "does not match"), (json!(null), "required")]
        {
            let errors =
                check(&app.schema, projects, &object(json!({"name": name})), Mode::Create).expect_err("invalid");
            assert!(errors[0].reason.starts_with(reason), "{errors:?}");
        }
        let missing = check(&app.schema, projects, &Map::new(), Mode::Create).expect_err("required");
        assert_eq!(missing, [FieldError { field: "name".into(), reason: "required".into() }]);
    }
}
