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
    #[error("read-only access")]
    ReadOnly,
    #[error("unknown drive `{0}`")]
    UnknownDrive(String),
    #[error("too many uploads at once (at most {0})")]
    TooManyUploads(usize),
    #[error("property too large or too many properties")]
    PropertyTooLarge,
    #[error("managing shares and links needs the manage right")]
    NotManager,
    #[error("invalid share: {0}")]
    InvalidShare(String),
    #[error("invalid link: {0}")]
    InvalidLink(String),
    #[error("no such user")]
    UnknownUser,
    #[error("no such organization")]
    UnknownOrg,
    #[error("the link expired or was used up")]
    LinkGone,
    #[error("the link needs its password")]
    LinkPassword,
    #[error("too many wrong passwords for this link; retry in {0} s")]
    TooManyGuesses(u64),
    #[error("the upload stands at offset {0}")]
    OffsetMismatch(u64),
    #[error("invalid cursor")]
    InvalidCursor,
    #[error("virus found: {0}")]
    VirusDetected(String),
    #[error("the virus scanner is unavailable")]
    ScannerUnavailable,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An error of another service (authorization), passed on as is.
    #[error("{0}")]
    Upstream(Error),
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
                    "`{name}` is not a valid name: no `/`, `\\`, control characters, `.`, `..` or device names \
                     (`CON`, `NUL`, …); at most 255 bytes."
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
            DriveError::ReadOnly => Error::new(
                ErrorKind::Forbidden,
                "read_only",
                "You may read this drive but not change it (`drive.write` is needed).",
            ),
            DriveError::UnknownDrive(name) => Error::invalid(
                "unknown_drive",
                format!("`{name}` is not a drive: use `me` or `org:<organization id>`."),
            ),
            DriveError::TooManyUploads(cap) => Error::new(
                ErrorKind::RateLimited,
                "too_many_uploads",
                format!("You already have {cap} uploads in progress; wait for one to finish."),
            )
            .with_retry_after(1),
            DriveError::PropertyTooLarge => Error::invalid(
                "property_too_large",
                "A property may hold at most 64 KiB, and a file or folder at most 256 properties.",
            ),
            DriveError::NotManager => Error::new(
                ErrorKind::Forbidden,
                "not_manager",
                "Sharing and public links need the manage right on this file or folder.",
            ),
            DriveError::InvalidShare(why) => Error::invalid("invalid_share", format!("The share is not valid: {why}.")),
            DriveError::InvalidLink(why) => Error::invalid("invalid_link", format!("The link is not valid: {why}.")),
            DriveError::UnknownUser => Error::new(ErrorKind::NotFound, "user_not_found", "No user signs in with that."),
            DriveError::UnknownOrg => Error::new(ErrorKind::NotFound, "org_not_found", "No such organization."),
            DriveError::LinkGone => {
                Error::new(ErrorKind::Gone, "link_expired", "This link has expired or reached its download limit.")
            }
            DriveError::LinkPassword => Error::new(
                ErrorKind::Unauthenticated,
                "link_password_required",
                "This link is protected: send its password in the `X-Link-Password` header.",
            ),
            DriveError::OffsetMismatch(at) => Error::new(
                ErrorKind::Conflict,
                "offset_mismatch",
                format!("The upload stands at byte {at}: send the part that starts there (HEAD tells the offset)."),
            ),
            DriveError::InvalidCursor => {
                Error::invalid("invalid_cursor", "The cursor is not one this listing returned (with the same sort).")
            }
            DriveError::VirusDetected(name) => Error::new(
                ErrorKind::Unprocessable,
                "virus_detected",
                format!("The file contains a virus ({name}); it was not stored."),
            ),
            DriveError::ScannerUnavailable => Error::new(
                ErrorKind::Unavailable,
                "antivirus_unavailable",
                "Uploads are scanned for viruses and the scanner is unavailable; try again later.",
            ),
            DriveError::TooManyGuesses(secs) => Error::new(
                ErrorKind::RateLimited,
                "rate_limited",
                format!("Too many wrong passwords for this link; retry in {secs} seconds."),
            )
            .with_retry_after(secs),
            DriveError::Store(err) => err.into(),
            DriveError::Upstream(err) => err,
        }
    }
}
