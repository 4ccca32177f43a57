//! The step loop: runs a plan's operations in order, sends a folder's consecutive downloads
//! and flag changes as batches, keeps the commit group ("Grouped commits" in the docs of
//! [`super`]) and counts the test hook's steps; [`Applier::apply_one`] hands every other
//! operation to the step that carries it out.

use crate::gather::base_of;
use crate::plan::FolderPath;
use crate::plan::{Op, Plan};
use crate::progress::ProgressEvent;
use crate::SyncError;
use mailfold_store::{
    FlagUpdate as StoreFlagUpdate, FolderStatus, IntentId, StateRead, Txn, Uid as StoreUid,
};

use super::flags::recorded;
use super::{
    hook_reached, name, pending_of, record, replace_row, split_flags, Applier, StepResult,
    ABORT_EXIT_CODE, MAX_GROUP,
};

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

    pub(super) fn apply_ops(&mut self, plan: &Plan) -> Result<(), SyncError> {
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
    pub(super) fn apply_one(&mut self, op: &Op) -> Result<StepResult, SyncError> {
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

    /// Adds a state change to the current group (module docs, "Grouped commits").
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

    /// Commits the current group in one transaction, in step order.
    pub(super) fn flush(&mut self) -> Result<(), SyncError> {
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

    pub(super) fn fail(&mut self, folder: &FolderPath, msg: String) {
        self.incomplete.insert(folder.clone());
        self.report.folder_mut(&name(folder)).errors.push(msg);
    }
}

/// Whether an operation's state change may wait for its group's commit: those whose lost
/// commit the next plan recognises from the effect alone and which need no journal entry
/// before a network step (module docs, "Order within a step").
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
