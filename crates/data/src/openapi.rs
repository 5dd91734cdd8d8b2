//! The OpenAPI document of one app (`GET /api/apps/{app}/openapi.json`), generated from its
//! schema whenever it is asked for, so it always matches the running version: every table's
//! routes (only the operations it allows), its row and input shapes with their constraints, and
//! the named queries with their parameters.

use serde_json::{Map, Value, json};

use crate::ddl::owner_field;
use crate::schema::{Field, FieldType, Operation, SchemaFile, Scope, Table};
use crate::service::Loaded;

fn field_schema(schema: &SchemaFile, field: &Field) -> Value {
    let kind = schema.value_kind(field);
    let mut out = match kind {
        FieldType::Int => json!({"type": "integer", "format": "int64"}),
        FieldType::Float | FieldType::Decimal => json!({"type": "number"}),
        FieldType::String | FieldType::Text => json!({"type": "string"}),
        FieldType::Bool => json!({"type": "boolean"}),
        FieldType::Date => json!({"type": "string", "format": "date"}),
        FieldType::Datetime => json!({"type": "string", "format": "date-time"}),
        FieldType::Json => json!({"type": ["object", "array", "string", "number", "boolean", "null"]}),
        FieldType::Uuid | FieldType::File | FieldType::Relation => json!({"type": "string", "format": "uuid"}),
        FieldType::Enum => json!({"type": "string", "enum": field.values}),
    };
    if let Value::Object(map) = &mut out {
        let text = matches!(kind, FieldType::String | FieldType::Text);
        let number = matches!(kind, FieldType::Int | FieldType::Float | FieldType::Decimal);
        for (bound, value) in [("min", field.min), ("max", field.max)] {
            let Some(value) = value else { continue };
            let key = match (text, number, bound) {
                (true, _, "min") => "minLength",
                (true, _, _) => "maxLength",
                (_, true, "min") => "minimum",
                (_, true, _) => "maximum",
                _ => continue,
            };
            // Whole numbers as integers: lengths must be, and bounds read better.
            let value = if value.fract() == 0.0 && value.abs() < 9.0e15 { json!(value as i64) } else { json!(value) };
            map.insert(key.into(), value);
        }
        if let Some(pattern) = &field.pattern {
            map.insert("pattern".into(), json!(format!("^(?:{pattern})$")));
        }
        if let Some(default) = &field.default {
            map.insert("default".into(), default.clone());
        }
        if let Some(target) = &field.foreign {
            map.insert("description".into(), json!(format!("Refers to `{target}`.")));
        }
    }
    out
}

/// The row callers read and the body they write.
fn shapes(schema: &SchemaFile, table: &Table) -> (Value, Value) {
    let mut row = Map::new();
    let mut input = Map::new();
    let mut required = Vec::new();
    for (name, field) in &table.fields {
        let shape = field_schema(schema, field);
        if !field.hash {
            let mut shown = shape.clone();
            if field.encrypt
                && let Value::Object(map) = &mut shown
            {
                map.insert(
                    "description".into(),
                    json!("Returned only with the `data.<app>.<table>.decrypt` permission."),
                );
            }
            row.insert(name.clone(), shown);
        }
        if !field.auto {
            input.insert(name.clone(), shape);
            if field.required && field.default.is_none() {
                required.push(name.clone());
            }
        }
    }
    match table.scope {
        Scope::Owner => {
            row.insert(owner_field(table).to_owned(), json!({"type": "string", "format": "uuid", "readOnly": true}));
        }
        Scope::Org => {
            row.insert("org_id".into(), json!({"type": "string", "format": "uuid", "readOnly": true}));
        }
        Scope::Public => {}
    }
    for managed in ["created_at", "updated_at"] {
        row.insert(managed.into(), json!({"type": "string", "format": "date-time", "readOnly": true}));
    }
    row.insert(
        "row_version".into(),
        json!({"type": "integer", "readOnly": true, "description": "Send as `If-Match` to update safely."}),
    );
    if table.soft_delete {
        row.insert("deleted_at".into(), json!({"type": ["string", "null"], "format": "date-time", "readOnly": true}));
    }
    (
        json!({"type": "object", "properties": row}),
        json!({"type": "object", "properties": input, "required": required, "additionalProperties": false}),
    )
}

fn error_responses(codes: &[(&str, &str)]) -> Map<String, Value> {
    codes
        .iter()
        .map(|(status, description)| {
            ((*status).to_owned(), json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}))
        })
        .collect()
}

fn ok(status: &str, description: &str, schema: Value) -> (String, Value) {
    (status.to_owned(), json!({"description": description, "content": {"application/json": {"schema": schema}}}))
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

/// The document for an app.
pub fn document(loaded: &Loaded) -> Value {
    let app = &loaded.name;
    let schema = &loaded.app.schema;
    let mut paths = Map::new();
    let mut components = Map::new();
    components.insert(
        "Error".into(),
        json!({"type": "object", "required": ["code", "message", "trace_id"], "properties": {
            "code": {"type": "string"}, "message": {"type": "string"}, "trace_id": {"type": "string"}, "details": {"type": "object"}}}),
    );
    for (name, table) in &schema.tables {
        let allowed = |op: Operation| table.operations.as_ref().is_none_or(|ops| ops.contains(&op));
        let (row, input) = shapes(schema, table);
        components.insert(name.clone(), row);
        components.insert(format!("{name}_input"), input);
        let row_ref = json!({"$ref": format!("#/components/schemas/{name}")});
        let input_ref = json!({"$ref": format!("#/components/schemas/{name}_input")});
        let tags = json!([name]);
        let mut collection = Map::new();
        if allowed(Operation::List) {
            let mut responses = error_responses(&[("400", "`invalid_filter`, `invalid_sort`, `invalid_cursor`, …")]);
            let (status, body) = ok(
                "200",
                "A page of rows",
                json!({"type": "object", "properties": {
                "items": {"type": "array", "items": row_ref}, "next_cursor": {"type": "string"}, "total": {"type": "integer"}}}),
            );
            responses.insert(status, body);
            let filters: Vec<&String> = table.filters.keys().collect();
            collection.insert("get".into(), json!({
                "tags": tags, "operationId": format!("list_{name}"), "summary": format!("List {name}"),
                "parameters": [
                    query_param("filter", "A filter expression: `status == \"open\" && priority >= 2`.", json!({"type": "string"})),
                    query_param("named", "A named filter of the table.", json!({"type": "string", "enum": filters})),
                    query_param("search", "Text looked for in the searchable fields.", json!({"type": "string"})),
                    query_param("sort", "Sort keys, `-` for descending.", json!({"type": "string"})),
                    query_param("cursor", "`next_cursor` of the previous page.", json!({"type": "string"})),
                    query_param("limit", "Rows per page (1–500, default 50).", json!({"type": "integer"})),
                    query_param("fields", "Fields to return, comma-separated.", json!({"type": "string"})),
                    query_param("include", "Relation fields whose rows to include (`_include`).", json!({"type": "string"})),
                    query_param("count", "Also count every matching row.", json!({"type": "boolean"})),
                    query_param("include_deleted", "Also list deleted rows the caller may restore.", json!({"type": "boolean"})),
                ],
                "responses": responses,
            }));
        }
        if allowed(Operation::Create) {
            let mut responses = error_responses(&[
                ("400", "`validation_failed`: every field's problem in `details.fields`"),
                ("403", "`rule_denied`"),
                ("409", "`unique_violation`"),
            ]);
            let (status, body) = ok("201", "The row created", row_ref.clone());
            responses.insert(status, body);
            collection.insert(
                "post".into(),
                json!({
                    "tags": tags, "operationId": format!("create_{name}"), "summary": format!("Create a row of {name}"),
                    "requestBody": {"required": true, "content": {"application/json": {"schema": input_ref}}},
                    "responses": responses,
                }),
            );
        }
        let base = format!("/api/apps/{app}/{name}");
        if !collection.is_empty() {
            paths.insert(base.clone(), Value::Object(collection));
        }
        let mut item = Map::new();
        let id = [path_param("id")];
        if allowed(Operation::Get) {
            let mut responses = error_responses(&[("404", "Not found, or not the caller's")]);
            let (status, body) = ok("200", "The row (ETag: its version)", row_ref.clone());
            responses.insert(status, body);
            item.insert(
                "get".into(),
                json!({"tags": tags, "operationId": format!("get_{name}"), "parameters": id, "responses": responses}),
            );
        }
        if allowed(Operation::Update) {
            let mut responses = error_responses(&[
                ("400", "`validation_failed`"),
                ("403", "`rule_denied`"),
                ("404", "Not found"),
                ("412", "`etag_mismatch`"),
            ]);
            let (status, body) = ok("200", "The row updated", row_ref.clone());
            responses.insert(status, body);
            item.insert("patch".into(), json!({
                "tags": tags, "operationId": format!("update_{name}"), "parameters": [path_param("id"),
                    {"name": "If-Match", "in": "header", "required": false, "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}_input"), "description": "Only the fields to change."}}}},
                "responses": responses,
            }));
        }
        if allowed(Operation::Delete) {
            let mut responses = error_responses(&[
                ("403", "`rule_denied`"),
                ("404", "Not found"),
                ("409", "`referenced`"),
                ("412", "`etag_mismatch`"),
            ]);
            responses.insert(
                "204".into(),
                json!({"description": if table.soft_delete { "Deleted (restorable)" } else { "Deleted" }}),
            );
            item.insert("delete".into(), json!({"tags": tags, "operationId": format!("delete_{name}"), "parameters": id, "responses": responses}));
        }
        if !item.is_empty() {
            paths.insert(format!("{base}/{{id}}"), Value::Object(item));
        }
        if table.soft_delete && allowed(Operation::Restore) {
            let mut responses = error_responses(&[("404", "Not found"), ("409", "`not_deleted`")]);
            let (status, body) = ok("200", "The row restored", row_ref.clone());
            responses.insert(status, body);
            paths.insert(format!("{base}/{{id}}/restore"), json!({"post": {"tags": tags, "operationId": format!("restore_{name}"), "parameters": id, "responses": responses}}));
        }
        if allowed(Operation::Purge) {
            let mut responses = error_responses(&[
                ("400", "`confirmation_required`"),
                ("403", "`missing_permission`"),
                ("404", "Not found"),
            ]);
            responses.insert("204".into(), json!({"description": "Gone for good"}));
            paths.insert(format!("{base}/{{id}}/purge"), json!({"delete": {"tags": tags, "operationId": format!("purge_{name}"),
                "parameters": [path_param("id"), {"name": "force", "in": "query", "required": true, "schema": {"type": "boolean", "const": true}}],
                "responses": responses}}));
        }
    }
    for (name, query) in &loaded.queries {
        let params: Vec<Value> = query
            .file
            .params
            .iter()
            .map(|(param, field)| json!({"name": param, "in": "query", "required": field.required && field.default.is_none(), "schema": field_schema(schema, field)}))
            .collect();
        let mut responses =
            error_responses(&[("400", "`validation_failed`"), ("403", "`query_forbidden`"), ("422", "`query_failed`")]);
        let (status, body) = ok(
            "200",
            "The rows",
            json!({"type": "object", "properties": {"rows": {"type": "array", "items": {"type": "object"}}, "truncated": {"type": "boolean"}, "changed": {"type": "integer"}}}),
        );
        responses.insert(status, body);
        let operation = if query.file.write {
            let properties: Map<String, Value> =
                query.file.params.iter().map(|(p, f)| (p.clone(), field_schema(schema, f))).collect();
            json!({"post": {"tags": ["queries"], "operationId": format!("query_{name}"), "description": query.file.description,
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": properties}}}}, "responses": responses}})
        } else {
            json!({"get": {"tags": ["queries"], "operationId": format!("query_{name}"), "description": query.file.description, "parameters": params, "responses": responses}})
        };
        paths.insert(format!("/api/apps/{app}/queries/{name}"), operation);
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": format!("{app} (Oppidum data API)"), "description": loaded.app.app.description, "version": loaded.files.schema_yaml.len().to_string()},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    })
}
