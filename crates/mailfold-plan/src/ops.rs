//! Planner output: the ordered operations, and what the applier must do for each.
//!
//! Every operation has an *effect* (on the server, on the Maildir, or both) and a *commit* (one
//! state-database transaction). The applier performs the effect, then the commit, in that order,
//! and never commits an operation whose effect failed. A crash between the two is always
//! recoverable by planning again: the planner recognises half-done work by content matching,
//! which is what the kill-after-any-prefix tests check. Where an operation touches both sides,
//! the local side goes first, then the server, then the commit: a local change that is not yet
//! recorded merges back as a change already agreed on (see [`super::flags`]).
//!
//! The applier resolves a [`LocalId`] to a file path from the same scan the plan was made from.

use std::fmt;

use super::types::{
    FlagSet, FolderPath, IntentId, LocalId, Location, ModSeq, PendingKey, Uid, UidValidity,
    UnixTime,
};

/// A change of flags on the server: `UID STORE uid +FLAGS.SILENT (add)` and
/// `-FLAGS.SILENT (remove)` (seed V0056).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagStore {
    /// Flags to add.
    pub add: FlagSet,
    /// Flags to remove.
    pub remove: FlagSet,
    /// With CONDSTORE: send `(UNCHANGEDSINCE n)` so that a concurrent change on the server is not
    /// overwritten (seed V0056, RFC 7162 3.1.3). If the server reports the UID as MODIFIED the
    /// applier skips the rest of the operation (no commit); the next run merges again.
    pub unchanged_since: Option<ModSeq>,
}

/// How a paired message's flags change, in the order local → server → state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagUpdate {
    /// The complete new local flag set (rename the file's `:2,` suffix, moving it from `new/` to
    /// `cur/` if it gains flags; keywords go to the store's keyword table). `None`: unchanged.
    pub local: Option<FlagSet>,
    /// The server change. `None`: unchanged.
    pub remote: Option<FlagStore>,
    /// The synced flags to record in the state row once both sides hold them.
    pub record: FlagSet,
}

impl FlagUpdate {
    /// Whether the update changes neither side.
    pub fn is_noop(&self) -> bool {
        self.local.is_none() && self.remote.is_none()
    }
}

/// How much of a message to download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// The whole message (`BODY.PEEK[]`, V0054).
    Full,
    /// Only the header (`BODY.PEEK[HEADER]`), stored as a partial copy (V0010, V0070).
    Headers,
}

/// What the state row committed by a pairing operation records about the message content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowContent {
    /// RFC822.SIZE.
    pub size: u64,
    /// INTERNALDATE.
    pub internaldate: UnixTime,
    /// Message-ID, if known.
    pub message_id: Option<String>,
    /// Content hash, if known.
    pub hash: Option<super::types::ContentHash>,
    /// Whether the local copy is partial.
    pub partial: bool,
}

/// One step of a plan. Effects and commits are described per variant; "row" means a message
/// row of the state database, "folder state" the per-folder record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Effect: create the Maildir (`cur/ new/ tmp/`, parents as needed). Commit: none.
    CreateLocalFolder {
        /// The folder.
        folder: FolderPath,
    },
    /// Effect: `CREATE` on the server (on `NO [TRYCREATE]` or `NO` show the server's text,
    /// V0019/V0047). Commit: set the folder state's UIDVALIDITY to the new folder's (from STATUS
    /// or SELECT), creating the folder state if missing; any row still in it loses its UID
    /// (`uid = NULL`), exactly as [`Op::SetUidValidity`].
    CreateRemoteFolder {
        /// The folder.
        folder: FolderPath,
    },
    /// Effect: none. Commit: create the folder state with this UIDVALIDITY if missing; if it
    /// exists with another UIDVALIDITY, set the new one, clear UIDNEXT and HIGHESTMODSEQ, and
    /// set `uid = NULL` on every row (they are matched again by content, V0003).
    SetUidValidity {
        /// The folder.
        folder: FolderPath,
        /// The server's UIDVALIDITY now.
        uidvalidity: UidValidity,
    },
    /// Pair a server message with a local file that already holds it (after a UIDVALIDITY
    /// change, a lost state database, a crash after a download or upload, a journaled APPEND
    /// found again, a local rename, or a partial copy now full). Effect: `update`'s local and
    /// server parts. Commit: in `folder`, delete every row whose local id is `local` or whose
    /// UID is `uid`, then insert the row (`uid`, `local`, `update.record`, `content`).
    Bind {
        /// The folder.
        folder: FolderPath,
        /// The server message.
        uid: Uid,
        /// The local file.
        local: LocalId,
        /// What to record about the content.
        content: RowContent,
        /// Flag changes to bring both sides to the merged flags.
        update: FlagUpdate,
    },
    /// Effect: fetch the message with `BODY.PEEK` (never setting `\Seen`, V0054) into `tmp/`,
    /// fsync, set mtime to `internaldate` (V0006), check its size against `size` (V0007), and
    /// rename it into `location` with `flags`. With `replace`, the new file takes over that
    /// partial file's base name (atomically replacing it, so a partial copy never coexists with
    /// or replaces a full one, V0070). Commit (only when `record`): delete rows whose UID is `uid`
    /// or local id is the new file's, then insert (`uid`, new local id, `flags`, content,
    /// `partial = body == Headers`).
    Download {
        /// The folder.
        folder: FolderPath,
        /// The server message.
        uid: Uid,
        /// Flags for the new file (the server's, less `\Recent`).
        flags: FlagSet,
        /// `new/` for a message with no flags at all, `cur/` otherwise.
        location: Location,
        /// Whole message or headers.
        body: Body,
        /// RFC822.SIZE (expected size).
        size: u64,
        /// INTERNALDATE.
        internaldate: UnixTime,
        /// Message-ID if known (recorded).
        message_id: Option<String>,
        /// The partial local copy to replace by this full download.
        replace: Option<LocalId>,
        /// Whether to commit a row. `false` in a folder without UIDVALIDITY (V0037), whose UIDs
        /// mean nothing across sessions.
        record: bool,
    },
    /// Effect: write a journal [`super::Intent::Append`] entry, then `APPEND` the file (LF → CRLF,
    /// V0046 drafts without headers included) with `flags` and `internaldate`. Commit: with the
    /// APPENDUID (V0048) whose UIDVALIDITY equals the folder state's, delete any row whose local
    /// id is `local` (a row left without UID by a UIDVALIDITY change), insert the row (new UID,
    /// `local`, `flags`, content) and drop the journal entry, in one transaction. Without
    /// UIDPLUS, insert the row with `uid = NULL` instead (and drop the journal entry): the next
    /// plan finds the copy by content and binds it with these flags as the merge base.
    Upload {
        /// The folder.
        folder: FolderPath,
        /// The local file.
        local: LocalId,
        /// Flags sent with APPEND (only those PERMANENTFLAGS allows, V0005); recorded as synced.
        flags: FlagSet,
        /// The APPEND date: the file's mtime.
        internaldate: UnixTime,
        /// Size with CRLF line ends.
        size: u64,
        /// Message-ID if known.
        message_id: Option<String>,
        /// Hash if known.
        hash: Option<super::types::ContentHash>,
    },
    /// Bring a paired message's flags to the merged value. Effect: `update`'s local part, then
    /// its server part. Commit: set the row's flags to `update.record`.
    SyncFlags {
        /// The folder.
        folder: FolderPath,
        /// The server message.
        uid: Uid,
        /// The local file.
        local: LocalId,
        /// The change.
        update: FlagUpdate,
    },
    /// A message moved on the server from `from` to `to` (V0057): move the local file
    /// instead of downloading again. Effect: rename the file into `to` (same base name), then
    /// `update`. Commit: delete the `from` row of `local`, delete rows in `to` whose UID is `uid`
    /// or local id is `local`, insert the `to` row (`uid`, `local`, `update.record`, content).
    MoveLocal {
        /// The folder the file is in.
        from: FolderPath,
        /// The file.
        local: LocalId,
        /// The folder the server holds the message in now.
        to: FolderPath,
        /// The message's UID in `to`.
        uid: Uid,
        /// What to record about the content.
        content: RowContent,
        /// Flags to merge.
        update: FlagUpdate,
    },
    /// A file moved between local folders (as mutt or notmuch do): move the message on the
    /// server, keeping flags and INTERNALDATE (V0057). Effect: `update.local`, then `UID MOVE
    /// uid to` (or `UID COPY` + `STORE \Deleted` + `UID EXPUNGE`), learn the new UID from
    /// COPYUID, then `update.remote` on the new UID (without UNCHANGEDSINCE: the copy is ours).
    /// Commit: delete the `from` row of `uid`, insert the `to` row (new UID, `local`,
    /// `update.record`, content). Without COPYUID, insert the `to` row with `uid = NULL`: the next
    /// plan finds the copy by content and binds it with `update.record` as the merge base.
    MoveRemote {
        /// The folder the server holds the message in.
        from: FolderPath,
        /// Its UID there.
        uid: Uid,
        /// The folder the local file is in now.
        to: FolderPath,
        /// The local file.
        local: LocalId,
        /// What to record about the content.
        content: RowContent,
        /// Flags to merge.
        update: FlagUpdate,
    },
    /// A new local file holds a message the server already has in another folder (a mail
    /// reader's "save to folder" writes a copy under a new name): copy it on the server instead
    /// of uploading it again. Effect: write a journal [`super::Intent::Append`] entry for `to`
    /// and `local` whose content is `content` (the source's size, INTERNALDATE, Message-ID and
    /// hash, which the copy keeps), `UID COPY uid` from `from` into `to` (RFC 3501 6.4.7; the
    /// source may be read-only), then, with COPYUID (RFC 4315), `UID STORE new FLAGS.SILENT
    /// (flags)` on the copy (always: the source's flags may have changed since the view).
    /// Commit: with COPYUID whose UIDVALIDITY equals `to`'s folder state, insert the `to` row
    /// (new UID, `local`, `flags`, `content`) and drop the journal entry, in one transaction.
    /// Without COPYUID nothing is recorded and the journal entry stays open: the next plan
    /// finds the copy by the entry's content and binds it with the file's flags winning, or,
    /// when nothing was copied (the source UID had gone), drops the entry and plans the file
    /// again. Cut after the COPY, the same. A refused COPY drops the entry and is a step
    /// error; the next plan tries again (or uploads, once the source is gone).
    CopyRemote {
        /// The folder holding the server message (unchanged by the copy).
        from: FolderPath,
        /// Its UID there.
        uid: Uid,
        /// The folder of the new local file.
        to: FolderPath,
        /// The local file.
        local: LocalId,
        /// What to record about the content: the source's.
        content: RowContent,
        /// The flags the copy gets (the file's, those PERMANENTFLAGS allows, V0005); recorded
        /// as synced.
        flags: FlagSet,
    },
    /// The server expunged a message the state proves was synced: delete the local file. Commit:
    /// delete the row.
    DeleteLocal {
        /// The folder.
        folder: FolderPath,
        /// The expunged UID.
        uid: Uid,
        /// The file.
        local: LocalId,
    },
    /// The local file of a synced message was deleted: `UID STORE uid +FLAGS.SILENT (\Deleted)`
    /// (with UNCHANGEDSINCE when known, V0056), then `UID EXPUNGE uid` (UIDPLUS; never a bare
    /// EXPUNGE unless the account allows it). Commit: delete the row.
    ExpungeRemote {
        /// The folder.
        folder: FolderPath,
        /// The UID.
        uid: Uid,
        /// UNCHANGEDSINCE for the STORE.
        unchanged_since: Option<ModSeq>,
    },
    /// Neither side holds the message any more: delete the row (`uid` may be `None` for a row
    /// unbound by a UIDVALIDITY change). Effect: none.
    ForgetMessage {
        /// The folder.
        folder: FolderPath,
        /// The row's UID.
        uid: Option<Uid>,
        /// The row's local id.
        local: LocalId,
    },
    /// Record that a local change is pending on a read-only folder (V0039). Commit only.
    MarkPending {
        /// The folder.
        folder: FolderPath,
        /// The change.
        key: PendingKey,
    },
    /// Forget a pending mark whose change was done or no longer exists. Commit only.
    ClearPending {
        /// The folder.
        folder: FolderPath,
        /// The change.
        key: PendingKey,
    },
    /// A journal entry that is settled (the copy was bound, will be uploaded again, or the file
    /// is gone). Commit: delete the journal entry.
    DropIntent {
        /// The entry.
        id: IntentId,
    },
    /// Effect: delete the local Maildir, which the plan has emptied; if it holds any file not
    /// named in this plan, skip (something arrived meanwhile). Commit: none.
    DeleteLocalFolder {
        /// The folder.
        folder: FolderPath,
    },
    /// Effect: `DELETE` on the server, only after STATUS shows `MESSAGES 0` (the plan has
    /// emptied it; a message that arrived meanwhile must not be lost). Commit: none.
    DeleteRemoteFolder {
        /// The folder.
        folder: FolderPath,
    },
    /// A local folder renamed as a whole (`mv`, or a mail reader's rename: the same files under
    /// a new folder name): one `RENAME from to` on the server instead of a move per message
    /// and a DELETE. Effect: `RENAME`. Commit: the folder state of `from` takes
    /// `to`'s server name and directory, keeping its rows, UIDs and UIDVALIDITY. A server that
    /// gives the renamed folder a new UIDVALIDITY (RFC 3501 6.3.5 allows it) only makes the
    /// next plan re-bind the rows by content (V0003). Cut after the effect, the next plan
    /// finds both sides holding `to` without state and binds them by content: nothing moves
    /// twice. The only operation on either folder in its plan.
    RenameRemoteFolder {
        /// The name the server and the state know.
        from: FolderPath,
        /// The name the local folder has now.
        to: FolderPath,
    },
    /// A server folder renamed as a whole (by another client, or on the server): the state's
    /// folder `from` is gone from the server and a folder `to`, new to the state and to the
    /// Maildir, holds the same messages. One rename of the Maildir directory instead of a move
    /// per message and a deletion. Effect: the local directory of `from` (with its
    /// sub-folders, as on the server, RFC 3501 6.3.5) is renamed to `to`'s directory. Commit:
    /// the folder state of `from` takes `to`'s server name and directory, keeping its rows,
    /// UIDs and UIDVALIDITY. A server that gave the renamed folder a new UIDVALIDITY only makes
    /// the next plan re-bind the rows by content (V0003): nothing is downloaded again. Cut after
    /// the effect, the next plan finds `to` locally and on the server without state and binds
    /// its files by content. The only operation on either folder in its plan.
    RenameLocalFolder {
        /// The name the local side and the state know.
        from: FolderPath,
        /// The name the server folder has now.
        to: FolderPath,
    },
    /// Commit: delete the folder state and its rows and pending marks.
    ForgetFolder {
        /// The folder.
        folder: FolderPath,
    },
    /// Commit: record the folder's UIDNEXT and HIGHESTMODSEQ. These are the values of the view
    /// the plan was made from (`None`: unknown, for a folder this plan created), always safe to
    /// record. The applier may record the server's values after its own writes instead, when
    /// every UID below that UIDNEXT and every change up to that HIGHESTMODSEQ is either in the
    /// view or came from this plan's own commands (APPENDUID, COPYUID and MODSEQ responses prove
    /// it); that spares the next run a SELECT (V0002, V0045). Always the last operation on the
    /// folder.
    SetFolderState {
        /// The folder.
        folder: FolderPath,
        /// UIDNEXT seen.
        uidnext: Option<Uid>,
        /// HIGHESTMODSEQ seen.
        highestmodseq: Option<ModSeq>,
    },
}

impl Op {
    /// The folders the operation touches (one, or two for moves); empty for [`Op::DropIntent`].
    pub fn folders(&self) -> Vec<&FolderPath> {
        match self {
            Op::MoveLocal { from, to, .. }
            | Op::MoveRemote { from, to, .. }
            | Op::CopyRemote { from, to, .. }
            | Op::RenameRemoteFolder { from, to }
            | Op::RenameLocalFolder { from, to } => vec![from, to],
            Op::DropIntent { .. } => vec![],
            Op::CreateLocalFolder { folder }
            | Op::CreateRemoteFolder { folder }
            | Op::SetUidValidity { folder, .. }
            | Op::Bind { folder, .. }
            | Op::Download { folder, .. }
            | Op::Upload { folder, .. }
            | Op::SyncFlags { folder, .. }
            | Op::DeleteLocal { folder, .. }
            | Op::ExpungeRemote { folder, .. }
            | Op::ForgetMessage { folder, .. }
            | Op::MarkPending { folder, .. }
            | Op::ClearPending { folder, .. }
            | Op::DeleteLocalFolder { folder }
            | Op::DeleteRemoteFolder { folder }
            | Op::ForgetFolder { folder }
            | Op::SetFolderState { folder, .. } => vec![folder],
        }
    }

    /// Whether the operation writes to the server.
    pub fn writes_remote(&self) -> bool {
        match self {
            Op::CreateRemoteFolder { .. }
            | Op::Upload { .. }
            | Op::MoveRemote { .. }
            | Op::CopyRemote { .. }
            | Op::ExpungeRemote { .. }
            | Op::DeleteRemoteFolder { .. }
            | Op::RenameRemoteFolder { .. } => true,
            Op::Bind { update, .. }
            | Op::SyncFlags { update, .. }
            | Op::MoveLocal { update, .. } => update.remote.is_some(),
            _ => false,
        }
    }
}

/// Which side a refusal or count is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The Maildir.
    Local,
    /// The server.
    Remote,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Local => "local",
            Side::Remote => "server",
        })
    }
}

/// Why a folder (or the whole account) was left out of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalReason {
    /// The safety valve tripped; `--force` overrides.
    SafetyValve {
        /// The side that would lose messages.
        side: Side,
        /// How many.
        deletions: usize,
        /// Out of how many.
        total: usize,
    },
    /// Every folder the state knows is missing on one side (an unmounted Maildir, an empty LIST):
    /// treated as a fault, not as a request to delete everything; `--force` overrides.
    SideLooksEmpty {
        /// The side that looks empty.
        side: Side,
    },
    /// A [`super::RemoteMessages::Changes`] view that does not fit the state (UIDVALIDITY or
    /// HIGHESTMODSEQ differ, or rows wait to be matched by content): fetch the complete view.
    NeedsCompleteView,
    /// A UID unknown to the state came without RFC822.SIZE or INTERNALDATE, so it cannot be
    /// matched by content; downloading it blindly could duplicate a message.
    MissingMetadata {
        /// The UID.
        uid: Uid,
    },
    /// A message moves between this folder and `folder`, which was refused: half a move is not
    /// applied, so both wait (rule 6 of the crate docs).
    LinkedToRefused {
        /// The refused folder this one shares a move with.
        folder: FolderPath,
    },
}

/// A folder left out of the plan, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The folder; `None` for the whole account.
    pub folder: Option<FolderPath>,
    /// Why.
    pub reason: RefusalReason,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.folder {
            Some(p) => write!(f, "folder {p}: ")?,
            None => f.write_str("account: ")?,
        }
        match &self.reason {
            RefusalReason::SafetyValve {
                side,
                deletions,
                total,
            } => write!(
                f,
                "would delete {deletions} of {total} messages on the {side} side; \
                 refused by the safety valve (use --force if this is intended)"
            ),
            RefusalReason::SideLooksEmpty { side } => write!(
                f,
                "every known folder is missing on the {side} side; refusing to treat that as \
                 deletion (use --force if this is intended)"
            ),
            RefusalReason::NeedsCompleteView => {
                f.write_str("incremental view does not fit the state; a complete fetch is needed")
            }
            RefusalReason::MissingMetadata { uid } => {
                write!(f, "UID {uid} came without RFC822.SIZE or INTERNALDATE")
            }
            RefusalReason::LinkedToRefused { folder } => write!(
                f,
                "a message moves between it and folder {folder}, which was refused; \
                 both wait"
            ),
        }
    }
}

/// Something the user should be told; the plan is still safe to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// Pull only (V0040): a folder that exists only locally is not created on the server.
    LocalOnlyFolderNotPushed {
        /// The folder.
        folder: FolderPath,
    },
    /// The server sent no UIDVALIDITY (V0037): the folder is synced read-only by content.
    NoUidValidity {
        /// The folder.
        folder: FolderPath,
    },
    /// UIDVALIDITY changed (V0003): messages are matched again by content; nothing is deleted.
    UidValidityChanged {
        /// The folder.
        folder: FolderPath,
        /// Recorded value.
        old: UidValidity,
        /// Server's value now.
        new: UidValidity,
    },
    /// The folder is read-only on the server (V0039): this many local changes wait.
    ReadOnlyPending {
        /// The folder.
        folder: FolderPath,
        /// How many changes wait.
        count: usize,
    },
    /// Keywords the server does not allow in this folder stay local only (V0005).
    KeywordsNotPermitted {
        /// The folder.
        folder: FolderPath,
        /// The keywords.
        flags: FlagSet,
    },
    /// A partial local copy with no server message to pair with: kept, never uploaded (V0070).
    UnpairedPartial {
        /// The folder.
        folder: FolderPath,
        /// The file.
        local: LocalId,
    },
    /// A local folder name cannot exist on the server: a component contains the hierarchy
    /// delimiter (V0020) or is empty. The folder stays local only.
    FolderNameNotRepresentable {
        /// The folder.
        folder: FolderPath,
        /// The server's delimiter.
        delimiter: char,
    },
    /// Local messages in a folder the server lists as `\Noselect`; they stay local only.
    LocalMessagesInNoselect {
        /// The folder.
        folder: FolderPath,
    },
    /// A local file that matches no server message was kept local-only instead of uploaded
    /// ([`crate::PlanConfig::keep_new_local`]: the first sync into a Maildir another tool made).
    KeptLocal {
        /// The folder.
        folder: FolderPath,
        /// The file.
        local: LocalId,
    },
    /// The input named the same folder, UID or file twice; only the first was used.
    DuplicateInput {
        /// The folder.
        folder: FolderPath,
        /// What was duplicated.
        what: String,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::LocalOnlyFolderNotPushed { folder } => write!(
                f,
                "{folder}: exists only locally; not created on the server (pull only)"
            ),
            Warning::NoUidValidity { folder } => write!(
                f,
                "{folder}: server sent no UIDVALIDITY; folder synced read-only by content"
            ),
            Warning::UidValidityChanged { folder, old, new } => write!(
                f,
                "{folder}: UIDVALIDITY changed from {old} to {new}; messages re-matched by \
                 content, nothing deleted"
            ),
            Warning::ReadOnlyPending { folder, count } => write!(
                f,
                "{folder}: folder is read-only on the server; {count} local change(s) kept pending"
            ),
            Warning::KeywordsNotPermitted { folder, flags } => {
                let names: Vec<String> = flags.iter().map(|f| f.to_imap()).collect();
                write!(
                    f,
                    "{folder}: server does not allow {}; kept locally only",
                    names.join(" ")
                )
            }
            Warning::UnpairedPartial { folder, local } => write!(
                f,
                "{folder}: partial copy {local} matches no server message; kept, not uploaded"
            ),
            Warning::FolderNameNotRepresentable { folder, delimiter } => write!(
                f,
                "{folder}: name cannot exist on the server (delimiter {delimiter:?}); kept local only"
            ),
            Warning::LocalMessagesInNoselect { folder } => write!(
                f,
                "{folder}: server folder cannot hold messages; local messages kept local only"
            ),
            Warning::KeptLocal { folder, local } => write!(
                f,
                "{folder}: {local} matches no server message; kept local-only, not uploaded \
                 (`sync --upload-unmatched` uploads it)"
            ),
            Warning::DuplicateInput { folder, what } => {
                write!(f, "{folder}: duplicate {what} in input ignored")
            }
        }
    }
}

/// Counts of what a plan does, for the user-facing summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Messages downloaded.
    pub downloads: usize,
    /// Messages uploaded.
    pub uploads: usize,
    /// New local files copied on the server from another folder instead of uploaded.
    pub remote_copies: usize,
    /// Pairs bound without transfer.
    pub binds: usize,
    /// Flag changes applied to local files.
    pub local_flag_changes: usize,
    /// Flag changes stored on the server.
    pub remote_flag_changes: usize,
    /// Local files moved to follow a server move.
    pub local_moves: usize,
    /// Server messages moved to follow a local move.
    pub remote_moves: usize,
    /// Local files deleted.
    pub local_deletions: usize,
    /// Server messages expunged.
    pub remote_deletions: usize,
    /// Folders created (either side).
    pub folders_created: usize,
    /// Folders deleted (either side).
    pub folders_deleted: usize,
    /// Local changes pending on read-only folders.
    pub pending: usize,
}

/// The result of planning: operations in the order they must be applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The operations.
    pub ops: Vec<Op>,
    /// Things to tell the user.
    pub warnings: Vec<Warning>,
    /// Folders left out, with reasons.
    pub refused: Vec<Refusal>,
    /// Counts.
    pub summary: Summary,
}

impl Plan {
    /// Whether there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}
