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
            DriveError::Store(err) => err.into(),
        }
    }
}
