//! mailfold-store: the local side of a sync, with no network code.
//!
//! * [`Maildir`] / [`Folder`]: the account's Maildir tree (readable as-is by
//!   mutt, neomutt, aerc and notmuch), the safe reversible mapping of folder
//!   names to directories ([`name`]), streaming message writes
//!   ([`MessageWriter`]) and reads for upload ([`UploadReader`]), scans and
//!   file operations.
//! * [`StateDb`]: the SQLite sync state (folders, messages, journal of
//!   intents, pending changes), crash-safe and never silently recreated.
//! * [`crlf`]: line-end conversion and the canonical content hash shared by
//!   both.
//!
//! The sync engine owns every decision; this crate only performs the steps
//! it is told, each either fully done or not visible at all.
#![forbid(unsafe_code)]

pub mod crlf;
mod dirfd;
mod error;
pub mod flags;
pub mod layout;
mod listing_watch;
mod maildir;
mod message;
pub mod name;
mod state;
mod writer;

pub use crlf::ContentHash;
pub use error::{Error, NameError, Result};
pub use flags::MaildirFlags;
pub use layout::Layout;
pub use listing_watch::ListingWatch;
pub use maildir::{
    CaseMode, DirStamp, Folder, FolderListing, LocalFolder, Maildir, MaildirOptions, UploadReader,
};
pub use message::{MessageBase, MessageEntry, NewMessage, Subdir};
pub use name::{AliasRegistry, FolderName, MemoryAliases, RelPath};
pub use state::schema;
pub use state::{
    fold_listing_keys, listing_key_of, listing_key_of_file, listing_key_of_row, normalise_flags,
    FlagUpdate, FolderId, FolderRecord, FolderStatus, IntegrityCheck, Intent, IntentId, IntentKind,
    InternalDate, LocalStamp, MessageRecord, NewFolder, NewIntent, NewPending, PendingChange,
    PendingId, PendingKind, StateDb, StateRead, Txn, Uid, UidValidity,
};
pub use writer::{sync_unplaced, MessageWriter, UnplacedMessage, UnsyncedDir, WrittenMessage};
