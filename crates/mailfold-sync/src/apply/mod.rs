//! Apply: execute a [`Plan`] step by step against the server, the Maildir and the state
//! database.
//!
//! The applier is one [`Applier`], whose steps live in one submodule per kind of change:
//! `dispatch` (the step loop, the commit groups, the test hook and the steps that only
//! record), `folders` (a folder's directory, server name and state row; creating, renaming
//! and deleting folders; SELECT and read-only folders), `flags` (flag changes, alone or
//! batched), `deletions`, `download` (batches of downloads), `upload` (APPEND and server
//! copies) and `moves`. The argument below is the one they keep between them.
//!
//! # Order within a step
//!
//! Each operation performs its effect first, then records it in the state database (SQLite
//! WAL). Where an operation touches both sides the local side goes first, then the server,
//! then the record (see [`crate::plan::ops`]). A failed effect is never recorded; the failure
//! is in the report and the folder's remaining steps still run where they do not depend on it
//! (a refused CREATE skips the folder).
//!
//! # Grouped commits
//!
//! One commit per message would be one fsync per message (a re-sync of 1,001 flag changes once
//! made 1,058 commits). So the records of consecutive steps are kept in memory, in step order, and
//! committed together in one transaction when the group ends: before any step that does not
//! join groups, when the group reaches `MAX_GROUP` (4,096) changes, and at the end of the run (also
//! when the run ends in an error: the effects are done, so they are recorded if the database
//! still can be written). A group is not cut at folder boundaries: the planner emits every
//! folder's message steps first and every folder's UIDNEXT/HIGHESTMODSEQ last, so cutting
//! there would still cost two commits per changed folder, and nothing in the argument below
//! depends on the folder.
//!
//! Steps that join a group: bind, flag sync (alone or batched, V0060), local and remote
//! deletion, forgetting a row, marking and clearing a pending change (V0039), the folder's
//! UIDNEXT/HIGHESTMODSEQ, and the rows of a batch of downloads (which starts a new group).
//! Every one of them is safe to cut after its effect and before its record (next section), so
//! a group cut before its commit is several such cuts at once: each effect is recognised by
//! the next plan on its own, none depends on another's record. The folder's UIDNEXT and
//! HIGHESTMODSEQ are in the same transaction as its rows or a later one, never an earlier one.
//!
//! Steps that do not join a group commit it first, then commit alone as before: uploads and
//! server copies (their journal entry must be durable before APPEND or COPY leaves, since the
//! outcome can be unknown), moves, folder creation, renaming and deletion, UIDVALIDITY, journal clean-up.
//! The applier's reads of the database outside a group's transaction happen in those steps,
//! after the commit, so they see every earlier step's record; while a group is open it reads
//! only a folder's id, which no grouped change alters (a grouped change that needs to look at
//! rows, such as clearing a pending change, looks inside the group's transaction).
//!
//! # A folder with a failed step is not recorded as synced
//!
//! The folder's UIDNEXT and HIGHESTMODSEQ ([`Op::SetFolderState`]) claim that everything the
//! server held up to them is in the Maildir and the state; the next run trusts that claim to
//! skip the folder (STATUS, V0045) or to read only what changed since (RFC 7162). So when any
//! step of a folder failed in this run (a download refused by a full disk, a refused STORE or
//! APPEND, a move), its record is left as it was: the next run looks again from the older
//! values and retries what failed, instead of skipping it forever.
//!
//! # Crash safety
//!
//! What is durable before each network step, and why a kill anywhere converges:
//!
//! * **Download:** the body is streamed into a file without a name (`O_TMPFILE`) or, where
//!   the file system has no such files, into `tmp/`, its mtime set to INTERNALDATE (V0006),
//!   its size checked against RFC822.SIZE (V0007); once the batch's bodies are all written,
//!   each file is fsynced, then moved into `cur/` (or `new/`) (writing them all first lets a
//!   journaled file system carry them in few commits). With fsync on, the directory is not
//!   fsynced per message: each directory the batch moved files into is fsynced once, and only
//!   then are the batch's rows handed to the commit group, so no row can be committed before
//!   the entry it records is durable, exactly as with a fsync per message. A directory whose
//!   fsync fails records none of its files (they stay, unrecorded, and the folder counts as
//!   failed); a run that ends inside the batch (a broken connection, the test hook) records
//!   none of the batch. A full body replacing a partial copy (V0070) syncs its own
//!   directories. Killed before the link: nothing remains but, without unnamed files, an
//!   invisible `tmp/` file; the next run
//!   downloads again. Killed after the link but before the commit: the next gather reads the
//!   unknown file (Message-ID, size, mtime, hash) and the planner binds it to the server
//!   message by content: no second copy.
//! * **Upload:** an APPEND intent (folder, file, size, date, Message-ID, hash) is committed
//!   *before* APPEND is sent, and removed in the transaction that records the new row from
//!   APPENDUID (V0048). Killed between the two: the intent is still open, the server copy is an
//!   unknown UID whose size and Message-ID match it, so the planner binds it and drops the
//!   intent instead of appending again. Without UIDPLUS the copy is looked up at once with
//!   `UID SEARCH HEADER Message-ID` and the size; failing that, the next run binds it.
//! * **Server copy** (a reader's saved copy, [`Op::CopyRemote`]): an APPEND intent for the
//!   new file, with the source's size, INTERNALDATE and Message-ID (the copy keeps them), is
//!   committed before `UID COPY` is sent (from the source EXAMINEd, or as already selected, its
//!   UIDVALIDITY checked against the state's); with COPYUID, `UID STORE new FLAGS.SILENT`
//!   gives the copy the file's flags and the row is recorded in the transaction that removes
//!   the intent. Killed in between, without COPYUID, or with the STORE refused, the intent
//!   stays open: the planner binds the copy it finds by that content to the file, the file's
//!   flags winning, and drops the intent; if nothing was copied (the UID had gone) it plans the
//!   file again.
//! * **Flags:** the file is renamed, then `UID STORE … .SILENT` is sent, then the synced flags
//!   are committed. A kill in between leaves both sides agreeing on the new value against an
//!   old base, which the three-way merge keeps (a change made on both sides to the same
//!   value is no conflict). In a batch of flag changes (V0060) the directories renamed in are
//!   fsynced once, after every rename and before any of the batch's rows can be committed,
//!   as a per-rename fsync would have made them durable by then; if that fsync fails, none of
//!   the batch's local changes is recorded.
//! * **Deletions:** a local delete is a file unlink then a row delete; a remote one is
//!   `STORE \Deleted` + `UID EXPUNGE` then a row delete. Killed in between, the next run sees
//!   the message gone on both sides and forgets the row. A bare EXPUNGE is never sent unless
//!   the account allows it, since it would also remove other clients' `\Deleted` messages.
//! * **UIDVALIDITY:** recorded before anything is bound under it, in the transaction that
//!   unbinds the rows of the old value (they keep flags, base, hash, Message-ID); every row is
//!   then re-bound by content (V0003): nothing is deleted, nothing is downloaded twice, and
//!   local changes made before the reset are still changes.
//!
//! Every operation is therefore safe to cut after its effect and before its commit, and the
//! planner recognises the result; the kill-after-every-step test checks this end to end.
//!
//! # Test hook
//!
//! `MAILFOLD_TEST_ABORT_AFTER_STEP=N` (read once per run; for tests only) makes the process
//! exit with status [`ABORT_EXIT_CODE`] right after the N-th operation's effect — and the
//! commit of its group so far (as if the group ended with it), so a chain of runs each cut
//! after its first step still makes progress; in a batch of downloads, before the batch's
//! commit; in a batch of flag changes (V0060), after the batch's commit — without running
//! any destructor, as a `kill -9` would. The cut of a group between its effects and its
//! commit is what a real kill does; the SIGKILL loop of the CLI's reliability tests covers it.
//!
//! [`Plan`]: crate::plan::Plan
//! [`Op::SetFolderState`]: crate::plan::Op::SetFolderState
//! [`Op::CopyRemote`]: crate::plan::Op::CopyRemote

use std::collections::HashMap;

use mailfold_store::{
    Folder, InternalDate, Maildir, MaildirFlags, MessageBase, MessageRecord, NewPending,
    PendingKind, RelPath, StateDb, Txn,
};

use crate::account::AccountSpec;
use crate::gather::{FolderCtx, Gathered};
use crate::plan::{Flag, FlagSet, FolderPath, PendingKey, RowContent, Uid};
use crate::progress::{NoProgress, Progress};
use crate::remote::{Mailbox, Remote};
use crate::report::SyncReport;
use crate::step_error::StepError;

/// The value of a step's `Ok`, or else the end of the step as failed with the error's text: the
/// outer result stays `Ok` (the run goes on), the inner one carries the failure
/// ([`StepResult`]).
macro_rules! step_try {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        }
    };
}

mod deletions;
mod dispatch;
mod download;
mod flags;
mod folders;
mod moves;
mod upload;

/// Exit status of a run stopped by the test hook.
pub const ABORT_EXIT_CODE: i32 = 75;

/// The environment variable of the test hook (see the module docs).
pub const ABORT_ENV: &str = "MAILFOLD_TEST_ABORT_AFTER_STEP";

/// Set (to anything) beside [`ABORT_ENV`], the run keeps its extra connections instead of
/// applying everything on the main one: the hook's step N is then whichever connection's step
/// comes N-th, so the cut falls at a step boundary that can differ from run to run. Crash
/// tests of the work shared between connections use it.
pub const ABORT_IN_PARALLEL_ENV: &str = "MAILFOLD_TEST_ABORT_IN_PARALLEL";

/// Steps counted for [`ABORT_ENV`] by every applier of the process: a run applies several
/// plans (one per fresh folder, per window, per folder changed by flags alone), and the
/// hook's step N is the run's N-th step, whichever applier takes it.
static HOOK_STEPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Counts one step for the test hook; `true` when it is the step the hook stops after.
fn hook_reached(abort_after: Option<u64>) -> bool {
    abort_after
        .is_some_and(|n| HOOK_STEPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1 == n)
}

/// A step that failed without ending the run.
type StepResult = Result<(), StepError>;

/// A state change whose effect is done, waiting for the group's commit (see the module docs,
/// "Order within a step"). It owns its data so that it can outlive the step that made it.
type Deferred = Box<dyn FnOnce(&Txn<'_>) -> mailfold_store::Result<()>>;

/// Most deferred changes in one transaction: bounds the memory of a group and the work a
/// crash can leave uncommitted (every step of it is recognised by the next plan anyway).
const MAX_GROUP: usize = 4096;

/// Executes plans for one run.
pub struct Applier<'a> {
    remote: &'a mut dyn Remote,
    account: &'a AccountSpec,
    maildir: &'a Maildir,
    db: &'a mut StateDb,
    g: &'a mut Gathered,
    report: &'a mut SyncReport,
    selected: Option<(Mailbox, bool)>,
    failed: std::collections::BTreeSet<FolderPath>,
    /// Folders with a failed step in this run: their UIDNEXT/HIGHESTMODSEQ are not recorded.
    incomplete: std::collections::BTreeSet<FolderPath>,
    abort_after: Option<u64>,
    steps: u64,
    /// State changes of the current group, in step order, not yet committed.
    deferred: Vec<Deferred>,
    /// Folders a SELECT of this run found READ-ONLY (V0039): no server write is attempted.
    read_only: std::collections::BTreeSet<FolderPath>,
    progress: &'a dyn Progress,
    /// Each local folder opened so far, by directory, with its directory handles: one open
    /// per folder and run instead of one per message. Emptied by every local folder rename
    /// or deletion, after which a directory path may name another folder.
    opened: HashMap<RelPath, Folder>,
}

impl std::fmt::Debug for Applier<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier")
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

/// The Maildir base of a planner id, as a step takes it.
fn base_of(id: &crate::plan::LocalId) -> Result<mailfold_store::MessageBase, StepError> {
    crate::gather::base_of(id).map_err(StepError::Unusable)
}

fn name(p: &FolderPath) -> String {
    p.to_string()
}

/// Splits a flag set into the store's system flags and keywords.
fn split_flags(f: &FlagSet) -> (Vec<String>, Vec<String>) {
    let mut flags = Vec::new();
    let mut keywords = Vec::new();
    for x in f.iter() {
        match x {
            Flag::Keyword(k) => keywords.push(k.clone()),
            other => flags.push(other.to_imap()),
        }
    }
    (flags, keywords)
}

fn wire_list(f: &FlagSet) -> Vec<String> {
    f.iter().map(Flag::to_imap).collect()
}

/// The flags of a set, in its order, as [`Remote`] takes them.
fn flag_list(f: &FlagSet) -> Vec<Flag> {
    f.iter().cloned().collect()
}

fn letters(f: &FlagSet, keep: &MaildirFlags) -> MaildirFlags {
    let names = wire_list(f);
    MaildirFlags::from_imap(names.iter().map(String::as_str), keep)
}

fn record(uid: Uid, base: &MessageBase, flags: &FlagSet, c: &RowContent) -> MessageRecord {
    let (flags, keywords) = split_flags(flags);
    MessageRecord {
        uid,
        base: base.clone(),
        flags,
        keywords,
        size: Some(c.size),
        internaldate: Some(InternalDate {
            unix: c.internaldate.0,
            offset_minutes: 0,
        }),
        hash: c.hash,
        message_id: c.message_id.clone(),
        partial: c.partial,
    }
}

/// Records `rec` as the only row of `folder` with its base or its UID
/// ([`Txn::replace_messages`]).
fn replace_row(
    tx: &Txn<'_>,
    folder: mailfold_store::FolderId,
    rec: &MessageRecord,
) -> mailfold_store::Result<()> {
    // A row unbound by a UIDVALIDITY change (V0003) is re-bound here.
    tx.replace_messages(folder, std::slice::from_ref(rec))
}

impl<'a> Applier<'a> {
    /// Prepares to apply plans; reads the test hook's variable once.
    pub fn new(
        remote: &'a mut dyn Remote,
        account: &'a AccountSpec,
        maildir: &'a Maildir,
        db: &'a mut StateDb,
        g: &'a mut Gathered,
        report: &'a mut SyncReport,
    ) -> Applier<'a> {
        let abort_after = std::env::var(ABORT_ENV)
            .ok()
            .and_then(|v| v.trim().parse().ok());
        Applier {
            remote,
            account,
            maildir,
            db,
            g,
            report,
            selected: None,
            failed: Default::default(),
            incomplete: Default::default(),
            abort_after,
            steps: 0,
            deferred: Vec::new(),
            read_only: Default::default(),
            progress: &NoProgress,
            opened: HashMap::new(),
        }
    }

    /// Reports the run's progress to `p` (see [`crate::progress`]); the default ignores it.
    pub fn with_progress(mut self, p: &'a dyn Progress) -> Self {
        self.progress = p;
        self
    }

    /// Operations applied so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    fn ctx(&mut self, folder: &FolderPath) -> &mut FolderCtx {
        self.g.folders.entry(folder.clone()).or_default()
    }
}

fn pending_of(folder: mailfold_store::FolderId, key: &PendingKey) -> NewPending {
    let (kind, uid, base) = match key {
        PendingKey::Upload(l) => (PendingKind::Append, None, MessageBase::new(&l.0).ok()),
        PendingKey::Flags(u) => (PendingKind::Flags, Some(*u), None),
        PendingKey::Expunge(u) => (PendingKind::Expunge, Some(*u), None),
    };
    NewPending {
        folder,
        kind,
        uid,
        base,
        detail: String::new(),
        reason: "folder is read-only on the server".into(),
    }
}
