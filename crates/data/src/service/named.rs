//! Running named queries: parameters from the request checked against their declared types,
//! the caller's id, organization and role bound alongside; read-only queries on a read-only
//! connection (SQLite) or in a read-only transaction with a statement timeout (PostgreSQL), and
//! capped in rows; write queries in a transaction.

use std::collections::BTreeMap;

use oppidum_core::{Error, ErrorKind};
use oppidum_store::{Backend, JsonRow, Value};
use serde::Serialize;
use serde_json::{Map, Value as Json};

use super::access::Ctx;
use super::errors::{OrStore, validation};
use super::sql::{Sql, bindable, err};
use crate::queries::{Binding, NamedQuery};
use crate::schema::FieldType;
use crate::values::FieldError;

/// Most rows a read query returns.
pub const MAX_ROWS: usize = 1000;
/// Longest a read query may run on PostgreSQL.
const STATEMENT_TIMEOUT_MS: u32 = 10_000;

/// What a named query gave.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueryResult {
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<Map<String, Json>>,
    /// More rows matched than returned.
    pub truncated: bool,
    /// Rows changed (write queries without `RETURNING`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<u64>,
}

/// Request values as given: text from a query string, JSON from a body.
pub enum Given {
    Text(BTreeMap<String, String>),
    Json(Map<String, Json>),
}

/// A query-string value read as its parameter's type.
fn from_text(kind: FieldType, text: &str) -> Json {
    match kind {
        FieldType::Int => text.parse::<i64>().map_or_else(|_| Json::String(text.to_owned()), Json::from),
        FieldType::Float | FieldType::Decimal => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Json::String(text.to_owned()), Json::Number),
        FieldType::Bool => match text {
            "true" | "1" => Json::Bool(true),
            "false" | "0" => Json::Bool(false),
            _ => Json::String(text.to_owned()),
        },
        FieldType::Json => serde_json::from_str(text).unwrap_or_else(|_| Json::String(text.to_owned())),
        _ => Json::String(text.to_owned()),
    }
}

/// The values of the query's parameters, checked; every problem at once.
fn params(ctx: &Ctx<'_>, query: &NamedQuery, given: Given) -> Result<BTreeMap<String, Value>, Error> {
    let schema = &ctx.loaded.app.schema;
    let mut errors = Vec::new();
    let mut out = BTreeMap::new();
    let mut given: BTreeMap<String, Json> = match given {
        Given::Text(map) => map
            .into_iter()
            .map(|(k, v)| {
                let kind = query.file.params.get(&k).map_or(FieldType::String, |f| f.kind);
                let value = from_text(kind, &v);
                (k, value)
            })
            .collect(),
        Given::Json(map) => map.into_iter().collect(),
    };
    for name in given.keys() {
        if !query.file.params.contains_key(name) {
            errors.push(FieldError { field: name.clone(), reason: "unknown parameter".into() });
        }
    }
    for (name, field) in &query.file.params {
        let value = given.remove(name).or_else(|| field.default.clone()).unwrap_or(Json::Null);
        if value.is_null() && field.required {
            errors.push(FieldError { field: name.clone(), reason: "required".into() });
            continue;
        }
        match crate::values::typed(schema, field, &value) {
            Ok(typed) => {
                out.insert(name.clone(), bindable(schema, field, typed));
            }
            Err(reason) => errors.push(FieldError { field: name.clone(), reason }),
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(validation(errors)) }
}

fn failed(app: &str, name: &str, error: &oppidum_store::StoreError) -> Error {
    tracing::warn!(app, query = name, error = %error, "a named query failed");
    err(
        ErrorKind::Unprocessable,
        "query_failed",
        format!("The query `{name}` failed; its author can see why in the server log."),
    )
}

/// Runs a named query for the caller; `write` says whether the request may change data.
pub(crate) async fn run(ctx: &Ctx<'_>, name: &str, given: Given, write: bool) -> Result<(QueryResult, bool), Error> {
    let query = ctx.loaded.queries.get(name).ok_or_else(|| {
        err(ErrorKind::NotFound, "unknown_query", format!("The app `{}` has no query `{name}`.", ctx.app_name()))
    })?;
    let roles = &query.file.roles;
    if !roles.is_empty() && !roles.contains(&ctx.auth.role) && !ctx.principal.instance_admin {
        return Err(err(
            ErrorKind::Forbidden,
            "query_forbidden",
            format!("The query `{name}` is for the roles {}.", roles.join(", ")),
        ));
    }
    if query.file.write != write {
        let (method, verb) = if query.file.write { ("POST", "changes data") } else { ("GET", "only reads") };
        return Err(err(
            ErrorKind::MethodNotAllowed,
            "method_not_allowed",
            format!("The query `{name}` {verb}: use {method}."),
        ));
    }
    let values = params(ctx, query, given)?;
    let mut sql = Sql::default();
    for binding in &query.bindings {
        let value = match binding {
            Binding::AuthId => Value::from(ctx.auth.id),
            Binding::AuthOrg => Value::from(ctx.auth.org),
            Binding::AuthRole => Value::from(ctx.auth.role.clone()),
            Binding::Param(param) => values.get(param).cloned().unwrap_or(Value::Text(None)),
        };
        sql.param(value);
    }
    let db = &ctx.loaded.db;
    let app = ctx.app_name();
    if write {
        let mut tx = db.begin().await.or_store()?;
        if db.backend() == Backend::Postgres {
            tx.query_dynamic(format!("SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
                .execute()
                .await
                .or_store()?;
        }
        let returning = query
            .sql
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|w| w.eq_ignore_ascii_case("returning"));
        let result = if returning {
            let rows: Vec<JsonRow> =
                sql.run_in(&mut tx, query.sql.clone()).fetch_all().await.map_err(|e| failed(app, name, &e))?;
            QueryResult { rows: rows.into_iter().map(JsonRow::into_object).collect(), truncated: false, changed: None }
        } else {
            let changed = sql.run_in(&mut tx, query.sql.clone()).execute().await.map_err(|e| failed(app, name, &e))?;
            QueryResult { rows: Vec::new(), truncated: false, changed: Some(changed) }
        };
        tx.commit().await.or_store()?;
        return Ok((result, true));
    }
    // Wrapped: capped in rows, and a plain SELECT (SQLite runs it on a read-only connection).
    // The newline ends a trailing `--` comment of the query's own.
    let text = format!("SELECT * FROM ({}\n) AS q LIMIT {}", query.sql, MAX_ROWS + 1);
    let mut rows: Vec<JsonRow> = match db.backend() {
        Backend::Sqlite => sql.run(db, text).fetch_all().await.map_err(|e| failed(app, name, &e))?,
        Backend::Postgres => {
            let mut tx = db.begin().await.or_store()?;
            tx.query("SET TRANSACTION READ ONLY").execute().await.or_store()?;
            tx.query_dynamic(format!("SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
                .execute()
                .await
                .or_store()?;
            let rows = sql.run_in(&mut tx, text).fetch_all().await.map_err(|e| failed(app, name, &e))?;
            tx.rollback().await.or_store()?;
            rows
        }
    };
    let truncated = rows.len() > MAX_ROWS;
    rows.truncate(MAX_ROWS);
    let rows = rows.into_iter().map(JsonRow::into_object).collect();
    Ok((QueryResult { rows, truncated, changed: None }, false))
}
