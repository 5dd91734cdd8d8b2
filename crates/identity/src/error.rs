//! Identity's errors and their stable codes.

use oppidum_core::{Error, ErrorKind};
use oppidum_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// 400 with a specific code.
    #[error("{1}")]
    Invalid(&'static str, String),
    /// 401: unknown email or wrong password (deliberately the same).
    #[error("the email or password is wrong")]
    InvalidCredentials,
    /// 401: a token that does not verify, expired, or whose session is gone.
    #[error("{0}")]
    InvalidToken(String),
    #[error("the refresh token is not valid")]
    InvalidRefreshToken,
    /// 401: an already-rotated refresh token came back; the session was revoked.
    #[error("this refresh token was already used; the session has been revoked")]
    RefreshTokenReused,
    /// 403 with a specific code.
    #[error("{1}")]
    Forbidden(&'static str, String),
    /// 404: absent or not visible to the caller.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 409 with a specific code.
    #[error("{1}")]
    Conflict(&'static str, String),
    /// 429.
    #[error("too many attempts; retry in {0} seconds")]
    RateLimited(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl From<IdentityError> for Error {
    fn from(error: IdentityError) -> Self {
        match error {
            IdentityError::Invalid(code, message) => Error::invalid(code, message),
            IdentityError::InvalidCredentials => {
                Error::new(ErrorKind::Unauthenticated, "invalid_credentials", "The email or password is wrong.")
            }
            IdentityError::InvalidToken(message) => Error::new(ErrorKind::Unauthenticated, "invalid_token", message),
            IdentityError::InvalidRefreshToken => {
                Error::new(ErrorKind::Unauthenticated, "invalid_refresh_token", "The refresh token is not valid.")
            }
            IdentityError::RefreshTokenReused => Error::new(
                ErrorKind::Unauthenticated,
                "refresh_token_reused",
                "This refresh token was already used; the session has been revoked. Sign in again.",
            ),
            IdentityError::Forbidden(code, message) => Error::new(ErrorKind::Forbidden, code, message),
            IdentityError::NotFound(what) => Error::not_found(format!("No such {what}.")),
            IdentityError::Conflict(code, message) => Error::new(ErrorKind::Conflict, code, message),
            IdentityError::RateLimited(secs) => Error::new(
                ErrorKind::RateLimited,
                "rate_limited",
                format!("Too many attempts; retry in {secs} seconds."),
            )
            .with_retry_after(secs),
            IdentityError::Store(err) => err.into(),
            IdentityError::Internal(message) => Error::internal(std::io::Error::other(message)),
        }
    }
}

pub type Result<T, E = IdentityError> = std::result::Result<T, E>;
