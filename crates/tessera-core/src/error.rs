//! The core's one error type. It says *what* went wrong in domain terms; each adapter
//! decides how to say it (an HTTP status and `error` code, a CLI message). Sources are
//! kept for logs and never meant for the caller.

use crate::keys::KeyError;
use crate::password::HashError;
use crate::store::StoreError;

/// A boxed source error.
pub type Source = Box<dyn std::error::Error + Send + Sync>;

/// Why a use case did not succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input breaks a rule; `code` is stable (`invalid_username`, `weak_password`, …).
    #[error("{code}: {description}")]
    InvalidInput {
        /// Stable code, e.g. `invalid_username`.
        code: &'static str,
        /// Human-readable detail; never echoes a secret.
        description: String,
    },
    /// Username and password do not identify an enabled account. Unknown user, wrong
    /// password and disabled account are this one answer.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The presented session or token is unknown, expired or revoked.
    #[error("not authenticated")]
    Unauthenticated,
    /// Too many attempts; retry after this many seconds.
    #[error("throttled; retry after {retry_after} s")]
    Throttled {
        /// Seconds until the window ends.
        retry_after: u32,
    },
    /// A grant (refresh token, password) is invalid, expired, revoked or not the
    /// client's; the text says which kind, for `error_description`.
    #[error("invalid grant: {0}")]
    InvalidGrant(&'static str),
    /// Client authentication failed, or is required and missing; the text says which.
    #[error("invalid client: {0}")]
    InvalidClient(&'static str),
    /// The token exists but was issued to another client.
    #[error("the token was not issued to this client")]
    UnauthorizedClient,
    /// The caller may not do this; `code` is stable (`admin_required`, `signup_disabled`).
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// No such record (or not the caller's: the two look the same).
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was broken.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// In-memory revocation state is older than the staleness bound: refuse rather than
    /// accept what may have been revoked.
    #[error("revocation state is stale")]
    StaleRevocationState,
    /// A dependency (a store, hashing capacity) is unavailable; retrying may succeed.
    #[error("unavailable")]
    Unavailable(#[source] Source),
    /// A bug or an unexpected backend failure.
    #[error("internal error")]
    Internal(#[source] Source),
}

impl Error {
    /// An [`Error::InvalidInput`].
    pub fn invalid(code: &'static str, description: impl Into<String>) -> Self {
        Self::InvalidInput {
            code,
            description: description.into(),
        }
    }

    /// An [`Error::Internal`] from a message.
    pub fn internal(what: &'static str) -> Self {
        Self::Internal(what.into())
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Self::Unavailable(Box::new(e)),
            StoreError::Conflict(what) => Self::Conflict(what),
            StoreError::InvalidValue(_) => {
                Self::invalid("invalid_request", "a value in the request cannot be stored")
            }
            other => Self::Internal(Box::new(other)),
        }
    }
}

impl From<HashError> for Error {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Saturated => Self::Unavailable(Box::new(e)),
            other => Self::Internal(Box::new(other)),
        }
    }
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Store(StoreError::Unavailable(_)) => Self::Unavailable(Box::new(e)),
            other => Self::Internal(Box::new(other)),
        }
    }
}
