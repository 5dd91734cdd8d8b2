//! The tables of an app in SQL, for SQLite or PostgreSQL (built with sea-query; every name is a
//! checked identifier, quoted). In Oppidum's own database an app's tables are prefixed
//! `app_<app>__`; an app with a database of its own uses the plain names. Besides the declared
//! fields each table gets the columns the server manages: `created_at`, `updated_at`,
//! `row_version` (for `If-Match`), `deleted_at` with soft delete, the owner (`scope: owner`,
//! default `owner_id`) or `org_id` (`scope: org`) when not declared.
//!
//! [`plan`] compares a schema with a database: what creating and adding would do (safe), and
//! what dropping would (destructive, applied only when forced).

use oppidum_store::{Backend, Db, StoreError};
use sea_query::{
    Alias, ColumnDef, ForeignKey, ForeignKeyAction, Index, PostgresQueryBuilder, SqliteQueryBuilder, Table,
    TableCreateStatement,
};

use crate::schema::{AppFile, Field, FieldType, OnDelete, SchemaFile, Scope, Table as TableSpec};

/// The prefix of an app's tables: `app_<app>__` in the main database, none in its own.
pub fn prefix(app: &AppFile) -> String {
    if app.database == "main" { format!("app_{}__", app.name) } else { String::new() }
}

/// The SQL name of `table` under `prefix`.
pub fn table_name(prefix: &str, table: &str) -> String {
    format!("{prefix}{table}")
}

/// The column a scoped table's rows are filtered on: the owner's or the organization's.
pub fn scope_column(table: &TableSpec) -> Option<&str> {
    match table.scope {
        Scope::Owner => Some(owner_field(table)),
        Scope::Org => Some("org_id"),
        Scope::Public => None,
    }
}

/// The owner column of a table (`scope: owner`).
pub fn owner_field(table: &TableSpec) -> &str {
    table.owner_field.as_deref().unwrap_or("owner_id")
}

/// How a column is being defined: in `CREATE TABLE`, or added to a table that has rows (then
/// nullable, without key constraints: SQLite cannot add those, and old rows have no value).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Def {
    Create,
    Add,
}

/// The column type of a field (a relation takes its target's; sealed and hashed values are text).
fn column(schema: &SchemaFile, table: &TableSpec, name: &str, field: &Field, def: Def) -> ColumnDef {
    let mut col = ColumnDef::new(Alias::new(name));
    let kind = if field.encrypt || field.hash { FieldType::Text } else { schema.value_kind(field) };
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
    if def == Def::Create {
        if field.primary {
            col.primary_key();
            if field.auto && kind == FieldType::Int {
                col.auto_increment();
            }
        }
        if field.required || field.primary {
            col.not_null();
        }
        // On a scoped table a value is unique per owner or organization (an index made below):
        // a global constraint would tell one tenant what another stored.
        if field.unique && !field.primary && scope_column(table).is_none() {
            col.unique_key();
        }
    }
    // Enum values are checked by the API, not by a CHECK constraint: adding a value to the
    // schema then needs no table rebuild (SQLite cannot alter a constraint).
    col
}

fn managed_time(name: &str, def: Def) -> ColumnDef {
    let mut col = ColumnDef::new(Alias::new(name));
    col.timestamp_with_time_zone();
    if def == Def::Create {
        col.not_null();
    }
    col
}

/// Every column a table has, declared and managed, in order.
fn expected_columns(schema: &SchemaFile, table: &TableSpec, def: Def) -> Vec<(String, ColumnDef)> {
    let mut out: Vec<(String, ColumnDef)> =
        table.fields.iter().map(|(name, field)| (name.clone(), column(schema, table, name, field, def))).collect();
    let owner = owner_field(table);
    let mut scope_column = |name: &str| {
        if !table.fields.contains_key(name) {
            let mut col = ColumnDef::new(Alias::new(name));
            col.uuid();
            if def == Def::Create {
                col.not_null();
            }
            out.push((name.to_owned(), col));
        }
    };
    match table.scope {
        Scope::Owner => scope_column(owner),
        Scope::Org => scope_column("org_id"),
        Scope::Public => {}
    }
    out.push(("created_at".into(), managed_time("created_at", def)));
    out.push(("updated_at".into(), managed_time("updated_at", def)));
    let mut version = ColumnDef::new(Alias::new("row_version"));
    version.big_integer().not_null().default(1);
    out.push(("row_version".into(), version));
    if table.soft_delete {
        out.push(("deleted_at".into(), managed_time("deleted_at", Def::Add)));
    }
    out
}

/// `CREATE TABLE IF NOT EXISTS` for one table.
fn create(prefix: &str, schema: &SchemaFile, name: &str, table: &TableSpec) -> TableCreateStatement {
    let mut statement = Table::create();
    statement.table(Alias::new(table_name(prefix, name))).if_not_exists();
    for (_, col) in expected_columns(schema, table, Def::Create) {
        statement.col(col);
    }
    for (field_name, field) in &table.fields {
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
                    .from(Alias::new(table_name(prefix, name)), Alias::new(field_name))
                    .to(Alias::new(table_name(prefix, target)), Alias::new(target_field))
                    .on_delete(action),
            );
        }
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

fn build(statement: &impl SqlText, backend: Backend) -> String {
    match backend {
        Backend::Sqlite => statement.sqlite(),
        Backend::Postgres => statement.postgres(),
    }
}

trait SqlText {
    fn sqlite(&self) -> String;
    fn postgres(&self) -> String;
}

macro_rules! sql_text {
    ($($ty:ty),*) => {$(
        impl SqlText for $ty {
            fn sqlite(&self) -> String {
                self.to_string(SqliteQueryBuilder)
            }
            fn postgres(&self) -> String {
                self.to_string(PostgresQueryBuilder)
            }
        }
    )*};
}

sql_text!(
    TableCreateStatement,
    sea_query::IndexCreateStatement,
    sea_query::TableAlterStatement,
    sea_query::TableDropStatement
);

/// The index on a table's scope column, if it has one, followed by the primary key: a listing
/// (`WHERE owner = $1 ORDER BY id LIMIT n`) reads its page in order instead of sorting every row
/// of the owner.
fn scope_index(prefix: &str, name: &str, table: &TableSpec, backend: Backend) -> Option<String> {
    let column = scope_column(table)?.to_owned();
    let mut index = Index::create()
        .if_not_exists()
        .name(format!("{}__by_{column}", table_name(prefix, name)))
        .table(Alias::new(table_name(prefix, name)))
        .col(Alias::new(&column))
        .to_owned();
    for (key, _) in table.fields.iter().filter(|(key, field)| field.primary && **key != column) {
        index.col(Alias::new(key));
    }
    Some(build(&index, backend))
}

/// The unique index of a `unique` field of a scoped table: per owner or organization.
fn scoped_unique(prefix: &str, name: &str, table: &TableSpec, column: &str, backend: Backend) -> Option<String> {
    let scope = scope_column(table)?;
    let sql_name = table_name(prefix, name);
    let index = Index::create()
        .if_not_exists()
        .unique()
        .name(format!("{sql_name}__unique_{column}"))
        .table(Alias::new(&sql_name))
        .col(Alias::new(scope))
        .col(Alias::new(column))
        .to_owned();
    Some(build(&index, backend))
}

fn scoped_uniques(prefix: &str, name: &str, table: &TableSpec, backend: Backend) -> Vec<String> {
    table
        .fields
        .iter()
        .filter(|(_, f)| f.unique && !f.primary)
        .filter_map(|(column, _)| scoped_unique(prefix, name, table, column, backend))
        .collect()
}

/// The statements creating an app's tables and indexes, for `backend`.
pub fn create_statements(prefix: &str, schema: &SchemaFile, backend: Backend) -> Vec<String> {
    let mut out = Vec::new();
    for name in ordered(schema) {
        let table = &schema.tables[name];
        out.push(build(&create(prefix, schema, name, table), backend));
        out.extend(scope_index(prefix, name, table, backend));
        out.extend(scoped_uniques(prefix, name, table, backend));
    }
    out
}

/// What bringing a database in line with a schema takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Creating tables, adding columns and indexes: nothing is lost.
    pub safe: Vec<String>,
    /// Dropping tables or columns the schema no longer has.
    pub destructive: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.safe.is_empty() && self.destructive.is_empty()
    }
}

/// The tables and their columns a database has.
pub async fn existing_tables(db: &Db) -> Result<Vec<(String, Vec<String>)>, StoreError> {
    let names: Vec<(String,)> = match db.backend() {
        Backend::Sqlite => {
            db.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
                .fetch_all()
                .await?
        }
        Backend::Postgres => {
            db.query(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name",
            )
            .fetch_all()
            .await?
        }
    };
    let mut out = Vec::new();
    for (name,) in names {
        let columns: Vec<(String,)> = match db.backend() {
            Backend::Sqlite => db.query("SELECT name FROM pragma_table_info($1) ORDER BY cid").bind(name.as_str()),
            Backend::Postgres => db
                .query(
                    "SELECT column_name::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                )
                .bind(name.as_str()),
        }
        .fetch_all()
        .await?;
        out.push((name, columns.into_iter().map(|(c,)| c).collect()));
    }
    Ok(out)
}

/// Compares `schema` (tables under `prefix`) with what `db` has.
pub async fn plan(db: &Db, prefix: &str, schema: &SchemaFile) -> Result<Plan, StoreError> {
    let backend = db.backend();
    let existing = existing_tables(db).await?;
    let mut plan = Plan::default();
    for name in ordered(schema) {
        let table = &schema.tables[name];
        let sql_name = table_name(prefix, name);
        let Some((_, have)) = existing.iter().find(|(t, _)| *t == sql_name) else {
            plan.safe.push(build(&create(prefix, schema, name, table), backend));
            plan.safe.extend(scope_index(prefix, name, table, backend));
            plan.safe.extend(scoped_uniques(prefix, name, table, backend));
            continue;
        };
        let expected = expected_columns(schema, table, Def::Add);
        for (column, def) in expected.iter().filter(|(c, _)| !have.contains(c)) {
            let alter = Table::alter().table(Alias::new(&sql_name)).add_column(def.clone()).to_owned();
            plan.safe.push(build(&alter, backend));
            if table.fields.get(column).is_some_and(|f| f.unique && !f.primary) {
                if let Some(index) = scoped_unique(prefix, name, table, column, backend) {
                    plan.safe.push(index);
                    continue;
                }
                let index = Index::create()
                    .if_not_exists()
                    .unique()
                    .name(format!("{sql_name}__unique_{column}"))
                    .table(Alias::new(&sql_name))
                    .col(Alias::new(column))
                    .to_owned();
                plan.safe.push(build(&index, backend));
            }
        }
        for column in have.iter().filter(|c| !expected.iter().any(|(e, _)| e == *c)) {
            let drop = Table::alter().table(Alias::new(&sql_name)).drop_column(Alias::new(column)).to_owned();
            plan.destructive.push(build(&drop, backend));
        }
    }
    if !prefix.is_empty() {
        for (name, _) in &existing {
            // `app_x__t` is app `x`'s; `app_x___t` belongs to app `x_`, not to `x`.
            let ours = name
                .strip_prefix(prefix)
                .is_some_and(|t| crate::schema::valid_identifier(t) && !schema.tables.contains_key(t));
            if ours {
                plan.destructive.push(build(&Table::drop().table(Alias::new(name)).to_owned(), backend));
            }
        }
    }
    Ok(plan)
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
            let statements = create_statements("app_prokov__", &app.schema, db.backend());
            assert!(statements[0].contains("app_prokov__projects"), "targets first: {statements:?}");
            let by_owner = statements.iter().find(|s| s.contains("__by_owner_id")).expect("scope index");
            assert!(by_owner.contains(r#"("owner_id", "id")"#), "listings read in key order: {by_owner}");
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
