//! Filter and rule expressions compiled to SQL: every name is checked against the table and
//! written as a quoted column, every value (literals and the caller's id, role, organization)
//! becomes a bound parameter, and operands are type-checked so that the database never sees a
//! comparison it would reject. Request text never becomes SQL.

use chrono::{DateTime, NaiveDate};
use uuid::Uuid;

use crate::ddl::owner_field;
use crate::expr::{CmpOp, Expr, Literal, Operand};
use crate::schema::{Field, FieldType, SchemaFile, Scope, Table};
use crate::values::Typed;

/// The caller, as expressions see it (`auth.id`, `auth.role`, `auth.org`).
#[derive(Debug, Clone)]
pub struct Auth {
    pub id: Uuid,
    pub role: String,
    pub org: Uuid,
}

/// A condition ready for a `WHERE` clause, and its parameters (numbered from the `first` given).
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub sql: String,
    pub params: Vec<Typed>,
}

/// What kind of value an operand holds, for type checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Number,
    Text,
    Bool,
    Uuid,
    Date,
    Time,
    Json,
    /// `null`: compares with anything (as IS NULL).
    Null,
}

struct Compiler<'a> {
    schema: &'a SchemaFile,
    table: &'a Table,
    auth: &'a Auth,
    next: usize,
    params: Vec<Typed>,
}

fn field_kind(schema: &SchemaFile, field: &Field) -> Kind {
    match schema.value_kind(field) {
        FieldType::Int | FieldType::Float | FieldType::Decimal => Kind::Number,
        FieldType::String | FieldType::Text | FieldType::Enum => Kind::Text,
        FieldType::Bool => Kind::Bool,
        FieldType::Uuid | FieldType::File => Kind::Uuid,
        FieldType::Date => Kind::Date,
        FieldType::Datetime => Kind::Time,
        FieldType::Json => Kind::Json,
        // A relation to a relation: its key is an id.
        FieldType::Relation => Kind::Uuid,
    }
}

impl Compiler<'_> {
    fn param(&mut self, value: Typed) -> String {
        self.params.push(value);
        let n = self.next;
        self.next += 1;
        format!("${n}")
    }

    /// A column of the table (or a managed one), quoted, and its kind.
    fn column(&self, name: &str) -> Result<(String, Kind), String> {
        let kind = if let Some(field) = self.table.fields.get(name) {
            if field.encrypt || field.hash {
                return Err(format!("`{name}` is stored encrypted or hashed and cannot be compared"));
            }
            field_kind(self.schema, field)
        } else if self.table.scope == Scope::Owner && (name == "owner" || name == owner_field(self.table)) {
            return Ok((format!("\"{}\"", owner_field(self.table)), Kind::Uuid));
        } else if self.table.scope == Scope::Org && name == "org_id" {
            Kind::Uuid
        } else {
            match name {
                "created_at" | "updated_at" => Kind::Time,
                "deleted_at" if self.table.soft_delete => Kind::Time,
                "row_version" => Kind::Number,
                _ => return Err(format!("unknown field `{name}`")),
            }
        };
        Ok((format!("\"{name}\""), kind))
    }

    fn operand(&mut self, operand: &Operand, hint: Option<Kind>) -> Result<(String, Kind), String> {
        match operand {
            Operand::Path(path) => {
                let names: Vec<&str> = path.iter().map(String::as_str).collect();
                match names.as_slice() {
                    ["auth", "id"] => Ok((self.param(Typed::Uuid(self.auth.id)), Kind::Uuid)),
                    ["auth", "org"] => Ok((self.param(Typed::Uuid(self.auth.org)), Kind::Uuid)),
                    ["auth", "role"] => Ok((self.param(Typed::Text(self.auth.role.clone())), Kind::Text)),
                    ["row", field] | [field] => self.column(field),
                    _ => Err(format!("unknown name `{}`", names.join("."))),
                }
            }
            Operand::Literal(literal) => self.literal(literal, hint),
        }
    }

    /// A literal bound as the type its counterpart needs (`'2026-01-01'` against a date field).
    fn literal(&mut self, literal: &Literal, hint: Option<Kind>) -> Result<(String, Kind), String> {
        let (value, kind) = match (literal, hint) {
            (Literal::Null, _) => return Ok(("NULL".into(), Kind::Null)),
            (Literal::Bool(b), _) => (Typed::Bool(*b), Kind::Bool),
            (Literal::Int(i), _) => (Typed::Int(*i), Kind::Number),
            (Literal::Float(f), _) => (Typed::Float(*f), Kind::Number),
            (Literal::Text(t), Some(Kind::Uuid)) => {
                (Typed::Uuid(Uuid::parse_str(t).map_err(|_| format!("`{t}` is not a UUID"))?), Kind::Uuid)
            }
            (Literal::Text(t), Some(Kind::Date)) => (
                Typed::Date(NaiveDate::parse_from_str(t, "%Y-%m-%d").map_err(|_| format!("`{t}` is not a date"))?),
                Kind::Date,
            ),
            (Literal::Text(t), Some(Kind::Time)) => (
                Typed::DateTime(DateTime::parse_from_rfc3339(t).map_err(|_| format!("`{t}` is not a time"))?.to_utc()),
                Kind::Time,
            ),
            (Literal::Text(t), _) => (Typed::Text(t.clone()), Kind::Text),
        };
        Ok((self.param(value), kind))
    }

    fn condition(&mut self, expr: &Expr) -> Result<String, String> {
        Ok(match expr {
            Expr::And(a, b) => format!("({} AND {})", self.condition(a)?, self.condition(b)?),
            Expr::Or(a, b) => format!("({} OR {})", self.condition(a)?, self.condition(b)?),
            Expr::Not(a) => format!("(NOT {})", self.condition(a)?),
            Expr::Truthy(operand) => {
                let (sql, kind) = self.operand(operand, None)?;
                if kind != Kind::Bool {
                    return Err("a condition on its own must be a true/false field".into());
                }
                format!("({sql} = {})", self.param(Typed::Bool(true)))
            }
            Expr::In(operand, values) => {
                let (sql, kind) = self.operand(operand, None)?;
                if values.is_empty() {
                    return Ok("(1 = 0)".into());
                }
                let mut items = Vec::with_capacity(values.len());
                for value in values {
                    let (item, item_kind) = self.literal(value, Some(kind))?;
                    check_kinds(kind, item_kind)?;
                    items.push(item);
                }
                format!("({sql} IN ({}))", items.join(", "))
            }
            Expr::Cmp(left, op, right) => self.comparison(left, *op, right)?,
        })
    }

    fn comparison(&mut self, left: &Operand, op: CmpOp, right: &Operand) -> Result<String, String> {
        // Columns first, so literals are bound as the column's type.
        let (l, lk, r, rk) = if matches!(left, Operand::Literal(_)) && matches!(right, Operand::Path(_)) {
            let (r, rk) = self.operand(right, None)?;
            let (l, lk) = self.operand(left, Some(rk))?;
            (l, lk, r, rk)
        } else {
            let (l, lk) = self.operand(left, None)?;
            let (r, rk) = self.operand(right, Some(lk))?;
            (l, lk, r, rk)
        };
        if lk == Kind::Null || rk == Kind::Null {
            let column = if lk == Kind::Null { r } else { l };
            return match op {
                CmpOp::Eq => Ok(format!("({column} IS NULL)")),
                CmpOp::Ne => Ok(format!("({column} IS NOT NULL)")),
                _ => Err("null only compares with == and !=".into()),
            };
        }
        check_kinds(lk, rk)?;
        if lk == Kind::Json {
            return Err("JSON fields cannot be compared".into());
        }
        let sql = match op {
            CmpOp::Eq => format!("({l} = {r})"),
            CmpOp::Ne => format!("({l} <> {r})"),
            CmpOp::Lt => format!("({l} < {r})"),
            CmpOp::Le => format!("({l} <= {r})"),
            CmpOp::Gt => format!("({l} > {r})"),
            CmpOp::Ge => format!("({l} >= {r})"),
            CmpOp::Like => {
                if lk != Kind::Text {
                    return Err("`~` compares text".into());
                }
                // The pattern is built in SQL from the bound value: `%`, `_` and `\` in it are
                // matched literally.
                format!(
                    "(LOWER({l}) LIKE '%' || REPLACE(REPLACE(REPLACE(LOWER({r}), '\\', '\\\\'), '%', '\\%'), '_', '\\_') || '%' ESCAPE '\\')"
                )
            }
        };
        Ok(sql)
    }
}

fn check_kinds(a: Kind, b: Kind) -> Result<(), String> {
    if a == b || a == Kind::Null || b == Kind::Null {
        Ok(())
    } else {
        Err(format!("cannot compare {} with {}", name(a), name(b)))
    }
}

fn name(kind: Kind) -> &'static str {
    match kind {
        Kind::Number => "a number",
        Kind::Text => "text",
        Kind::Bool => "true/false",
        Kind::Uuid => "an id",
        Kind::Date => "a date",
        Kind::Time => "a time",
        Kind::Json => "JSON",
        Kind::Null => "null",
    }
}

/// Compiles `expr` over `table` for `auth`; parameters are numbered from `first`.
pub fn compile(
    schema: &SchemaFile,
    table: &Table,
    expr: &Expr,
    auth: &Auth,
    first: usize,
) -> Result<Condition, String> {
    let mut compiler = Compiler { schema, table, auth, next: first, params: Vec::new() };
    let sql = compiler.condition(expr)?;
    Ok(Condition { sql, params: compiler.params })
}

#[cfg(test)]
mod tests {
    use oppidum_store::{Db, JsonRow};

    use super::*;
    use crate::ddl::{create_statements, table_name};
    use crate::expr::parse;
    use crate::schema::load;
    use crate::testing::databases;

    const SCHEMA: &str = r#"
tables:
  tasks:
    scope: owner
    fields:
      id: { type: int, primary: true, auto: true }
      title: { type: string, max: 100, required: true }
      priority: { type: int }
      done: { type: bool }
      due: { type: date }
      secret: { type: text, encrypt: true }
"#;

    fn bind(db: &Db, sql: String, params: Vec<Typed>) -> oppidum_store::db::Query<'_> {
        let mut query = db.query_dynamic(sql);
        for param in params {
            query = match param {
                Typed::Null => query.bind(Option::<String>::None),
                Typed::Int(v) => query.bind(v),
                Typed::Float(v) => query.bind(v),
                Typed::Bool(v) => query.bind(v),
                Typed::Text(v) => query.bind(v),
                Typed::Date(v) => query.bind(v),
                Typed::DateTime(v) => query.bind(v),
                Typed::Uuid(v) => query.bind(v),
                Typed::Json(v) => query.bind(v),
            };
        }
        query
    }

    #[tokio::test]
    async fn compiled_filters_select_the_right_rows_and_refuse_the_rest() {
        let app = load("name: t\n", SCHEMA).expect("schema");
        let table = &app.schema.tables["tasks"];
        let me = Auth { id: Uuid::now_v7(), role: "member".into(), org: Uuid::now_v7() };
        let (databases, _dir) = databases("compiled_filters").await;
        for db in databases {
            for sql in create_statements("app_t__", &app.schema, db.backend()) {
                db.query_dynamic(sql).execute().await.expect("ddl");
            }
            let rows = [
                ("Write 100% of it", 3, true, me.id),
                ("Read_me", 1, false, me.id),
                ("Other's", 5, false, Uuid::now_v7()),
            ];
            for (title, priority, done, owner) in rows {
                db.query_dynamic(format!(
                    "INSERT INTO \"{}\" (title, priority, done, owner_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
                    table_name("app_t__", "tasks")
                ))
                .bind(title)
                .bind(i64::from(priority))
                .bind(done)
                .bind(owner)
                .bind(chrono::Utc::now())
                .execute()
                .await
                .expect("insert");
            }
            let select = |filter: &str| {
                let condition = compile(&app.schema, table, &parse(filter).expect("parses"), &me, 1).expect(filter);
                let sql = format!(
                    "SELECT title FROM \"{}\" WHERE {} ORDER BY id",
                    table_name("app_t__", "tasks"),
                    condition.sql
                );
                let db = &db;
                async move {
                    let rows: Vec<JsonRow> = bind(db, sql, condition.params).fetch_all().await.expect("runs");
                    rows.into_iter()
                        .map(|r| r.get("title").and_then(|v| v.as_str()).unwrap_or_default().to_owned())
                        .collect::<Vec<_>>()
                }
            };
            assert_eq!(select("owner == auth.id").await, ["Write 100% of it", "Read_me"]);
            assert_eq!(select("priority >= 3 && !done").await, ["Other's"]);
            assert_eq!(select("priority in [1, 5] || done").await, ["Write 100% of it", "Read_me", "Other's"]);
            assert_eq!(select("title ~ '100%'").await, ["Write 100% of it"]);
            assert_eq!(select("title ~ '_'").await, ["Read_me"], "`_` is literal");
            assert_eq!(select("title ~ \"'s\"").await, ["Other's"]);
            assert_eq!(select("due == null && title != 'x'").await.len(), 3);
            assert_eq!(select("due < '2030-01-01'").await.len(), 0);
            // Injection attempts and type errors never reach the database.
            for bad in [
                "title == '' OR 1=1",
                "priority == 'high'",
                "secret == 'x'",
                "nope == 1",
                "auth.password == 'x'",
                "due == 'tomorrow'",
                "done ~ 'x'",
                "priority",
                "title < null",
            ] {
                let refused =
                    parse(bad).map_err(|e| e.to_string()).and_then(|e| compile(&app.schema, table, &e, &me, 1));
                assert!(refused.is_err(), "{bad} compiled");
            }
        }
    }
}
