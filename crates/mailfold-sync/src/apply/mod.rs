//! Apply: execute a [`Plan`] step by step against the server, the Maildir and the state
//! database.
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
//! * **Download:** the body is streamed into `tmp/`, its mtime set to INTERNALDATE (V0006),
//!   its size checked against RFC822.SIZE (V0007); once the batch's bodies are all written,
//!   each file is fsynced, then moved into `cur/` (or `new/`) (writing them all first lets a
//!   journaled file system carry them in few commits). With fsync on, the directory is not
//!   fsynced per message: each directory the batch moved files into is fsynced once, and only
//!   then are the batch's rows handed to the commit group, so no row can be committed before
//!   the entry it records is durable, exactly as with a fsync per message. A directory whose
//!   fsync fails records none of its files (they stay, unrecorded, and the folder counts as
//!   failed); a run that ends inside the batch (a broken connection, the test hook) records
//!   none of the batch. A full body replacing a partial copy (V0070) syncs its own
//!   directories. Killed before the link: only an invisible `tmp/` file remains, the next run
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

use std::collections::{BTreeMap, BTreeSet, HashMap};

use mailfold_store::{
    FlagUpdate as StoreFlagUpdate, Folder, FolderName, FolderStatus, IntentId, IntentKind,
    InternalDate, Maildir, MaildirFlags, MessageBase, MessageEntry, MessageRecord, MessageWriter,
    NewFolder, NewIntent, NewMessage, NewPending, PendingKind, RelPath, StateDb, StateRead, Subdir,
    Txn, Uid as StoreUid, UidValidity as StoreUidValidity, UnplacedMessage, UnsyncedDir,
};

use crate::account::AccountSpec;
use crate::gather::{base_of, encode_intent_detail, FolderCtx, Gathered};
use crate::plan::{
    Body, Flag, FlagSet, FlagStore, FlagUpdate, FolderPath, LocalId, Location, Op, PendingKey,
    Plan, RowContent, Uid,
};
use crate::progress::{NoProgress, Progress, ProgressEvent};
use crate::remote::{BodyEvent, Remote, RemoteError, StoreOp};
use crate::report::SyncReport;
use crate::SyncError;

/// Exit status of a run stopped by the test hook.
pub const ABORT_EXIT_CODE: i32 = 75;

/// The environment variable of the test hook (see the module docs).
pub const ABORT_ENV: &str = "MAILFOLD_TEST_ABORT_AFTER_STEP";

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
type StepResult = Result<(), String>;

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
    selected: Option<(Vec<u8>, bool)>,
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

/// Whether this run may write to a server folder.
enum Access {
    Writable,
    /// The server opened it READ-ONLY (V0039): changes for it are kept pending.
    ReadOnly,
    /// It could not be selected.
    Failed(String),
}

impl std::fmt::Debug for Applier<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier")
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

fn store_err(e: mailfold_store::Error) -> String {
    e.to_string()
}

fn name(p: &FolderPath) -> String {
    p.to_string()
}

/// Seed V0018: a folder name made locally (a directory the user created) with a control
/// character is refused before anything is sent, whatever the server would accept; a server
/// name with one is only ever mapped safely, never created.
fn user_given_name(p: &FolderPath) -> Result<(), String> {
    match p.to_string().chars().find(|c| c.is_control()) {
        Some(c) => Err(format!(
            "folder name {:?} contains the control character U+{:04X}; not created on the \
             server (rename the local folder)",
            p.to_string(),
            u32::from(c)
        )),
        None => Ok(()),
    }
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

fn letters(f: &FlagSet, keep: &MaildirFlags) -> MaildirFlags {
    let names = wire_list(f);
    MaildirFlags::from_imap(names.iter().map(String::as_str), keep)
}

fn record(uid: Uid, base: &MessageBase, flags: &FlagSet, c: &RowContent) -> MessageRecord {
    let (flags, keywords) = split_flags(flags);
    MessageRecord {
        uid: StoreUid(uid.0),
        base: base.clone(),
        flags,
        keywords,
        size: Some(c.size),
        internaldate: Some(InternalDate {
            unix: c.internaldate.0,
            offset_minutes: 0,
        }),
        hash: c.hash.map(|h| mailfold_store::ContentHash(h.0)),
        message_id: c.message_id.clone(),
        partial: c.partial,
    }
}

/// Deletes every row of `folder` bound to `base` or to `uid`, then inserts `rec`.
fn replace_row(
    tx: &Txn<'_>,
    folder: mailfold_store::FolderId,
    rec: &MessageRecord,
) -> mailfold_store::Result<()> {
    if let Some(old) = tx.message_by_base(folder, &rec.base)? {
        tx.delete_messages(folder, &[old.uid])?;
    }
    // A row unbound by a UIDVALIDITY change (V0003) is re-bound here.
    tx.delete_unbound(folder, &rec.base)?;
    tx.delete_messages(folder, &[rec.uid])?;
    tx.upsert_messages(folder, std::slice::from_ref(rec))
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

    fn step_done(&mut self) -> Result<(), SyncError> {
        self.steps += 1;
        if hook_reached(self.abort_after) {
            // Test hook: stop like a kill, without destructors or cleanup. The group is
            // committed first, as it would be had the group ended with this step: a chain of
            // runs each cut after its first step must still make progress (the commit of a
            // step that only records an agreed change is that step's whole effect).
            self.flush()?;
            std::process::exit(ABORT_EXIT_CODE);
        }
        Ok(())
    }

    /// Adds a state change to the current group (module docs, "Grouped commits").
    fn defer(
        &mut self,
        change: impl FnOnce(&Txn<'_>) -> mailfold_store::Result<()> + 'static,
    ) -> Result<(), SyncError> {
        self.deferred.push(Box::new(change));
        if self.deferred.len() >= MAX_GROUP {
            self.flush()?;
        }
        Ok(())
    }

    /// Commits the current group in one transaction, in step order.
    fn flush(&mut self) -> Result<(), SyncError> {
        if self.deferred.is_empty() {
            return Ok(());
        }
        let group = std::mem::take(&mut self.deferred);
        self.db.write(|tx| {
            for change in group {
                change(tx)?;
            }
            Ok(())
        })?;
        // The kernel's reports of the followed folders' changes (this run's own renames
        // among them) are read as the run goes, so that its queue does not overflow in a
        // long run and send those folders back to a listing at the end.
        self.g.watch.drain();
        Ok(())
    }

    fn fail(&mut self, folder: &FolderPath, msg: String) {
        self.incomplete.insert(folder.clone());
        self.report.folder_mut(&name(folder)).errors.push(msg);
    }

    fn ctx(&mut self, folder: &FolderPath) -> &mut FolderCtx {
        self.g.folders.entry(folder.clone()).or_default()
    }

    /// Applies every operation of `plan` in order. Returns an error only when the run cannot
    /// go on (the connection broke, the state database failed).
    pub fn apply(&mut self, plan: &Plan) -> Result<(), SyncError> {
        let mut folders = std::collections::BTreeSet::new();
        let (mut downloads, mut uploads) = (0, 0);
        for op in &plan.ops {
            folders.extend(op.folders());
            match op {
                Op::Download { .. } => downloads += 1,
                Op::Upload { .. } => uploads += 1,
                _ => {}
            }
        }
        self.progress.event(ProgressEvent::Planned {
            folders: folders.len(),
            downloads,
            uploads,
            ops: plan.ops.len(),
        });
        match self.apply_ops(plan) {
            Ok(()) => self.flush(),
            Err(e) => {
                // The effects of the group are done: record them if the database still
                // can; the run's own error is the one to report either way.
                let _ = self.flush();
                Err(e)
            }
        }
    }

    fn apply_ops(&mut self, plan: &Plan) -> Result<(), SyncError> {
        let mut i = 0;
        while i < plan.ops.len() {
            // Consecutive downloads of one folder go as one pipelined batch.
            if let Op::Download { folder, .. } = &plan.ops[i] {
                let mut j = i + 1;
                while j < plan.ops.len()
                    && matches!(&plan.ops[j], Op::Download { folder: f, .. } if f == folder)
                {
                    j += 1;
                }
                let folder = folder.clone();
                if self.failed.contains(&folder) {
                    i = j;
                    continue;
                }
                // The batch's rows are the first change of a new group, so the test hook's
                // cut inside the batch loses exactly the batch's commit (module docs).
                self.flush()?;
                self.downloads(&folder, &plan.ops[i..j])?;
                i = j;
                continue;
            }
            // Consecutive flag changes of one folder: one UID STORE per distinct change (V0060).
            if let Op::SyncFlags { folder, .. } = &plan.ops[i] {
                let mut j = i + 1;
                while j < plan.ops.len()
                    && matches!(&plan.ops[j], Op::SyncFlags { folder: f, .. } if f == folder)
                {
                    j += 1;
                }
                if j - i > 1 {
                    let folder = folder.clone();
                    if !self.failed.contains(&folder) {
                        self.flag_batch(&folder, &plan.ops[i..j])?;
                    }
                    i = j;
                    continue;
                }
            }
            let op = &plan.ops[i];
            i += 1;
            if op.folders().iter().any(|f| self.failed.contains(*f)) {
                continue;
            }
            if !joins_group(op) {
                // Its own commit (or journal entry) comes after every earlier one.
                self.flush()?;
            }
            match self.apply_one(op) {
                Ok(Ok(())) => {}
                Ok(Err(msg)) => {
                    // A move that failed leaves work in both of its folders.
                    for f in op.folders() {
                        self.incomplete.insert(f.clone());
                    }
                    let f = op.folders().first().map(|f| (*f).clone());
                    match f {
                        Some(f) => self.fail(&f, msg),
                        None => self.report.errors.push(msg),
                    }
                }
                Err(e) => return Err(e),
            }
            self.step_done()?;
        }
        Ok(())
    }

    /// One operation. The outer error ends the run; the inner one is a failed step.
    fn apply_one(&mut self, op: &Op) -> Result<StepResult, SyncError> {
        match op {
            Op::CreateLocalFolder { folder } => Ok(self.create_local(folder)),
            Op::CreateRemoteFolder { folder } => self.create_remote(folder),
            Op::SetUidValidity {
                folder,
                uidvalidity,
            } => Ok(self.set_uidvalidity(folder, uidvalidity.0.get())),
            Op::Bind {
                folder,
                uid,
                local,
                content,
                update,
            } => {
                let stored = match self.flag_effects(folder, *uid, local, update)? {
                    Ok(stored) => stored,
                    Err(e) => return Ok(Err(e)),
                };
                let base = match base_of(local) {
                    Ok(b) => b,
                    Err(e) => return Ok(Err(e)),
                };
                let rec = record(*uid, &base, &recorded(update, stored), content);
                let id = match self.folder_row(folder) {
                    Ok(id) => id,
                    Err(e) => return Ok(Err(e)),
                };
                self.defer(move |tx| replace_row(tx, id, &rec))?;
                self.report.folder_mut(&name(folder)).bound += 1;
                Ok(Ok(()))
            }
            Op::SyncFlags {
                folder,
                uid,
                local,
                update,
            } => {
                let stored = match self.flag_effects(folder, *uid, local, update)? {
                    Ok(stored) => stored,
                    Err(e) => return Ok(Err(e)),
                };
                let id = match self.folder_row(folder) {
                    Ok(id) => id,
                    Err(e) => return Ok(Err(e)),
                };
                self.progress.event(ProgressEvent::Message { folder });
                let (flags, keywords) = split_flags(&recorded(update, stored));
                let upd = StoreFlagUpdate {
                    uid: StoreUid(uid.0),
                    flags,
                    keywords,
                };
                self.defer(move |tx| tx.update_flags(id, std::slice::from_ref(&upd)))?;
                Ok(Ok(()))
            }
            Op::Upload { .. } => self.upload(op),
            Op::CopyRemote { .. } => self.copy_remote(op),
            Op::DeleteLocal { folder, uid, local } => {
                if let Some(entry) = self.ctx(folder).files.get(&local.0).cloned() {
                    let f = match self.local_folder(folder) {
                        Ok(f) => f,
                        Err(e) => return Ok(Err(e)),
                    };
                    f.delete(&entry)?;
                    self.ctx(folder).files.remove(&local.0);
                }
                if let Ok(id) = self.folder_row(folder) {
                    let uid = StoreUid(uid.0);
                    self.defer(move |tx| tx.delete_messages(id, &[uid]))?;
                }
                self.report.folder_mut(&name(folder)).local_deletions += 1;
                Ok(Ok(()))
            }
            Op::ExpungeRemote {
                folder,
                uid,
                unchanged_since,
            } => self.expunge_remote(folder, *uid, unchanged_since.map(|m| m.0.get())),
            Op::ForgetMessage { folder, uid, local } => {
                if let Ok(id) = self.folder_row(folder) {
                    let base = base_of(local).ok();
                    let uid = *uid;
                    self.defer(move |tx| {
                        if let Some(u) = uid {
                            tx.delete_messages(id, &[StoreUid(u.0)])?;
                        }
                        if let Some(b) = &base {
                            if let Some(r) = tx.message_by_base(id, b)? {
                                tx.delete_messages(id, &[r.uid])?;
                            }
                            tx.delete_unbound(id, b)?;
                        }
                        Ok(())
                    })?;
                }
                Ok(Ok(()))
            }
            Op::MarkPending { folder, key } => {
                let id = match self.folder_row(folder) {
                    Ok(id) => id,
                    Err(e) => return Ok(Err(e)),
                };
                let p = pending_of(id, key);
                self.defer(move |tx| tx.queue_pending(&p).map(|_| ()))?;
                Ok(Ok(()))
            }
            Op::ClearPending { folder, key } => {
                if self.read_only.contains(folder) {
                    // Planned as settled by a write this run could not make: still pending
                    // (the run's report had counted it as cleared).
                    self.report.folder_mut(&name(folder)).pending += 1;
                    return Ok(Ok(()));
                }
                if let Ok(id) = self.folder_row(folder) {
                    let want = pending_of(id, key);
                    // Looked up inside the group's transaction, which sees the group's
                    // earlier changes.
                    self.defer(move |tx| {
                        for p in tx.pending(Some(id))? {
                            if p.change.kind == want.kind
                                && p.change.uid == want.uid
                                && p.change.base == want.base
                            {
                                tx.remove_pending(p.id)?;
                            }
                        }
                        Ok(())
                    })?;
                }
                Ok(Ok(()))
            }
            Op::DropIntent { id } => {
                let id = IntentId(i64::try_from(id.0).unwrap_or(i64::MAX));
                self.db.write(|tx| tx.resolve_intent(id))?;
                Ok(Ok(()))
            }
            Op::DeleteLocalFolder { folder } => {
                let Some(rel) = self.ctx(folder).rel.clone() else {
                    return Ok(Ok(()));
                };
                self.opened.clear();
                match self.maildir.delete_folder(&rel, false) {
                    Ok(()) => {
                        self.report.folder_mut(&name(folder)).deleted = true;
                        Ok(Ok(()))
                    }
                    Err(mailfold_store::Error::NotEmpty { .. }) => {
                        self.report
                            .folder_mut(&name(folder))
                            .warnings
                            .push("local folder not deleted: it holds new files".into());
                        Ok(Ok(()))
                    }
                    Err(e) => Ok(Err(e.to_string())),
                }
            }
            Op::DeleteRemoteFolder { folder } => self.delete_remote(folder),
            Op::RenameRemoteFolder { from, to } => self.rename_remote(from, to),
            Op::RenameLocalFolder { from, to } => self.rename_local(from, to),
            Op::ForgetFolder { folder } => {
                if let Some(id) = self.ctx(folder).state_id.take() {
                    let pend: Vec<_> = self
                        .db
                        .pending(Some(id))?
                        .into_iter()
                        .map(|p| p.id)
                        .collect();
                    self.db.write(|tx| {
                        for p in &pend {
                            tx.remove_pending(*p)?;
                        }
                        tx.delete_folder(id)
                    })?;
                }
                Ok(Ok(()))
            }
            Op::SetFolderState {
                folder,
                uidnext,
                highestmodseq,
            } => {
                if self.incomplete.contains(folder) {
                    // See the module docs: the older record makes the next run look again.
                    return Ok(Ok(()));
                }
                let id = match self.folder_row(folder) {
                    Ok(id) => id,
                    Err(e) => return Ok(Err(e)),
                };
                let (uidnext, highestmodseq) =
                    (uidnext.map(|u| u.0), highestmodseq.map(|m| m.0.get()));
                // In the same transaction as the folder's rows (or a later one): the claim
                // "synced up to here" is never durable before what it claims.
                self.defer(move |tx| {
                    let st = FolderStatus {
                        uidvalidity: tx.folder(id)?.and_then(|f| f.uidvalidity),
                        uidnext,
                        highestmodseq,
                    };
                    tx.set_folder_status(id, &st)?;
                    tx.set_last_sync(id, now_unix())
                })?;
                Ok(Ok(()))
            }
            Op::MoveLocal {
                from,
                local,
                to,
                uid,
                content,
                update,
            } => self.move_local(from, local, to, *uid, content, update),
            Op::MoveRemote {
                from,
                uid,
                to,
                local,
                content,
                update,
            } => self.move_remote(from, *uid, to, local, content, update),
            Op::Download { .. } => Ok(Err("download outside a batch".into())),
        }
    }

    // ----- folders

    fn local_folder(&mut self, folder: &FolderPath) -> Result<Folder, String> {
        if let Some(rel) = self.ctx(folder).rel.clone() {
            if let Some(f) = self.opened.get(&rel) {
                return Ok(f.clone());
            }
            if let Ok(f) = self.maildir.folder(&rel) {
                self.opened.insert(rel, f.clone());
                return Ok(f);
            }
        }
        let name = FolderName::new(folder.0.clone()).map_err(|e| e.to_string())?;
        let f = self
            .maildir
            .ensure_folder(&name, &mut *self.db)
            .map_err(store_err)?;
        self.ctx(folder).rel = Some(f.rel().clone());
        Ok(f)
    }

    fn create_local(&mut self, folder: &FolderPath) -> StepResult {
        self.local_folder(folder)?;
        self.report.folder_mut(&name(folder)).created_local = true;
        Ok(())
    }

    fn wire(&mut self, folder: &FolderPath) -> Result<Vec<u8>, String> {
        if let Some(w) = self.ctx(folder).wire.clone() {
            return Ok(w);
        }
        let delim = self.g.delimiter;
        let w = self.g.wire_of(folder, delim)?;
        let ctx = self.ctx(folder);
        ctx.wire = Some(w.clone());
        ctx.delimiter = delim;
        Ok(w)
    }

    /// The folder's state row, created (without UIDVALIDITY) if missing.
    fn folder_row(&mut self, folder: &FolderPath) -> Result<mailfold_store::FolderId, String> {
        if let Some(id) = self.ctx(folder).state_id {
            return Ok(id);
        }
        let wire = self.wire(folder)?;
        let wire_s = String::from_utf8(wire).map_err(|e| e.to_string())?;
        if let Some(f) = self.db.folder_by_wire_name(&wire_s).map_err(store_err)? {
            self.ctx(folder).state_id = Some(f.id);
            return Ok(f.id);
        }
        let rel = self.local_folder(folder)?.rel().clone();
        let ctx = self.ctx(folder).clone();
        let nf = NewFolder {
            wire_name: wire_s,
            delimiter: ctx.delimiter.or(self.g.delimiter),
            local_path: rel,
            special_use: ctx.special_use.clone(),
            subscribed: ctx.subscribed,
        };
        let id = self.db.write(|tx| tx.add_folder(&nf)).map_err(store_err)?;
        self.ctx(folder).state_id = Some(id);
        Ok(id)
    }

    fn set_uidvalidity(&mut self, folder: &FolderPath, uv: u32) -> StepResult {
        let id = self.folder_row(folder)?;
        let old = self
            .db
            .folder(id)
            .map_err(store_err)?
            .and_then(|f| f.uidvalidity);
        if old.map(|u| u.get()) != Some(uv) {
            let st = FolderStatus {
                uidvalidity: StoreUidValidity::new(uv),
                uidnext: None,
                highestmodseq: None,
            };
            // Seed V0003: the rows of the old UIDVALIDITY are kept *unbound* (no UID) with
            // their synced flags, base, hash and Message-ID. The planner re-binds each to the
            // new UID by content without a download; a flag changed locally before the reset
            // is still a change against the kept base, and a file deleted locally is still
            // known as synced-then-deleted, so it does not come back.
            self.db
                .write(|tx| {
                    tx.set_folder_status(id, &st)?;
                    tx.unbind_messages(id).map(|_| ())
                })
                .map_err(store_err)?;
        }
        self.ctx(folder).state_uidvalidity = Some(uv);
        Ok(())
    }

    fn create_remote(&mut self, folder: &FolderPath) -> Result<StepResult, SyncError> {
        if let Err(e) = user_given_name(folder) {
            self.failed.insert(folder.clone());
            return Ok(Err(e));
        }
        let wire = match self.wire(folder) {
            Ok(w) => w,
            Err(e) => {
                self.failed.insert(folder.clone());
                return Ok(Err(format!("cannot create on the server: {e}")));
            }
        };
        match self.remote.create(&wire) {
            Ok(()) => {}
            Err(e) if e.is_fatal() => return Err(e.into()),
            Err(e) => {
                // Seed V0019: the server's own text reaches the user.
                self.failed.insert(folder.clone());
                return Ok(Err(format!("CREATE refused: {e}")));
            }
        }
        self.report.folder_mut(&name(folder)).created_remote = true;
        let st = self.remote.status(&wire)?;
        match st.uidvalidity {
            Some(uv) => Ok(self.set_uidvalidity(folder, uv)),
            None => {
                self.failed.insert(folder.clone());
                Ok(Err("created folder has no UIDVALIDITY".into()))
            }
        }
    }

    /// A local folder renamed as a whole: `RENAME` on the server, then the folder state takes
    /// the new name, keeping its rows (see [`Op::RenameRemoteFolder`]).
    fn rename_remote(
        &mut self,
        from: &FolderPath,
        to: &FolderPath,
    ) -> Result<StepResult, SyncError> {
        if let Err(e) = user_given_name(to) {
            return Ok(Err(e));
        }
        let (old, new) = match (self.wire(from), self.wire(to)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
        };
        let Some(id) = self.ctx(from).state_id else {
            return Ok(Err("renamed folder has no state".into()));
        };
        let rel = match self.local_folder(to) {
            Ok(f) => f.rel().clone(),
            Err(e) => return Ok(Err(e)),
        };
        let Ok(new_s) = String::from_utf8(new.clone()) else {
            return Ok(Err("folder name is not ASCII on the wire".into()));
        };
        if self.selected.as_ref().is_some_and(|(w, _)| *w == old) {
            self.remote.unselect()?;
            self.selected = None;
        }
        match self.remote.rename(&old, &new) {
            Ok(()) => {}
            Err(e) if e.is_fatal() => return Err(e.into()),
            // Seed V0019: the server's own text reaches the user.
            Err(e) => return Ok(Err(format!("RENAME refused: {e}"))),
        }
        let delim = self.ctx(from).delimiter.or(self.g.delimiter);
        let children = renamed_children(&*self.db, id, &old, &new_s, delim, &rel)?;
        self.db.write(|tx| {
            tx.rename_folder(id, &new_s, delim, &rel)?;
            for (child, wire, local) in &children {
                tx.rename_folder(*child, wire, delim, local)?;
            }
            Ok(())
        })?;
        self.ctx(from).state_id = None;
        let ctx = self.ctx(to);
        ctx.state_id = Some(id);
        ctx.wire = Some(new);
        self.report.folder_mut(&name(to)).renamed_from = Some(name(from));
        Ok(Ok(()))
    }

    /// A server folder renamed as a whole: the Maildir directory follows, then the folder
    /// state takes the new name, keeping its rows (see [`Op::RenameLocalFolder`]).
    fn rename_local(
        &mut self,
        from: &FolderPath,
        to: &FolderPath,
    ) -> Result<StepResult, SyncError> {
        let new = match self.wire(to) {
            Ok(w) => w,
            Err(e) => return Ok(Err(e)),
        };
        let Some(id) = self.ctx(from).state_id else {
            return Ok(Err("renamed folder has no state".into()));
        };
        let Some(src) = self.ctx(from).rel.clone() else {
            return Ok(Err("renamed folder has no local directory".into()));
        };
        let Ok(new_s) = String::from_utf8(new.clone()) else {
            return Ok(Err("folder name is not ASCII on the wire".into()));
        };
        let to_name = match FolderName::new(to.0.clone()) {
            Ok(n) => n,
            Err(e) => return Ok(Err(e.to_string())),
        };
        self.opened.clear();
        let folder = match self.maildir.rename_folder(&src, &to_name, &mut *self.db) {
            Ok(f) => f,
            Err(e) => return Ok(Err(format!("renaming the local folder: {e}"))),
        };
        let rel = folder.rel().clone();
        let delim = self.ctx(to).delimiter.or(self.g.delimiter);
        self.db
            .write(|tx| tx.rename_folder(id, &new_s, delim, &rel))?;
        let old = std::mem::take(self.ctx(from));
        let ctx = self.ctx(to);
        ctx.state_id = Some(id);
        ctx.state_uidvalidity = old.state_uidvalidity;
        ctx.rel = Some(rel);
        ctx.wire = Some(new);
        self.report.folder_mut(&name(to)).renamed_from = Some(name(from));
        Ok(Ok(()))
    }

    fn delete_remote(&mut self, folder: &FolderPath) -> Result<StepResult, SyncError> {
        let wire = match self.wire(folder) {
            Ok(w) => w,
            Err(e) => return Ok(Err(e)),
        };
        if self.selected.as_ref().is_some_and(|(w, _)| *w == wire) {
            self.remote.unselect()?;
            self.selected = None;
        }
        let st = self.remote.status(&wire)?;
        if st.messages != Some(0) {
            self.report
                .folder_mut(&name(folder))
                .warnings
                .push("server folder not deleted: it holds new messages".into());
            return Ok(Ok(()));
        }
        match self.remote.delete(&wire) {
            Ok(()) => {
                self.report.folder_mut(&name(folder)).deleted = true;
                Ok(Ok(()))
            }
            Err(e) if e.is_fatal() => Err(e.into()),
            Err(e) => Ok(Err(format!("DELETE refused: {e}"))),
        }
    }

    /// Selects the folder for writing (SELECT without CLOSE in between, V0050).
    fn select_rw(&mut self, folder: &FolderPath) -> Result<StepResult, SyncError> {
        let wire = match self.wire(folder) {
            Ok(w) => w,
            Err(e) => return Ok(Err(e)),
        };
        if self
            .selected
            .as_ref()
            .is_some_and(|(w, ro)| *w == wire && !ro)
        {
            return Ok(Ok(()));
        }
        match self.remote.select(&wire, false) {
            Ok(sel) => {
                if sel.read_only {
                    self.selected = Some((wire, true));
                    self.note_read_only(folder);
                    return Ok(Err("folder is read-only on the server".into()));
                }
                self.selected = Some((wire, false));
                Ok(Ok(()))
            }
            Err(e) if e.is_fatal() => Err(e.into()),
            Err(e) => {
                // A refused SELECT leaves no folder selected (RFC 3501 6.3.1).
                self.selected = None;
                Ok(Err(format!("cannot select: {e}")))
            }
        }
    }

    /// Seed V0039, noticed late: a folder the gather did not SELECT (STATUS found it unchanged,
    /// V0045) answers a SELECT for writing with `[READ-ONLY]`. For the rest of the run nothing
    /// is written to it; each local change that needed a write is kept pending, as the planner
    /// would have planned had it known.
    fn note_read_only(&mut self, folder: &FolderPath) {
        if self.read_only.insert(folder.clone()) {
            let r = self.report.folder_mut(&name(folder));
            r.read_only = true;
            r.warnings.push(
                "the server opened the folder READ-ONLY: local changes are kept pending".into(),
            );
        }
    }

    /// Whether this run may write to `folder`: SELECTs it for writing unless already known.
    fn access(&mut self, folder: &FolderPath) -> Result<Access, SyncError> {
        if self.read_only.contains(folder) {
            return Ok(Access::ReadOnly);
        }
        Ok(match self.select_rw(folder)? {
            Ok(()) => Access::Writable,
            Err(_) if self.read_only.contains(folder) => Access::ReadOnly,
            Err(e) => Access::Failed(e),
        })
    }

    /// Keeps a local change pending (V0039), once: a key the state already holds is left as
    /// it is.
    fn mark_pending(&mut self, folder: &FolderPath, key: PendingKey) -> Result<(), SyncError> {
        let known = self
            .g
            .input
            .state
            .iter()
            .find(|s| &s.path == folder)
            .is_some_and(|s| s.pending.contains(&key));
        if known {
            return Ok(());
        }
        let id = match self.folder_row(folder) {
            Ok(id) => id,
            Err(e) => {
                self.fail(folder, e);
                return Ok(());
            }
        };
        let p = pending_of(id, &key);
        self.defer(move |tx| tx.queue_pending(&p).map(|_| ()))?;
        self.report.folder_mut(&name(folder)).pending += 1;
        Ok(())
    }

    fn select_any(&mut self, folder: &FolderPath) -> Result<StepResult, SyncError> {
        let wire = match self.wire(folder) {
            Ok(w) => w,
            Err(e) => return Ok(Err(e)),
        };
        if self.selected.as_ref().is_some_and(|(w, _)| *w == wire) {
            return Ok(Ok(()));
        }
        let ro = self.account.direction == crate::account::Direction::Pull;
        match self.remote.select(&wire, ro) {
            Ok(sel) => {
                self.selected = Some((wire, sel.read_only));
                Ok(Ok(()))
            }
            Err(e) if e.is_fatal() => Err(e.into()),
            Err(e) => {
                self.selected = None;
                Ok(Err(format!("cannot select: {e}")))
            }
        }
    }

    // ----- flags

    /// The local part (rename) then the server part (UID STORE) of a flag update. `Ok(false)`
    /// when the server part was kept pending instead (the folder is read-only, V0039): the
    /// record is then the server's flags ([`recorded`]), so the local change stays a change.
    fn flag_effects(
        &mut self,
        folder: &FolderPath,
        uid: Uid,
        local: &LocalId,
        update: &FlagUpdate,
    ) -> Result<Result<bool, String>, SyncError> {
        if let Some(new) = &update.local {
            let Some(entry) = self.ctx(folder).files.get(&local.0).cloned() else {
                return Ok(Err(format!("local file {local} vanished")));
            };
            let f = match self.local_folder(folder) {
                Ok(f) => f,
                Err(e) => return Ok(Err(e)),
            };
            let want = letters(new, &entry.flags);
            if want != entry.flags {
                let moved = f.set_flags(&entry, &want)?;
                self.ctx(folder).files.insert(local.0.clone(), moved);
            }
            self.report.folder_mut(&name(folder)).local_flag_changes += 1;
        }
        if let Some(store) = &update.remote {
            match self.access(folder)? {
                Access::Writable => {}
                Access::ReadOnly => {
                    self.mark_pending(folder, PendingKey::Flags(uid))?;
                    return Ok(Ok(false));
                }
                Access::Failed(e) => return Ok(Err(e)),
            }
            match self.store_flags(folder, uid, store)? {
                Ok(true) => {}
                Ok(false) => {
                    // MODIFIED (RFC 7162): another client changed the message meanwhile; the
                    // next run merges again, so nothing is committed now.
                    return Ok(Err(format!(
                        "UID {uid} changed on the server meanwhile; flags merge on the next run"
                    )));
                }
                Err(e) => return Ok(Err(e)),
            }
            self.report.folder_mut(&name(folder)).remote_flag_changes += 1;
        }
        Ok(Ok(true))
    }

    /// A run of [`Op::SyncFlags`] in one folder, batched (seed V0060): every file is renamed
    /// first, then one `UID STORE` per distinct change (`+FLAGS` or `-FLAGS` of one flag set,
    /// one UNCHANGEDSINCE kind) over the compact UID set of the messages it applies to, then
    /// one transaction records the synced flags of every message whose stores all succeeded.
    ///
    /// UNCHANGEDSINCE for a group is the highest MODSEQ among its messages in the view. That
    /// still catches every change made after the view: any such change raised the message's
    /// MODSEQ above the folder's HIGHESTMODSEQ of the view, which is at least every MODSEQ in
    /// it (RFC 7162 3.1.3, V0056). A message whose `+FLAGS` went through gets its new MODSEQ
    /// for the `-FLAGS` that follows, so our own first store is not taken for a concurrent one.
    /// Crash safety is that of one [`Op::SyncFlags`] per message (see the module docs): the
    /// effects of every message are done before the commit, and a kill in between merges back
    /// as a change agreed on by both sides.
    fn flag_batch(&mut self, folder: &FolderPath, ops: &[Op]) -> Result<(), SyncError> {
        /// Messages per UID STORE, so a scattered set keeps the command line short (a few
        /// kilobytes at most; servers limit line length).
        const STORE_CHUNK: usize = 500;
        let mut failed: BTreeMap<u32, String> = BTreeMap::new();
        // (add?, wire flags, conditional?) → (UIDs, highest UNCHANGEDSINCE)
        type Key = (bool, Vec<String>, bool);
        let mut groups: BTreeMap<Key, (Vec<u32>, u64)> = BTreeMap::new();
        // The folder's subdirectories the batch renamed files in, each fsynced once (with fsync
        // on) before any of the batch's rows can reach the commit group.
        let mut renamed_in: Vec<Subdir> = Vec::new();
        for op in ops {
            let Op::SyncFlags {
                uid, local, update, ..
            } = op
            else {
                continue;
            };
            if let Some(new) = &update.local {
                if let Err(e) = self.local_flag_effect(folder, local, new, Some(&mut renamed_in))? {
                    failed.insert(uid.get(), e);
                    continue;
                }
            }
            let Some(store) = &update.remote else {
                continue;
            };
            let since = store.unchanged_since.map(|m| m.0.get());
            for (add, set) in [(true, &store.add), (false, &store.remove)] {
                if set.is_empty() {
                    continue;
                }
                let g = groups
                    .entry((add, wire_list(set), since.is_some()))
                    .or_default();
                g.0.push(uid.get());
                g.1 = g.1.max(since.unwrap_or(0));
            }
        }
        // Messages whose server part is kept pending (V0039): their local part is done.
        let mut pending: std::collections::BTreeSet<u32> = Default::default();
        if !groups.is_empty() {
            match self.access(folder)? {
                Access::Writable => {}
                Access::ReadOnly => {
                    for op in ops {
                        if let Op::SyncFlags { uid, update, .. } = op {
                            if update.remote.is_some() && !failed.contains_key(&uid.get()) {
                                self.mark_pending(folder, PendingKey::Flags(*uid))?;
                                pending.insert(uid.get());
                            }
                        }
                    }
                    groups.clear();
                }
                Access::Failed(e) => {
                    for op in ops {
                        if let Op::SyncFlags { uid, update, .. } = op {
                            if update.remote.is_some() {
                                failed.entry(uid.get()).or_insert_with(|| e.clone());
                            }
                        }
                    }
                    groups.clear();
                }
            }
        }
        // Adds before removes, as the one-message path does.
        let mut order: Vec<Key> = groups.keys().cloned().collect();
        order.sort_by_key(|k| !k.0);
        let mut new_modseq: BTreeMap<u32, u64> = BTreeMap::new();
        for key in order {
            let Some((uids, since)) = groups.remove(&key) else {
                continue;
            };
            let (add, flags, conditional) = key;
            let op = if add { StoreOp::Add } else { StoreOp::Remove };
            let live: Vec<u32> = uids
                .into_iter()
                .filter(|u| !failed.contains_key(u))
                .collect();
            for chunk in live.chunks(STORE_CHUNK) {
                let since = conditional.then(|| {
                    // Our own earlier store in this batch raised these messages' MODSEQ.
                    chunk
                        .iter()
                        .filter_map(|u| new_modseq.get(u))
                        .fold(since, |a, &b| a.max(b))
                });
                match self.remote.store_tracked(chunk, op, &flags, since) {
                    Ok((modified, modseqs)) => {
                        for u in modified {
                            failed.insert(
                                u,
                                format!(
                                    "UID {u} changed on the server meanwhile; flags merge on the next run"
                                ),
                            );
                        }
                        new_modseq.extend(modseqs);
                    }
                    Err(e) if e.is_fatal() => return Err(e.into()),
                    Err(e) => {
                        for u in chunk {
                            failed.insert(*u, format!("STORE refused: {e}"));
                        }
                    }
                }
            }
        }
        if !renamed_in.is_empty() {
            let synced = self
                .local_folder(folder)
                .and_then(|f| f.sync_subdirs(&renamed_in).map_err(store_err));
            if let Err(e) = synced {
                // Renamed but not durable: none of the local changes is recorded. The next
                // run finds the files' flags ahead of the state and agrees with the server.
                for op in ops {
                    if let Op::SyncFlags { uid, update, .. } = op {
                        if update.local.is_some() {
                            failed
                                .entry(uid.get())
                                .or_insert_with(|| format!("renames not durable: {e}"));
                        }
                    }
                }
            }
        }
        let id = match self.folder_row(folder) {
            Ok(id) => Some(id),
            Err(e) => {
                self.fail(folder, e);
                None
            }
        };
        let mut updates = Vec::new();
        for op in ops {
            let Op::SyncFlags { uid, update, .. } = op else {
                continue;
            };
            if failed.contains_key(&uid.get()) {
                continue;
            }
            let stored = !pending.contains(&uid.get());
            let (flags, keywords) = split_flags(&recorded(update, stored));
            updates.push(StoreFlagUpdate {
                uid: StoreUid(uid.0),
                flags,
                keywords,
            });
            let r = self.report.folder_mut(&name(folder));
            if update.local.is_some() {
                r.local_flag_changes += 1;
            }
            if update.remote.is_some() && stored {
                r.remote_flag_changes += 1;
            }
            self.progress.event(ProgressEvent::Message { folder });
        }
        if let Some(id) = id {
            if !updates.is_empty() {
                self.defer(move |tx| tx.update_flags(id, &updates))?;
            }
        }
        // The test hook counts the batch's steps after its commit: a run cut before it would
        // find the same batch (now with nothing but the commit left) and be cut there again,
        // so a chain of runs each cut after its first step would never get past it.
        for _ in ops {
            self.step_done()?;
        }
        for (_, e) in failed {
            self.fail(folder, e);
        }
        Ok(())
    }

    /// The local part of a flag update: rename the file's `:2,` suffix.
    /// Renames the local file to carry `new`. With `renamed_in`, the directories renamed in
    /// are added there and left for the caller to fsync; without, each rename is synced.
    fn local_flag_effect(
        &mut self,
        folder: &FolderPath,
        local: &LocalId,
        new: &FlagSet,
        renamed_in: Option<&mut Vec<Subdir>>,
    ) -> Result<StepResult, SyncError> {
        let Some(entry) = self.ctx(folder).files.get(&local.0).cloned() else {
            return Ok(Err(format!("local file {local} vanished")));
        };
        let f = match self.local_folder(folder) {
            Ok(f) => f,
            Err(e) => return Ok(Err(e)),
        };
        let want = letters(new, &entry.flags);
        if want != entry.flags {
            let moved = match renamed_in {
                Some(dirs) => {
                    let (moved, touched) = f.set_flags_unsynced(&entry, &want)?;
                    for sub in touched {
                        if !dirs.contains(&sub) {
                            dirs.push(sub);
                        }
                    }
                    moved
                }
                None => f.set_flags(&entry, &want)?,
            };
            self.ctx(folder).files.insert(local.0.clone(), moved);
        }
        Ok(Ok(()))
    }

    /// `UID STORE` of a [`FlagStore`]; `Ok(false)` when the server reported MODIFIED.
    fn store_flags(
        &mut self,
        folder: &FolderPath,
        uid: Uid,
        s: &FlagStore,
    ) -> Result<Result<bool, String>, SyncError> {
        if let Err(e) = self.select_rw(folder)? {
            return Ok(Err(e));
        }
        let mut since = s.unchanged_since.map(|m| m.0.get());
        for (op, set) in [(StoreOp::Add, &s.add), (StoreOp::Remove, &s.remove)] {
            if set.is_empty() {
                continue;
            }
            match self
                .remote
                .store_tracked(&[uid.get()], op, &wire_list(set), since)
            {
                Ok((modified, _)) if !modified.is_empty() => return Ok(Ok(false)),
                Ok((_, modseqs)) => {
                    // Our own store raised the MODSEQ; the next store is conditional on the
                    // new value, not on the view's (which would report our change as MODIFIED).
                    if let Some(&(_, m)) = modseqs.iter().find(|(u, _)| *u == uid.get()) {
                        since = since.map(|s| s.max(m));
                    }
                }
                Err(e) if e.is_fatal() => return Err(e.into()),
                Err(e) => return Ok(Err(format!("STORE refused: {e}"))),
            }
        }
        Ok(Ok(true))
    }

    // ----- deletions

    fn expunge_remote(
        &mut self,
        folder: &FolderPath,
        uid: Uid,
        since: Option<u64>,
    ) -> Result<StepResult, SyncError> {
        let plain = !self.remote.has_capability("UIDPLUS");
        if plain && !self.account.allow_plain_expunge {
            return Ok(Err(format!(
                "UID {uid} not expunged: the server lacks UIDPLUS and a bare EXPUNGE \
                 (which would also remove other clients' \\Deleted messages) is not allowed \
                 for this account"
            )));
        }
        match self.access(folder)? {
            Access::Writable => {}
            Access::ReadOnly => {
                // The row stays: the message is still on the server, deleted only here.
                self.mark_pending(folder, PendingKey::Expunge(uid))?;
                return Ok(Ok(()));
            }
            Access::Failed(e) => return Ok(Err(e)),
        }
        let deleted = vec!["\\Deleted".to_owned()];
        match self
            .remote
            .store(&[uid.get()], StoreOp::Add, &deleted, since)
        {
            Ok(m) if !m.is_empty() => {
                return Ok(Err(format!(
                    "UID {uid} changed on the server meanwhile; not expunged this run"
                )))
            }
            Ok(_) => {}
            Err(e) if e.is_fatal() => return Err(e.into()),
            Err(e) => return Ok(Err(format!("STORE \\Deleted refused: {e}"))),
        }
        match self.remote.expunge(&[uid.get()], plain) {
            Ok(()) => {}
            Err(e) if e.is_fatal() => return Err(e.into()),
            Err(e) => return Ok(Err(format!("EXPUNGE refused: {e}"))),
        }
        if let Ok(id) = self.folder_row(folder) {
            let uid = StoreUid(uid.0);
            self.defer(move |tx| tx.delete_messages(id, &[uid]))?;
        }
        self.report.folder_mut(&name(folder)).remote_deletions += 1;
        Ok(Ok(()))
    }

    // ----- downloads

    /// A batch of downloads into one folder, between its [`ProgressEvent::FolderStarted`] and
    /// [`ProgressEvent::FolderDone`]. The declared bytes are the RFC822.SIZE of the whole
    /// bodies to fetch; a headers-only download (V0010) declares nothing, since only its
    /// header arrives.
    fn downloads(&mut self, folder: &FolderPath, ops: &[Op]) -> Result<(), SyncError> {
        let mut whole: Option<u64> = None;
        for op in ops {
            if let Op::Download {
                body: Body::Full,
                size,
                ..
            } = op
            {
                whole = Some(whole.unwrap_or(0).saturating_add(*size));
            }
        }
        self.progress.event(ProgressEvent::FolderStarted {
            folder,
            downloads: ops.len(),
            bytes: whole,
        });
        let r = self.download_batch(folder, ops);
        self.progress.event(ProgressEvent::FolderDone { folder });
        r
    }

    /// One pipelined series of `UID FETCH BODY.PEEK[]` (V0054), each body streamed to its own
    /// file, then the rows as one change of the commit group.
    fn download_batch(&mut self, folder: &FolderPath, ops: &[Op]) -> Result<(), SyncError> {
        struct Want {
            flags: FlagSet,
            size: u64,
            date: i64,
            message_id: Option<String>,
            record: bool,
            partial: bool,
            location: Location,
            /// The partial copy this full download replaces (V0070).
            replace: Option<MessageEntry>,
        }
        let mut wants: BTreeMap<u32, Want> = BTreeMap::new();
        let mut headers = Vec::new();
        let mut full = Vec::new();
        for op in ops {
            if let Op::Download {
                uid,
                flags,
                body,
                size,
                internaldate,
                message_id,
                record,
                location,
                replace,
                ..
            } = op
            {
                let partial = *body == Body::Headers;
                // Only a full body replaces, and only a file the scan found.
                let replace = replace
                    .as_ref()
                    .filter(|_| !partial)
                    .and_then(|l| self.ctx(folder).files.get(&l.0).cloned());
                wants.insert(
                    uid.get(),
                    Want {
                        flags: flags.clone(),
                        size: *size,
                        date: internaldate.0,
                        message_id: message_id.clone(),
                        record: *record,
                        partial,
                        location: *location,
                        replace,
                    },
                );
                if partial {
                    headers.push(uid.get());
                } else {
                    full.push(uid.get());
                }
            }
        }
        if let Err(e) = self.select_any(folder)? {
            self.fail(folder, e);
            self.failed.insert(folder.clone());
            return Ok(());
        }
        let dest = match self.local_folder(folder) {
            Ok(f) => f,
            Err(e) => {
                self.fail(folder, e);
                return Ok(());
            }
        };
        // Each file with the directory whose fsync its entry still waits for (`None`: nothing
        // to wait for, with fsync off or a replaced partial copy, which syncs its own).
        let mut written: Vec<(u32, mailfold_store::WrittenMessage, Option<UnsyncedDir>)> =
            Vec::new();
        let mut errors: Vec<String> = Vec::new();
        let abort_after = self.abort_after;
        let progress = self.progress;
        let mut steps = self.steps;
        for (uids, headers_only) in [(full, false), (headers, true)] {
            if uids.is_empty() {
                continue;
            }
            let mut cur: Option<(u32, MessageWriter, u64)> = None;
            let mut placing = Placing {
                placed: Vec::new(),
                unplaced: Vec::new(),
                written: &mut written,
                errors: &mut errors,
                progress,
                folder,
                steps: &mut steps,
                abort_after,
            };
            let res = self
                .remote
                .fetch_bodies(&uids, headers_only, &mut |ev| match ev {
                    BodyEvent::Start { uid, len } => {
                        let Some(w) = wants.get(&uid) else { return };
                        // Seed V0007 before a byte is written: see `body_limit`.
                        let Some(limit) = body_limit(w.partial, w.size, len) else {
                            placing.errors.push(format!(
                                "UID {uid}: the server sent {len} bytes, RFC822.SIZE said {}; \
                                 not stored",
                                w.size
                            ));
                            return;
                        };
                        let opts = NewMessage {
                            flags: letters(&w.flags, &MaildirFlags::empty()),
                            internaldate: Some(w.date),
                        };
                        match dest.create_message(opts) {
                            Ok(mut wr) => {
                                wr.limit(limit);
                                cur = Some((uid, wr, 0));
                            }
                            Err(e) => placing.errors.push(format!("UID {uid}: {e}")),
                        }
                    }
                    BodyEvent::Data { uid, bytes } => {
                        progress.event(ProgressEvent::Bytes {
                            folder,
                            bytes: bytes.len() as u64,
                        });
                        if let Some((u, wr, n)) = cur.as_mut() {
                            if *u == uid {
                                *n += bytes.len() as u64;
                                if let Err(e) = wr.write_chunk(bytes) {
                                    placing.errors.push(format!("UID {uid}: {e}"));
                                    cur = None;
                                }
                            }
                        }
                    }
                    BodyEvent::Abort { uid } => {
                        if let Some((_, wr, _)) = cur.take() {
                            let _ = wr.abort();
                        }
                        placing
                            .errors
                            .push(format!("UID {uid}: body not attributable; not stored"));
                    }
                    BodyEvent::End { uid } => {
                        let Some((u, wr, n)) = cur.take() else { return };
                        let Some(w) = wants.get(&uid).filter(|_| u == uid) else {
                            return;
                        };
                        // Seed V0007: the bytes received must be what RFC822.SIZE announced;
                        // a short or long body is not kept.
                        if !w.partial && n != w.size {
                            placing.errors.push(format!(
                                "UID {uid}: received {n} bytes, RFC822.SIZE said {}; not stored",
                                w.size
                            ));
                            let _ = wr.abort();
                            return;
                        }
                        // A message with no flags goes to `new/`, as a delivery agent would
                        // put it, so mail readers show it as new (the plan's `location`).
                        let subdir = match w.location {
                            Location::New => Subdir::New,
                            Location::Cur => Subdir::Cur,
                        };
                        let mut wr = wr;
                        if w.partial {
                            // Seeds V0010, V0070: the header is followed by a body that says
                            // what is missing, so a reader never takes it for the message.
                            if let Err(e) = wr.write_chunk(placeholder_note(w.size).as_bytes()) {
                                placing.errors.push(format!("UID {uid}: {e}"));
                                let _ = wr.abort();
                                return;
                            }
                        }
                        match &w.replace {
                            // Rare (a partial copy made whole): in place at once.
                            Some(old) => match wr.commit_replacing(old) {
                                Ok(m) => placing.placed.push((uid, Ok((m, None)))),
                                Err(e) => placing.errors.push(format!("UID {uid}: {e}")),
                            },
                            // Put in place once the batch's bodies are all written (see
                            // `MessageWriter::finish`); the directory's fsync is left for once
                            // per batch, before the rows (module docs, "Crash safety").
                            None => match wr.finish(subdir) {
                                Ok(u) => placing.unplaced.push((uid, u)),
                                Err(e) => placing.errors.push(format!("UID {uid}: {e}")),
                            },
                        }
                        if placing.unplaced.len() >= PLACE_BATCH {
                            placing.place();
                        }
                    }
                });
            placing.place();
            if let Err(e) = res {
                if e.is_fatal() {
                    return Err(e.into());
                }
                errors.push(format!("FETCH refused: {e}"));
            }
        }
        self.steps = steps;
        // One fsync per directory the batch linked files into, before any of its rows can
        // reach the commit group. A directory that cannot be synced keeps its files (the next
        // gather reads them and the planner binds them by content) but records none of them.
        let unsynced: BTreeSet<&UnsyncedDir> =
            written.iter().filter_map(|(.., d)| d.as_ref()).collect();
        let mut not_durable: BTreeSet<&UnsyncedDir> = BTreeSet::new();
        for dir in unsynced {
            if let Err(e) = MessageWriter::sync_directory(dir) {
                errors.push(format!("new messages not recorded: {e}"));
                not_durable.insert(dir);
            }
        }
        let got: std::collections::HashSet<u32> = written.iter().map(|(u, ..)| *u).collect();
        let missing = wants.keys().filter(|u| !got.contains(u)).count();
        if missing > 0 && errors.is_empty() {
            // Another client expunged them between our view and the fetch (V0023); the next
            // run sees them gone.
            self.report.folder_mut(&name(folder)).warnings.push(format!(
                "{missing} message(s) vanished from the server during the sync"
            ));
        }
        let mut recs = Vec::new();
        for (uid, m, dir) in &written {
            let Some(w) = wants.get(uid) else { continue };
            if let Some(old) = &w.replace {
                self.ctx(folder).files.remove(old.base.as_str());
                self.report.folder_mut(&name(folder)).completed += 1;
            }
            self.ctx(folder)
                .files
                .insert(m.entry.base.as_str().to_owned(), m.entry.clone());
            if !w.record || dir.as_ref().is_some_and(|d| not_durable.contains(d)) {
                continue;
            }
            let Some(u) = Uid::new(*uid) else { continue };
            let content = RowContent {
                size: w.size,
                internaldate: crate::plan::UnixTime(w.date),
                message_id: w.message_id.clone(),
                hash: if w.partial {
                    None
                } else {
                    Some(crate::plan::ContentHash(m.hash.0))
                },
                partial: w.partial,
            };
            recs.push(record(u, &m.entry.base, &w.flags, &content));
        }
        self.report.folder_mut(&name(folder)).downloaded += written.len();
        if !recs.is_empty() {
            match self.folder_row(folder) {
                Ok(id) => self.defer(move |tx| {
                    for r in &recs {
                        replace_row(tx, id, r)?;
                    }
                    Ok(())
                })?,
                Err(e) => errors.push(e),
            }
        }
        for e in errors {
            self.fail(folder, e);
        }
        Ok(())
    }

    // ----- copies

    /// A new local file whose message the server holds in another folder: `UID COPY` it
    /// there (see [`Op::CopyRemote`] for the order of journal, effect and commit).
    fn copy_remote(&mut self, op: &Op) -> Result<StepResult, SyncError> {
        let Op::CopyRemote {
            from,
            uid,
            to,
            local,
            content,
            flags,
        } = op
        else {
            return Ok(Err("not a copy".into()));
        };
        let Some(entry) = self.ctx(to).files.get(&local.0).cloned() else {
            return Ok(Err(format!("local file {local} vanished before its copy")));
        };
        if self.read_only.contains(to) {
            self.mark_pending(to, PendingKey::Upload(local.clone()))?;
            return Ok(Ok(()));
        }
        let (src, dest) = match (self.wire(from), self.wire(to)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
        };
        let id = match self.folder_row(to) {
            Ok(id) => id,
            Err(e) => return Ok(Err(e)),
        };
        // The source only needs to be open: COPY works on an EXAMINEd folder (RFC 3501
        // 6.4.7), which changes nothing there (no \Recent taken, no write access needed).
        if self.selected.as_ref().is_none_or(|(w, _)| *w != src) {
            match self.remote.select(&src, true) {
                Ok(sel) => {
                    self.selected = Some((src.clone(), true));
                    // The UID is the state's: only under the UIDVALIDITY it was recorded with.
                    let known = self.ctx(from).state_uidvalidity;
                    if sel.uidvalidity.is_none() || sel.uidvalidity != known {
                        return Ok(Err(format!(
                            "UID {uid} not copied from {from}: its UIDVALIDITY changed"
                        )));
                    }
                }
                Err(e) if e.is_fatal() => return Err(e.into()),
                Err(e) => {
                    self.selected = None;
                    return Ok(Err(format!("cannot open {from} to copy from: {e}")));
                }
            }
        }
        // The journal entry is durable before the COPY leaves: the copy keeps the source's
        // size, INTERNALDATE and Message-ID, which is what finds it again after a cut.
        let intent = NewIntent {
            folder: Some(id),
            base: Some(entry.base.clone()),
            hash: content.hash.map(|h| mailfold_store::ContentHash(h.0)),
            detail: encode_intent_detail(
                content.size,
                content.internaldate.0,
                content.message_id.as_deref(),
            ),
            ..NewIntent::new(IntentKind::Append)
        };
        let intent_id = self.db.begin_intent(&intent)?;
        let copied = match self.remote.copy(&[uid.get()], &dest) {
            Ok(c) => c,
            Err(e) if e.is_fatal() => return Err(e.into()),
            Err(e) => {
                // Refused: nothing landed. The next run plans the file again.
                self.db.write(|tx| tx.resolve_intent(intent_id))?;
                return Ok(Err(format!("UID COPY of {uid} from {from} refused: {e}")));
            }
        };
        let known_uv = self
            .db
            .folder(id)?
            .and_then(|f| f.uidvalidity)
            .map(|u| u.get());
        let new_uid = match copied {
            Some((uv, pairs)) if known_uv.is_none() || known_uv == Some(uv) => {
                if known_uv.is_none() {
                    if let Err(e) = self.set_uidvalidity(to, uv) {
                        return Ok(Err(e));
                    }
                }
                pairs
                    .iter()
                    .find(|(s, _)| *s == uid.get())
                    .and_then(|(_, d)| Uid::new(*d))
            }
            _ => None,
        };
        let Some(nu) = new_uid else {
            // Without COPYUID (or with nothing copied: the UID had gone) the journal entry
            // stays open: the next plan binds the copy by its content, the file's flags
            // winning, or drops the entry and plans the file again.
            self.report.folder_mut(&name(to)).copied += 1;
            self.incomplete.insert(to.clone());
            return Ok(Ok(()));
        };
        // The copy carries the source's flags as they are now; the file's replace them. If
        // that fails the journal entry stays, as without COPYUID: the next plan binds the copy
        // with the file's flags winning.
        if let Err(e) = self.select_rw(to)? {
            return Ok(Err(format!(
                "flags of the copy of UID {uid} not stored: {e}"
            )));
        }
        match self
            .remote
            .store(&[nu.get()], StoreOp::Replace, &wire_list(flags), None)
        {
            Ok(_) => {}
            Err(e) if e.is_fatal() => return Err(e.into()),
            Err(e) => {
                return Ok(Err(format!(
                    "flags of the copy of UID {uid} not stored: {e}"
                )))
            }
        }
        let rec = record(nu, &entry.base, flags, content);
        self.db.write(|tx| {
            replace_row(tx, id, &rec)?;
            tx.resolve_intent(intent_id)
        })?;
        self.report.folder_mut(&name(to)).copied += 1;
        self.progress.event(ProgressEvent::Message { folder: to });
        Ok(Ok(()))
    }

    // ----- uploads

    fn upload(&mut self, op: &Op) -> Result<StepResult, SyncError> {
        let Op::Upload {
            folder,
            local,
            flags,
            internaldate,
            message_id,
            ..
        } = op
        else {
            return Ok(Err("not an upload".into()));
        };
        let Some(entry) = self.ctx(folder).files.get(&local.0).cloned() else {
            return Ok(Err(format!("local file {local} vanished before upload")));
        };
        // Known READ-ONLY from a SELECT of this run (V0039): kept pending, no APPEND. Not
        // SELECTed just to ask: an unchanged folder's APPEND needs no SELECT (V0045).
        if self.read_only.contains(folder) {
            self.mark_pending(folder, PendingKey::Upload(local.clone()))?;
            return Ok(Ok(()));
        }
        let src = match self.local_folder(folder) {
            Ok(f) => f,
            Err(e) => return Ok(Err(e)),
        };
        let wire = match self.wire(folder) {
            Ok(w) => w,
            Err(e) => return Ok(Err(e)),
        };
        let id = match self.folder_row(folder) {
            Ok(id) => id,
            Err(e) => return Ok(Err(e)),
        };
        let reader = src.open_upload(&entry)?;
        let (len, hash) = (reader.crlf_len, reader.hash);
        // Seed V0014: binary data (NUL bytes) goes only in a BINARY literal8, never raw in a
        // normal literal; without BINARY the message waits locally, reported.
        let binary = reader.has_nul;
        if binary && !self.remote.has_capability("BINARY") {
            return Ok(Err(format!(
                "local file {local} holds binary data (NUL bytes) and the server does not offer \
                 BINARY (RFC 3516): not uploaded, kept locally"
            )));
        }
        // The journal entry is durable before the APPEND leaves (see the module docs).
        let intent = NewIntent {
            folder: Some(id),
            base: Some(entry.base.clone()),
            hash: Some(hash),
            detail: encode_intent_detail(len, internaldate.0, message_id.as_deref()),
            ..NewIntent::new(IntentKind::Append)
        };
        let intent_id = self.db.begin_intent(&intent)?;
        let wire_flags = wire_list(flags);
        let mut reader = reader;
        let mut result = if binary {
            self.remote
                .append_binary(&wire, &wire_flags, Some(internaldate.0), len, &mut reader)
        } else {
            self.remote
                .append(&wire, &wire_flags, Some(internaldate.0), len, &mut reader)
        };
        if let Err(RemoteError::No {
            trycreate: true, ..
        }) = &result
        {
            // Seeds V0047/V0058: create the folder and retry once.
            match self.remote.create(&wire) {
                Ok(()) => {}
                Err(e) if e.is_fatal() => return Err(e.into()),
                Err(e) => {
                    self.db.write(|tx| tx.resolve_intent(intent_id))?;
                    return Ok(Err(format!("CREATE after TRYCREATE refused: {e}")));
                }
            }
            let mut again = src.open_upload(&entry)?;
            result = if again.has_nul {
                self.remote.append_binary(
                    &wire,
                    &wire_flags,
                    Some(internaldate.0),
                    again.crlf_len,
                    &mut again,
                )
            } else {
                self.remote.append(
                    &wire,
                    &wire_flags,
                    Some(internaldate.0),
                    again.crlf_len,
                    &mut again,
                )
            };
        }
        let appended = match result {
            Ok(a) => a,
            Err(e) if e.is_fatal() => return Err(e.into()),
            Err(e) => {
                // Refused: nothing landed, so the journal entry is settled.
                self.db.write(|tx| tx.resolve_intent(intent_id))?;
                // A folder the gather did not SELECT may be READ-ONLY (V0039): then the
                // refusal is that, and the file waits as a pending change, not an error.
                if matches!(self.access(folder)?, Access::ReadOnly) {
                    self.mark_pending(folder, PendingKey::Upload(local.clone()))?;
                    return Ok(Ok(()));
                }
                return Ok(Err(format!("APPEND refused: {e}")));
            }
        };
        let known_uv = self
            .db
            .folder(id)?
            .and_then(|f| f.uidvalidity)
            .map(|u| u.get());
        let uid = match appended {
            Some((uv, uid)) if known_uv.is_none() || known_uv == Some(uv) => {
                if known_uv.is_none() {
                    if let Err(e) = self.set_uidvalidity(folder, uv) {
                        return Ok(Err(e));
                    }
                }
                Uid::new(uid)
            }
            Some(_) => None,
            None => self.find_appended(folder, message_id.as_deref(), len)?,
        };
        let content = RowContent {
            size: len,
            internaldate: *internaldate,
            message_id: message_id.clone(),
            hash: Some(crate::plan::ContentHash(hash.0)),
            partial: false,
        };
        let rec = uid.map(|u| record(u, &entry.base, flags, &content));
        self.db.write(|tx| {
            if let Some(r) = &rec {
                replace_row(tx, id, r)?;
            }
            tx.resolve_intent(intent_id)
        })?;
        self.report.folder_mut(&name(folder)).uploaded += 1;
        self.progress.event(ProgressEvent::Message { folder });
        Ok(Ok(()))
    }

    /// Without APPENDUID: the copy by Message-ID and size, when exactly one unbound message
    /// fits; otherwise `None` and the next run binds it by content.
    fn find_appended(
        &mut self,
        folder: &FolderPath,
        message_id: Option<&str>,
        size: u64,
    ) -> Result<Option<Uid>, SyncError> {
        let Some(mid) = message_id else {
            return Ok(None);
        };
        if mid
            .bytes()
            .any(|b| b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b))
        {
            return Ok(None);
        }
        if self.select_any(folder)?.is_err() {
            return Ok(None);
        }
        let hits = match self.remote.search_message_id(mid) {
            Ok(h) => h,
            Err(e) if e.is_fatal() => return Err(e.into()),
            Err(_) => return Ok(None),
        };
        let id = self.ctx(folder).state_id;
        let mut fits = Vec::new();
        for d in self.remote.fetch_details(&hits)? {
            let bound = match (id, StoreUid::new(d.uid)) {
                (Some(id), Some(u)) => self.db.message(id, u)?.is_some(),
                _ => false,
            };
            if !bound && d.size == Some(size) {
                fits.push(d.uid);
            }
        }
        Ok(if fits.len() == 1 {
            Uid::new(fits[0])
        } else {
            None
        })
    }

    // ----- moves

    fn move_local(
        &mut self,
        from: &FolderPath,
        local: &LocalId,
        to: &FolderPath,
        uid: Uid,
        content: &RowContent,
        update: &FlagUpdate,
    ) -> Result<StepResult, SyncError> {
        let Some(entry) = self.ctx(from).files.get(&local.0).cloned() else {
            return Ok(Err(format!("local file {local} vanished before the move")));
        };
        let (src, dst) = match (self.local_folder(from), self.local_folder(to)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
        };
        let moved = src.move_to(&entry, &dst)?;
        self.ctx(from).files.remove(&local.0);
        self.ctx(to).files.insert(local.0.clone(), moved);
        self.progress.event(ProgressEvent::Message { folder: to });
        let stored = match self.flag_effects(to, uid, local, update)? {
            Ok(stored) => stored,
            Err(e) => return Ok(Err(e)),
        };
        let base = match base_of(local) {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        };
        let (from_id, to_id) = match (self.folder_row(from), self.folder_row(to)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
        };
        let rec = record(uid, &base, &recorded(update, stored), content);
        self.db.write(|tx| {
            if let Some(old) = tx.message_by_base(from_id, &base)? {
                tx.delete_messages(from_id, &[old.uid])?;
            }
            replace_row(tx, to_id, &rec)
        })?;
        self.report.folder_mut(&name(to)).local_moves += 1;
        Ok(Ok(()))
    }

    fn move_remote(
        &mut self,
        from: &FolderPath,
        uid: Uid,
        to: &FolderPath,
        local: &LocalId,
        content: &RowContent,
        update: &FlagUpdate,
    ) -> Result<StepResult, SyncError> {
        let can_remove = self.remote.has_capability("MOVE")
            || self.remote.has_capability("UIDPLUS")
            || self.account.allow_plain_expunge;
        if !can_remove {
            return Ok(Err(format!(
                "UID {uid} not moved: the server has neither MOVE nor UIDPLUS"
            )));
        }
        if let Some(new) = &update.local {
            if let Some(entry) = self.ctx(to).files.get(&local.0).cloned() {
                if let Ok(f) = self.local_folder(to) {
                    let want = letters(new, &entry.flags);
                    if want != entry.flags {
                        let moved = f.set_flags(&entry, &want)?;
                        self.ctx(to).files.insert(local.0.clone(), moved);
                    }
                }
            }
        }
        if let Err(e) = self.select_rw(from)? {
            return Ok(Err(e));
        }
        let dest = match self.wire(to) {
            Ok(w) => w,
            Err(e) => return Ok(Err(e)),
        };
        let mut res = self.remote.move_or_copy(&[uid.get()], &dest);
        if let Err(RemoteError::No {
            trycreate: true, ..
        }) = &res
        {
            // Seed V0058 (as V0047 for APPEND): create the destination and retry once.
            match self.remote.create(&dest) {
                Ok(()) => res = self.remote.move_or_copy(&[uid.get()], &dest),
                Err(e) if e.is_fatal() => return Err(e.into()),
                Err(e) => return Ok(Err(format!("CREATE after TRYCREATE refused: {e}"))),
            }
        }
        let (moved, pairs) = match res {
            Ok(x) => x,
            Err(e) if e.is_fatal() => return Err(e.into()),
            Err(e) => return Ok(Err(format!("moving UID {uid} refused: {e}"))),
        };
        if !moved {
            let plain = !self.remote.has_capability("UIDPLUS");
            let deleted = vec!["\\Deleted".to_owned()];
            self.remote
                .store(&[uid.get()], StoreOp::Add, &deleted, None)?;
            self.remote.expunge(&[uid.get()], plain)?;
        }
        let new_uid = pairs
            .iter()
            .find(|(s, _)| *s == uid.get())
            .and_then(|(_, d)| Uid::new(*d));
        if let (Some(nu), Some(store)) = (new_uid, &update.remote) {
            let store = FlagStore {
                unchanged_since: None,
                ..store.clone()
            };
            if let Err(e) = self.store_flags(to, nu, &store)? {
                return Ok(Err(e));
            }
        }
        let base = match base_of(local) {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        };
        let (from_id, to_id) = match (self.folder_row(from), self.folder_row(to)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
        };
        let rec = new_uid.map(|nu| record(nu, &base, &update.record, content));
        self.db.write(|tx| {
            tx.delete_messages(from_id, &[StoreUid(uid.0)])?;
            if let Some(r) = &rec {
                replace_row(tx, to_id, r)?;
            }
            Ok(())
        })?;
        self.report.folder_mut(&name(to)).remote_moves += 1;
        self.progress.event(ProgressEvent::Message { folder: to });
        Ok(Ok(()))
    }
}

/// The state rows of the sub-folders of a folder renamed on the server, with the names and
/// directories they have now: the server renamed them with it (RFC 3501 6.3.5), and a local
/// rename moved their directories with the parent's. The planner renames only folders without
/// sub-folders; a user's rename of a parent ([`crate::changes`]) has them.
fn renamed_children(
    db: &StateDb,
    id: mailfold_store::FolderId,
    old_wire: &[u8],
    new_wire: &str,
    delim: Option<char>,
    new_rel: &RelPath,
) -> Result<Vec<(mailfold_store::FolderId, String, RelPath)>, SyncError> {
    let (Some(d), Some(parent)) = (delim, db.folder(id)?) else {
        return Ok(Vec::new());
    };
    let mut prefix = old_wire.to_vec();
    prefix.extend_from_slice(d.to_string().as_bytes());
    let mut out = Vec::new();
    for r in db.folders()? {
        let Some(rest) = r.wire_name.as_bytes().strip_prefix(prefix.as_slice()) else {
            continue;
        };
        let rest = String::from_utf8_lossy(rest);
        let suffix = r
            .local_path
            .as_str()
            .strip_prefix(parent.local_path.as_str())
            .unwrap_or("");
        let local = RelPath::parse(&format!("{}{suffix}", new_rel.as_str()))
            .map_err(|e| SyncError::Config(e.to_string()))?;
        out.push((r.id, format!("{new_wire}{d}{rest}"), local));
    }
    Ok(out)
}

/// Whether an operation's state change may wait for its group's commit: those whose lost
/// commit the next plan recognises from the effect alone and which need no journal entry
/// before a network step (module docs, "Order within a step").
/// The most finished downloads kept in `tmp/` before they are fsynced and moved into place
/// together: enough for a journaled file system to carry many in one commit, few enough that
/// their open files and buffers stay small whatever the batch.
const PLACE_BATCH: usize = 32;

/// A message put in place, with the directory whose fsync its entry waits for, or why not.
type Placed = mailfold_store::Result<(mailfold_store::WrittenMessage, Option<UnsyncedDir>)>;

/// A download batch's finished files and what placing them records.
struct Placing<'p, 'f> {
    placed: Vec<(u32, Placed)>,
    unplaced: Vec<(u32, UnplacedMessage)>,
    written: &'p mut Vec<(u32, mailfold_store::WrittenMessage, Option<UnsyncedDir>)>,
    errors: &'p mut Vec<String>,
    progress: &'f dyn Progress,
    folder: &'f FolderPath,
    steps: &'p mut u64,
    abort_after: Option<u64>,
}

impl Placing<'_, '_> {
    /// Fsyncs (with fsync on) and moves into place every finished file, in the order they
    /// were finished, after all of them were written (`MessageWriter::finish`); each is a step
    /// of the test hook.
    fn place(&mut self) {
        let done = self.placed.drain(..).chain(
            self.unplaced
                .drain(..)
                .map(|(uid, u)| (uid, u.place_deferred())),
        );
        for (uid, committed) in done {
            match committed {
                Ok((m, dir)) => {
                    self.written.push((uid, m, dir));
                    self.progress.event(ProgressEvent::Message {
                        folder: self.folder,
                    });
                    *self.steps += 1;
                    if hook_reached(self.abort_after) {
                        std::process::exit(ABORT_EXIT_CODE);
                    }
                }
                Err(e) => self.errors.push(format!("UID {uid}: {e}")),
            }
        }
    }
}

fn joins_group(op: &Op) -> bool {
    matches!(
        op,
        Op::Bind { .. }
            | Op::SyncFlags { .. }
            | Op::DeleteLocal { .. }
            | Op::ExpungeRemote { .. }
            | Op::ForgetMessage { .. }
            | Op::MarkPending { .. }
            | Op::ClearPending { .. }
            | Op::SetFolderState { .. }
    )
}

/// The flags to record after a flag update: the planned record, or, when its server part was
/// kept pending (V0039), the server's flags as they still are (the record less what the STORE
/// would have added, plus what it would have removed), as the planner records for a folder it
/// knows is read-only.
fn recorded(update: &FlagUpdate, stored: bool) -> FlagSet {
    match (&update.remote, stored) {
        (Some(s), false) => update.record.difference(&s.add).union(&s.remove),
        _ => update.record.clone(),
    }
}

fn pending_of(folder: mailfold_store::FolderId, key: &PendingKey) -> NewPending {
    let (kind, uid, base) = match key {
        PendingKey::Upload(l) => (PendingKind::Append, None, MessageBase::new(&l.0).ok()),
        PendingKey::Flags(u) => (PendingKind::Flags, Some(StoreUid(u.0)), None),
        PendingKey::Expunge(u) => (PendingKind::Expunge, Some(StoreUid(u.0)), None),
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

/// Slack allowed to a header-only download over the message's RFC822.SIZE: a header cannot
/// be larger than its message, but a server that counts sizes loosely costs only this much.
const HEADER_SLACK: u64 = 4096;
/// The largest header block a header-only download keeps, whatever the message's declared
/// size: its RFC822.SIZE is above `max_message_size` (or any size, with headers-only), so it
/// bounds nothing, and a header block of a mebibyte is far past what mail systems carry.
const MAX_HEADER: u64 = 1 << 20;

/// The most wire bytes kept for a body the server announced as `len` bytes (its literal)
/// for a message whose RFC822.SIZE was `size`, or `None` when it cannot be kept at all, so
/// nothing of it is written and its bytes are read past. A whole body must be exactly
/// RFC822.SIZE (seed V0007; checked again on the bytes that arrive), which the planner
/// checked against `max_message_size`; a header-only one (V0010) at most that plus
/// [`HEADER_SLACK`], and never more than [`MAX_HEADER`]. So a 60 MiB literal for a 109-byte
/// message is refused before its first byte is written.
fn body_limit(partial: bool, size: u64, len: u64) -> Option<u64> {
    if !partial {
        return (len == size).then_some(size);
    }
    let limit = size.saturating_add(HEADER_SLACK).min(MAX_HEADER);
    (len <= limit).then_some(limit)
}

#[cfg(test)]
#[test]
fn body_limits_follow_the_announced_size() {
    assert_eq!(body_limit(false, 109, 109), Some(109));
    assert_eq!(body_limit(false, 109, 60 << 20), None);
    assert_eq!(body_limit(false, 109, 108), None);
    assert_eq!(body_limit(true, 109, 80), Some(109 + HEADER_SLACK));
    assert_eq!(body_limit(true, 109, 60 << 20), None);
    assert_eq!(body_limit(true, 4 << 30, 2 << 20), None);
    assert_eq!(body_limit(true, 4 << 30, 64 << 10), Some(MAX_HEADER));
}

/// The body of a partial copy (seeds V0010, V0070), in wire form (CRLF). It follows the
/// original header, unchanged, so the copy still shows who wrote what and when.
fn placeholder_note(size: u64) -> String {
    format!(
        "[mailfold: only the header of this message was downloaded. The whole message \
         ({size} bytes) is still on the server; `mailfold show` fetches it, and a sync with \
         download = \"full\" (or a larger max_message_size) replaces this copy.]\r\n"
    )
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
