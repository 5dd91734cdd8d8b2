//! A unit of work: statements sent together and committed together, for writes that need no
//! answer between their statements. On SQLite the whole unit is one hop to the writer and joins its
//! next group commit (an interactive transaction costs a hop per statement and has the writer to
//! itself meanwhile); on PostgreSQL it is one transaction. A statement may demand that it changed
//! a row: when it changed none, or any statement fails, nothing of the unit is kept.

use std::borrow::Cow;

use super::query::{Value, count_statement};
use super::{Db, Tx};
use crate::error::StoreError;

/// One statement of a [`Unit`].
#[must_use = "a statement does nothing until it is added to a unit"]
#[derive(Debug, Clone)]
pub struct Statement {
    pub(crate) sql: Cow<'static, str>,
    pub(crate) args: Vec<Value>,
    pub(crate) must_change: bool,
}

impl Statement {
    pub fn new(sql: &'static str) -> Self {
        Self { sql: sql.into(), args: Vec::new(), must_change: false }
    }

    /// A statement built at run time.
    pub fn dynamic(sql: String) -> Self {
        Self { sql: sql.into(), args: Vec::new(), must_change: false }
    }

    /// Binds the next `$n` argument.
    pub fn bind(mut self, value: impl Into<Value>) -> Self {
        self.args.push(value.into());
        self
    }

    /// The unit fails with [`StoreError::Unchanged`] if this statement changes no row.
    pub fn must_change(mut self) -> Self {
        self.must_change = true;
        self
    }
}

/// Statements that commit together, in order.
#[derive(Debug, Default, Clone)]
pub struct Unit {
    statements: Vec<Statement>,
}

impl Unit {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, statement: Statement) {
        self.statements.push(statement);
    }
}

/// Whether a statement's count of changed rows meets its demand.
fn checked(index: usize, must_change: bool, changed: u64) -> Result<u64, StoreError> {
    if must_change && changed == 0 {
        return Err(StoreError::Unchanged { statement: index });
    }
    Ok(changed)
}

impl Db {
    /// Runs and commits `unit`; returns how many rows each statement changed. Answered once the
    /// commit is durable; on any failure nothing of the unit is kept.
    pub async fn commit_unit(&self, unit: Unit) -> Result<Vec<u64>, StoreError> {
        match self {
            Self::Sqlite(engine) => {
                for _ in &unit.statements {
                    count_statement();
                }
                engine
                    .write_again(move |conn| {
                        let mut changed = Vec::with_capacity(unit.statements.len());
                        for (index, statement) in unit.statements.iter().enumerate() {
                            let rows = super::sqlite::execute(conn, &statement.sql, &statement.args)?;
                            changed.push(checked(index, statement.must_change, rows)?);
                        }
                        Ok(changed)
                    })
                    .await
            }
            Self::Postgres(_) => {
                let mut tx = self.begin().await?;
                let changed = tx.run_unit(unit).await?;
                tx.commit().await?;
                Ok(changed)
            }
        }
    }
}

impl Tx {
    /// Runs `unit`'s statements inside this transaction (which commits them, or not, with the
    /// rest of its work); returns how many rows each changed.
    pub async fn run_unit(&mut self, unit: Unit) -> Result<Vec<u64>, StoreError> {
        let mut changed = Vec::with_capacity(unit.statements.len());
        for (index, statement) in unit.statements.into_iter().enumerate() {
            let must_change = statement.must_change;
            let rows = self.statement(statement.sql, statement.args).execute().await?;
            changed.push(checked(index, must_change, rows)?);
        }
        Ok(changed)
    }
}
