//! Errors that end a run before it could sync any folder, grouped by cause. Failures of single
//! steps do not end the run: they are recorded in the [`crate::SyncReport`].

use std::fmt;

use crate::remote::RemoteError;

/// Why a run could not proceed.
#[derive(Debug)]
#[non_exhaustive]
pub enum SyncError {
    /// The local store (Maildir or state database) failed: unreadable, corrupt, or a file
    /// operation failed. A corrupt state database stops the run rather than being treated as
    /// empty, which would turn into deletions.
    Store(mailfold_store::Error),
    /// Connecting, securing or authenticating failed, or the connection broke mid-run.
    Remote(RemoteError),
    /// The account configuration cannot work.
    Config(String),
    /// The account's pending secret could not be had (a password command failed); the text
    /// is the fetcher's own line, shown as it is.
    Secret(crate::account::SecretError),
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncError::Store(e) => write!(f, "local store: {e}"),
            SyncError::Remote(e) => write!(f, "server: {e}"),
            SyncError::Config(s) => write!(f, "configuration: {s}"),
            SyncError::Secret(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SyncError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SyncError::Store(e) => Some(e),
            SyncError::Remote(e) => Some(e),
            SyncError::Config(_) => None,
            SyncError::Secret(e) => Some(e),
        }
    }
}

impl From<mailfold_store::Error> for SyncError {
    fn from(e: mailfold_store::Error) -> Self {
        SyncError::Store(e)
    }
}

impl From<RemoteError> for SyncError {
    fn from(e: RemoteError) -> Self {
        SyncError::Remote(e)
    }
}
