//! Why a step of a run failed without ending the run, grouped by cause: what the report's
//! `errors` hold ([`crate::FolderReport::errors`], [`crate::SyncReport::errors`]).
//!
//! A failure that ends the run is a [`crate::SyncError`]; one that fails a single step (a
//! refused STORE, a file that vanished, a folder name that cannot be sent) is one of these,
//! recorded and left for the next run. Each keeps the text a user has always been shown: its
//! `Display` is that text (the server's own words included, seed V0019), and the report's JSON
//! carries it as a string.

use std::fmt;

use crate::remote::RemoteError;

/// A failed step, grouped by cause. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepError {
    /// The server refused a command (tagged NO or BAD), or the connection failed under it.
    Server {
        /// What was refused, as the user reads it ("STORE refused", "cannot select").
        action: String,
        /// The server's answer, its own text included (seed V0019).
        error: RemoteError,
    },
    /// The server's data changed between this run's view and the step: a message changed by
    /// another client (`[MODIFIED]`, RFC 7162 3.1.3), a new UIDVALIDITY (RFC 3501 2.3.1.1).
    /// The next run sees the new state.
    Changed(String),
    /// The folder or message cannot be used as the step needs: a name that cannot be sent
    /// (seeds V0018, V0020), a folder the server opened read-only (V0039), a folder without a
    /// UIDVALIDITY or without a state row.
    Unusable(String),
    /// The Maildir: a file or directory operation failed, or a file vanished.
    Local(String),
    /// The state database failed.
    State(String),
    /// The run as a whole could not go on (an account-level entry: the lock, the connection,
    /// the configuration); the text is the [`crate::SyncError`]'s or the lock's.
    Run(String),
    /// The applier was handed an operation it cannot carry out where it stands (a planner
    /// bug, never a server's or a user's doing).
    Internal(String),
}

impl StepError {
    /// A refusal by the server (or a connection failure) of `action`.
    pub fn server(action: impl Into<String>, error: RemoteError) -> StepError {
        StepError::Server {
            action: action.into(),
            error,
        }
    }

    /// A state database failure.
    pub fn state(e: mailfold_store::Error) -> StepError {
        StepError::State(e.to_string())
    }

    /// A Maildir failure.
    pub fn local(e: impl fmt::Display) -> StepError {
        StepError::Local(e.to_string())
    }

    /// The same error with `context` in front of its text ("UID 4: …"), in the same group.
    pub fn context(self, context: impl fmt::Display) -> StepError {
        match self {
            StepError::Server { action, error } => StepError::Server {
                action: format!("{context}: {action}"),
                error,
            },
            StepError::Changed(t) => StepError::Changed(format!("{context}: {t}")),
            StepError::Unusable(t) => StepError::Unusable(format!("{context}: {t}")),
            StepError::Local(t) => StepError::Local(format!("{context}: {t}")),
            StepError::State(t) => StepError::State(format!("{context}: {t}")),
            StepError::Run(t) => StepError::Run(format!("{context}: {t}")),
            StepError::Internal(t) => StepError::Internal(format!("{context}: {t}")),
        }
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepError::Server { action, error } => write!(f, "{action}: {error}"),
            StepError::Changed(t)
            | StepError::Unusable(t)
            | StepError::Local(t)
            | StepError::State(t)
            | StepError::Run(t)
            | StepError::Internal(t) => f.write_str(t),
        }
    }
}

impl std::error::Error for StepError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StepError::Server { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// As its text: the report's JSON keeps the shape it always had (a list of strings).
impl serde::Serialize for StepError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl From<&crate::SyncError> for StepError {
    fn from(e: &crate::SyncError) -> StepError {
        StepError::Run(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_is_the_one_users_have_always_read() {
        let refused = StepError::server(
            "STORE refused",
            RemoteError::No {
                text: "[CANNOT] no".into(),
                trycreate: false,
            },
        );
        assert_eq!(
            refused.to_string(),
            "STORE refused: server said NO: [CANNOT] no"
        );
        assert_eq!(
            refused.context("UID 4").to_string(),
            "UID 4: STORE refused: server said NO: [CANNOT] no"
        );
        assert_eq!(StepError::Local("gone".into()).to_string(), "gone");
    }
}
