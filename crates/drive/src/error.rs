//! Drive errors.

use oppidum_core::{Error, ErrorKind};
use oppidum_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    /// The upload is larger than allowed (size limit or quota).
    #[error("the content is larger than the {0} bytes allowed")]
    TooLarge(u64),
    /// Reading the upload failed (client went away, …).
    #[error("reading the content failed: {0}")]
    Upload(std::io::Error),
    /// A stored chunk is missing or does not match its hash.
    #[error("stored content is damaged: {0}")]
    Corrupt(String),
    #[error("the storage quota of {0} bytes would be exceeded")]
    QuotaExceeded(u64),
    #[error("not found")]
    NotFound,
    #[error("invalid name `{0}`")]
    InvalidName(String),
    #[error("`{0}` already exists here")]
    NameTaken(String),
    #[error("not a folder")]
    NotAFolder,
    #[error("not a file")]
    NotAFile,
    #[error("a folder cannot move into itself")]
    InvalidMove,
    #[error("the ETag does not match")]
    PreconditionFailed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<DriveError> for Error {
    fn from(error: DriveError) -> Self {
        match error {
            DriveError::TooLarge(limit) => Error::new(
                ErrorKind::TooLarge,
                "request_body_too_large",
                format!("The file is larger than the {limit} bytes allowed."),
            ),
            DriveError::Upload(err) => Error::invalid("invalid_request_body", format!("The upload failed: {err}.")),
            DriveError::Corrupt(_) => Error::internal(error),
            DriveError::QuotaExceeded(quota) => Error::new(
                ErrorKind::InsufficientStorage,
                "quota_exceeded",
                format!("This would exceed your storage quota of {quota} bytes."),
            ),
            DriveError::NotFound => Error::not_found("No such file or folder."),
            DriveError::InvalidName(name) => Error::invalid(
                "invalid_name",
                format!(
                    "`{name}` is not a valid name: no `/`, `\\`, control characters, `.` or `..`; at most 255 bytes."
                ),
            ),
            DriveError::NameTaken(name) => {
                Error::new(ErrorKind::Conflict, "name_taken", format!("`{name}` already exists in this folder."))
            }
            DriveError::NotAFolder => Error::invalid("not_a_folder", "The parent is not a folder."),
            DriveError::NotAFile => Error::invalid("not_a_file", "Folders have no content."),
            DriveError::InvalidMove => {
                Error::invalid("invalid_move", "A folder cannot move into itself or a subfolder.")
            }
            DriveError::PreconditionFailed => Error::new(
                ErrorKind::PreconditionFailed,
                "etag_mismatch",
                "The file changed since you read it (If-Match does not match).",
            ),
            DriveError::Store(err) => err.into(),
        }
    }
}
