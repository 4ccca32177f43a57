//! Deletions of messages: a local file unlinked, a server message expunged (`STORE \\Deleted`
//! then `UID EXPUNGE`; a bare EXPUNGE only where the account allows it), a row forgotten. Each
//! effect comes before its row's deletion ("Deletions" in the crash-safety argument in the
//! docs of [`super`]).

use mailfold_store::Uid as StoreUid;

use crate::plan::{FolderPath, PendingKey, Uid};
use crate::remote::StoreOp;
use crate::SyncError;

use super::folders::Access;
use super::{name, Applier, StepResult};

impl Applier<'_> {
    pub(super) fn expunge_remote(
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
}
