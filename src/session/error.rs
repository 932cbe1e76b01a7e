//! What getting a token can fail with, each error saying what to do next.

use std::path::PathBuf;
use std::time::Duration;

use super::login_command;
use crate::http::HttpError;
use crate::oauth::{self, OAuthError};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    OAuth(OAuthError),
    #[error(
        "no token for {server} and {reason}; run `{}` in a terminal first",
        login_command(server)
    )]
    LoginRequired { server: String, reason: String },
    #[error(
        "the refresh token for {server} was rejected ({cause}) and {reason}; run `{}` in a terminal",
        login_command(server)
    )]
    RefreshRejected {
        server: String,
        cause: OAuthError,
        reason: String,
    },
    #[error(
        "the refresh token for {server} {why} and {reason}; run `{}` in a terminal",
        login_command(server)
    )]
    RefreshDead {
        server: String,
        why: String,
        reason: String,
    },
    #[error(
        "refreshing the token for {server} failed: {cause}; the stored refresh token is kept, try again later"
    )]
    RefreshFailed { server: String, cause: OAuthError },
    #[error("cannot take the refresh lock {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "another keygate process has held the lock for {server} for {waited:?}, probably waiting for a browser login; finish or cancel it, then retry"
    )]
    Busy { server: String, waited: Duration },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// What another process's CI exchange met while this one waited.
    #[error("{said} (met by another keygate process a moment ago, so not tried again)")]
    FailedMeanwhile { said: String },
    /// A person was asked to authorize, and the login failed.
    #[error("{cause}; to try again, run `{command}`")]
    LoginFailed { command: String, cause: OAuthError },
}

impl SessionError {
    /// Whether a person took part in the login that failed: git should
    /// then stop rather than ask them for a password.
    pub fn asked_a_person(&self) -> bool {
        matches!(self, SessionError::LoginFailed { .. })
    }

    /// Whether the person cancelled the login (Ctrl-C).
    pub fn is_cancelled(&self) -> bool {
        matches!(
            self,
            SessionError::LoginFailed {
                cause: OAuthError::Cancelled,
                ..
            }
        )
    }
}

/// A store failure met while reading a registered client is
/// [`SessionError::Store`], like every other.
impl From<OAuthError> for SessionError {
    fn from(error: OAuthError) -> Self {
        match error {
            OAuthError::Registration(error) => match *error {
                oauth::register::RegisterError::Store(error) => SessionError::Store(error),
                error => SessionError::OAuth(OAuthError::Registration(Box::new(error))),
            },
            error => SessionError::OAuth(error),
        }
    }
}

impl From<HttpError> for SessionError {
    fn from(error: HttpError) -> Self {
        SessionError::OAuth(OAuthError::Http(error))
    }
}
