use opsdesk_domain::{FieldError, TransitionError};
use opsdesk_store::StoreError;

/// Why a use case refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("{0}")]
    Conflict(String),
    #[error("the ticket is at version {current}, not {expected}: read it again and retry")]
    StaleVersion { expected: i64, current: i64 },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Throttled(String),
    #[error(transparent)]
    Store(StoreError),
    /// Work that failed for no fault of the caller (a task that panicked).
    #[error("{0}")]
    Internal(String),
    /// The file store failed (for now: trying again may work).
    #[error("{0}")]
    Files(String),
    /// A stored file is gone from the file store, or is not what was stored.
    #[error("{0}")]
    FileLost(String),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        if e.is_unique_violation() {
            Error::Conflict(match e {
                StoreError::Unique(msg) => msg,
                other => other.to_string(),
            })
        } else {
            Error::Store(e)
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
