//! Reading rows: one by id, and pages of a table with a filter expression, a named filter, a
//! search, a sort, keyset cursors, field selection, related rows included and a total count.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oppidum_core::{Error, ErrorKind};
use oppidum_store::JsonValues;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::access::{Ctx, Deleted};
use super::errors::OrStore;
use super::items::Items;
use super::sql::{Column, Sql, columns, err, json_value, output, parse_id, primary, quote, select_list};
use crate::expr::{self, CmpOp, Expr, Literal, Operand};
use crate::schema::{FieldType, Operation, Table};
use crate::values;

/// Rows per page unless asked otherwise, and at most.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

/// What a list request asks for.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// A filter expression, e.g. `status == "open" && priority >= 2`.
    pub filter: Option<String>,
    /// A filter the table names in its schema.
    pub named: Option<String>,
    /// Text searched (case-insensitively) in the table's `searchable` fields.
    pub search: Option<String>,
    /// Sort keys, comma-separated, `-` for descending: `-priority,title`.
    pub sort: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Rows per page (default 50, at most 500).
    pub limit: Option<u32>,
    /// Fields to return, comma-separated (the primary key always comes).
    pub fields: Option<String>,
    /// Relation fields whose rows to include, comma-separated.
    pub include: Option<String>,
    /// Also count every matching row (`total`).
    pub count: Option<bool>,
    /// Also list deleted rows the caller may restore.
    pub include_deleted: Option<bool>,
}

/// A page of rows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page {
    #[schema(value_type = Vec<Object>)]
    pub items: Items,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

fn invalid(code: &'static str, message: impl Into<String>) -> Error {
    err(ErrorKind::Invalid, code, message)
}

/// Reads rows into what callers see, as a page's items.
fn items_out(ctx: &Ctx<'_>, name: &str, table: &Table, cols: &[Column], rows: Vec<JsonValues>) -> Items {
    let decrypt = ctx.can_decrypt(name);
    let opener = |field: &str, sealed: &str| ctx.open(table, name, field, sealed);
    Items::read(cols, rows, if decrypt { Some(&opener) } else { None })
}

/// Reads rows into what callers see.
pub(crate) fn rows_out(
    ctx: &Ctx<'_>,
    name: &str,
    table: &Table,
    cols: &[Column],
    rows: Vec<JsonValues>,
) -> Vec<Map<String, Json>> {
    let decrypt = ctx.can_decrypt(name);
    let opener = |field: &str, sealed: &str| ctx.open(table, name, field, sealed);
    rows.into_iter().map(|row| output(cols, row, if decrypt { Some(&opener) } else { None })).collect()
}

/// One row by id, if the caller may see it.
pub(crate) async fn get(
    ctx: &Ctx<'_>,
    name: &str,
    id: &str,
    include_deleted: bool,
) -> Result<Map<String, Json>, Error> {
    let table = ctx.table(name)?;
    ctx.allow(name, table, Operation::Get)?;
    let schema = &ctx.loaded.app.schema;
    let not_found = || err(ErrorKind::NotFound, "not_found", format!("No row `{id}` in `{name}`."));
    let id = parse_id(schema, table, id).ok_or_else(not_found)?;
    let mut sql = Sql::default();
    let deleted = if include_deleted { Deleted::Include } else { Deleted::Hide };
    let visible = ctx.visible(&mut sql, table, Operation::Get, deleted)?;
    let p = sql.param(id);
    let cols = columns(schema, table);
    let text = format!(
        "SELECT {} FROM {} WHERE {} = {p} AND {visible}",
        select_list(&cols),
        ctx.sql_table(name),
        quote(primary(table).0)
    );
    let row: Option<JsonValues> = sql.run(&ctx.loaded.db, text).fetch_optional().await.or_store()?;
    let row = row.ok_or_else(not_found)?;
    Ok(rows_out(ctx, name, table, &cols, vec![row]).remove(0))
}

/// A sort key: column, descending.
type Key = (String, bool);

fn sort_keys(table: &Table, sort: Option<&str>) -> Result<Vec<Key>, Error> {
    let mut keys = Vec::new();
    let text = sort.or(table.order.as_deref()).unwrap_or("");
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (column, desc) = if let Some(rest) = part.strip_prefix('-') {
            (rest.trim(), true)
        } else if let Some((column, dir)) = part.split_once(char::is_whitespace) {
            match dir.trim().to_ascii_lowercase().as_str() {
                "asc" => (column, false),
                "desc" => (column, true),
                _ => return Err(invalid("invalid_sort", format!("`{part}`: the direction is ASC or DESC."))),
            }
        } else {
            (part, false)
        };
        if !table.sortable(column) {
            return Err(invalid("invalid_sort", format!("Cannot sort on `{column}`.")));
        }
        if !keys.iter().any(|(c, _): &Key| c == column) {
            keys.push((column.to_owned(), desc));
        }
    }
    if keys.len() > 8 {
        return Err(invalid("invalid_sort", "Sort on at most 8 fields."));
    }
    let pk = primary(table).0;
    if !keys.iter().any(|(c, _)| c == pk) {
        keys.push((pk.to_owned(), false));
    }
    Ok(keys)
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    /// The sort it continues.
    s: String,
    /// The last row's key values.
    v: Vec<Json>,
}

fn sort_text(keys: &[Key]) -> String {
    keys.iter().map(|(c, d)| if *d { format!("-{c}") } else { c.clone() }).collect::<Vec<_>>().join(",")
}

/// `(keys) > (cursor)` in the sort's order, nulls last in both directions.
fn after(ctx: &Ctx<'_>, table: &Table, sql: &mut Sql, keys: &[Key], cursor: &str) -> Result<String, Error> {
    let bad = || invalid("invalid_cursor", "The cursor is not one this list gave, or the sort changed.");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if cursor.s != sort_text(keys) || cursor.v.len() != keys.len() {
        return Err(bad());
    }
    let mut values = Vec::new();
    for ((column, _), value) in keys.iter().zip(&cursor.v) {
        match json_value(&ctx.loaded.app.schema, table, column, value) {
            Some(v) => values.push(Some(v)),
            None if value.is_null() => values.push(None),
            None => return Err(bad()),
        }
    }
    let mut alternatives = Vec::new();
    for i in 0..keys.len() {
        let mut parts = Vec::new();
        for ((column, _), value) in keys.iter().zip(&values).take(i) {
            parts.push(match value {
                Some(v) => format!("{} = {}", quote(column), sql.param(v.clone())),
                None => format!("{} IS NULL", quote(column)),
            });
        }
        let (column, desc) = &keys[i];
        let Some(value) = &values[i] else { continue };
        let op = if *desc { "<" } else { ">" };
        parts.push(format!("({0} {op} {1} OR {0} IS NULL)", quote(column), sql.param(value.clone())));
        alternatives.push(format!("({})", parts.join(" AND ")));
    }
    Ok(if alternatives.is_empty() { "1 = 0".into() } else { format!("({})", alternatives.join(" OR ")) })
}

fn parse_expr(text: &str) -> Result<Expr, Error> {
    expr::parse(text).map_err(|e| invalid("invalid_filter", format!("The filter does not parse: {e}.")))
}

/// The search as an expression: any searchable field contains the text.
fn search_expr(table: &Table, text: &str) -> Result<Expr, Error> {
    if table.searchable.is_empty() {
        return Err(invalid("invalid_search", "This table has no searchable fields."));
    }
    if text.len() > 200 {
        return Err(invalid("invalid_search", "Search for at most 200 bytes."));
    }
    let mut fields = table.searchable.iter();
    let like = |f: &String| {
        Expr::Cmp(Operand::Path(vec![f.clone()]), CmpOp::Like, Operand::Literal(Literal::Text(text.to_owned())))
    };
    let first = fields.next().map(like).ok_or_else(|| invalid("invalid_search", "No searchable fields."))?;
    Ok(fields.fold(first, |acc, f| Expr::Or(Box::new(acc), Box::new(like(f)))))
}

/// The fields asked for, checked; the primary key, sort keys (cursors need them) and included
/// relations always come.
fn selected(all: Vec<Column>, table: &Table, query: &ListQuery, keys: &[Key]) -> Result<Vec<Column>, Error> {
    let Some(fields) = query.fields.as_deref() else { return Ok(all) };
    let included: Vec<&str> = query.include.as_deref().unwrap_or("").split(',').map(str::trim).collect();
    let wanted: Vec<&str> = fields.split(',').map(str::trim).filter(|f| !f.is_empty()).collect();
    for field in &wanted {
        if !all.iter().any(|c| c.name == *field) {
            return Err(invalid("invalid_fields", format!("No field `{field}` to return.")));
        }
    }
    let pk = primary(table).0;
    Ok(all
        .into_iter()
        .filter(|c| {
            let name = c.name.as_str();
            name == pk || wanted.contains(&name) || included.contains(&name) || keys.iter().any(|(k, _)| k == name)
        })
        .collect())
}

/// A page of `name`.
pub(crate) async fn list(ctx: &Ctx<'_>, name: &str, query: &ListQuery) -> Result<Page, Error> {
    let table = ctx.table(name)?;
    ctx.allow(name, table, Operation::List)?;
    let schema = &ctx.loaded.app.schema;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(invalid("invalid_limit", format!("`limit` is between 1 and {MAX_LIMIT}.")));
    }
    let keys = sort_keys(table, query.sort.as_deref())?;
    let cols = selected(columns(schema, table), table, query, &keys)?;
    let mut sql = Sql::default();
    let deleted = if query.include_deleted.unwrap_or(false) { Deleted::Include } else { Deleted::Hide };
    let mut conditions = vec![ctx.visible(&mut sql, table, Operation::List, deleted)?];
    let mut filters = Vec::new();
    if let Some(text) = &query.filter {
        filters.push(parse_expr(text)?);
    }
    if let Some(named) = &query.named {
        let text = table
            .filters
            .get(named)
            .ok_or_else(|| invalid("invalid_filter", format!("Table `{name}` has no filter named `{named}`.")))?;
        filters.push(parse_expr(text)?);
    }
    if let Some(text) = query.search.as_deref().filter(|s| !s.is_empty()) {
        filters.push(search_expr(table, text)?);
    }
    for filter in &filters {
        let condition = sql
            .expr(schema, table, filter, &ctx.auth)
            .map_err(|e| invalid("invalid_filter", format!("The filter cannot apply: {e}.")))?;
        conditions.push(condition);
    }
    let from = ctx.sql_table(name);
    let total = if query.count.unwrap_or(false) {
        let text = format!("SELECT COUNT(*) FROM {from} WHERE {}", conditions.join(" AND "));
        let counting = Sql { params: sql.params.clone() };
        let (n,): (i64,) = counting.run(&ctx.loaded.db, text).fetch_one().await.or_store()?;
        Some(n)
    } else {
        None
    };
    if let Some(cursor) = &query.cursor {
        conditions.push(after(ctx, table, &mut sql, &keys, cursor)?);
    }
    let order: Vec<String> = keys
        .iter()
        .map(|(c, desc)| format!("{} {} NULLS LAST", quote(c), if *desc { "DESC" } else { "ASC" }))
        .collect();
    let text = format!(
        "SELECT {} FROM {from} WHERE {} ORDER BY {} LIMIT {}",
        select_list(&cols),
        conditions.join(" AND "),
        order.join(", "),
        limit + 1
    );
    let mut rows: Vec<JsonValues> = sql.run(&ctx.loaded.db, text).fetch_all().await.or_store()?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let mut items = items_out(ctx, name, table, &cols, rows);
    let next_cursor = match (more, items.len().checked_sub(1)) {
        (true, Some(last)) => {
            let v = keys.iter().map(|(c, _)| items.get(last, c).cloned().unwrap_or(Json::Null)).collect();
            let cursor = serde_json::to_vec(&Cursor { s: sort_text(&keys), v }).unwrap_or_default();
            Some(URL_SAFE_NO_PAD.encode(cursor))
        }
        _ => None,
    };
    if let Some(include) = query.include.as_deref() {
        include_related(ctx, table, include, &mut items).await?;
    }
    Ok(Page { items, next_cursor, total })
}

/// Adds `_include: {field: row | null}` to each row for the relation fields named.
async fn include_related(ctx: &Ctx<'_>, table: &Table, include: &str, items: &mut Items) -> Result<(), Error> {
    let schema = &ctx.loaded.app.schema;
    for field_name in include.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let target = table
            .fields
            .get(field_name)
            .filter(|f| f.kind == FieldType::Relation)
            .and_then(|f| f.foreign.as_deref()?.split_once('.'))
            .ok_or_else(|| invalid("invalid_include", format!("`{field_name}` is not a relation field.")))?;
        let (target_name, target_field) = target;
        let target_table = ctx.table(target_name)?;
        let Some(field) = target_table.fields.get(target_field) else { continue };
        let mut ids: Vec<Json> =
            (0..items.len()).filter_map(|i| items.get(i, field_name)).filter(|v| !v.is_null()).cloned().collect();
        ids.sort_by_key(ToString::to_string);
        ids.dedup();
        let mut found: Vec<Map<String, Json>> = Vec::new();
        if !ids.is_empty() && target_table.operations.as_ref().is_none_or(|o| o.contains(&Operation::Get)) {
            let mut sql = Sql::default();
            let visible = ctx.visible(&mut sql, target_table, Operation::Get, Deleted::Hide)?;
            let mut placeholders = Vec::new();
            for id in &ids {
                let typed = values::convert(schema, field, id).map_err(Error::internal)?;
                placeholders.push(sql.param(super::sql::bindable(schema, field, typed)));
            }
            let cols = columns(schema, target_table);
            let text = format!(
                "SELECT {} FROM {} WHERE {} IN ({}) AND {visible}",
                select_list(&cols),
                ctx.sql_table(target_name),
                quote(target_field),
                placeholders.join(", ")
            );
            let rows: Vec<JsonValues> = sql.run(&ctx.loaded.db, text).fetch_all().await.or_store()?;
            found = rows_out(ctx, target_name, target_table, &cols, rows);
        }
        for index in 0..items.len() {
            let key = items.get(index, field_name).unwrap_or(&Json::Null);
            let related =
                found.iter().find(|r| r.get(target_field) == Some(key)).cloned().map_or(Json::Null, Json::Object);
            items.include(index, field_name, related);
        }
    }
    Ok(())
}
