//! Deletions of messages: a local file unlinked, a server message expunged (`STORE \Deleted`
//! then `UID EXPUNGE`; a bare EXPUNGE only where the account allows it), a row forgotten. Each
//! effect comes before its row's deletion ("Deletions" in the crash-safety argument in the
//! docs of [`super`]).

use mailfold_store::StateRead;

use crate::gather::base_of;
use crate::plan::{Flag, FolderPath, LocalId, ModSeq, PendingKey, Uid};
use crate::remote::StoreOp;
use crate::step_error::StepError;
use crate::SyncError;

use super::folders::Access;
use super::{name, Applier, StepResult};

impl Applier<'_> {
    /// [`Op::DeleteLocal`](crate::plan::Op::DeleteLocal): the file is unlinked, then its row
    /// deleted.
    pub(super) fn delete_local(
        &mut self,
        folder: &FolderPath,
        uid: Uid,
        local: &LocalId,
    ) -> Result<StepResult, SyncError> {
        if let Some(entry) = self.ctx(folder).files.get(&local.0).cloned() {
            let f = step_try!(self.local_folder(folder));
            f.delete(&entry)?;
            self.ctx(folder).files.remove(&local.0);
        }
        if let Ok(id) = self.folder_row(folder) {
            self.defer(move |tx| tx.delete_messages(id, &[uid]))?;
        }
        self.report.folder_mut(&name(folder)).local_deletions += 1;
        Ok(Ok(()))
    }

    /// [`Op::ForgetMessage`](crate::plan::Op::ForgetMessage): a message gone from both sides; its
    /// row, bound by UID or by the file's base (or unbound by a UIDVALIDITY change, V0003), is
    /// deleted.
    pub(super) fn forget_message(
        &mut self,
        folder: &FolderPath,
        uid: Option<Uid>,
        local: &LocalId,
    ) -> Result<StepResult, SyncError> {
        if let Ok(id) = self.folder_row(folder) {
            let base = base_of(local).ok();
            self.defer(move |tx| {
                if let Some(u) = uid {
                    tx.delete_messages(id, &[u])?;
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

    pub(super) fn expunge_remote(
        &mut self,
        folder: &FolderPath,
        uid: Uid,
        since: Option<ModSeq>,
    ) -> Result<StepResult, SyncError> {
        let plain = !self.remote.has_capability("UIDPLUS");
        if plain && !self.account.allow_plain_expunge {
            return Ok(Err(StepError::Unusable(format!(
                "UID {uid} not expunged: the server lacks UIDPLUS and a bare EXPUNGE \
                 (which would also remove other clients' \\Deleted messages) is not allowed \
                 for this account"
            ))));
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
        match self
            .remote
            .store(&[uid], StoreOp::Add, &[Flag::Deleted], since)
        {
            Ok(m) if !m.is_empty() => {
                return Ok(Err(StepError::Changed(format!(
                    "UID {uid} changed on the server meanwhile; not expunged this run"
                ))))
            }
            Ok(_) => {}
            Err(e) if e.is_fatal() => return Err(e.into()),
            Err(e) => return Ok(Err(StepError::server("STORE \\Deleted refused", e))),
        }
        match self.remote.expunge(&[uid], plain) {
            Ok(()) => {}
            Err(e) if e.is_fatal() => return Err(e.into()),
            Err(e) => return Ok(Err(StepError::server("EXPUNGE refused", e))),
        }
        if let Ok(id) = self.folder_row(folder) {
            self.defer(move |tx| tx.delete_messages(id, &[uid]))?;
        }
        self.report.folder_mut(&name(folder)).remote_deletions += 1;
        Ok(Ok(()))
    }
}
