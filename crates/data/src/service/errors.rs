//! How failures of the data API reach callers: field errors listed, database constraint
//! violations named (never the SQL), everything else internal.

use oppidum_core::{Error, ErrorKind};
use oppidum_store::StoreError;
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
    if let StoreError::Db(sqlx_err) = &err
        && let Some(db) = sqlx_err.as_database_error()
    {
        use sqlx::error::ErrorKind as Db;
        let (kind, code, message) = match db.kind() {
            Db::UniqueViolation => (ErrorKind::Conflict, "unique_violation", "Another row already has this value."),
            Db::ForeignKeyViolation => {
                (ErrorKind::Conflict, "referenced", "The row refers to a missing row, or other rows still refer to it.")
            }
            Db::NotNullViolation => (ErrorKind::Invalid, "validation_failed", "A required value is missing."),
            Db::CheckViolation => (ErrorKind::Invalid, "validation_failed", "A value is not allowed."),
            _ => return Error::internal(err),
        };
        return Error::new(kind, code, message);
    }
    Error::internal(err)
}

pub(crate) trait OrStore<T> {
    fn or_store(self) -> Result<T, Error>;
}

impl<T> OrStore<T> for Result<T, StoreError> {
    fn or_store(self) -> Result<T, Error> {
        self.map_err(store)
    }
}
