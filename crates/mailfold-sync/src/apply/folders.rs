//! Folders: each folder's local directory, server name and state row, found or made on first
//! use; the steps that create, rename and delete folders and record a UIDVALIDITY (V0003); and
//! the session's selected folder, with whether this run may write to it (V0039, V0050).

use mailfold_store::{
    Folder, FolderName, FolderStatus, NewFolder, RelPath, StateDb, StateRead, UidValidity,
};

use crate::plan::{FolderPath, PendingKey};
use crate::remote::Mailbox;
use crate::SyncError;

use super::{name, pending_of, Applier, StepResult};
use crate::step_error::StepError;

/// Whether this run may write to a server folder.
pub(super) enum Access {
    /// Selected for writing.
    Writable,
    /// The server opened it READ-ONLY (V0039): changes for it are kept pending.
    ReadOnly,
    /// It could not be selected.
    Failed(StepError),
}

impl Applier<'_> {
    /// The folder's Maildir directory, opened once per run (see `Applier::opened`), made if
    /// missing.
    pub(super) fn local_folder(&mut self, folder: &FolderPath) -> Result<Folder, StepError> {
        if let Some(rel) = self.ctx(folder).rel.clone() {
            if let Some(f) = self.opened.get(&rel) {
                return Ok(f.clone());
            }
            if let Ok(f) = self.maildir.folder(&rel) {
                self.opened.insert(rel, f.clone());
                return Ok(f);
            }
        }
        let name =
            FolderName::new(folder.0.clone()).map_err(|e| StepError::Unusable(e.to_string()))?;
        let f = self
            .maildir
            .ensure_folder(&name, &mut *self.db)
            .map_err(StepError::local)?;
        self.ctx(folder).rel = Some(f.rel().clone());
        Ok(f)
    }

    /// [`Op::CreateLocalFolder`](crate::plan::Op::CreateLocalFolder).
    pub(super) fn create_local(&mut self, folder: &FolderPath) -> StepResult {
        self.local_folder(folder)?;
        self.report.folder_mut(&name(folder)).created_local = true;
        Ok(())
    }

    /// The folder's name on the server, under the account's root, kept once known.
    pub(super) fn wire(&mut self, folder: &FolderPath) -> Result<Mailbox, StepError> {
        if let Some(w) = self.ctx(folder).wire.clone() {
            return Ok(w);
        }
        let delim = self.g.delimiter;
        let w = self.g.wire_of(folder, delim).map_err(StepError::Unusable)?;
        let ctx = self.ctx(folder);
        ctx.wire = Some(w.clone());
        ctx.delimiter = delim;
        Ok(w)
    }

    /// The folder's state row, created (without UIDVALIDITY) if missing.
    pub(super) fn folder_row(
        &mut self,
        folder: &FolderPath,
    ) -> Result<mailfold_store::FolderId, StepError> {
        if let Some(id) = self.ctx(folder).state_id {
            return Ok(id);
        }
        let wire = self.wire(folder)?;
        let wire_s = String::from_utf8(wire.as_wire().to_vec())
            .map_err(|e| StepError::Unusable(e.to_string()))?;
        if let Some(f) = self
            .db
            .folder_by_wire_name(&wire_s)
            .map_err(StepError::state)?
        {
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
        let id = self
            .db
            .write(|tx| tx.add_folder(&nf))
            .map_err(StepError::state)?;
        self.ctx(folder).state_id = Some(id);
        Ok(id)
    }

    /// [`Op::SetUidValidity`](crate::plan::Op::SetUidValidity), and the UIDVALIDITY of a
    /// folder just created or first told by APPENDUID or COPYUID.
    pub(super) fn set_uidvalidity(&mut self, folder: &FolderPath, uv: UidValidity) -> StepResult {
        let id = self.folder_row(folder)?;
        let old = self
            .db
            .folder(id)
            .map_err(StepError::state)?
            .and_then(|f| f.uidvalidity);
        if old != Some(uv) {
            let st = FolderStatus {
                uidvalidity: Some(uv),
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
                .map_err(StepError::state)?;
        }
        self.ctx(folder).state_uidvalidity = Some(uv);
        Ok(())
    }

    /// [`Op::CreateRemoteFolder`](crate::plan::Op::CreateRemoteFolder): `CREATE`, then the new
    /// folder's UIDVALIDITY from STATUS. A folder that cannot be created is failed for the run.
    pub(super) fn create_remote(&mut self, folder: &FolderPath) -> Result<StepResult, SyncError> {
        if let Err(e) = user_given_name(folder) {
            self.failed.insert(folder.clone());
            return Ok(Err(e));
        }
        let wire = match self.wire(folder) {
            Ok(w) => w,
            Err(e) => {
                self.failed.insert(folder.clone());
                return Ok(Err(e.context("cannot create on the server")));
            }
        };
        match self.remote.create(&wire) {
            Ok(()) => {}
            Err(e) if e.is_fatal() => return Err(e.into()),
            Err(e) => {
                // Seed V0019: the server's own text reaches the user.
                self.failed.insert(folder.clone());
                return Ok(Err(StepError::server("CREATE refused", e)));
            }
        }
        self.report.folder_mut(&name(folder)).created_remote = true;
        let st = self.remote.status(&wire)?;
        match st.uidvalidity {
            Some(uv) => Ok(self.set_uidvalidity(folder, uv)),
            None => {
                self.failed.insert(folder.clone());
                Ok(Err(StepError::Unusable(
                    "created folder has no UIDVALIDITY".into(),
                )))
            }
        }
    }

    /// A local folder renamed as a whole: `RENAME` on the server, then the folder state takes the
    /// new name, keeping its rows (see
    /// [`Op::RenameRemoteFolder`](crate::plan::Op::RenameRemoteFolder)).
    pub(super) fn rename_remote(
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
            return Ok(Err(StepError::Unusable(
                "renamed folder has no state".into(),
            )));
        };
        let rel = step_try!(self.local_folder(to)).rel().clone();
        let Ok(new_s) = String::from_utf8(new.as_wire().to_vec()) else {
            return Ok(Err(StepError::Unusable(
                "folder name is not ASCII on the wire".into(),
            )));
        };
        if self.selected.as_ref().is_some_and(|(w, _)| *w == old) {
            self.remote.unselect()?;
            self.selected = None;
        }
        match self.remote.rename(&old, &new) {
            Ok(()) => {}
            Err(e) if e.is_fatal() => return Err(e.into()),
            // Seed V0019: the server's own text reaches the user.
            Err(e) => return Ok(Err(StepError::server("RENAME refused", e))),
        }
        let delim = self.ctx(from).delimiter.or(self.g.delimiter);
        let children = renamed_children(&*self.db, id, old.as_wire(), &new_s, delim, &rel)?;
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

    /// A server folder renamed as a whole: the Maildir directory follows, then the folder state
    /// takes the new name, keeping its rows (see
    /// [`Op::RenameLocalFolder`](crate::plan::Op::RenameLocalFolder)).
    pub(super) fn rename_local(
        &mut self,
        from: &FolderPath,
        to: &FolderPath,
    ) -> Result<StepResult, SyncError> {
        let new = step_try!(self.wire(to));
        let Some(id) = self.ctx(from).state_id else {
            return Ok(Err(StepError::Unusable(
                "renamed folder has no state".into(),
            )));
        };
        let Some(src) = self.ctx(from).rel.clone() else {
            return Ok(Err(StepError::Unusable(
                "renamed folder has no local directory".into(),
            )));
        };
        let Ok(new_s) = String::from_utf8(new.as_wire().to_vec()) else {
            return Ok(Err(StepError::Unusable(
                "folder name is not ASCII on the wire".into(),
            )));
        };
        let to_name = match FolderName::new(to.0.clone()) {
            Ok(n) => n,
            Err(e) => return Ok(Err(StepError::Unusable(e.to_string()))),
        };
        self.opened.clear();
        let folder = match self.maildir.rename_folder(&src, &to_name, &mut *self.db) {
            Ok(f) => f,
            Err(e) => return Ok(Err(StepError::local(e).context("renaming the local folder"))),
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

    /// [`Op::DeleteLocalFolder`](crate::plan::Op::DeleteLocalFolder): the directory is removed
    /// unless it holds new files.
    pub(super) fn delete_local_folder(&mut self, folder: &FolderPath) -> StepResult {
        let Some(rel) = self.ctx(folder).rel.clone() else {
            return Ok(());
        };
        self.opened.clear();
        match self.maildir.delete_folder(&rel, false) {
            Ok(()) => {
                self.report.folder_mut(&name(folder)).deleted = true;
                Ok(())
            }
            Err(mailfold_store::Error::NotEmpty { .. }) => {
                self.report
                    .folder_mut(&name(folder))
                    .warnings
                    .push("local folder not deleted: it holds new files".into());
                Ok(())
            }
            Err(e) => Err(StepError::local(e)),
        }
    }

    /// [`Op::ForgetFolder`](crate::plan::Op::ForgetFolder): the folder's state row and its pending
    /// changes are deleted.
    pub(super) fn forget_folder(&mut self, folder: &FolderPath) -> Result<StepResult, SyncError> {
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

    /// [`Op::DeleteRemoteFolder`](crate::plan::Op::DeleteRemoteFolder): `DELETE` unless
    /// STATUS finds new messages in the folder.
    pub(super) fn delete_remote(&mut self, folder: &FolderPath) -> Result<StepResult, SyncError> {
        let wire = step_try!(self.wire(folder));
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
            Err(e) => Ok(Err(StepError::server("DELETE refused", e))),
        }
    }

    /// Selects the folder for writing (SELECT without CLOSE in between, V0050).
    pub(super) fn select_rw(&mut self, folder: &FolderPath) -> Result<StepResult, SyncError> {
        let wire = step_try!(self.wire(folder));
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
                    return Ok(Err(StepError::Unusable(
                        "folder is read-only on the server".into(),
                    )));
                }
                self.selected = Some((wire, false));
                Ok(Ok(()))
            }
            Err(e) if e.is_fatal() => Err(e.into()),
            Err(e) => {
                // A refused SELECT leaves no folder selected (RFC 3501 6.3.1).
                self.selected = None;
                Ok(Err(StepError::server("cannot select", e)))
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
    pub(super) fn access(&mut self, folder: &FolderPath) -> Result<Access, SyncError> {
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
    pub(super) fn mark_pending(
        &mut self,
        folder: &FolderPath,
        key: PendingKey,
    ) -> Result<(), SyncError> {
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

    /// Opens the folder for reading or writing, whichever this run is (a pull-only account
    /// EXAMINEs), unless it is open already.
    pub(super) fn select_any(&mut self, folder: &FolderPath) -> Result<StepResult, SyncError> {
        let wire = step_try!(self.wire(folder));
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
                Ok(Err(StepError::server("cannot select", e)))
            }
        }
    }
}

/// Seed V0018: a folder name made locally (a directory the user created) with a control
/// character is refused before anything is sent, whatever the server would accept; a server
/// name with one is only ever mapped safely, never created.
fn user_given_name(p: &FolderPath) -> Result<(), StepError> {
    match p.to_string().chars().find(|c| c.is_control()) {
        Some(c) => Err(StepError::Unusable(format!(
            "folder name {:?} contains the control character U+{:04X}; not created on the \
             server (rename the local folder)",
            p.to_string(),
            u32::from(c)
        ))),
        None => Ok(()),
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
