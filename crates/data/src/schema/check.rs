//! Loading and checking an app: YAML syntax, then every rule of the schema, collecting all
//! problems (file, table, field, reason) instead of stopping at the first.

use std::fmt;

use super::{App, AppFile, FieldType, OnDelete, Operation, SchemaFile, Scope, Table};
use crate::expr;

/// Largest `app.yaml` or `schema.yaml` read.
pub const MAX_FILE: usize = 1 << 20;
/// Most tables in an app, fields in a table.
const MAX_TABLES: usize = 200;
const MAX_FIELDS: usize = 500;

/// One thing wrong with an app's files.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub file: String,
    pub table: Option<String>,
    pub field: Option<String>,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(table) = &self.table {
            write!(f, ": table `{table}`")?;
        }
        if let Some(field) = &self.field {
            write!(f, ", field `{field}`")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Names of apps, tables and fields: they become SQL identifiers (always quoted, and tables
/// prefixed `app_<app>__`), so they are kept to a plain, portable shape; `__` is reserved for
/// that separator.
pub fn valid_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 48
        && !name.contains("__")
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

struct Report {
    problems: Vec<Problem>,
}

impl Report {
    fn add(&mut self, file: &str, table: Option<&str>, field: Option<&str>, reason: impl Into<String>) {
        self.problems.push(Problem {
            file: file.to_owned(),
            table: table.map(str::to_owned),
            field: field.map(str::to_owned),
            reason: reason.into(),
        });
    }
}

const APP: &str = "app.yaml";
const SCHEMA: &str = "schema.yaml";
/// Columns the server manages; schemas may not declare them.
const RESERVED: [&str; 4] = ["deleted_at", "created_at", "updated_at", "row_version"];

/// Parses and checks an app from the text of its two files.
pub fn load(app_yaml: &str, schema_yaml: &str) -> Result<App, Vec<Problem>> {
    let mut report = Report { problems: Vec::new() };
    let app = parse::<AppFile>(APP, app_yaml, &mut report);
    let schema = parse::<SchemaFile>(SCHEMA, schema_yaml, &mut report);
    if let Some(app) = &app {
        check_app(app, &mut report);
    }
    if let Some(schema) = &schema {
        check_schema(schema, &mut report);
    }
    match (app, schema) {
        (Some(app), Some(schema)) if report.problems.is_empty() => Ok(App { app, schema }),
        _ => Err(report.problems),
    }
}

fn parse<T: serde::de::DeserializeOwned>(file: &str, text: &str, report: &mut Report) -> Option<T> {
    if text.len() > MAX_FILE {
        report.add(file, None, None, format!("larger than {MAX_FILE} bytes"));
        return None;
    }
    match serde_norway::from_str(text) {
        Ok(value) => Some(value),
        Err(err) => {
            report.add(file, None, None, err.to_string());
            None
        }
    }
}

fn check_app(app: &AppFile, report: &mut Report) {
    if !valid_identifier(&app.name) {
        report.add(APP, None, None, format!("`name` `{}` must be lowercase letters, digits and `_`", app.name));
    }
    let db = app.database.as_str();
    if !(db == "main"
        || db.starts_with("sqlite://")
        || db.starts_with("postgres://")
        || db.starts_with("postgresql://"))
    {
        report.add(APP, None, None, "`database` is `main` or a sqlite:// or postgres:// URL");
    }
}

fn check_schema(schema: &SchemaFile, report: &mut Report) {
    if schema.tables.is_empty() {
        report.add(SCHEMA, None, None, "no tables");
    }
    if schema.tables.len() > MAX_TABLES {
        report.add(SCHEMA, None, None, format!("more than {MAX_TABLES} tables"));
    }
    for (name, table) in &schema.tables {
        check_table(schema, name, table, report);
    }
}

fn check_table(schema: &SchemaFile, name: &str, table: &Table, report: &mut Report) {
    let t = Some(name);
    if !valid_identifier(name) {
        report.add(SCHEMA, t, None, "table names are lowercase letters, digits and `_`, at most 48");
    }
    if ["batch", "queries", "reload"].contains(&name) {
        report.add(SCHEMA, t, None, format!("`{name}` is taken by the app's own routes"));
    }
    if table.fields.is_empty() || table.fields.len() > MAX_FIELDS {
        report.add(SCHEMA, t, None, format!("a table has 1 to {MAX_FIELDS} fields"));
    }
    let primaries: Vec<&String> = table.fields.iter().filter(|(_, f)| f.primary).map(|(n, _)| n).collect();
    if primaries.len() != 1 {
        report.add(SCHEMA, t, None, format!("needs exactly one `primary` field, has {}", primaries.len()));
    }
    for (field_name, field) in &table.fields {
        let f = Some(field_name.as_str());
        let mut problem = |reason: String| report.add(SCHEMA, t, f, reason);
        if !valid_identifier(field_name) {
            problem("field names are lowercase letters, digits and `_`, at most 48".into());
        }
        if RESERVED.contains(&field_name.as_str()) {
            problem(format!("`{field_name}` is managed by the server"));
        }
        let kind = field.kind;
        let numeric = matches!(kind, FieldType::Int | FieldType::Float | FieldType::Decimal);
        let textual = matches!(kind, FieldType::String | FieldType::Text);
        if field.primary && !matches!(kind, FieldType::Int | FieldType::Uuid | FieldType::String) {
            problem("a primary key is an `int`, a `uuid` or a `string`".into());
        }
        if field.auto && !matches!(kind, FieldType::Int | FieldType::Uuid) {
            problem("`auto` works for `int` (increasing) and `uuid` (v7) fields".into());
        }
        if kind == FieldType::String && field.max.is_none_or(|m| !(1.0..=65_535.0).contains(&m)) {
            problem("a `string` needs `max` (its length, 1 to 65535)".into());
        }
        if (field.min.is_some() || field.max.is_some()) && !(numeric || textual) {
            problem("`min`/`max` apply to numbers and text".into());
        }
        if let (Some(min), Some(max)) = (field.min, field.max)
            && min > max
        {
            problem("`min` is larger than `max`".into());
        }
        if let Some(pattern) = &field.pattern {
            if !textual {
                problem("`pattern` applies to `string` and `text`".into());
            }
            if pattern.len() > 1024 || regex::Regex::new(pattern).is_err() {
                problem(format!("`pattern` is not a valid regular expression: `{pattern}`"));
            }
        }
        if kind == FieldType::Enum && (field.values.is_empty() || field.values.iter().any(String::is_empty)) {
            problem("an `enum` lists its `values`".into());
        }
        if kind != FieldType::Enum && !field.values.is_empty() {
            problem("`values` belongs to `enum` fields".into());
        }
        match (kind, &field.foreign) {
            (FieldType::Relation, None) => problem("a `relation` names its target: `foreign: table.field`".into()),
            (FieldType::Relation, Some(target)) => {
                if let Some(reason) = check_foreign(schema, target) {
                    problem(reason);
                }
            }
            (_, Some(_)) => problem("`foreign` belongs to `relation` fields".into()),
            _ => {}
        }
        if field.on_delete.is_some() && kind != FieldType::Relation {
            problem("`on_delete` belongs to `relation` fields".into());
        }
        if field.on_delete == Some(OnDelete::SetNull) && field.required {
            problem("`on_delete: set_null` needs a field that is not `required`".into());
        }
        if field.encrypt
            && (!matches!(kind, FieldType::String | FieldType::Text | FieldType::Json) || field.primary || field.unique)
        {
            problem(
                "`encrypt` works for `string`, `text` and `json` fields that are neither primary nor unique".into(),
            );
        }
        if field.hash && (kind != FieldType::String || field.primary || field.encrypt) {
            problem("`hash` works for `string` fields that are not primary or encrypted".into());
        }
        if let Some(default) = &field.default
            && !default_fits(kind, default, &field.values)
        {
            problem(format!("the `default` {default} is not a valid {kind:?} value").to_lowercase());
        }
    }
    if let Some(owner) = &table.owner_field {
        if !valid_identifier(owner) || RESERVED.contains(&owner.as_str()) {
            report.add(SCHEMA, t, None, format!("`owner_field` `{owner}` is not a valid field name"));
        }
        if table.scope != Scope::Owner {
            report.add(SCHEMA, t, None, "`owner_field` needs `scope: owner`");
        }
        if table.fields.get(owner).is_some_and(|f| f.kind != FieldType::Uuid) {
            report.add(SCHEMA, t, Some(owner), "the owner field holds user ids: type `uuid`");
        }
    }
    if table.cascade && !table.soft_delete {
        report.add(SCHEMA, t, None, "`cascade` needs `soft_delete: true`");
    }
    if let Some(operations) = &table.operations {
        let soft_only = [Operation::Restore, Operation::Purge];
        if !table.soft_delete && operations.iter().any(|o| soft_only.contains(o)) {
            report.add(SCHEMA, t, None, "`restore` and `purge` need `soft_delete: true`");
        }
    }
    for searchable in &table.searchable {
        match table.fields.get(searchable) {
            Some(f) if matches!(f.kind, FieldType::String | FieldType::Text) && !f.encrypt && !f.hash => {}
            Some(_) => report.add(SCHEMA, t, Some(searchable), "searchable fields are plain `string` or `text`"),
            None => report.add(SCHEMA, t, Some(searchable), "`searchable` names a field that does not exist"),
        }
    }
    if let Some(order) = &table.order {
        for part in order.split(',') {
            let mut words = part.split_whitespace();
            let first = words.next().unwrap_or_default();
            // `-field` is `field DESC`, as in a list request's `sort`.
            let (field, default_dir) = first.strip_prefix('-').map_or((first, "ASC"), |f| (f, "DESC"));
            let given = words.next();
            let dir = given.unwrap_or(default_dir);
            let both = first.starts_with('-') && given.is_some();
            if !table.sortable(field)
                || both
                || !matches!(dir.to_ascii_uppercase().as_str(), "ASC" | "DESC")
                || words.next().is_some()
            {
                report.add(
                    SCHEMA,
                    t,
                    None,
                    format!("`order` part `{}` is not `field ASC|DESC` or `-field` of a sortable field", part.trim()),
                );
            }
        }
    }
    let operation_names = ["list", "get", "create", "update", "delete", "restore", "purge"];
    for (rule, text) in &table.rules {
        if !operation_names.contains(&rule.as_str()) {
            report.add(SCHEMA, t, None, format!("rule `{rule}` is not an operation ({})", operation_names.join(", ")));
        }
        check_expression(schema, table, &format!("rule `{rule}`"), text, t, report);
    }
    for (filter, text) in &table.filters {
        if !valid_identifier(filter) {
            report.add(SCHEMA, t, None, format!("filter name `{filter}` is not lowercase letters, digits and `_`"));
        }
        check_expression(schema, table, &format!("filter `{filter}`"), text, t, report);
    }
}

fn check_foreign(schema: &SchemaFile, target: &str) -> Option<String> {
    let Some((table, field)) = target.split_once('.') else {
        return Some(format!("`foreign: {target}` is not `table.field`"));
    };
    let Some(target_table) = schema.tables.get(table) else {
        return Some(format!("`foreign: {target}`: no table `{table}`"));
    };
    match target_table.fields.get(field) {
        None => Some(format!("`foreign: {target}`: table `{table}` has no field `{field}`")),
        Some(f) if !(f.primary || f.unique) => {
            Some(format!("`foreign: {target}` must point to a primary or unique field"))
        }
        // Uniques of scoped tables hold per owner or organization: not a key to point to.
        Some(f) if !f.primary && target_table.scope != Scope::Public => {
            Some(format!("`foreign: {target}` must point to the primary key of `{table}` (a scoped table)"))
        }
        Some(_) => None,
    }
}

/// Parses and compiles an expression (as a caller would run it) so a schema never holds a rule
/// or filter that fails at request time: unknown names, type mismatches, encrypted fields.
fn check_expression(schema: &SchemaFile, table: &Table, what: &str, text: &str, t: Option<&str>, report: &mut Report) {
    let auth = crate::compile::Auth { id: uuid::Uuid::nil(), role: String::new(), org: uuid::Uuid::nil() };
    let checked = expr::parse(text)
        .map_err(|err| err.to_string())
        .and_then(|parsed| crate::compile::compile(schema, table, &parsed, &auth, 1).map(|_| ()));
    if let Err(reason) = checked {
        report.add(SCHEMA, t, None, format!("{what}: {reason}"));
    }
}

fn default_fits(kind: FieldType, value: &serde_json::Value, values: &[String]) -> bool {
    use serde_json::Value;
    match (kind, value) {
        (_, Value::Null) => true,
        (FieldType::Int, Value::Number(n)) => n.is_i64(),
        (FieldType::Float | FieldType::Decimal, Value::Number(_)) => true,
        (FieldType::Bool, Value::Bool(_)) => true,
        (FieldType::Enum, Value::String(s)) => values.contains(s),
        (
            FieldType::String | FieldType::Text | FieldType::Date | FieldType::Datetime | FieldType::Uuid,
            Value::String(_),
        ) => true,
        (FieldType::Json, _) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const APP_OK: &str = "name: prokov\ndescription: Tasks\n";
    const PROKOV: &str = r#"
tables:
  projects:
    scope: owner
    soft_delete: true
    cascade: true
    order: "position ASC, name"
    searchable: [name]
    rules:
      update: owner == auth.id || auth.role == "admin"
    fields:
      id: { type: uuid, primary: true, auto: true }
      name: { type: string, max: 200, required: true }
      position: { type: int, default: 0, min: 0 }
  statuses:
    fields:
      id: { type: int, primary: true, auto: true }
      label: { type: string, max: 40, unique: true }
  tasks:
    scope: owner
    soft_delete: true
    filters:
      open: status != "done"
    fields:
      id: { type: uuid, primary: true, auto: true }
      project_id: { type: relation, foreign: projects.id, on_delete: cascade, required: true }
      title: { type: string, max: 300, required: true, pattern: "^[^<>]*$" }
      status: { type: enum, values: [todo, doing, done], default: todo }
      due: { type: date }
      notes: { type: text, encrypt: true }
"#;

    #[test]
    fn schemas_load_the_prokov_app() {
        let app = load(APP_OK, PROKOV).expect("valid");
        assert_eq!(app.app.name, "prokov");
        assert_eq!(app.schema.tables.keys().collect::<Vec<_>>(), ["projects", "statuses", "tasks"]);
        let tasks = &app.schema.tables["tasks"];
        assert_eq!(tasks.fields.keys().next().map(String::as_str), Some("id"), "field order is kept");
    }

    #[test]
    fn schema_problems_are_all_listed_with_their_place() {
        let broken = r#"
tables:
  Bad-Name:
    fields:
      id: { type: int, primary: true }
  tasks:
    cascade: true
    order: "nope DESC"
    searchable: [missing]
    rules:
      update: title == auth.secret
      frobnicate: "true"
    filters:
      broken: "status =="
    fields:
      id: { type: int }
      title: { type: string }
      project: { type: relation, foreign: projects.id }
      status: { type: enum, default: maybe, values: [a] }
      deleted_at: { type: datetime }
      secret: { type: int, encrypt: true }
"#;
        let problems = load("name: Prokov\ndatabase: mysql://x\n", broken).expect_err("invalid");
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let expect = [
            "app.yaml: `name` `Prokov` must be lowercase",
            "app.yaml: `database` is `main`",
            "table `Bad-Name`: table names are lowercase",
            "table `tasks`: needs exactly one `primary` field, has 0",
            "table `tasks`, field `title`: a `string` needs `max`",
            "table `tasks`, field `project`: `foreign: projects.id`: no table `projects`",
            "table `tasks`, field `status`: the `default` \"maybe\" is not a valid enum value",
            "table `tasks`, field `deleted_at`: `deleted_at` is managed by the server",
            "table `tasks`, field `secret`: `encrypt` works for",
            "table `tasks`: `cascade` needs `soft_delete: true`",
            "table `tasks`, field `missing`: `searchable` names a field that does not exist",
            "table `tasks`: `order` part `nope DESC` is not",
            "table `tasks`: rule `update`: unknown name `auth.secret`",
            "table `tasks`: rule `frobnicate` is not an operation",
            "table `tasks`: filter `broken`: expected a name or a value",
        ];
        for expected in expect {
            assert!(text.iter().any(|t| t.contains(expected)), "missing `{expected}` in:\n{}", text.join("\n"));
        }
        assert_eq!(text.len(), expect.len(), "{}", text.join("\n"));
    }

    #[test]
    fn yaml_errors_name_the_file_and_line() {
        let problems = load(APP_OK, "tables:\n  t:\n    fields: [oops\n").expect_err("invalid");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].to_string().starts_with("schema.yaml: "), "{}", problems[0]);
        assert!(problems[0].reason.contains("line"), "{}", problems[0]);
        let problems = load(APP_OK, "tables:\n  t:\n    colour: red\n    fields: {}\n").expect_err("unknown key");
        assert!(problems[0].reason.contains("colour"), "{}", problems[0]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        #[test]
        fn any_yaml_loads_or_fails_cleanly(text in "\\PC{0,400}") {
            let _ = load(APP_OK, &text);
        }

        #[test]
        fn mutated_schemas_load_or_fail_cleanly(cut in 0usize..PROKOV.len(), insert in "[ :\\-\\[\\]{}a-z0-9\"'\n]{0,12}") {
            let mut text = PROKOV.to_owned();
            let at = (0..=cut).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
            text.insert_str(at, &insert);
            let _ = load(APP_OK, &text);
        }
    }
}
