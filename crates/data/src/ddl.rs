//! The tables of an app in SQL, for SQLite or PostgreSQL (built with sea-query; every name is a
//! checked identifier, quoted, and tables are prefixed `app_<app>__`). Besides the declared
//! fields each table gets the columns the server manages: `created_at`, `updated_at`,
//! `row_version` (for `If-Match`), `deleted_at` with soft delete, the owner (`scope: owner`,
//! default `owner_id`) or `org_id` (`scope: org`) when not declared.

use oppidum_store::Backend;
use sea_query::{
    Alias, ColumnDef, Expr, ExprTrait, ForeignKey, ForeignKeyAction, Index, PostgresQueryBuilder, SqliteQueryBuilder,
    Table, TableCreateStatement,
};

use crate::schema::{Field, FieldType, OnDelete, SchemaFile, Scope, Table as TableSpec};

/// The SQL name of `table` of `app`.
pub fn table_name(app: &str, table: &str) -> String {
    format!("app_{app}__{table}")
}

/// The owner column of a table (`scope: owner`).
pub fn owner_field(table: &TableSpec) -> &str {
    table.owner_field.as_deref().unwrap_or("owner_id")
}

/// The column type of a field (a relation takes its target's).
fn column(schema: &SchemaFile, name: &str, field: &Field) -> ColumnDef {
    let mut col = ColumnDef::new(Alias::new(name));
    let kind = match field.kind {
        FieldType::Relation => field
            .foreign
            .as_deref()
            .and_then(|f| f.split_once('.'))
            .and_then(|(t, c)| schema.tables.get(t)?.fields.get(c))
            .map_or(FieldType::Uuid, |target| target.kind),
        other => other,
    };
    match kind {
        FieldType::Int => col.big_integer(),
        FieldType::Float => col.double(),
        FieldType::Decimal => col.decimal(),
        FieldType::String | FieldType::Enum => {
            let declared = field.max.map_or(255, |m| m as u32);
            let longest = u32::try_from(field.values.iter().map(String::len).max().unwrap_or(0)).unwrap_or(u32::MAX);
            col.string_len(Ord::max(declared, longest))
        }
        FieldType::Text => col.text(),
        FieldType::Bool => col.boolean(),
        FieldType::Date => col.date(),
        FieldType::Datetime => col.timestamp_with_time_zone(),
        FieldType::Json => col.json_binary(),
        FieldType::Uuid | FieldType::File | FieldType::Relation => col.uuid(),
    };
    if field.primary {
        col.primary_key();
        if field.auto && kind == FieldType::Int {
            col.auto_increment();
        }
    }
    if field.required || field.primary {
        col.not_null();
    }
    if field.unique && !field.primary {
        col.unique_key();
    }
    if field.kind == FieldType::Enum && !field.values.is_empty() {
        col.check(Expr::col(Alias::new(name)).is_in(field.values.iter().map(String::as_str)));
    }
    col
}

fn managed(name: &str) -> ColumnDef {
    let mut col = ColumnDef::new(Alias::new(name));
    col.timestamp_with_time_zone().not_null();
    col
}

/// `CREATE TABLE IF NOT EXISTS` for one table.
fn create(app: &str, schema: &SchemaFile, name: &str, table: &TableSpec) -> TableCreateStatement {
    let mut statement = Table::create();
    statement.table(Alias::new(table_name(app, name))).if_not_exists();
    for (field_name, field) in &table.fields {
        statement.col(column(schema, field_name, field));
        if field.kind == FieldType::Relation
            && let Some((target, target_field)) = field.foreign.as_deref().and_then(|f| f.split_once('.'))
        {
            let action = match field.on_delete.unwrap_or(OnDelete::Restrict) {
                OnDelete::Restrict => ForeignKeyAction::Restrict,
                OnDelete::Cascade => ForeignKeyAction::Cascade,
                OnDelete::SetNull => ForeignKeyAction::SetNull,
            };
            statement.foreign_key(
                ForeignKey::create()
                    .from(Alias::new(table_name(app, name)), Alias::new(field_name))
                    .to(Alias::new(table_name(app, target)), Alias::new(target_field))
                    .on_delete(action),
            );
        }
    }
    let owner = owner_field(table);
    if table.scope == Scope::Owner && !table.fields.contains_key(owner) {
        statement.col(ColumnDef::new(Alias::new(owner)).uuid().not_null());
    }
    if table.scope == Scope::Org && !table.fields.contains_key("org_id") {
        statement.col(ColumnDef::new(Alias::new("org_id")).uuid().not_null());
    }
    statement.col(managed("created_at"));
    statement.col(managed("updated_at"));
    statement.col(ColumnDef::new(Alias::new("row_version")).big_integer().not_null().default(1));
    if table.soft_delete {
        statement.col(ColumnDef::new(Alias::new("deleted_at")).timestamp_with_time_zone());
    }
    statement.to_owned()
}

/// Tables in an order where every relation's target comes first (self-relations aside).
fn ordered(schema: &SchemaFile) -> Vec<&String> {
    let mut done: Vec<&String> = Vec::new();
    while done.len() < schema.tables.len() {
        let before = done.len();
        for (name, table) in &schema.tables {
            if done.contains(&name) {
                continue;
            }
            let ready = table
                .fields
                .values()
                .filter_map(|f| f.foreign.as_deref()?.split_once('.'))
                .all(|(target, _)| target == name.as_str() || done.iter().any(|d| d.as_str() == target));
            if ready {
                done.push(name);
            }
        }
        if done.len() == before {
            // A cycle: the rest in declaration order (SQLite accepts it; PostgreSQL reports it).
            done.extend(schema.tables.keys().filter(|n| !done.contains(n)).collect::<Vec<_>>());
        }
    }
    done
}

/// The statements creating an app's tables and indexes, for `backend`.
pub fn create_statements(app: &str, schema: &SchemaFile, backend: Backend) -> Vec<String> {
    let mut out = Vec::new();
    for name in ordered(schema) {
        let table = &schema.tables[name];
        let statement = create(app, schema, name, table);
        out.push(match backend {
            Backend::Sqlite => statement.to_string(SqliteQueryBuilder),
            Backend::Postgres => statement.to_string(PostgresQueryBuilder),
        });
        let scoped = match table.scope {
            Scope::Owner => Some(owner_field(table).to_owned()),
            Scope::Org => Some("org_id".to_owned()),
            Scope::Public => None,
        };
        if let Some(column) = scoped {
            let index = Index::create()
                .if_not_exists()
                .name(format!("{}__by_{column}", table_name(app, name)))
                .table(Alias::new(table_name(app, name)))
                .col(Alias::new(column))
                .to_owned();
            out.push(match backend {
                Backend::Sqlite => index.to_string(SqliteQueryBuilder),
                Backend::Postgres => index.to_string(PostgresQueryBuilder),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::schema::load;
    use crate::testing::databases;

    const SCHEMA: &str = r#"
tables:
  tasks:
    scope: owner
    soft_delete: true
    fields:
      id: { type: int, primary: true, auto: true }
      project_id: { type: relation, foreign: projects.id, on_delete: cascade, required: true }
      title: { type: string, max: 300, required: true }
      status: { type: enum, values: [todo, done] }
  projects:
    fields:
      id: { type: uuid, primary: true, auto: true }
      name: { type: string, max: 200, unique: true }
"#;

    #[tokio::test]
    async fn ddl_creates_working_tables() {
        let app = load("name: prokov\n", SCHEMA).expect("schema");
        let (databases, _dir) = databases("ddl_creates_working_tables").await;
        for db in databases {
            let statements = create_statements("prokov", &app.schema, db.backend());
            assert!(statements[0].contains("app_prokov__projects"), "targets first: {statements:?}");
            for sql in &statements {
                db.query_dynamic(sql.clone()).execute().await.unwrap_or_else(|e| panic!("{sql}: {e}"));
                // Applying again changes nothing.
                db.query_dynamic(sql.clone()).execute().await.expect("idempotent");
            }
            let project = Uuid::now_v7();
            let now = chrono::Utc::now();
            db.query_dynamic(
                r#"INSERT INTO "app_prokov__projects" ("id", "name", "created_at", "updated_at") VALUES ($1, $2, $3, $3)"#
                    .into(),
            )
            .bind(project)
            .bind("Alpha")
            .bind(now)
            .execute()
            .await
            .expect("project");
            let insert = r#"INSERT INTO "app_prokov__tasks" ("project_id", "title", "status", "owner_id", "created_at", "updated_at") VALUES ($1, $2, $3, $4, $5, $5)"#;
            let task = |status: &'static str| {
                db.query_dynamic(insert.into()).bind(project).bind("Write").bind(status).bind(Uuid::now_v7()).bind(now)
            };
            task("todo").execute().await.expect("task");
            assert!(task("someday").execute().await.is_err(), "enum values are checked by the database too");
            let missing = db
                .query_dynamic(insert.into())
                .bind(Uuid::now_v7())
                .bind("Orphan")
                .bind("todo")
                .bind(Uuid::now_v7())
                .bind(now)
                .execute()
                .await;
            assert!(missing.is_err(), "relations are foreign keys");
            db.query_dynamic(r#"DELETE FROM "app_prokov__projects" WHERE "id" = $1"#.into())
                .bind(project)
                .execute()
                .await
                .expect("delete");
            let (left,): (i64,) = db
                .query_dynamic(r#"SELECT COUNT(*) FROM "app_prokov__tasks""#.into())
                .fetch_one()
                .await
                .expect("count");
            assert_eq!(left, 0, "on_delete: cascade");
        }
    }
}
