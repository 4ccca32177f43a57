//! The step loop: runs a plan's operations in order, sends a folder's consecutive downloads
//! and flag changes as batches, keeps the commit group ("Grouped commits" in the docs of
//! [`super`]) and counts the test hook's steps; [`Applier::apply_one`] hands every other
//! operation to the step that carries it out.

use mailfold_store::{FolderStatus, StateRead, Txn};

use crate::plan::{FolderPath, IntentId, ModSeq, Op, PendingKey, Plan, Uid};
use crate::progress::ProgressEvent;
use crate::step_error::StepError;
use crate::SyncError;

use super::{hook_reached, name, pending_of, Applier, StepResult, ABORT_EXIT_CODE, MAX_GROUP};

impl Applier<'_> {
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

    /// The step loop: a folder's consecutive downloads go as one pipelined batch, its
    /// consecutive flag changes as one batch (V0060), every other operation on its own.
    fn apply_ops(&mut self, plan: &Plan) -> Result<(), SyncError> {
        let ops = &plan.ops;
        let mut i = 0;
        while i < ops.len() {
            if let Op::Download { folder, .. } = &ops[i] {
                let j = run_end(
                    ops,
                    i,
                    |op| matches!(op, Op::Download { folder: f, .. } if f == folder),
                );
                if !self.failed.contains(folder) {
                    // The batch's rows are the first change of a new group, so the test hook's
                    // cut inside the batch loses exactly the batch's commit (`apply` module docs).
                    self.flush()?;
                    self.downloads(folder, &ops[i..j])?;
                }
                i = j;
                continue;
            }
            if let Op::SyncFlags { folder, .. } = &ops[i] {
                let j = run_end(
                    ops,
                    i,
                    |op| matches!(op, Op::SyncFlags { folder: f, .. } if f == folder),
                );
                if j - i > 1 {
                    if !self.failed.contains(folder) {
                        self.flag_batch(folder, &ops[i..j])?;
                    }
                    i = j;
                    continue;
                }
            }
            self.apply_step(&ops[i])?;
            i += 1;
        }
        Ok(())
    }

    /// One operation outside a batch: skipped when a folder of it failed, committed after
    /// every earlier one when it does not join groups, and counted for the test hook.
    fn apply_step(&mut self, op: &Op) -> Result<(), SyncError> {
        if op.folders().iter().any(|f| self.failed.contains(*f)) {
            return Ok(());
        }
        if !joins_group(op) {
            // Its own commit (or journal entry) comes after every earlier one.
            self.flush()?;
        }
        if let Err(msg) = self.apply_one(op)? {
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
        self.step_done()
    }

    /// One operation: hands it to the step that carries it out. The outer error ends the run;
    /// the inner one is a failed step.
    fn apply_one(&mut self, op: &Op) -> Result<StepResult, SyncError> {
        match op {
            Op::CreateLocalFolder { folder } => Ok(self.create_local(folder)),
            Op::CreateRemoteFolder { folder } => self.create_remote(folder),
            Op::SetUidValidity {
                folder,
                uidvalidity,
            } => Ok(self.set_uidvalidity(folder, *uidvalidity)),
            Op::Bind {
                folder,
                uid,
                local,
                content,
                update,
            } => self.bind(folder, *uid, local, content, update),
            Op::SyncFlags {
                folder,
                uid,
                local,
                update,
            } => self.sync_flags(folder, *uid, local, update),
            Op::Upload { .. } => self.upload(op),
            Op::CopyRemote { .. } => self.copy_remote(op),
            Op::DeleteLocal { folder, uid, local } => self.delete_local(folder, *uid, local),
            Op::ExpungeRemote {
                folder,
                uid,
                unchanged_since,
            } => self.expunge_remote(folder, *uid, *unchanged_since),
            Op::ForgetMessage { folder, uid, local } => self.forget_message(folder, *uid, local),
            Op::MarkPending { folder, key } => self.queue_pending(folder, key),
            Op::ClearPending { folder, key } => self.clear_pending(folder, key),
            Op::DropIntent { id } => self.drop_intent(*id),
            Op::DeleteLocalFolder { folder } => Ok(self.delete_local_folder(folder)),
            Op::DeleteRemoteFolder { folder } => self.delete_remote(folder),
            Op::RenameRemoteFolder { from, to } => self.rename_remote(from, to),
            Op::RenameLocalFolder { from, to } => self.rename_local(from, to),
            Op::ForgetFolder { folder } => self.forget_folder(folder),
            Op::SetFolderState {
                folder,
                uidnext,
                highestmodseq,
            } => self.set_folder_state(folder, *uidnext, *highestmodseq),
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
            Op::Download { .. } => Ok(Err(StepError::Internal("download outside a batch".into()))),
        }
    }

    // ----- the steps that only record

    /// [`Op::MarkPending`]: a local change kept for a read-only folder (V0039).
    fn queue_pending(
        &mut self,
        folder: &FolderPath,
        key: &PendingKey,
    ) -> Result<StepResult, SyncError> {
        let id = step_try!(self.folder_row(folder));
        let p = pending_of(id, key);
        self.defer(move |tx| tx.queue_pending(&p).map(|_| ()))?;
        Ok(Ok(()))
    }

    /// [`Op::ClearPending`]: a pending change settled (V0039).
    fn clear_pending(
        &mut self,
        folder: &FolderPath,
        key: &PendingKey,
    ) -> Result<StepResult, SyncError> {
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

    /// [`Op::DropIntent`]: a journal entry whose outcome the plan settled.
    fn drop_intent(&mut self, id: IntentId) -> Result<StepResult, SyncError> {
        self.db.write(|tx| tx.resolve_intent(id))?;
        Ok(Ok(()))
    }

    /// [`Op::SetFolderState`]: the folder's UIDNEXT and HIGHESTMODSEQ, unless a step of the
    /// folder failed in this run (the `apply` module docs: the older record makes the next
    /// run look again).
    fn set_folder_state(
        &mut self,
        folder: &FolderPath,
        uidnext: Option<Uid>,
        highestmodseq: Option<ModSeq>,
    ) -> Result<StepResult, SyncError> {
        if self.incomplete.contains(folder) {
            return Ok(Ok(()));
        }
        let id = step_try!(self.folder_row(folder));
        let (uidnext, highestmodseq) = (uidnext.map(|u| u.0), highestmodseq.map(|m| m.0.get()));
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

    pub(super) fn step_done(&mut self) -> Result<(), SyncError> {
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

    /// Adds a state change to the current group (`apply` module docs, "Grouped commits").
    pub(super) fn defer(
        &mut self,
        change: impl FnOnce(&Txn<'_>) -> mailfold_store::Result<()> + 'static,
    ) -> Result<(), SyncError> {
        self.deferred.push(Box::new(change));
        if self.deferred.len() >= MAX_GROUP {
            self.flush()?;
        }
        Ok(())
    }

    /// Commits the current group in one transaction, in step order, without an fsync of its
    /// own: a group holds only changes whose lost commit the next plan recognises from the
    /// effect ([`joins_group`]), so a power cut that loses it costs what a kill before it
    /// does. The next synced commit (a download's rows, an intent) or the close of the
    /// database makes it durable.
    pub(super) fn flush(&mut self) -> Result<(), SyncError> {
        if self.deferred.is_empty() {
            return Ok(());
        }
        let group = std::mem::take(&mut self.deferred);
        self.db.write_unsynced(|tx| {
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

    pub(super) fn fail(&mut self, folder: &FolderPath, msg: StepError) {
        self.incomplete.insert(folder.clone());
        self.report.folder_mut(&name(folder)).errors.push(msg);
    }
}

/// The end of the run of operations from `i` on that `same` accepts (`ops[i]` is one).
fn run_end(ops: &[Op], i: usize, same: impl Fn(&Op) -> bool) -> usize {
    let mut j = i + 1;
    while j < ops.len() && same(&ops[j]) {
        j += 1;
    }
    j
}

/// Whether an operation's state change may wait for its group's commit: those whose lost
/// commit the next plan recognises from the effect alone and which need no journal entry
/// before a network step (`apply` module docs, "Order within a step").
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

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
