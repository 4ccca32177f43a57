//! Flags: a message's flags set on both sides, one message at a time or as a folder's batch
//! (V0060). The order is the "Flags" item of the crash-safety argument in the docs of
//! [`super`]: the file is renamed, then `UID STORE` is sent, then the synced flags are
//! recorded; a batch fsyncs the directories it renamed files in (`Folder::set_flags_unsynced`,
//! `Folder::sync_subdirs`) once, before any of its rows can reach the commit group.

use std::collections::{BTreeMap, BTreeSet};

use mailfold_store::{FlagUpdate as StoreFlagUpdate, Subdir};

use crate::plan::{
    Flag, FlagSet, FlagStore, FlagUpdate, FolderPath, LocalId, Op, PendingKey, RowContent, Uid,
};
use crate::progress::ProgressEvent;
use crate::remote::{ModSeq, StoreOp, Stored};
use crate::step_error::StepError;
use crate::SyncError;

use super::folders::Access;
use super::{
    base_of, flag_list, letters, name, record, replace_row, split_flags, Applier, StepResult,
};

impl Applier<'_> {
    /// [`Op::Bind`]: a message found on both sides, recorded with its flags settled.
    pub(super) fn bind(
        &mut self,
        folder: &FolderPath,
        uid: Uid,
        local: &LocalId,
        content: &RowContent,
        update: &FlagUpdate,
    ) -> Result<StepResult, SyncError> {
        let stored = step_try!(self.flag_effects(folder, uid, local, update)?);
        let base = step_try!(base_of(local));
        let rec = record(uid, &base, &recorded(update, stored), content);
        let id = step_try!(self.folder_row(folder));
        self.defer(move |tx| replace_row(tx, id, &rec))?;
        self.report.folder_mut(&name(folder)).bound += 1;
        Ok(Ok(()))
    }

    /// One [`Op::SyncFlags`] on its own (a run of them in one folder is a [`Self::flag_batch`]).
    pub(super) fn sync_flags(
        &mut self,
        folder: &FolderPath,
        uid: Uid,
        local: &LocalId,
        update: &FlagUpdate,
    ) -> Result<StepResult, SyncError> {
        let stored = step_try!(self.flag_effects(folder, uid, local, update)?);
        let id = step_try!(self.folder_row(folder));
        self.progress.event(ProgressEvent::Message { folder });
        let (flags, keywords) = split_flags(&recorded(update, stored));
        let upd = StoreFlagUpdate {
            uid,
            flags,
            keywords,
        };
        self.defer(move |tx| tx.update_flags(id, std::slice::from_ref(&upd)))?;
        Ok(Ok(()))
    }

    /// The local part (rename) then the server part (UID STORE) of a flag update. `Ok(false)`
    /// when the server part was kept pending instead (the folder is read-only, V0039): the
    /// record is then the server's flags ([`recorded`]), so the local change stays a change.
    pub(super) fn flag_effects(
        &mut self,
        folder: &FolderPath,
        uid: Uid,
        local: &LocalId,
        update: &FlagUpdate,
    ) -> Result<Result<bool, StepError>, SyncError> {
        if let Some(new) = &update.local {
            step_try!(self.local_flag_effect(folder, local, new, None)?);
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
                    return Ok(Err(StepError::Changed(format!(
                        "UID {uid} changed on the server meanwhile; flags merge on the next run"
                    ))));
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
    /// Crash safety is that of one [`Op::SyncFlags`] per message (see the module docs of
    /// `apply`): the effects of every message are done before the commit, and a kill in
    /// between merges back as a change agreed on by both sides.
    pub(super) fn flag_batch(&mut self, folder: &FolderPath, ops: &[Op]) -> Result<(), SyncError> {
        let mut b = FlagBatch::default();
        self.flag_batch_local(folder, ops, &mut b)?;
        if !b.groups.is_empty() {
            self.flag_batch_access(folder, ops, &mut b)?;
        }
        self.flag_batch_stores(&mut b)?;
        if !b.renamed_in.is_empty() {
            self.flag_batch_sync(folder, ops, &mut b);
        }
        self.flag_batch_record(folder, ops, &b)?;
        // The test hook counts the batch's steps after its commit: a run cut before it would
        // find the same batch (now with nothing but the commit left) and be cut there again,
        // so a chain of runs each cut after its first step would never get past it.
        for _ in ops {
            self.step_done()?;
        }
        for (_, e) in b.failed {
            self.fail(folder, e);
        }
        Ok(())
    }

    /// The batch's local part, every file renamed (directories left for
    /// [`Self::flag_batch_sync`]), and its server part sorted into [`FlagBatch::groups`].
    fn flag_batch_local(
        &mut self,
        folder: &FolderPath,
        ops: &[Op],
        b: &mut FlagBatch,
    ) -> Result<(), SyncError> {
        for op in ops {
            let Op::SyncFlags {
                uid, local, update, ..
            } = op
            else {
                continue;
            };
            if let Some(new) = &update.local {
                if let Err(e) =
                    self.local_flag_effect(folder, local, new, Some(&mut b.renamed_in))?
                {
                    b.failed.insert(*uid, e);
                    continue;
                }
            }
            let Some(store) = &update.remote else {
                continue;
            };
            let since = store.unchanged_since;
            for (add, set) in [(true, &store.add), (false, &store.remove)] {
                if set.is_empty() {
                    continue;
                }
                let g = b
                    .groups
                    .entry((add, flag_list(set), since.is_some()))
                    .or_default();
                g.0.push(*uid);
                g.1 = g.1.max(since);
            }
        }
        Ok(())
    }

    /// Whether the batch's stores may be sent: on a folder found READ-ONLY (V0039) each
    /// server part is kept pending instead; on one that cannot be selected each fails.
    fn flag_batch_access(
        &mut self,
        folder: &FolderPath,
        ops: &[Op],
        b: &mut FlagBatch,
    ) -> Result<(), SyncError> {
        match self.access(folder)? {
            Access::Writable => return Ok(()),
            Access::ReadOnly => {
                for op in ops {
                    if let Op::SyncFlags { uid, update, .. } = op {
                        if update.remote.is_some() && !b.failed.contains_key(uid) {
                            self.mark_pending(folder, PendingKey::Flags(*uid))?;
                            b.pending.insert(*uid);
                        }
                    }
                }
            }
            Access::Failed(e) => {
                for op in ops {
                    if let Op::SyncFlags { uid, update, .. } = op {
                        if update.remote.is_some() {
                            b.failed.entry(*uid).or_insert_with(|| e.clone());
                        }
                    }
                }
            }
        }
        b.groups.clear();
        Ok(())
    }

    /// One `UID STORE` per group and chunk, adds before removes as the one-message path does;
    /// a message MODIFIED (RFC 7162) or refused fails.
    fn flag_batch_stores(&mut self, b: &mut FlagBatch) -> Result<(), SyncError> {
        /// Messages per UID STORE, so a scattered set keeps the command line short (a few
        /// kilobytes at most; servers limit line length).
        const STORE_CHUNK: usize = 500;
        let mut order: Vec<StoreKey> = b.groups.keys().cloned().collect();
        // Adds first; then in the order of the flags' wire text, as the stores have always
        // been sent.
        order
            .sort_by_cached_key(|k| (!k.0, k.1.iter().map(Flag::to_imap).collect::<Vec<_>>(), k.2));
        let mut new_modseq: BTreeMap<Uid, ModSeq> = BTreeMap::new();
        for key in order {
            let Some((uids, since)) = b.groups.remove(&key) else {
                continue;
            };
            let (add, flags, conditional) = key;
            let op = if add { StoreOp::Add } else { StoreOp::Remove };
            let live: Vec<Uid> = uids
                .into_iter()
                .filter(|u| !b.failed.contains_key(u))
                .collect();
            for chunk in live.chunks(STORE_CHUNK) {
                let since = since.filter(|_| conditional).map(|since| {
                    // Our own earlier store in this batch raised these messages' MODSEQ.
                    chunk
                        .iter()
                        .filter_map(|u| new_modseq.get(u))
                        .fold(since, |hi, &m| hi.max(m))
                });
                match self.remote.store_tracked(chunk, op, &flags, since) {
                    Ok(Stored { modified, modseqs }) => {
                        for u in modified {
                            b.failed.insert(
                                u,
                                StepError::Changed(format!(
                                    "UID {u} changed on the server meanwhile; flags merge on the next run"
                                )),
                            );
                        }
                        new_modseq.extend(modseqs);
                    }
                    Err(e) if e.is_fatal() => return Err(e.into()),
                    Err(e) => {
                        for u in chunk {
                            b.failed
                                .insert(*u, StepError::server("STORE refused", e.clone()));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The one fsync of each directory the batch renamed files in (with fsync on), before any
    /// of its rows can reach the commit group.
    fn flag_batch_sync(&mut self, folder: &FolderPath, ops: &[Op], b: &mut FlagBatch) {
        let synced = self
            .local_folder(folder)
            .and_then(|f| f.sync_subdirs(&b.renamed_in).map_err(StepError::local));
        if let Err(e) = synced {
            // Renamed but not durable: none of the local changes is recorded. The next
            // run finds the files' flags ahead of the state and agrees with the server.
            for op in ops {
                if let Op::SyncFlags { uid, update, .. } = op {
                    if update.local.is_some() {
                        b.failed
                            .entry(*uid)
                            .or_insert_with(|| e.clone().context("renames not durable"));
                    }
                }
            }
        }
    }

    /// The synced flags of every message of the batch that did not fail, as one change of
    /// the commit group.
    fn flag_batch_record(
        &mut self,
        folder: &FolderPath,
        ops: &[Op],
        b: &FlagBatch,
    ) -> Result<(), SyncError> {
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
            if b.failed.contains_key(uid) {
                continue;
            }
            let stored = !b.pending.contains(uid);
            let (flags, keywords) = split_flags(&recorded(update, stored));
            updates.push(StoreFlagUpdate {
                uid: *uid,
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
        Ok(())
    }

    /// The local part of a flag update: the file is renamed so that its `:2,` suffix carries
    /// `new`. With `renamed_in`, the directories renamed in are added there and left for the
    /// caller to fsync; without, each rename is synced.
    fn local_flag_effect(
        &mut self,
        folder: &FolderPath,
        local: &LocalId,
        new: &FlagSet,
        renamed_in: Option<&mut Vec<Subdir>>,
    ) -> Result<StepResult, SyncError> {
        let Some(entry) = self.ctx(folder).files.get(&local.0).cloned() else {
            return Ok(Err(StepError::Local(format!(
                "local file {local} vanished"
            ))));
        };
        let f = step_try!(self.local_folder(folder));
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
    pub(super) fn store_flags(
        &mut self,
        folder: &FolderPath,
        uid: Uid,
        s: &FlagStore,
    ) -> Result<Result<bool, StepError>, SyncError> {
        if let Err(e) = self.select_rw(folder)? {
            return Ok(Err(e));
        }
        let mut since = s.unchanged_since;
        for (op, set) in [(StoreOp::Add, &s.add), (StoreOp::Remove, &s.remove)] {
            if set.is_empty() {
                continue;
            }
            match self
                .remote
                .store_tracked(&[uid], op, &flag_list(set), since)
            {
                Ok(stored) if !stored.modified.is_empty() => return Ok(Ok(false)),
                Ok(stored) => {
                    // Our own store raised the MODSEQ; the next store is conditional on the
                    // new value, not on the view's (which would report our change as MODIFIED).
                    if let Some(m) = stored.modseq_of(uid) {
                        since = since.map(|s| s.max(m));
                    }
                }
                Err(e) if e.is_fatal() => return Err(e.into()),
                Err(e) => return Ok(Err(StepError::server("STORE refused", e))),
            }
        }
        Ok(Ok(true))
    }
}

/// A [`Applier::flag_batch`] under way, by UID.
#[derive(Default)]
struct FlagBatch {
    /// Messages whose change failed, with the reason; none of them is recorded.
    failed: BTreeMap<Uid, StepError>,
    /// One `UID STORE` each: (add?, wire flags, conditional?) → (UIDs, highest UNCHANGEDSINCE).
    groups: BTreeMap<StoreKey, (Vec<Uid>, Option<ModSeq>)>,
    /// The folder's subdirectories the batch renamed files in, each fsynced once (with fsync
    /// on) before any of the batch's rows can reach the commit group.
    renamed_in: Vec<Subdir>,
    /// Messages whose server part is kept pending (V0039): their local part is done.
    pending: BTreeSet<Uid>,
}

/// A group of a flag batch: `+FLAGS` or `-FLAGS`, the flags, and whether it is conditional
/// (UNCHANGEDSINCE).
type StoreKey = (bool, Vec<Flag>, bool);

/// The flags to record after a flag update: the planned record, or, when its server part was
/// kept pending (V0039), the server's flags as they still are (the record less what the STORE
/// would have added, plus what it would have removed), as the planner records for a folder it
/// knows is read-only.
pub(super) fn recorded(update: &FlagUpdate, stored: bool) -> FlagSet {
    match (&update.remote, stored) {
        (Some(s), false) => update.record.difference(&s.add).union(&s.remove),
        _ => update.record.clone(),
    }
}
