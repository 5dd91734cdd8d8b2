//! The mail crate's errors.

use oppidum_core::{Error, ErrorKind};
use oppidum_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("{1}")]
    Invalid(&'static str, String),
    #[error("{0}")]
    Forbidden(String),
    #[error("template `{0}` does not exist")]
    UnknownTemplate(String),
    #[error("template `{name}` failed to render: {reason}")]
    Render { name: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<MailError> for Error {
    fn from(error: MailError) -> Self {
        match error {
            MailError::Invalid(code, message) => Error::invalid(code, message),
            MailError::Forbidden(message) => Error::new(ErrorKind::Forbidden, "forbidden", message),
            MailError::UnknownTemplate(name) => {
                Error::invalid("unknown_template", format!("There is no template `{name}`."))
            }
            MailError::Render { name, reason } => Error::new(
                ErrorKind::Unprocessable,
                "template_error",
                format!("Template `{name}` could not be rendered: {reason}."),
            ),
            MailError::Store(err) => err.into(),
        }
    }
}
