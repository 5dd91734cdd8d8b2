//! One statement on an SQLite connection, run on the database thread: prepared through the
//! connection's statement cache, arguments bound by their `$n` numbers, rows decoded right there so
//! only finished values cross back to the async caller.

use rusqlite::Connection;
use rusqlite::types::{ToSqlOutput, Value as Sql, ValueRef};

use super::time;
use crate::db::query::Value;
use crate::db::row::{FromRow, Row};
use crate::error::StoreError;

/// How SQLite stores each argument: the spellings sqlx used before, so databases written by earlier
/// versions read and compare the same (UUIDs as 16-byte blobs, times as RFC 3339 text, booleans
/// as integers, JSON as text, dates as `YYYY-MM-DD`). Text and bytes are bound without a copy.
fn encode(value: &Value) -> ToSqlOutput<'_> {
    fn or_null<'v, T>(value: &'v Option<T>, f: impl FnOnce(&'v T) -> ToSqlOutput<'v>) -> ToSqlOutput<'v> {
        value.as_ref().map_or(ToSqlOutput::Borrowed(ValueRef::Null), f)
    }
    let owned = |value: Sql| ToSqlOutput::Owned(value);
    match value {
        Value::Bool(v) => or_null(v, |b| owned(Sql::Integer(i64::from(*b)))),
        Value::I64(v) => or_null(v, |n| owned(Sql::Integer(*n))),
        Value::F64(v) => or_null(v, |f| owned(Sql::Real(*f))),
        Value::Text(v) => or_null(v, |t| ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes()))),
        Value::Bytes(v) => or_null(v, |b| ToSqlOutput::Borrowed(ValueRef::Blob(b))),
        Value::Uuid(v) => or_null(v, |u| ToSqlOutput::Borrowed(ValueRef::Blob(u.as_bytes()))),
        Value::Time(v) => or_null(v, |t| owned(Sql::Text(time::format(t)))),
        Value::Date(v) => or_null(v, |d| owned(Sql::Text(d.format("%F").to_string()))),
        Value::Json(v) => or_null(v, |j| owned(Sql::Text(j.to_string()))),
    }
}

/// Binds `args` to the statement's parameters: `$n` takes the n-th argument (a number used twice
/// is one parameter), a bare `?` the argument at its position.
fn bind(statement: &mut rusqlite::Statement<'_>, args: &[Value]) -> Result<(), StoreError> {
    let count = statement.parameter_count();
    for index in 1..=count {
        let position = match statement.parameter_name(index) {
            Some(name) => name
                .strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n >= 1)
                .ok_or_else(|| StoreError::Statement(format!("parameter `{name}` is not of the form $n")))?,
            None => index,
        };
        let value = args
            .get(position - 1)
            .ok_or_else(|| StoreError::Statement(format!("no argument bound for parameter {position}")))?;
        statement.raw_bind_parameter(index, encode(value))?;
    }
    Ok(())
}

/// Runs `sql` and decodes its rows (only the first when `one`); the statement still runs to its
/// end, so a `RETURNING` statement changes every row it names.
pub(super) fn fetch<T: FromRow>(conn: &Connection, sql: &str, args: &[Value], one: bool) -> Result<Vec<T>, StoreError> {
    let mut statement = conn.prepare_cached(sql)?;
    bind(&mut statement, args)?;
    let mut rows = statement.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        if !one || out.is_empty() {
            out.push(T::from_row(&Row::sqlite(row))?);
        }
    }
    Ok(out)
}

/// Runs `sql` for its effect; the number of rows it changed.
pub(in crate::db) fn execute(conn: &Connection, sql: &str, args: &[Value]) -> Result<u64, StoreError> {
    let mut statement = conn.prepare_cached(sql)?;
    bind(&mut statement, args)?;
    let read_only = statement.readonly();
    let mut rows = statement.raw_query();
    while rows.next()?.is_some() {}
    drop(rows);
    Ok(if read_only { 0 } else { conn.changes() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        Connection::open_in_memory().expect("in-memory database")
    }

    #[test]
    fn numbered_parameters_take_their_argument_and_may_repeat() {
        let rows: Vec<(i64, String, i64)> =
            fetch(&conn(), "SELECT $2, $1, $2 + 1", &[Value::from("a"), Value::from(41_i64)], false).expect("runs");
        assert_eq!(rows, vec![(41, "a".to_owned(), 42)]);
    }

    #[test]
    fn parameters_not_of_the_form_n_are_refused() {
        for sql in ["SELECT :name", "SELECT @x", "SELECT $0", "SELECT $x"] {
            let outcome = fetch::<(i64,)>(&conn(), sql, &[Value::from(1_i64)], true);
            assert!(matches!(outcome, Err(StoreError::Statement(_))), "{sql}: {outcome:?}");
        }
    }

    #[test]
    fn a_missing_argument_is_an_error_not_a_null() {
        let outcome = fetch::<(i64,)>(&conn(), "SELECT $1 + $2", &[Value::from(1_i64)], true);
        assert!(matches!(&outcome, Err(StoreError::Statement(m)) if m.contains("parameter 2")), "{outcome:?}");
        let outcome = execute(&conn(), "SELECT ?", &[]);
        assert!(matches!(outcome, Err(StoreError::Statement(_))), "{outcome:?}");
    }

    #[test]
    fn one_decodes_only_the_first_row_but_runs_the_statement_to_its_end() {
        let conn = conn();
        conn.execute_batch("CREATE TABLE t (n INTEGER)").expect("table");
        let sql = "INSERT INTO t (n) VALUES (1), (2), (3) RETURNING n";
        let rows: Vec<(i64,)> = fetch(&conn, sql, &[], true).expect("runs");
        assert_eq!(rows.len(), 1);
        let all: Vec<(i64,)> = fetch(&conn, "SELECT n FROM t ORDER BY n", &[], false).expect("reads");
        assert_eq!(all, vec![(1,), (2,), (3,)]);
    }
}
