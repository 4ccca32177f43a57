//! Changes to mail outside a full sync: setting and clearing flags, moving, deleting and
//! appending messages, as the CLI's commands make them.
//!
//! # One write path
//!
//! A change is made in two halves, each of which is a half the sync already knows:
//!
//! 1. **The local half** ([`stage`]): the Maildir is changed exactly as a mail reader would
//!    change it (a file renamed for its flags, moved to another folder, unlinked, or a new
//!    file written). The state database is not touched. This alone is a complete change: the
//!    next sync sees it as any reader's change and pushes it. This is all that happens when
//!    the server cannot be reached ([`Staged::queued`]).
//! 2. **The server half** ([`Staged::push`]): the operations the planner plans for that
//!    local change ([`Op::SyncFlags`], [`Op::MoveRemote`], [`Op::ExpungeRemote`],
//!    [`Op::Upload`]) are run by the sync's own journaled [`Applier`] over [`Remote`], with the
//!    applier's context read for the named folders only ([`gather::gather_folders`]). So
//!    every server step and state record of a change is the sync's: the same journal entry
//!    before an APPEND, the same COPYUID routing of a move, the same `UID EXPUNGE` of exactly
//!    the named UIDs, the same grouped commits and the same test hook
//!    ([`crate::apply::ABORT_ENV`]).
//!
//! # Crash safety
//!
//! Nothing new to argue. A kill after the local half leaves a reader's change, which the
//! next sync pushes. A kill inside the server half is a kill inside the applier, whose module
//! docs show that each of these operations is safe to cut after its effect and before its
//! commit; the CLI's crash tests cut a command after every step and let the next sync finish.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use mailfold_store::{
    AliasRegistry, Folder, FolderName, FolderRecord, Maildir, MaildirFlags, MessageBase,
    MessageEntry, MessageRecord, NewMessage, RelPath, StateDb, StateRead,
};

use crate::account::AccountSpec;
use crate::apply::Applier;
use crate::gather;
use crate::plan::{
    FlagSet, FlagStore, FlagUpdate, FolderPath, LocalId, Op, Plan, RowContent, Uid, UnixTime,
};
use crate::remote::{header_message_id, Remote};
use crate::report::SyncReport;
use crate::SyncError;

/// A message a change names: by the UID its state row records, or, for a message never
/// uploaded, by its Maildir base name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A synced message.
    Uid(Uid),
    /// A file by its base name (synced or not).
    Local(LocalId),
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Uid(u) => write!(f, "UID {u}"),
            Message::Local(l) => write!(f, "{l}"),
        }
    }
}

/// One change to mail, by local folder names (the sync's [`FolderPath`], the root taken off).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// Adds `add` and removes `remove` on each message: the file name's letters, then
    /// `UID STORE ±FLAGS.SILENT` (seed V0056). Keywords without a letter reach only the server
    /// and the state (seed V0005).
    Flags {
        /// The folder.
        folder: FolderPath,
        /// The messages.
        messages: Vec<Message>,
        /// Flags to set.
        add: FlagSet,
        /// Flags to clear.
        remove: FlagSet,
    },
    /// Moves each message to `to`: the file, then `UID MOVE` (or COPY, `\Deleted` and
    /// `UID EXPUNGE`), the row following COPYUID to the new UID (seed V0057).
    Move {
        /// The folder the messages are in.
        from: FolderPath,
        /// The messages.
        messages: Vec<Message>,
        /// Where they go; it must exist locally.
        to: FolderPath,
    },
    /// Deletes each message: the file, then `\Deleted` and `UID EXPUNGE` of exactly these
    /// UIDs (never a bare EXPUNGE unless the account allows it).
    Delete {
        /// The folder.
        folder: FolderPath,
        /// The messages.
        messages: Vec<Message>,
    },
    /// Writes `source` into the folder as a new file with `flags`, then APPENDs it with
    /// `internaldate` (seed V0006), journaled as the sync's uploads are; APPENDUID records the
    /// new UID (seed V0048), `[TRYCREATE]` creates the folder and tries once more (V0047).
    Append {
        /// The folder; its directory is created where the state says when missing.
        folder: FolderPath,
        /// The message file to copy in.
        source: PathBuf,
        /// Its flags.
        flags: FlagSet,
        /// Its INTERNALDATE (and the file's mtime).
        internaldate: UnixTime,
    },
    /// Creates the folder: its Maildir, then `CREATE` under the account's root (seed V0022)
    /// and `SUBSCRIBE`; the state records it with the UIDVALIDITY STATUS gives. A refused
    /// CREATE removes the new, empty Maildir again, so a name the server will never accept
    /// does not linger as a change every sync retries (seed V0019).
    CreateFolder {
        /// The new folder.
        folder: FolderPath,
    },
    /// Renames a folder with its sub-folders: the Maildir directory, then `RENAME` (RFC 3501
    /// 6.3.5); the state rows take the new names and keep their messages. A refused RENAME
    /// renames the directory back. A folder never synced is renamed locally only.
    RenameFolder {
        /// The folder.
        from: FolderPath,
        /// Its new name; it must not exist yet.
        to: FolderPath,
    },
    /// Deletes a folder and the messages in it: the Maildir (when there is one), then what a
    /// sync plans for a folder deleted locally: `\Deleted` and `UID EXPUNGE` of every message
    /// the state records, `DELETE` once STATUS shows it empty (a message that arrived
    /// meanwhile keeps the server folder), and the state forgets it.
    DeleteFolder {
        /// The folder.
        folder: FolderPath,
    },
}

/// Why the local half of a change could not be made. Nothing was changed for the change that
/// failed; the changes staged before it stay made (each is complete on its own).
#[derive(Debug)]
#[non_exhaustive]
pub enum ChangeError {
    /// The folder has no directory in the mirror.
    NoFolder(FolderPath),
    /// No such message in the folder (no row with that UID, or no file).
    NoMessage {
        /// The folder.
        folder: FolderPath,
        /// The message as named.
        message: Message,
    },
    /// The Maildir or the state database failed.
    Store(mailfold_store::Error),
    /// Reading the file to append failed.
    Source(PathBuf, std::io::Error),
}

impl fmt::Display for ChangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeError::NoFolder(p) => write!(f, "no folder {p} in the local mirror"),
            ChangeError::NoMessage { folder, message } => {
                write!(f, "no message {message} in {folder}")
            }
            ChangeError::Store(e) => write!(f, "local store: {e}"),
            ChangeError::Source(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

impl std::error::Error for ChangeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ChangeError::Store(e) => Some(e),
            ChangeError::Source(_, e) => Some(e),
            _ => None,
        }
    }
}

impl From<mailfold_store::Error> for ChangeError {
    fn from(e: mailfold_store::Error) -> Self {
        ChangeError::Store(e)
    }
}

/// How far a change got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// Both halves ran, and every step of the server half went through.
    Server,
    /// Only the local half ran (the reason: `--offline`, the server not reachable); the next
    /// sync pushes it.
    Queued(String),
    /// Only the local half, by nature: no message of it is on the server yet (the next sync
    /// uploads them).
    LocalOnly,
    /// The server half ran and some step failed ([`Outcome::errors`]); the local half stays
    /// made and the next sync tries the rest again.
    Failed,
}

/// One message of a change, after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageOutcome {
    /// The file's base name.
    pub local: LocalId,
    /// Its UID before the change, when it was synced.
    pub uid: Option<Uid>,
    /// Its UID after the change as the state now records it (in the destination folder for a
    /// move; the APPENDUID for an append); `None` when not recorded (not pushed, expunged,
    /// or no COPYUID/APPENDUID: the next sync pairs it by content).
    pub now: Option<Uid>,
    /// Its size in CRLF form (the APPEND literal, RFC822.SIZE), when known.
    pub size: Option<u64>,
}

/// What one [`Change`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// How far it got.
    pub pushed: Pushed,
    /// Its messages, in the order named (the new file for an append).
    pub messages: Vec<MessageOutcome>,
    /// The failed steps of the server half, with the server's text (seed V0019).
    pub errors: Vec<String>,
    /// What the applier noted (a folder the server opened READ-ONLY keeps the change pending,
    /// seed V0039).
    pub warnings: Vec<String>,
}

/// Changes whose local half is made ([`stage`]); the server half is still to run.
#[derive(Debug)]
pub struct Staged {
    items: Vec<Item>,
}

/// One staged change.
#[derive(Debug)]
struct Item {
    /// The folders its operations touch; the first is where its messages end up.
    folders: Vec<FolderPath>,
    /// The files its operations name, by folder.
    files: Vec<(FolderPath, MessageEntry)>,
    /// The operations the planner would plan for its local half.
    ops: Vec<Op>,
    /// Its messages.
    messages: Vec<MessageOutcome>,
    /// Whether the state should be asked for the messages' UIDs after the push (a delete
    /// leaves none).
    recorded: bool,
    /// What takes the local half back when the server half is refused.
    undo: Option<Undo>,
    /// A folder created on the server that is then subscribed.
    subscribe: Option<FolderPath>,
    /// A folder whose server operations are dropped when the server no longer has it (a
    /// deletion run again after a cut: DELETE is done, the state not yet told).
    if_on_server: Option<FolderPath>,
}

/// Taking a folder change's local half back after the server refused it (seed V0019).
#[derive(Debug)]
enum Undo {
    /// Remove the new, empty Maildir.
    RemoveFolder(RelPath),
    /// Rename the directory back.
    Rename(RelPath, FolderName),
}

/// Makes the local half of every change, in order (see the module docs), and returns what
/// the server half will do. An error stops at the change that failed.
pub fn stage(
    maildir: &Maildir,
    db: &mut StateDb,
    changes: &[Change],
) -> Result<Staged, ChangeError> {
    let mut items = Vec::with_capacity(changes.len());
    for c in changes {
        items.push(match c {
            Change::Flags {
                folder,
                messages,
                add,
                remove,
            } => stage_flags(maildir, db, folder, messages, add, remove)?,
            Change::Move { from, messages, to } => stage_move(maildir, db, from, messages, to)?,
            Change::Delete { folder, messages } => stage_delete(maildir, db, folder, messages)?,
            Change::Append {
                folder,
                source,
                flags,
                internaldate,
            } => stage_append(maildir, db, folder, source, flags, *internaldate)?,
            Change::CreateFolder { folder } => stage_create(maildir, db, folder)?,
            Change::RenameFolder { from, to } => stage_rename(maildir, db, from, to)?,
            Change::DeleteFolder { folder } => stage_delete_folder(maildir, db, folder)?,
        });
    }
    Ok(Staged { items })
}

impl Staged {
    /// The outcomes when the server half does not run now (`why`: `--offline`, the server
    /// not reachable): every change stays a local change for the next sync.
    pub fn queued(self, why: &str) -> Vec<Outcome> {
        self.outcomes_if_queued(why)
    }

    /// What [`Staged::queued`] would return, leaving the changes staged: the outcomes to
    /// report should the server half then end in an error before it returns any.
    pub fn outcomes_if_queued(&self, why: &str) -> Vec<Outcome> {
        self.items
            .iter()
            .map(|i| Outcome {
                pushed: if i.ops.is_empty() {
                    Pushed::LocalOnly
                } else {
                    Pushed::Queued(why.to_owned())
                },
                messages: i.messages.clone(),
                errors: Vec::new(),
                warnings: Vec::new(),
            })
            .collect()
    }

    /// Whether any change has a server half.
    pub fn needs_server(&self) -> bool {
        self.items.iter().any(|i| !i.ops.is_empty())
    }

    /// Runs the server half of every change with the sync's [`Applier`], one change after
    /// another. `Err` only when the run cannot go on (the connection broke, the state
    /// database failed); a refused step is in its [`Outcome::errors`].
    pub fn push(
        self,
        remote: &mut dyn Remote,
        account: &AccountSpec,
        maildir: &Maildir,
        db: &mut StateDb,
    ) -> Result<Vec<Outcome>, SyncError> {
        let folders: Vec<FolderPath> = self
            .items
            .iter()
            .flat_map(|i| i.folders.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut g = gather::gather_folders(remote, account, maildir, db, &folders)?;
        let mut out = Vec::with_capacity(self.items.len());
        for item in self.items {
            out.push(push_one(remote, account, maildir, db, &mut g, item)?);
        }
        Ok(out)
    }
}

/// The server half of one staged change (see [`Staged::push`]).
fn push_one(
    remote: &mut dyn Remote,
    account: &AccountSpec,
    maildir: &Maildir,
    db: &mut StateDb,
    g: &mut gather::Gathered,
    item: Item,
) -> Result<Outcome, SyncError> {
    if item.ops.is_empty() {
        return Ok(Outcome {
            pushed: Pushed::LocalOnly,
            messages: item.messages,
            errors: Vec::new(),
            warnings: Vec::new(),
        });
    }
    for (folder, entry) in item.files {
        g.folders
            .entry(folder)
            .or_default()
            .files
            .insert(entry.base.as_str().to_owned(), entry);
    }
    let mut ops = item.ops;
    if let Some(f) = &item.if_on_server {
        if !on_server(remote, g, f)? {
            ops.retain(|o| !o.writes_remote());
        }
    }
    let plan = Plan {
        ops,
        warnings: Vec::new(),
        refused: Vec::new(),
        summary: Default::default(),
    };
    let mut report = SyncReport::default();
    Applier::new(remote, account, maildir, db, g, &mut report).apply(&plan)?;
    // As text: the outcome is the CLI's to print.
    let mut errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    let mut warnings = report.warnings;
    for f in report.folders {
        errors.extend(f.errors.iter().map(ToString::to_string));
        warnings.extend(f.warnings);
    }
    if errors.is_empty() {
        if let Some(f) = &item.subscribe {
            subscribe(remote, g, f, &mut warnings)?;
        }
    } else if let Some(undo) = item.undo {
        take_back(maildir, db, undo, &mut warnings);
        // The applier's context named directories that have moved back.
        for f in &item.folders {
            g.folders.remove(f);
        }
    }
    let mut messages = item.messages;
    let home = item.folders.first().and_then(|f| g.folders.get(f));
    if let (true, Some(id)) = (item.recorded, home.and_then(|c| c.state_id)) {
        for m in &mut messages {
            let base = gather::base_of(&m.local).map_err(SyncError::Config)?;
            m.now = db.message_by_base(id, &base)?.map(|r| r.uid);
        }
    }
    Ok(Outcome {
        pushed: if errors.is_empty() {
            Pushed::Server
        } else {
            Pushed::Failed
        },
        messages,
        errors,
        warnings,
    })
}

/// A folder of the mirror as the local half sees it: its directory and state row.
struct View {
    folder: Folder,
    row: Option<FolderRecord>,
}

fn row_of(
    maildir: &Maildir,
    db: &StateDb,
    path: &FolderPath,
) -> Result<Option<FolderRecord>, ChangeError> {
    let name = FolderName::new(path.0.clone()).map_err(|_| ChangeError::NoFolder(path.clone()))?;
    for r in db.folders()? {
        if maildir
            .name_of(&r.local_path, db as &dyn AliasRegistry)
            .ok()
            .as_ref()
            == Some(&name)
        {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

fn view(maildir: &Maildir, db: &StateDb, path: &FolderPath) -> Result<View, ChangeError> {
    let name = FolderName::new(path.0.clone()).map_err(|_| ChangeError::NoFolder(path.clone()))?;
    let rel = maildir
        .locate_folder(&name, db as &dyn AliasRegistry)?
        .ok_or_else(|| ChangeError::NoFolder(path.clone()))?;
    Ok(View {
        folder: maildir.folder(&rel)?,
        row: row_of(maildir, db, path)?,
    })
}

/// A named message: its file and, when synced, its state row.
fn resolve(
    db: &StateDb,
    path: &FolderPath,
    v: &View,
    m: &Message,
) -> Result<(MessageEntry, Option<MessageRecord>), ChangeError> {
    let missing = || ChangeError::NoMessage {
        folder: path.clone(),
        message: m.clone(),
    };
    let (base, row) = match m {
        Message::Uid(u) => {
            let id = v.row.as_ref().ok_or_else(missing)?.id;
            let r = db.message(id, *u)?.ok_or_else(missing)?;
            (r.base.clone(), Some(r))
        }
        Message::Local(l) => {
            let base = MessageBase::new(&l.0).map_err(|_| missing())?;
            let row = match &v.row {
                Some(f) => db.message_by_base(f.id, &base)?,
                None => None,
            };
            (base, row)
        }
    };
    let entry = v.folder.find(&base)?.ok_or_else(missing)?;
    Ok((entry, row))
}

/// The flags a state row records (system flags and keywords).
fn row_flags(r: &MessageRecord) -> FlagSet {
    gather::flagset(&r.flags).union(&gather::flagset(&r.keywords))
}

/// What the row records about the content, for an operation that carries it to a new row.
fn row_content(r: &MessageRecord) -> RowContent {
    RowContent {
        size: r.size.unwrap_or(0),
        internaldate: UnixTime(r.internaldate.map_or(0, |d| d.unix)),
        message_id: r.message_id.clone(),
        hash: r.hash,
        partial: r.partial,
    }
}

fn wire_names(f: &FlagSet) -> Vec<String> {
    f.iter().map(|f| f.to_imap()).collect()
}

/// The file's letters with `add` set and `remove` cleared; flags without a letter change
/// nothing here, and letters without an IMAP meaning are kept.
fn letters_after(cur: &MaildirFlags, add: &FlagSet, remove: &FlagSet) -> MaildirFlags {
    let now = FlagSet::from_imap(cur.to_imap())
        .union(add)
        .difference(remove);
    let names = wire_names(&now);
    MaildirFlags::from_imap(names.iter().map(String::as_str), cur)
}

fn outcome_of(entry: &MessageEntry, row: Option<&MessageRecord>) -> MessageOutcome {
    MessageOutcome {
        local: LocalId(entry.base.as_str().to_owned()),
        uid: row.map(|r| r.uid),
        now: row.map(|r| r.uid),
        size: row.and_then(|r| r.size),
    }
}

fn stage_flags(
    maildir: &Maildir,
    db: &StateDb,
    folder: &FolderPath,
    messages: &[Message],
    add: &FlagSet,
    remove: &FlagSet,
) -> Result<Item, ChangeError> {
    let v = view(maildir, db, folder)?;
    let found = messages
        .iter()
        .map(|m| resolve(db, folder, &v, m))
        .collect::<Result<Vec<_>, _>>()?;
    let mut item = Item {
        folders: vec![folder.clone()],
        files: Vec::new(),
        ops: Vec::new(),
        messages: Vec::new(),
        recorded: true,
        undo: None,
        subscribe: None,
        if_on_server: None,
    };
    for (entry, row) in found {
        let want = letters_after(&entry.flags, add, remove);
        let entry = if want != entry.flags {
            v.folder.set_flags(&entry, &want)?
        } else {
            entry
        };
        item.messages.push(outcome_of(&entry, row.as_ref()));
        if let Some(r) = &row {
            // What the planner plans for a flag changed in the file: the server part only,
            // recording the row's flags with exactly these changes (other differences merge
            // on the next sync, against the base they still have).
            item.ops.push(Op::SyncFlags {
                folder: folder.clone(),
                uid: r.uid,
                local: LocalId(entry.base.as_str().to_owned()),
                update: FlagUpdate {
                    local: None,
                    remote: Some(FlagStore {
                        add: add.clone(),
                        remove: remove.clone(),
                        unchanged_since: None,
                    }),
                    record: row_flags(r).union(add).difference(remove),
                },
            });
        }
        item.files.push((folder.clone(), entry));
    }
    Ok(item)
}

fn stage_move(
    maildir: &Maildir,
    db: &StateDb,
    from: &FolderPath,
    messages: &[Message],
    to: &FolderPath,
) -> Result<Item, ChangeError> {
    let src = view(maildir, db, from)?;
    let dst = view(maildir, db, to)?;
    let found = messages
        .iter()
        .map(|m| resolve(db, from, &src, m))
        .collect::<Result<Vec<_>, _>>()?;
    let mut item = Item {
        folders: vec![to.clone(), from.clone()],
        files: Vec::new(),
        ops: Vec::new(),
        messages: Vec::new(),
        recorded: true,
        undo: None,
        subscribe: None,
        if_on_server: None,
    };
    for (entry, row) in found {
        let moved = src.folder.move_to(&entry, &dst.folder)?;
        let mut out = outcome_of(&moved, row.as_ref());
        out.now = None;
        item.messages.push(out);
        if let Some(r) = &row {
            // A file that left one folder for another: the planner's MoveRemote, the row's
            // flags carried over as they are.
            item.ops.push(Op::MoveRemote {
                from: from.clone(),
                uid: r.uid,
                to: to.clone(),
                local: LocalId(moved.base.as_str().to_owned()),
                content: row_content(r),
                update: FlagUpdate {
                    local: None,
                    remote: None,
                    record: row_flags(r),
                },
            });
        }
        item.files.push((to.clone(), moved));
    }
    Ok(item)
}

fn stage_delete(
    maildir: &Maildir,
    db: &StateDb,
    folder: &FolderPath,
    messages: &[Message],
) -> Result<Item, ChangeError> {
    let v = view(maildir, db, folder)?;
    let found = messages
        .iter()
        .map(|m| resolve(db, folder, &v, m))
        .collect::<Result<Vec<_>, _>>()?;
    let mut item = Item {
        folders: vec![folder.clone()],
        files: Vec::new(),
        ops: Vec::new(),
        messages: Vec::new(),
        recorded: false,
        undo: None,
        subscribe: None,
        if_on_server: None,
    };
    for (entry, row) in found {
        v.folder.delete(&entry)?;
        let mut out = outcome_of(&entry, row.as_ref());
        out.now = None;
        item.messages.push(out);
        if let Some(r) = &row {
            // A synced file gone: the planner's ExpungeRemote.
            item.ops.push(Op::ExpungeRemote {
                folder: folder.clone(),
                uid: r.uid,
                unchanged_since: None,
            });
        }
    }
    Ok(item)
}

/// How much of a new file is read for its Message-ID.
const HEAD_LIMIT: u64 = 64 * 1024;

fn stage_append(
    maildir: &Maildir,
    db: &StateDb,
    folder: &FolderPath,
    source: &Path,
    flags: &FlagSet,
    internaldate: UnixTime,
) -> Result<Item, ChangeError> {
    let dir = match view(maildir, db, folder) {
        Ok(v) => v.folder,
        // Synced but its directory is gone: made again where the state says.
        Err(ChangeError::NoFolder(_)) => match row_of(maildir, db, folder)? {
            Some(r) => maildir.create_folder_at(&r.local_path)?,
            None => return Err(ChangeError::NoFolder(folder.clone())),
        },
        Err(e) => return Err(e),
    };
    let names = wire_names(flags);
    let letters = MaildirFlags::from_imap(names.iter().map(String::as_str), &MaildirFlags::empty());
    let mut input =
        std::fs::File::open(source).map_err(|e| ChangeError::Source(source.to_owned(), e))?;
    let mut writer = dir.create_message(NewMessage {
        flags: letters,
        internaldate: Some(internaldate.0),
    })?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = input
            .read(&mut buf)
            .map_err(|e| ChangeError::Source(source.to_owned(), e))?;
        if n == 0 {
            break;
        }
        writer.write_chunk(&buf[..n])?;
    }
    let written = writer.commit()?;
    let mut head = Vec::new();
    dir.open_message(&written.entry)?
        .take(HEAD_LIMIT)
        .read_to_end(&mut head)
        .map_err(|e| ChangeError::Source(written.entry.path.clone(), e))?;
    let local = LocalId(written.entry.base.as_str().to_owned());
    Ok(Item {
        folders: vec![folder.clone()],
        ops: vec![Op::Upload {
            folder: folder.clone(),
            local: local.clone(),
            flags: flags.clone(),
            internaldate,
            size: written.crlf_size,
            message_id: header_message_id(&head),
            hash: Some(written.hash),
        }],
        files: vec![(folder.clone(), written.entry)],
        messages: vec![MessageOutcome {
            local,
            uid: None,
            now: None,
            size: Some(written.crlf_size),
        }],
        recorded: true,
        undo: None,
        subscribe: None,
        if_on_server: None,
    })
}

/// SUBSCRIBE of a folder just created (RFC 3501 6.3.6); a refusal is only a warning, as the
/// folder exists either way.
fn subscribe(
    remote: &mut dyn Remote,
    g: &mut gather::Gathered,
    folder: &FolderPath,
    warnings: &mut Vec<String>,
) -> Result<(), SyncError> {
    let delim = g.delimiter;
    let wire = match g.folders.get(folder).and_then(|c| c.wire.clone()) {
        Some(w) => w,
        None => match g.wire_of(folder, delim) {
            Ok(w) => w,
            Err(e) => {
                warnings.push(format!("not subscribed to {folder}: {e}"));
                return Ok(());
            }
        },
    };
    match remote.subscribe(&wire) {
        Ok(()) => Ok(()),
        Err(e) if e.is_fatal() => Err(e.into()),
        Err(e) => {
            warnings.push(format!("not subscribed to {folder}: {e}"));
            Ok(())
        }
    }
}

/// Takes a refused folder change's local half back; what cannot be taken back is a warning
/// (the next sync then carries the local change over as a reader's).
fn take_back(maildir: &Maildir, db: &mut StateDb, undo: Undo, warnings: &mut Vec<String>) {
    let r = match &undo {
        Undo::RemoveFolder(rel) => maildir.delete_folder(rel, false),
        Undo::Rename(rel, back) => maildir.rename_folder(rel, back, db).map(|_| ()),
    };
    if let Err(e) = r {
        warnings.push(format!("could not take the local change back: {e}"));
    }
}

fn stage_create(
    maildir: &Maildir,
    db: &mut StateDb,
    folder: &FolderPath,
) -> Result<Item, ChangeError> {
    let name =
        FolderName::new(folder.0.clone()).map_err(|_| ChangeError::NoFolder(folder.clone()))?;
    let made = maildir.ensure_folder(&name, db)?;
    Ok(Item {
        folders: vec![folder.clone()],
        files: Vec::new(),
        ops: vec![Op::CreateRemoteFolder {
            folder: folder.clone(),
        }],
        messages: Vec::new(),
        recorded: false,
        undo: Some(Undo::RemoveFolder(made.rel().clone())),
        subscribe: Some(folder.clone()),
        if_on_server: None,
    })
}

fn stage_rename(
    maildir: &Maildir,
    db: &mut StateDb,
    from: &FolderPath,
    to: &FolderPath,
) -> Result<Item, ChangeError> {
    let v = view(maildir, db, from)?;
    let old = FolderName::new(from.0.clone()).map_err(|_| ChangeError::NoFolder(from.clone()))?;
    let new = FolderName::new(to.0.clone()).map_err(|_| ChangeError::NoFolder(to.clone()))?;
    let moved = maildir.rename_folder(v.folder.rel(), &new, db)?;
    // A folder the state does not know was never on the server: the next sync creates it.
    let ops = match v.row {
        Some(_) => vec![Op::RenameRemoteFolder {
            from: from.clone(),
            to: to.clone(),
        }],
        None => Vec::new(),
    };
    Ok(Item {
        folders: vec![to.clone(), from.clone()],
        files: Vec::new(),
        ops,
        messages: Vec::new(),
        recorded: false,
        undo: Some(Undo::Rename(moved.rel().clone(), old)),
        subscribe: None,
        if_on_server: None,
    })
}

fn stage_delete_folder(
    maildir: &Maildir,
    db: &mut StateDb,
    folder: &FolderPath,
) -> Result<Item, ChangeError> {
    let name =
        FolderName::new(folder.0.clone()).map_err(|_| ChangeError::NoFolder(folder.clone()))?;
    let rel = maildir.locate_folder(&name, db as &dyn AliasRegistry)?;
    let row = row_of(maildir, db, folder)?;
    if rel.is_none() && row.is_none() {
        return Err(ChangeError::NoFolder(folder.clone()));
    }
    if let Some(rel) = &rel {
        maildir.delete_folder(rel, true)?;
    }
    let mut ops = Vec::new();
    if let Some(r) = &row {
        // What the planner plans for a synced folder deleted locally.
        for m in db.messages(r.id)? {
            ops.push(Op::ExpungeRemote {
                folder: folder.clone(),
                uid: m.uid,
                unchanged_since: None,
            });
        }
        ops.push(Op::DeleteRemoteFolder {
            folder: folder.clone(),
        });
        ops.push(Op::ForgetFolder {
            folder: folder.clone(),
        });
    }
    Ok(Item {
        folders: vec![folder.clone()],
        files: Vec::new(),
        ops,
        messages: Vec::new(),
        recorded: false,
        undo: None,
        subscribe: None,
        if_on_server: Some(folder.clone()),
    })
}

/// Whether the server still has `folder` (STATUS answers; a NO says it does not).
fn on_server(
    remote: &mut dyn Remote,
    g: &gather::Gathered,
    folder: &FolderPath,
) -> Result<bool, SyncError> {
    let wire = match g.folders.get(folder).and_then(|c| c.wire.clone()) {
        Some(w) => w,
        None => match g.wire_of(folder, g.delimiter) {
            Ok(w) => w,
            // A name that cannot be sent was never created on the server.
            Err(_) => return Ok(false),
        },
    };
    match remote.status(&wire) {
        Ok(_) => Ok(true),
        Err(e) if e.is_fatal() => Err(e.into()),
        Err(_) => Ok(false),
    }
}

/// Reads one message's whole body from the server and changes nothing: the folder EXAMINEd
/// (seed V0040), then `UID FETCH uid BODY.PEEK[]`, which never sets `\Seen` (seed V0054), its
/// bytes handed to `sink` in wire form (CRLF) as they arrive. For a message the mirror holds
/// only the header of (seed V0010), shown on demand: the partial copy stays as it is, since a
/// full body replaces it only in a sync (V0070). Returns whether the server still had the
/// message.
pub fn read_body(
    remote: &mut dyn Remote,
    account: &AccountSpec,
    maildir: &Maildir,
    db: &StateDb,
    folder: &FolderPath,
    uid: Uid,
    sink: &mut (dyn FnMut(&[u8]) + Send),
) -> Result<bool, SyncError> {
    let g = gather::gather_folders(remote, account, maildir, db, std::slice::from_ref(folder))?;
    let wire = match g.folders.get(folder).and_then(|c| c.wire.clone()) {
        Some(w) => w,
        None => g.wire_of(folder, g.delimiter).map_err(SyncError::Config)?,
    };
    remote.select(&wire, true)?;
    let (mut seen, mut aborted) = (false, false);
    remote.fetch_bodies(&[uid], false, &mut |ev| match ev {
        crate::remote::BodyEvent::Start { .. } => seen = true,
        crate::remote::BodyEvent::Data { bytes, .. } => sink(bytes),
        crate::remote::BodyEvent::Abort { .. } => aborted = true,
        crate::remote::BodyEvent::End { .. } => {}
    })?;
    if aborted {
        return Err(SyncError::Remote(crate::remote::RemoteError::Bad(format!(
            "the server's answer for UID {uid} could not be told apart from another message's"
        ))));
    }
    Ok(seen)
}
