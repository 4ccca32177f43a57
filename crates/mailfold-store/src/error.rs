//! The crate's single error type, grouped by cause so the sync engine can
//! decide what is fatal (corrupt state, unsafe path) and what is a per-item
//! problem (a file that vanished, a name the user must change).

use std::io;
use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A folder name that cannot be used as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// A folder name must have at least one component.
    #[error("folder name has no components")]
    Empty,
    /// A user-supplied name contains a control character (seed V0018).
    #[error("folder name component {component:?} contains the control character U+{code:04X}")]
    ControlCharacter {
        /// The offending component.
        component: String,
        /// The code point of the first control character.
        code: u32,
    },
    /// A component contains the server's hierarchy delimiter (seed V0020).
    #[error("folder name component {component:?} contains the hierarchy delimiter {delimiter:?}")]
    ContainsDelimiter {
        /// The offending component.
        component: String,
        /// The server's delimiter.
        delimiter: char,
    },
    /// A user-supplied component is empty.
    #[error("folder name has an empty component")]
    EmptyComponent,
    /// A directory name is not a valid encoding of a folder name component.
    #[error("directory name {dir:?} is not a valid folder encoding: {reason}")]
    BadEncoding {
        /// The directory name.
        dir: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A directory name is a hash-shortened alias the state database does not know.
    #[error("directory name {dir:?} is an alias unknown to the state database")]
    UnknownAlias {
        /// The directory name.
        dir: String,
    },
    /// A relative path stored or given by the caller is not a safe path below the root.
    #[error("relative folder path {path:?} is not safe: {reason}")]
    BadRelPath {
        /// The rejected path.
        path: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A message base name is not usable as a Maildir file identity.
    #[error("message base {base:?} is invalid: {reason}")]
    BadBase {
        /// The rejected base.
        base: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A flag or keyword is not a valid IMAP flag atom.
    #[error("flag {flag:?} is not a valid IMAP flag")]
    BadFlag {
        /// The rejected flag.
        flag: String,
    },
}

/// Every error the store and the state database report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("create directory", "rename", …).
        op: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A name or path given by the caller is unusable.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A path would leave the Maildir root or pass through a symbolic link.
    #[error("refusing unsafe path {path}: {reason}")]
    UnsafePath {
        /// The path concerned.
        path: PathBuf,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A folder or message that was expected is not there.
    #[error("not found: {path}")]
    NotFound {
        /// The path that is missing.
        path: PathBuf,
    },
    /// The target of a create, rename or move already exists.
    #[error("already exists: {path}")]
    AlreadyExists {
        /// The path that exists.
        path: PathBuf,
    },
    /// A message passed the size its writer was limited to (the size the server announced).
    #[error("{path}: more than the {limit} bytes announced; not kept")]
    TooLarge {
        /// The temporary file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// A folder still holds messages or sub-folders and `force` was not given.
    #[error("folder {path} is not empty")]
    NotEmpty {
        /// The folder directory.
        path: PathBuf,
    },
    /// The state database file does not exist (use `StateDb::create` for a first run).
    #[error("state database {path} does not exist")]
    StateMissing {
        /// The expected path.
        path: PathBuf,
    },
    /// `StateDb::create` found an existing file; it never overwrites one.
    #[error("state database {path} already exists; refusing to overwrite it")]
    StateExists {
        /// The existing path.
        path: PathBuf,
    },
    /// The state database is truncated, corrupt or not a mailfold database.
    #[error("state database {path} is corrupt: {detail}")]
    StateCorrupt {
        /// The database path.
        path: PathBuf,
        /// What the check found.
        detail: String,
    },
    /// The state database was written by a newer mailfold.
    #[error(
        "state database {path} has schema version {found}, this build supports up to {supported}"
    )]
    SchemaTooNew {
        /// The database path.
        path: PathBuf,
        /// The version in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// An SQLite call failed.
    #[error("state database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A journal intent id beyond SQLite's row id range (`i64`), so it names no intent.
    #[error("journal intent id {id} is beyond the state database's row id range")]
    IntentOutOfRange {
        /// The id given.
        id: u64,
    },
    /// A value read back from the database is not valid.
    #[error("state database holds an invalid value in {column}: {detail}")]
    BadStoredValue {
        /// Table and column.
        column: &'static str,
        /// What is wrong.
        detail: String,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True when the error means a file or directory vanished (for example a
    /// message renamed by mutt during a scan); callers usually rescan.
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::NotFound { .. } => true,
            Error::Io { source, .. } => source.kind() == io::ErrorKind::NotFound,
            _ => false,
        }
    }
}
