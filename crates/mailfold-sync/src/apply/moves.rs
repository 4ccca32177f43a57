//! Moves of a message between folders: on the local side the file moves between directories;
//! on the server `UID MOVE` (RFC 6851), or `UID COPY`, `STORE \Deleted` and EXPUNGE.
//! Each carries its flag update, then records the rows of both folders in one transaction.

use crate::plan::{Flag, FlagStore, FlagUpdate, FolderPath, LocalId, RowContent, Uid};
use crate::progress::ProgressEvent;
use crate::remote::{dest_of, Moved, RemoteError, StoreOp};
use crate::step_error::StepError;
use crate::SyncError;
use mailfold_store::StateRead;

use super::flags::recorded;
use super::{base_of, letters, name, record, replace_row, Applier, StepResult};

impl Applier<'_> {
    /// [`Op::MoveLocal`](crate::plan::Op::MoveLocal): a message moved between folders on the server
    /// is moved between directories here, its flag update made on both sides, then the source's row
    /// is deleted and the destination's recorded in one transaction.
    pub(super) fn move_local(
        &mut self,
        from: &FolderPath,
        local: &LocalId,
        to: &FolderPath,
        uid: Uid,
        content: &RowContent,
        update: &FlagUpdate,
    ) -> Result<StepResult, SyncError> {
        let Some(entry) = self.ctx(from).files.get(&local.0).cloned() else {
            return Ok(Err(StepError::Local(format!(
                "local file {local} vanished before the move"
            ))));
        };
        let (src, dst) = match (self.local_folder(from), self.local_folder(to)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
        };
        let moved = src.move_to(&entry, &dst)?;
        self.ctx(from).files.remove(&local.0);
        self.ctx(to).files.insert(local.0.clone(), moved);
        self.progress.event(ProgressEvent::Message { folder: to });
        let stored = step_try!(self.flag_effects(to, uid, local, update)?);
        let base = step_try!(base_of(local));
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

    /// [`Op::MoveRemote`](crate::plan::Op::MoveRemote): a message moved between folders locally is
    /// moved on the server, its flag update made on both sides, then the source's row is deleted
    /// and the destination's recorded in one transaction.
    pub(super) fn move_remote(
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
            return Ok(Err(StepError::Unusable(format!(
                "UID {uid} not moved: the server has neither MOVE nor UIDPLUS"
            ))));
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
        let pairs = step_try!(self.server_move(from, uid, to)?);
        let new_uid = dest_of(&pairs, uid);
        if let (Some(nu), Some(store)) = (new_uid, &update.remote) {
            let store = FlagStore {
                unchanged_since: None,
                ..store.clone()
            };
            if let Err(e) = self.store_flags(to, nu, &store)? {
                return Ok(Err(e));
            }
        }
        let base = step_try!(base_of(local));
        let (from_id, to_id) = match (self.folder_row(from), self.folder_row(to)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
        };
        let rec = new_uid.map(|nu| record(nu, &base, &update.record, content));
        self.db.write(|tx| {
            tx.delete_messages(from_id, &[uid])?;
            if let Some(r) = &rec {
                replace_row(tx, to_id, r)?;
            }
            Ok(())
        })?;
        self.report.folder_mut(&name(to)).remote_moves += 1;
        self.progress.event(ProgressEvent::Message { folder: to });
        Ok(Ok(()))
    }

    /// The server half of a move: `UID MOVE` (RFC 6851) into `to`, creating it once on
    /// `[TRYCREATE]`, or where the server copied instead, `STORE \Deleted` and EXPUNGE of the
    /// source. Returns COPYUID's `(source, destination)` UID pairs (RFC 4315), if given.
    fn server_move(
        &mut self,
        from: &FolderPath,
        uid: Uid,
        to: &FolderPath,
    ) -> Result<Result<Vec<(Uid, Uid)>, StepError>, SyncError> {
        if let Err(e) = self.select_rw(from)? {
            return Ok(Err(e));
        }
        let dest = step_try!(self.wire(to));
        let mut res = self.remote.move_or_copy(&[uid], &dest);
        if let Err(RemoteError::No {
            trycreate: true, ..
        }) = &res
        {
            // Seed V0058 (as V0047 for APPEND): create the destination and retry once.
            match self.remote.create(&dest) {
                Ok(()) => res = self.remote.move_or_copy(&[uid], &dest),
                Err(e) if e.is_fatal() => return Err(e.into()),
                Err(e) => return Ok(Err(StepError::server("CREATE after TRYCREATE refused", e))),
            }
        }
        let Moved { moved, pairs } = match res {
            Ok(x) => x,
            Err(e) if e.is_fatal() => return Err(e.into()),
            Err(e) => {
                return Ok(Err(StepError::server(
                    format!("moving UID {uid} refused"),
                    e,
                )))
            }
        };
        if !moved {
            let plain = !self.remote.has_capability("UIDPLUS");
            self.remote
                .store(&[uid], StoreOp::Add, &[Flag::Deleted], None)?;
            self.remote.expunge(&[uid], plain)?;
        }
        Ok(Ok(pairs))
    }
}
