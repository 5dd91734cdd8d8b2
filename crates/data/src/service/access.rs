//! Who sees and changes which rows: the table's scope (owner, organization), soft-deleted rows,
//! and the per-operation rules, all as SQL conditions with bound parameters.

use oppidum_core::{Error, ErrorKind, Principal};
use serde_json::Value as Json;

use super::registry::Loaded;
use super::sql::{Sql, err, quote};
use crate::compile::Auth;
use crate::ddl::{owner_field, table_name};
use crate::expr;
use crate::schema::{FieldType, Operation, Scope, Table};

/// A caller working in one app.
pub(crate) struct Ctx<'a> {
    pub loaded: &'a Loaded,
    pub auth: Auth,
    pub principal: &'a Principal,
    /// Hashes `hash` fields.
    pub directory: &'a dyn oppidum_core::Directory,
    /// Checks `file` fields.
    pub files: Option<&'a dyn oppidum_core::FileAccess>,
    /// The time of this request's changes (microseconds: both engines keep them exactly).
    pub now: chrono::DateTime<chrono::Utc>,
}

/// Which rows by their soft-deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deleted {
    /// Live rows only.
    Hide,
    /// Live rows, and deleted ones the caller may restore.
    Include,
    /// Any row the scope lets the caller see (purge).
    Any,
}

fn op_name(op: Operation) -> &'static str {
    match op {
        Operation::List => "list",
        Operation::Get => "get",
        Operation::Create => "create",
        Operation::Update => "update",
        Operation::Delete => "delete",
        Operation::Restore => "restore",
        Operation::Purge => "purge",
    }
}

impl Ctx<'_> {
    pub fn app_name(&self) -> &str {
        &self.loaded.name
    }

    /// A table of the app, or 404.
    pub fn table(&self, name: &str) -> Result<&Table, Error> {
        self.loaded.app.schema.tables.get(name).ok_or_else(|| {
            err(ErrorKind::NotFound, "unknown_table", format!("The app `{}` has no table `{name}`.", self.loaded.name))
        })
    }

    /// The quoted SQL name of a table.
    pub fn sql_table(&self, name: &str) -> String {
        quote(&table_name(&self.loaded.prefix, name))
    }

    /// 405 unless the table allows `op`.
    pub fn allow(&self, name: &str, table: &Table, op: Operation) -> Result<(), Error> {
        let allowed = table.operations.as_ref().is_none_or(|ops| ops.contains(&op));
        if !allowed || (op == Operation::Restore && !table.soft_delete) {
            return Err(err(
                ErrorKind::MethodNotAllowed,
                "operation_not_allowed",
                format!("`{}` is not allowed on table `{name}`.", op_name(op)),
            ));
        }
        Ok(())
    }

    /// The rule of an operation: `get` falls back to `list`, `restore` and `purge` to `delete`.
    pub fn rule<'t>(&self, table: &'t Table, op: Operation) -> Option<&'t str> {
        let own = table.rules.get(op_name(op)).map(String::as_str);
        own.or_else(|| match op {
            Operation::Get => table.rules.get("list").map(String::as_str),
            Operation::Restore | Operation::Purge => table.rules.get("delete").map(String::as_str),
            _ => None,
        })
    }

    /// A rule as a condition (`None`: no rule, everything passes).
    pub fn rule_condition(&self, sql: &mut Sql, table: &Table, op: Operation) -> Result<Option<String>, Error> {
        let Some(text) = self.rule(table, op) else { return Ok(None) };
        // Rules were compiled when the app loaded; failing now is a server fault.
        let parsed = expr::parse(text).map_err(|e| Error::internal(format!("rule `{}`: {e}", op_name(op))))?;
        let condition = sql
            .expr(&self.loaded.app.schema, table, &parsed, &self.auth)
            .map_err(|e| Error::internal(format!("rule `{}`: {e}", op_name(op))))?;
        Ok(Some(condition))
    }

    /// The condition selecting the rows of `table` the caller may read with `read` (list or get).
    pub fn visible(&self, sql: &mut Sql, table: &Table, read: Operation, deleted: Deleted) -> Result<String, Error> {
        let mut parts = Vec::new();
        match table.scope {
            Scope::Owner => {
                let p = sql.param(self.auth.id);
                parts.push(format!("{} = {p}", quote(owner_field(table))));
            }
            Scope::Org => {
                let p = sql.param(self.auth.org);
                parts.push(format!("{} = {p}", quote("org_id")));
            }
            Scope::Public => {}
        }
        if table.soft_delete {
            match deleted {
                Deleted::Hide => parts.push("\"deleted_at\" IS NULL".into()),
                Deleted::Include => {
                    if let Some(restore) = self.rule_condition(sql, table, Operation::Restore)? {
                        parts.push(format!("(\"deleted_at\" IS NULL OR {restore})"));
                    }
                }
                Deleted::Any => {}
            }
        }
        if let Some(rule) = self.rule_condition(sql, table, read)? {
            parts.push(rule);
        }
        Ok(if parts.is_empty() { "1 = 1".into() } else { parts.join(" AND ") })
    }

    /// Whether the caller may read `table`'s sealed fields.
    pub fn can_decrypt(&self, table: &str) -> bool {
        self.principal.can(&format!("data.{}.{table}.decrypt", self.loaded.name))
    }

    /// Opens a sealed field of `table` (`None` when it does not open).
    pub fn open(&self, table: &Table, table_name: &str, field: &str, sealed: &str) -> Option<Json> {
        let bytes = self.loaded.vault.open(sealed, &format!("{table_name}.{field}")).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        match table.fields.get(field).map(|f| f.kind) {
            Some(FieldType::Json) => serde_json::from_str(&text).ok(),
            _ => Some(Json::String(text)),
        }
    }

    /// Seals a value of an `encrypt` field.
    pub fn seal(&self, table_name: &str, field: &str, plaintext: &str) -> String {
        self.loaded.vault.seal(plaintext.as_bytes(), &format!("{table_name}.{field}"))
    }
}
