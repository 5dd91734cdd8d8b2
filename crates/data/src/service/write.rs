//! Changing rows, always inside a transaction the caller commits (one operation, or a batch):
//! create, update with `If-Match`, delete (soft, cascading depth first to the rows that refer to
//! it), restore (with what the same deletion cascaded to), purge. Rules are checked in SQL on
//! the rows themselves; a relation may only point to a row the caller can see.

use chrono::{DateTime, Utc};
use oppidum_core::{Error, ErrorKind};
use oppidum_store::{JsonRow, JsonValues, Tx, Value};
use serde::Serialize;
use serde_json::{Map, Value as Json};
use uuid::Uuid;

use super::access::{Ctx, Deleted};
use super::errors::{OrStore, validation};
use super::read::rows_out;
use super::sql::{Sql, bindable, columns, err, json_value, parse_id, primary, quote, select_list};
use crate::ddl::owner_field;
use crate::schema::{FieldType, Operation, Scope, Table};
use crate::values::{FieldError, Mode, Typed, check};

/// A change made, published as `data.<app>.<table>.<action>` once committed.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub table: String,
    pub action: &'static str,
    pub id: Json,
    /// A deletion that cannot be undone.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub purged: bool,
}

fn not_found(name: &str, id: &str) -> Error {
    err(ErrorKind::NotFound, "not_found", format!("No row `{id}` in `{name}`."))
}

fn denied(op: &str) -> Error {
    err(ErrorKind::Forbidden, "rule_denied", format!("The table's `{op}` rule does not allow this."))
}

/// Errors for scope columns a body tries to set.
fn scope_errors(table: &Table, body: &Map<String, Json>) -> Vec<FieldError> {
    let column = match table.scope {
        Scope::Owner => owner_field(table),
        Scope::Org => "org_id",
        Scope::Public => return Vec::new(),
    };
    if body.contains_key(column) && table.fields.contains_key(column) {
        vec![FieldError { field: column.to_owned(), reason: "set by the server".into() }]
    } else {
        Vec::new()
    }
}

/// Checks a body; every problem at once.
fn checked(table: &Table, ctx: &Ctx<'_>, body: &Map<String, Json>, mode: Mode) -> Result<Vec<(String, Typed)>, Error> {
    let mut errors = scope_errors(table, body);
    let values = match check(&ctx.loaded.app.schema, table, body, mode) {
        Ok(values) => values,
        Err(more) => {
            errors.extend(more);
            Vec::new()
        }
    };
    if errors.is_empty() { Ok(values) } else { Err(validation(errors)) }
}

/// Relations must point to rows the caller can see, and files to files the caller can read
/// (else other tenants' ids would be probed).
async fn check_references(ctx: &Ctx<'_>, tx: &mut Tx, table: &Table, values: &[(String, Typed)]) -> Result<(), Error> {
    let schema = &ctx.loaded.app.schema;
    let mut errors = Vec::new();
    for (name, value) in values {
        if let (Some(files), Some(field), Typed::Uuid(file)) = (ctx.files, table.fields.get(name), value)
            && field.kind == FieldType::File
            && !files.can_read_file(ctx.principal, *file).await?
        {
            errors.push(FieldError { field: name.clone(), reason: "no such file in your drives".into() });
            continue;
        }
        let Some(field) = table.fields.get(name).filter(|f| f.kind == FieldType::Relation) else { continue };
        if *value == Typed::Null {
            continue;
        }
        let Some((target_name, target_field)) = field.foreign.as_deref().and_then(|f| f.split_once('.')) else {
            continue;
        };
        let target = ctx.table(target_name)?;
        let mut sql = Sql::default();
        let visible = ctx.visible(&mut sql, target, Operation::Get, Deleted::Hide)?;
        let p = sql.param(bindable(schema, field, value.clone()));
        let text =
            format!("SELECT 1 FROM {} WHERE {} = {p} AND {visible}", ctx.sql_table(target_name), quote(target_field));
        let found: Option<(i32,)> = sql.run_in(tx, text).fetch_optional().await.or_store()?;
        if found.is_none() {
            errors.push(FieldError { field: name.clone(), reason: format!("no such row in `{target_name}`") });
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(validation(errors)) }
}

/// The stored form of a value: hashed or sealed when the field says so.
async fn stored(ctx: &Ctx<'_>, name: &str, table: &Table, field_name: &str, value: Typed) -> Result<Value, Error> {
    let schema = &ctx.loaded.app.schema;
    let Some(field) = table.fields.get(field_name) else { return Ok(value.into()) };
    let value = match value {
        Typed::Text(text) if field.hash => Typed::Text(ctx.directory.hash_password(&text).await?),
        Typed::Text(text) if field.encrypt => Typed::Text(ctx.seal(name, field_name, &text)),
        Typed::Json(json) if field.encrypt => Typed::Text(ctx.seal(name, field_name, &json.to_string())),
        other => other,
    };
    Ok(bindable(schema, field, value))
}

/// A rule over one row, checked in SQL.
async fn passes(
    ctx: &Ctx<'_>,
    tx: &mut Tx,
    name: &str,
    table: &Table,
    id: &Value,
    op: Operation,
) -> Result<bool, Error> {
    let mut sql = Sql::default();
    let Some(rule) = ctx.rule_condition(&mut sql, table, op)? else { return Ok(true) };
    let p = sql.param(id.clone());
    let text = format!("SELECT 1 FROM {} WHERE {} = {p} AND {rule}", ctx.sql_table(name), quote(primary(table).0));
    let found: Option<(i32,)> = sql.run_in(tx, text).fetch_optional().await.or_store()?;
    Ok(found.is_some())
}

/// A row as callers see it, read inside the transaction.
async fn read_back(
    ctx: &Ctx<'_>,
    tx: &mut Tx,
    name: &str,
    table: &Table,
    id: &Value,
) -> Result<Map<String, Json>, Error> {
    let cols = columns(&ctx.loaded.app.schema, table);
    let mut sql = Sql::default();
    let p = sql.param(id.clone());
    let text =
        format!("SELECT {} FROM {} WHERE {} = {p}", select_list(&cols), ctx.sql_table(name), quote(primary(table).0));
    let row: JsonValues = sql.run_in(tx, text).fetch_one().await.or_store()?;
    Ok(rows_out(ctx, name, table, &cols, vec![row]).remove(0))
}

/// The row `id_text` of `name` as the caller sees it, locked on PostgreSQL until the transaction
/// ends (so the checks made on it still hold when it changes; SQLite runs one writing
/// transaction at a time already): its id, version and deletion time. 404 when it cannot be seen.
async fn locate(
    ctx: &Ctx<'_>,
    tx: &mut Tx,
    (name, table): (&str, &Table),
    id_text: &str,
    deleted: Deleted,
) -> Result<(Value, i64, Option<String>), Error> {
    let id = parse_id(&ctx.loaded.app.schema, table, id_text).ok_or_else(|| not_found(name, id_text))?;
    let mut sql = Sql::default();
    let visible = ctx.visible(&mut sql, table, Operation::Get, deleted)?;
    let p = sql.param(id.clone());
    let deleted_at = if table.soft_delete { "\"deleted_at\"" } else { "NULL" };
    let lock = if tx.backend() == oppidum_store::Backend::Postgres { " FOR UPDATE" } else { "" };
    let text = format!(
        "SELECT \"row_version\", {deleted_at} AS \"deleted_at\" FROM {} WHERE {} = {p} AND {visible}{lock}",
        ctx.sql_table(name),
        quote(primary(table).0)
    );
    let row: JsonRow =
        sql.run_in(tx, text).fetch_optional().await.or_store()?.ok_or_else(|| not_found(name, id_text))?;
    let version = row.get("row_version").and_then(Json::as_i64).unwrap_or(0);
    let deleted = row.get("deleted_at").and_then(Json::as_str).map(str::to_owned);
    Ok((id, version, deleted))
}

/// 412 unless `if_match` names `version` (`*` matches any).
fn precondition(if_match: Option<&str>, version: i64) -> Result<(), Error> {
    let Some(tags) = if_match else { return Ok(()) };
    // Strong comparison (RFC 9110 §13.1.1): a weak tag never matches.
    let matches = tags
        .split(',')
        .map(str::trim)
        .filter(|t| !t.starts_with("W/"))
        .map(|t| t.trim_matches('"'))
        .any(|t| t == "*" || t.parse::<i64>().is_ok_and(|v| v == version));
    if matches {
        Ok(())
    } else {
        Err(err(
            ErrorKind::PreconditionFailed,
            "etag_mismatch",
            format!("The row changed: it is at version {version}; read it again."),
        ))
    }
}

/// The `INSERT … RETURNING` of a checked row, and the columns it returns.
async fn insert_statement(
    ctx: &Ctx<'_>,
    name: &str,
    table: &Table,
    values: Vec<(String, Typed)>,
) -> Result<(Sql, String, Vec<super::sql::Column>), Error> {
    let (pk, pk_field) = primary(table);
    let mut sql = Sql::default();
    let mut cols = Vec::new();
    let mut placeholders = Vec::new();
    if pk_field.auto && pk_field.kind == FieldType::Uuid {
        cols.push(quote(pk));
        placeholders.push(sql.param(Uuid::now_v7()));
    }
    for (field, value) in values {
        let value = stored(ctx, name, table, &field, value).await?;
        cols.push(quote(&field));
        placeholders.push(sql.param(value));
    }
    match table.scope {
        Scope::Owner => {
            cols.push(quote(owner_field(table)));
            placeholders.push(sql.param(ctx.auth.id));
        }
        Scope::Org => {
            cols.push(quote("org_id"));
            placeholders.push(sql.param(ctx.auth.org));
        }
        Scope::Public => {}
    }
    for managed in ["created_at", "updated_at"] {
        cols.push(quote(managed));
        placeholders.push(sql.param(ctx.now));
    }
    // The row comes back as stored: one statement, no reading it again.
    let out = columns(&ctx.loaded.app.schema, table);
    let text = format!(
        "INSERT INTO {} ({}) VALUES ({}) RETURNING {}",
        ctx.sql_table(name),
        cols.join(", "),
        placeholders.join(", "),
        select_list(&out)
    );
    Ok((sql, text, out))
}

/// The id of a row just inserted, and the change to publish.
fn inserted_id(ctx: &Ctx<'_>, name: &str, table: &Table, row: &JsonRow) -> Result<(Value, Change), Error> {
    let pk = primary(table).0;
    let id_json = row.get(pk).cloned().unwrap_or(Json::Null);
    let id =
        json_value(&ctx.loaded.app.schema, table, pk, &id_json).ok_or_else(|| Error::internal("no id returned"))?;
    Ok((id, Change { table: name.to_owned(), action: "created", id: id_json, purged: false }))
}

/// Creates a row.
pub(crate) async fn create(
    ctx: &Ctx<'_>,
    tx: &mut Tx,
    name: &str,
    body: &Map<String, Json>,
    changes: &mut Vec<Change>,
) -> Result<Map<String, Json>, Error> {
    let table = ctx.table(name)?;
    ctx.allow(name, table, Operation::Create)?;
    let values = checked(table, ctx, body, Mode::Create)?;
    check_references(ctx, tx, table, &values).await?;
    let (sql, text, out) = insert_statement(ctx, name, table, values).await?;
    let inserted: JsonRow = sql.run_in(tx, text).fetch_one().await.or_store()?;
    let (id, change) = inserted_id(ctx, name, table, &inserted)?;
    if !passes(ctx, tx, name, table, &id, Operation::Create).await? {
        return Err(denied("create"));
    }
    changes.push(change);
    Ok(rows_out(ctx, name, table, &out, vec![inserted.into_values()]).remove(0))
}

/// Whether creating this row is one statement: no `create` rule to check on the stored row and
/// no relation or file to check first. Then it runs without an explicit transaction (one
/// round trip to the database instead of three).
pub(crate) fn standalone(ctx: &Ctx<'_>, name: &str, body: &Map<String, Json>) -> bool {
    let Ok(table) = ctx.table(name) else { return false };
    ctx.rule(table, Operation::Create).is_none()
        && table.fields.iter().all(|(field, f)| {
            !matches!(f.kind, FieldType::Relation | FieldType::File) || body.get(field).is_none_or(Json::is_null)
        })
}

/// Creates a row [`standalone`] says needs no transaction.
pub(crate) async fn create_standalone(
    ctx: &Ctx<'_>,
    name: &str,
    body: &Map<String, Json>,
    changes: &mut Vec<Change>,
) -> Result<Map<String, Json>, Error> {
    let table = ctx.table(name)?;
    ctx.allow(name, table, Operation::Create)?;
    let values = checked(table, ctx, body, Mode::Create)?;
    let (sql, text, out) = insert_statement(ctx, name, table, values).await?;
    let inserted: JsonRow = sql.run(&ctx.loaded.db, text).fetch_one().await.or_store()?;
    let (_, change) = inserted_id(ctx, name, table, &inserted)?;
    changes.push(change);
    Ok(rows_out(ctx, name, table, &out, vec![inserted.into_values()]).remove(0))
}

/// Updates the fields given of a row.
pub(crate) async fn update(
    ctx: &Ctx<'_>,
    tx: &mut Tx,
    name: &str,
    id_text: &str,
    body: &Map<String, Json>,
    if_match: Option<&str>,
    changes: &mut Vec<Change>,
) -> Result<Map<String, Json>, Error> {
    let table = ctx.table(name)?;
    ctx.allow(name, table, Operation::Update)?;
    let (id, version, _) = locate(ctx, tx, (name, table), id_text, Deleted::Hide).await?;
    precondition(if_match, version)?;
    let values = checked(table, ctx, body, Mode::Update)?;
    if !passes(ctx, tx, name, table, &id, Operation::Update).await? {
        return Err(denied("update"));
    }
    check_references(ctx, tx, table, &values).await?;
    let mut sql = Sql::default();
    let mut sets = Vec::new();
    for (field, value) in values {
        let value = stored(ctx, name, table, &field, value).await?;
        sets.push(format!("{} = {}", quote(&field), sql.param(value)));
    }
    sets.push(format!("\"updated_at\" = {}", sql.param(ctx.now)));
    sets.push("\"row_version\" = \"row_version\" + 1".into());
    let p_id = sql.param(id.clone());
    let p_version = sql.param(version);
    let out = columns(&ctx.loaded.app.schema, table);
    let text = format!(
        "UPDATE {} SET {} WHERE {} = {p_id} AND \"row_version\" = {p_version} RETURNING {}",
        ctx.sql_table(name),
        sets.join(", "),
        quote(primary(table).0),
        select_list(&out)
    );
    let Some(updated) = sql.run_in(tx, text).fetch_optional::<JsonRow>().await.or_store()? else {
        return Err(err(
            ErrorKind::PreconditionFailed,
            "etag_mismatch",
            "The row changed while it was being updated; read it again.",
        ));
    };
    // The rule holds for the row as changed too: an update cannot move a row out of it.
    if !passes(ctx, tx, name, table, &id, Operation::Update).await? {
        return Err(denied("update"));
    }
    changes.push(Change { table: name.to_owned(), action: "updated", id: id_json(&id), purged: false });
    Ok(rows_out(ctx, name, table, &out, vec![updated.into_values()]).remove(0))
}

/// Deletes a row: soft (cascading) when the table keeps deleted rows, else for good.
pub(crate) async fn delete(
    ctx: &Ctx<'_>,
    tx: &mut Tx,
    name: &str,
    id_text: &str,
    if_match: Option<&str>,
    changes: &mut Vec<Change>,
) -> Result<(), Error> {
    let table = ctx.table(name)?;
    ctx.allow(name, table, Operation::Delete)?;
    let (id, version, _) = locate(ctx, tx, (name, table), id_text, Deleted::Hide).await?;
    precondition(if_match, version)?;
    if !passes(ctx, tx, name, table, &id, Operation::Delete).await? {
        return Err(denied("delete"));
    }
    if table.soft_delete {
        walk(ctx, tx, (name, table), id, (Walk::Delete, ctx.now, 0), changes).await
    } else {
        hard_delete(ctx, tx, name, table, &id).await?;
        changes.push(Change { table: name.to_owned(), action: "deleted", id: id_json(&id), purged: false });
        Ok(())
    }
}

async fn hard_delete(ctx: &Ctx<'_>, tx: &mut Tx, name: &str, table: &Table, id: &Value) -> Result<(), Error> {
    let mut sql = Sql::default();
    let p = sql.param(id.clone());
    let text = format!("DELETE FROM {} WHERE {} = {p}", ctx.sql_table(name), quote(primary(table).0));
    sql.run_in(tx, text).execute().await.or_store()?;
    Ok(())
}

/// The tables with a soft-deletable relation to `parent`: (table, field, parent column).
fn children<'a>(ctx: &'a Ctx<'_>, parent: &str) -> Vec<(&'a str, &'a Table, &'a str, &'a str)> {
    let mut out = Vec::new();
    for (name, table) in &ctx.loaded.app.schema.tables {
        for (field_name, field) in &table.fields {
            let target = field.foreign.as_deref().and_then(|f| f.split_once('.'));
            if field.kind == FieldType::Relation
                && table.soft_delete
                && let Some((target_table, target_field)) = target
                && target_table == parent
            {
                out.push((name.as_str(), table, field_name.as_str(), target_field));
            }
        }
    }
    out
}

/// A column's value in one row, bound as its type.
async fn column_of(
    ctx: &Ctx<'_>,
    tx: &mut Tx,
    name: &str,
    table: &Table,
    id: &Value,
    column: &str,
) -> Result<Option<Value>, Error> {
    let mut sql = Sql::default();
    let p = sql.param(id.clone());
    let text = format!("SELECT {} FROM {} WHERE {} = {p}", quote(column), ctx.sql_table(name), quote(primary(table).0));
    let row: Option<JsonRow> = sql.run_in(tx, text).fetch_optional().await.or_store()?;
    Ok(row.and_then(|r| json_value(&ctx.loaded.app.schema, table, column, r.get(column)?)))
}

/// The ids of `child` rows whose `field` is `value`, live or deleted at `stamp`.
async fn child_ids(
    ctx: &Ctx<'_>,
    tx: &mut Tx,
    child: &str,
    table: &Table,
    field: &str,
    value: &Value,
    stamp: Option<DateTime<Utc>>,
) -> Result<Vec<Value>, Error> {
    let mut sql = Sql::default();
    let p = sql.param(value.clone());
    let deleted = match stamp {
        None => "\"deleted_at\" IS NULL".to_owned(),
        Some(stamp) => format!("\"deleted_at\" = {}", sql.param(stamp)),
    };
    let pk = primary(table).0;
    let text = format!("SELECT {} FROM {} WHERE {} = {p} AND {deleted}", quote(pk), ctx.sql_table(child), quote(field));
    let rows: Vec<JsonRow> = sql.run_in(tx, text).fetch_all().await.or_store()?;
    Ok(rows.iter().filter_map(|r| json_value(&ctx.loaded.app.schema, table, pk, r.get(pk)?)).collect())
}

/// A row id as it appears in events.
fn id_json(id: &Value) -> Json {
    match id {
        Value::I64(Some(n)) => Json::from(*n),
        Value::Uuid(Some(u)) => Json::String(u.to_string()),
        Value::Text(Some(t)) => Json::String(t.clone()),
        _ => Json::Null,
    }
}

/// How deep a cascade goes, and how many rows one deletion may touch.
const MAX_CASCADE_DEPTH: usize = 32;
const MAX_CASCADE_ROWS: usize = 10_000;

fn cascade_limit(depth: usize, changes: &[Change]) -> Result<(), Error> {
    if depth > MAX_CASCADE_DEPTH || changes.len() > MAX_CASCADE_ROWS {
        return Err(err(
            ErrorKind::Conflict,
            "cascade_too_large",
            format!(
                "The deletion would cascade deeper than {MAX_CASCADE_DEPTH} levels or to more than \
                 {MAX_CASCADE_ROWS} rows; delete the rows that refer to it first."
            ),
        ));
    }
    Ok(())
}

/// Which way a soft-deletion walk goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// Mark live rows deleted at the stamp.
    Delete,
    /// Bring back the rows deleted at the stamp.
    Restore,
}

/// Deletes (or restores) a row at `stamp`, then, depth first, the rows that refer to it when the
/// table cascades: live ones when deleting, the ones deleted at the same time when restoring. A
/// row already in the target state stops the walk, so rows referring to themselves or to each
/// other in a loop end it.
fn walk<'a>(
    ctx: &'a Ctx<'_>,
    tx: &'a mut Tx,
    (name, table): (&'a str, &'a Table),
    id: Value,
    (way, stamp, depth): (Walk, DateTime<Utc>, usize),
    changes: &'a mut Vec<Change>,
) -> futures::future::BoxFuture<'a, Result<(), Error>> {
    Box::pin(async move {
        cascade_limit(depth, changes)?;
        let mut sql = Sql::default();
        let (set, still, action, children_at) = match way {
            Walk::Delete => {
                let p = sql.param(stamp);
                (format!("\"deleted_at\" = {p}, \"updated_at\" = {p}"), "IS NULL", "deleted", None)
            }
            Walk::Restore => (
                format!("\"deleted_at\" = NULL, \"updated_at\" = {}", sql.param(ctx.now)),
                "IS NOT NULL",
                "restored",
                Some(stamp),
            ),
        };
        let p_id = sql.param(id.clone());
        let text = format!(
            "UPDATE {} SET {set}, \"row_version\" = \"row_version\" + 1 WHERE {} = {p_id} AND \"deleted_at\" {still}",
            ctx.sql_table(name),
            quote(primary(table).0)
        );
        if sql.run_in(tx, text).execute().await.or_store()? == 0 {
            return Ok(());
        }
        changes.push(Change { table: name.to_owned(), action, id: id_json(&id), purged: false });
        if table.cascade {
            for (child, child_table, field, parent_column) in children(ctx, name) {
                let Some(value) = column_of(ctx, tx, name, table, &id, parent_column).await? else { continue };
                for child_id in child_ids(ctx, tx, child, child_table, field, &value, children_at).await? {
                    walk(ctx, tx, (child, child_table), child_id, (way, stamp, depth + 1), changes).await?;
                }
            }
        }
        Ok(())
    })
}

/// Restores a soft-deleted row.
pub(crate) async fn restore(
    ctx: &Ctx<'_>,
    tx: &mut Tx,
    name: &str,
    id_text: &str,
    changes: &mut Vec<Change>,
) -> Result<Map<String, Json>, Error> {
    let table = ctx.table(name)?;
    ctx.allow(name, table, Operation::Restore)?;
    let (id, _, deleted) = locate(ctx, tx, (name, table), id_text, Deleted::Include).await?;
    let Some(stamp) = deleted else {
        return Err(err(ErrorKind::Conflict, "not_deleted", format!("Row `{id_text}` of `{name}` is not deleted.")));
    };
    if !passes(ctx, tx, name, table, &id, Operation::Restore).await? {
        return Err(denied("restore"));
    }
    let stamp = super::sql::time_text(&stamp)
        .as_deref()
        .and_then(super::sql::parse_time)
        .ok_or_else(|| Error::internal("unreadable deleted_at"))?;
    walk(ctx, tx, (name, table), id.clone(), (Walk::Restore, stamp, 0), changes).await?;
    read_back(ctx, tx, name, table, &id).await
}

/// Deletes a row for good (`data.<app>.purge`, confirmed with `force`).
pub(crate) async fn purge(
    ctx: &Ctx<'_>,
    tx: &mut Tx,
    name: &str,
    id_text: &str,
    force: bool,
    changes: &mut Vec<Change>,
) -> Result<(), Error> {
    let table = ctx.table(name)?;
    ctx.allow(name, table, Operation::Purge)?;
    let permission = format!("data.{}.purge", ctx.app_name());
    if !ctx.principal.can(&permission) {
        return Err(err(ErrorKind::Forbidden, "missing_permission", format!("Purging needs `{permission}`.")));
    }
    if !force {
        return Err(err(ErrorKind::Invalid, "confirmation_required", "Purging cannot be undone: add `force=true`."));
    }
    let (id, _, _) = locate(ctx, tx, (name, table), id_text, Deleted::Any).await?;
    if !passes(ctx, tx, name, table, &id, Operation::Purge).await? {
        return Err(denied("purge"));
    }
    hard_delete(ctx, tx, name, table, &id).await?;
    changes.push(Change { table: name.to_owned(), action: "deleted", id: id_json(&id), purged: true });
    Ok(())
}
