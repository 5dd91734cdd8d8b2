//! How failures of the data API reach callers: field errors listed, database constraint
//! violations named (never the SQL), everything else internal.

use oppidum_core::{Error, ErrorKind};
use oppidum_store::{Constraint, StoreError};
use serde_json::json;

use crate::values::FieldError;

/// 400 `validation_failed` listing every field's problem.
pub(crate) fn validation(errors: Vec<FieldError>) -> Error {
    let summary: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.reason)).collect();
    Error::new(ErrorKind::Invalid, "validation_failed", format!("The row is invalid ({}).", summary.join("; ")))
        .with_details(json!({ "fields": errors }))
}

/// A database failure: constraint violations as conflicts, the rest internal.
pub(crate) fn store(err: StoreError) -> Error {
    let (kind, code, message) = match err.constraint() {
        Some(Constraint::Unique) => (ErrorKind::Conflict, "unique_violation", "Another row already has this value."),
        Some(Constraint::ForeignKey) => {
            (ErrorKind::Conflict, "referenced", "The row refers to a missing row, or other rows still refer to it.")
        }
        Some(Constraint::NotNull) => (ErrorKind::Invalid, "validation_failed", "A required value is missing."),
        Some(Constraint::Check) => (ErrorKind::Invalid, "validation_failed", "A value is not allowed."),
        None => return Error::internal(err),
    };
    Error::new(kind, code, message)
}

pub(crate) trait OrStore<T> {
    fn or_store(self) -> Result<T, Error>;
}

impl<T> OrStore<T> for Result<T, StoreError> {
    fn or_store(self) -> Result<T, Error> {
        self.map_err(store)
    }
}
