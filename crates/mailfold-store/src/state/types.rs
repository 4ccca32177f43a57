//! Typed rows of the state database.

use std::num::NonZeroU32;

use crate::crlf::ContentHash;
use crate::error::NameError;
use crate::message::MessageBase;
use crate::name::RelPath;

// The protocol's UID types, shared with the planner and the sync, so a row's UID goes to either
// unconverted.
pub use mailfold_proto::core::{Uid, UidValidity};

/// Row id of a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FolderId(pub i64);

// Row id of a journal intent: the planner's type, so an open intent goes into a plan and the
// plan's `DropIntent` comes back unconverted. Its `u64` meets the `i64` column only in
// `intent_id_of_row` and `intent_row_id` (state/mod.rs), both checked.
pub use mailfold_plan::IntentId;

/// Row id of a pending change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PendingId(pub i64);

/// INTERNALDATE: an instant and the zone the server gave it in, kept so
/// APPEND can send the same date back (seed V0006).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InternalDate {
    /// Seconds since the Unix epoch.
    pub unix: i64,
    /// The zone offset in minutes east of UTC.
    pub offset_minutes: i16,
}

/// A folder to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFolder {
    /// The name exactly as on the wire (modified UTF-7).
    pub wire_name: String,
    /// The hierarchy delimiter, `None` for a flat namespace.
    pub delimiter: Option<char>,
    /// Its directory under the root.
    pub local_path: RelPath,
    /// Special-use attribute (`\Sent`, `\Trash`, …), if any.
    pub special_use: Option<String>,
    /// Subscribed on the server.
    pub subscribed: bool,
}

/// A folder row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderRecord {
    /// Row id.
    pub id: FolderId,
    /// The name exactly as on the wire.
    pub wire_name: String,
    /// The hierarchy delimiter.
    pub delimiter: Option<char>,
    /// Its directory under the root.
    pub local_path: RelPath,
    /// UIDVALIDITY at the last sync.
    pub uidvalidity: Option<UidValidity>,
    /// UIDNEXT at the last sync (seed V0002).
    pub uidnext: Option<NonZeroU32>,
    /// HIGHESTMODSEQ at the last sync (RFC 7162).
    pub highestmodseq: Option<u64>,
    /// Special-use attribute.
    pub special_use: Option<String>,
    /// Subscribed on the server.
    pub subscribed: bool,
    /// The server opened it READ-ONLY at the last SELECT (seed V0039).
    pub read_only: bool,
    /// Unix seconds of the last completed sync.
    pub last_sync: Option<i64>,
}

/// A folder's recorded local stamp (schema version 3): the state of its
/// `cur/` and `new/` when the folder last ended a run complete and
/// untouched, and how many message rows (all bound to UIDs) it had then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalStamp {
    /// The directories' stamp.
    pub stamp: crate::maildir::DirStamp,
    /// Message rows of the folder at the time (none unbound).
    pub messages: u64,
}

/// The server's view of a folder after a SELECT or STATUS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FolderStatus {
    /// UIDVALIDITY.
    pub uidvalidity: Option<UidValidity>,
    /// UIDNEXT.
    pub uidnext: Option<NonZeroU32>,
    /// HIGHESTMODSEQ.
    pub highestmodseq: Option<u64>,
}

/// What the state database remembers of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// The UID in the folder.
    pub uid: Uid,
    /// The local file's base.
    pub base: MessageBase,
    /// Last synced system flags (`\Seen`, …), sorted.
    pub flags: Vec<String>,
    /// Last synced keywords (`$Junk`, user labels, …), sorted (seed V0005).
    pub keywords: Vec<String>,
    /// RFC822.SIZE (seed V0007).
    pub size: Option<u64>,
    /// INTERNALDATE (seed V0006).
    pub internaldate: Option<InternalDate>,
    /// SHA-256 of the CRLF form.
    pub hash: Option<ContentHash>,
    /// The Message-ID header, for re-matching after a UIDVALIDITY change.
    pub message_id: Option<String>,
    /// Only the header is held locally (seed V0070).
    pub partial: bool,
}

/// A flag update for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagUpdate {
    /// The message.
    pub uid: Uid,
    /// New system flags.
    pub flags: Vec<String>,
    /// New keywords.
    pub keywords: Vec<String>,
}

/// What a journal intent is about to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IntentKind {
    /// APPEND a local message to the server.
    Append,
    /// Download a message into the Maildir.
    Download,
    /// STORE flags on the server.
    Store,
    /// Mark \Deleted and UID EXPUNGE on the server.
    Expunge,
    /// MOVE (or COPY + EXPUNGE) on the server.
    MoveRemote,
    /// Move a file between local folders.
    MoveLocal,
    /// CREATE a folder.
    CreateFolder,
    /// RENAME a folder.
    RenameFolder,
    /// DELETE a folder.
    DeleteFolder,
}

/// What a pending change would do once it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PendingKind {
    /// Push flag changes.
    Flags,
    /// Upload a new local message.
    Append,
    /// Remove a message on the server.
    Expunge,
    /// Move a message on the server.
    Move,
    /// Create, rename or delete the folder itself.
    FolderChange,
}

macro_rules! text_enum {
    ($t:ty { $($v:ident = $s:literal),* $(,)? }) => {
        impl $t {
            /// The name stored in the database.
            pub fn as_str(self) -> &'static str {
                match self { $(<$t>::$v => $s),* }
            }
            /// Parses a stored name.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some(<$t>::$v),)* _ => None }
            }
        }
    };
}

text_enum!(IntentKind {
    Append = "append",
    Download = "download",
    Store = "store",
    Expunge = "expunge",
    MoveRemote = "move-remote",
    MoveLocal = "move-local",
    CreateFolder = "create-folder",
    RenameFolder = "rename-folder",
    DeleteFolder = "delete-folder",
});

text_enum!(PendingKind {
    Flags = "flags",
    Append = "append",
    Expunge = "expunge",
    Move = "move",
    FolderChange = "folder",
});

/// A journal entry to write before a multi-step operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIntent {
    /// The operation.
    pub kind: IntentKind,
    /// The folder it acts on.
    pub folder: Option<FolderId>,
    /// The destination folder of a move or copy.
    pub target_folder: Option<FolderId>,
    /// The UID concerned, if known.
    pub uid: Option<Uid>,
    /// The local file concerned.
    pub base: Option<MessageBase>,
    /// Content hash, to find an APPENDed copy again after a crash.
    pub hash: Option<ContentHash>,
    /// Free text for the engine (for example a Message-ID or new name).
    pub detail: String,
}

impl NewIntent {
    /// An intent of `kind` with every optional field empty.
    pub fn new(kind: IntentKind) -> Self {
        NewIntent {
            kind,
            folder: None,
            target_folder: None,
            uid: None,
            base: None,
            hash: None,
            detail: String::new(),
        }
    }
}

/// A journal entry still open (its operation's outcome is unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// Row id.
    pub id: IntentId,
    /// What was being done.
    pub intent: NewIntent,
    /// Unix seconds when it was written.
    pub created: i64,
}

/// A change to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPending {
    /// The folder.
    pub folder: FolderId,
    /// The kind of change.
    pub kind: PendingKind,
    /// The message by UID, if it has one.
    pub uid: Option<Uid>,
    /// The message by local base.
    pub base: Option<MessageBase>,
    /// What to do (for flags, the wanted flag list), free text for the engine.
    pub detail: String,
    /// Why it could not be applied now.
    pub reason: String,
}

/// A queued change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingChange {
    /// Row id.
    pub id: PendingId,
    /// What is queued.
    pub change: NewPending,
    /// How many times applying it was tried.
    pub attempts: u32,
    /// Unix seconds when first queued.
    pub created: i64,
    /// Unix seconds of the last attempt.
    pub last_attempt: Option<i64>,
}

impl NewPending {
    /// The uniqueness key: a later change to the same message and kind
    /// replaces the earlier one.
    pub(crate) fn target(&self) -> String {
        match (&self.uid, &self.base) {
            (Some(u), _) => format!("uid:{}", u.get()),
            (None, Some(b)) => format!("base:{}", b.as_str()),
            (None, None) => "folder".to_owned(),
        }
    }
}

/// Checks and normalises a list of flags or keywords: each must be an IMAP
/// flag (`\Atom` or atom, RFC 3501 section 9); the result is sorted and
/// de-duplicated so stored lists compare equal.
pub fn normalise_flags(flags: &[String]) -> Result<Vec<String>, NameError> {
    let mut out = Vec::with_capacity(flags.len());
    for f in flags {
        let atom = f.strip_prefix('\\').unwrap_or(f);
        let ok = !atom.is_empty()
            && atom.bytes().all(|b| {
                b.is_ascii_graphic()
                    && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
            });
        if !ok {
            return Err(NameError::BadFlag { flag: f.clone() });
        }
        out.push(f.clone());
    }
    out.sort();
    out.dedup();
    Ok(out)
}
