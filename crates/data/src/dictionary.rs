//! The data dictionary of an app (`/_schema`): what each table holds and how to reach it, for
//! people writing clients and for tools generating them.

use serde_json::{Map, Value, json};

use crate::ddl::owner_field;
use crate::schema::{FieldType, Operation, Scope, Table};
use crate::service::Loaded;

fn lower<T: std::fmt::Debug>(value: T) -> String {
    let text = format!("{value:?}");
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn routes(app: &str, name: &str, table: &Table) -> Vec<Value> {
    let allowed = |op: Operation| table.operations.as_ref().is_none_or(|ops| ops.contains(&op));
    let base = format!("/api/apps/{app}/{name}");
    let mut out = Vec::new();
    let mut add = |op: Operation, method: &str, path: String| {
        if allowed(op) {
            out.push(json!({ "operation": lower(op), "method": method, "path": path }));
        }
    };
    add(Operation::List, "GET", base.clone());
    add(Operation::Create, "POST", base.clone());
    add(Operation::Get, "GET", format!("{base}/{{id}}"));
    add(Operation::Update, "PATCH", format!("{base}/{{id}}"));
    add(Operation::Delete, "DELETE", format!("{base}/{{id}}"));
    if table.soft_delete {
        add(Operation::Restore, "POST", format!("{base}/{{id}}/restore"));
    }
    add(Operation::Purge, "DELETE", format!("{base}/{{id}}/purge?force=true"));
    out
}

/// One table's entry, if the app has it.
pub fn table(loaded: &Loaded, name: &str) -> Option<Value> {
    let schema = &loaded.app.schema;
    let table = schema.tables.get(name)?;
    let fields: Vec<Value> = table
        .fields
        .iter()
        .map(|(field_name, f)| {
            let mut entry = Map::new();
            entry.insert("name".into(), json!(field_name));
            entry.insert("type".into(), json!(lower(f.kind)));
            for (flag, on) in [
                ("primary", f.primary),
                ("auto", f.auto),
                ("unique", f.unique),
                ("required", f.required),
                ("encrypted", f.encrypt),
                ("hashed", f.hash),
            ] {
                if on {
                    entry.insert(flag.into(), json!(true));
                }
            }
            for (key, value) in
                [("default", f.default.clone()), ("min", f.min.map(|v| json!(v))), ("max", f.max.map(|v| json!(v)))]
            {
                if let Some(value) = value {
                    entry.insert(key.into(), value);
                }
            }
            if let Some(pattern) = &f.pattern {
                entry.insert("pattern".into(), json!(pattern));
            }
            if f.kind == FieldType::Enum {
                entry.insert("values".into(), json!(f.values));
            }
            if let Some((target, column)) = f.foreign.as_deref().and_then(|x| x.split_once('.')) {
                let on_delete = f.on_delete.map_or("restrict".to_owned(), lower);
                entry.insert("relation".into(), json!({ "table": target, "field": column, "on_delete": on_delete }));
            }
            Value::Object(entry)
        })
        .collect();
    let referenced_by: Vec<Value> = schema
        .tables
        .iter()
        .flat_map(|(other, t)| {
            t.fields.iter().filter_map(move |(field, f)| {
                let (target, _) = f.foreign.as_deref()?.split_once('.')?;
                (target == name).then(|| json!({ "table": other, "field": field }))
            })
        })
        .collect();
    let mut managed = vec!["created_at", "updated_at", "row_version"];
    match table.scope {
        Scope::Owner => managed.push(owner_field(table)),
        Scope::Org => managed.push("org_id"),
        Scope::Public => {}
    }
    if table.soft_delete {
        managed.push("deleted_at");
    }
    let operations: Vec<String> = Operation::ALL
        .iter()
        .filter(|op| table.operations.as_ref().is_none_or(|ops| ops.contains(op)))
        .map(|op| lower(*op))
        .collect();
    Some(json!({
        "name": name,
        "scope": lower(table.scope),
        "soft_delete": table.soft_delete,
        "cascade": table.cascade,
        "operations": operations,
        "fields": fields,
        "managed_fields": managed,
        "filters": table.filters.keys().collect::<Vec<_>>(),
        "searchable": table.searchable,
        "order": table.order,
        "rules": table.rules.keys().collect::<Vec<_>>(),
        "referenced_by": referenced_by,
        "routes": routes(&loaded.name, name, table),
    }))
}

/// Every table's entry.
pub fn app(loaded: &Loaded) -> Value {
    let tables: Map<String, Value> =
        loaded.app.schema.tables.keys().filter_map(|name| Some((name.clone(), table(loaded, name)?))).collect();
    json!({
        "app": loaded.name,
        "description": loaded.app.app.description,
        "tables": tables,
    })
}
