//! Uploads: a new local file sent to the server with `APPEND` (BINARY literal8 for NUL bytes,
//! V0014; the folder created on `[TRYCREATE]`, V0047), or, when the server already holds its
//! message in another folder, a server copy with `UID COPY`. Each keeps the order of the
//! "Upload" and "Server copy" items of the crash-safety argument in the `apply` module docs:
//! the journal entry (an APPEND intent with the size, INTERNALDATE and Message-ID that find the
//! server's copy again) is committed before the command is sent, and removed in the
//! transaction that records the new row.

use mailfold_store::{
    Folder, FolderId, IntentId, IntentKind, MessageEntry, NewIntent, StateRead, UploadReader,
};

use crate::gather::encode_intent_detail;
use crate::plan::{
    Flag, FlagSet, FolderPath, LocalId, Op, PendingKey, RowContent, Uid, UidValidity,
};
use crate::progress::ProgressEvent;
use crate::remote::{Appended, Mailbox, RemoteError, StoreOp};
use crate::step_error::StepError;
use crate::SyncError;

use super::folders::Access;
use super::{flag_list, name, record, replace_row, Applier, StepResult};

impl Applier<'_> {
    /// A new local file whose message the server holds in another folder: `UID COPY` it
    /// there (see [`Op::CopyRemote`] for the order of journal, effect and commit).
    pub(super) fn copy_remote(&mut self, op: &Op) -> Result<StepResult, SyncError> {
        let Op::CopyRemote {
            from,
            uid,
            to,
            local,
            content,
            flags,
        } = op
        else {
            return Ok(Err(StepError::Internal("not a copy".into())));
        };
        let Some(entry) = self.ctx(to).files.get(&local.0).cloned() else {
            return Ok(Err(StepError::Local(format!(
                "local file {local} vanished before its copy"
            ))));
        };
        if self.read_only.contains(to) {
            self.mark_pending(to, PendingKey::Upload(local.clone()))?;
            return Ok(Ok(()));
        }
        let (src, dest) = match (self.wire(from), self.wire(to)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
        };
        let id = step_try!(self.folder_row(to));
        step_try!(self.open_copy_source(from, &src, *uid)?);
        // The journal entry is durable before the COPY leaves: the copy keeps the source's
        // size, INTERNALDATE and Message-ID, which is what finds it again after a cut.
        let intent = append_intent(
            id,
            &entry,
            content.hash,
            content.size,
            content.internaldate.0,
            content.message_id.as_deref(),
        );
        let intent_id = self.db.begin_intent(&intent)?;
        let copied = match self.remote.copy(&[*uid], &dest) {
            Ok(c) => c,
            Err(e) if e.is_fatal() => return Err(e.into()),
            Err(e) => {
                // Refused: nothing landed. The next run plans the file again.
                self.db.write(|tx| tx.resolve_intent(intent_id))?;
                return Ok(Err(StepError::server(
                    format!("UID COPY of {uid} from {from} refused"),
                    e,
                )));
            }
        };
        let fits =
            step_try!(self.fits_uidvalidity(to, id, copied.as_ref().map(|c| c.uidvalidity))?);
        let new_uid = copied.filter(|_| fits).and_then(|c| c.dest_of(*uid));
        let Some(nu) = new_uid else {
            // Without COPYUID (or with nothing copied: the UID had gone) the journal entry
            // stays open: the next plan binds the copy by its content, the file's flags
            // winning, or drops the entry and plans the file again.
            self.report.folder_mut(&name(to)).copied += 1;
            self.incomplete.insert(to.clone());
            return Ok(Ok(()));
        };
        step_try!(self.store_copy_flags(to, *uid, nu, flags)?);
        let rec = record(nu, &entry.base, flags, content);
        self.db.write(|tx| {
            replace_row(tx, id, &rec)?;
            tx.resolve_intent(intent_id)
        })?;
        self.report.folder_mut(&name(to)).copied += 1;
        self.progress.event(ProgressEvent::Message { folder: to });
        Ok(Ok(()))
    }

    /// Opens the source of a server copy unless it is open already. It only needs to be
    /// open: COPY works on an EXAMINEd folder (RFC 3501 6.4.7), which changes nothing there
    /// (no \Recent taken, no write access needed).
    fn open_copy_source(
        &mut self,
        from: &FolderPath,
        src: &Mailbox,
        uid: Uid,
    ) -> Result<StepResult, SyncError> {
        if self.selected.as_ref().is_some_and(|(w, _)| w == src) {
            return Ok(Ok(()));
        }
        match self.remote.select(src, true) {
            Ok(sel) => {
                self.selected = Some((src.clone(), true));
                // The UID is the state's: only under the UIDVALIDITY it was recorded with.
                let known = self.ctx(from).state_uidvalidity;
                if sel.uidvalidity.is_none() || sel.uidvalidity != known {
                    return Ok(Err(StepError::Changed(format!(
                        "UID {uid} not copied from {from}: its UIDVALIDITY changed"
                    ))));
                }
                Ok(Ok(()))
            }
            Err(e) if e.is_fatal() => Err(e.into()),
            Err(e) => {
                self.selected = None;
                Ok(Err(StepError::server(
                    format!("cannot open {from} to copy from"),
                    e,
                )))
            }
        }
    }

    /// The copy carries the source's flags as they are now; the file's replace them. If
    /// that fails the journal entry stays, as without COPYUID: the next plan binds the copy
    /// with the file's flags winning.
    fn store_copy_flags(
        &mut self,
        to: &FolderPath,
        uid: Uid,
        new_uid: Uid,
        flags: &FlagSet,
    ) -> Result<StepResult, SyncError> {
        if let Err(e) = self.select_rw(to)? {
            return Ok(Err(
                e.context(format!("flags of the copy of UID {uid} not stored"))
            ));
        }
        match self
            .remote
            .store(&[new_uid], StoreOp::Replace, &flag_list(flags), None)
        {
            Ok(_) => Ok(Ok(())),
            Err(e) if e.is_fatal() => Err(e.into()),
            Err(e) => Ok(Err(StepError::server(
                format!("flags of the copy of UID {uid} not stored"),
                e,
            ))),
        }
    }

    /// Whether a UID the server reported under `uidvalidity` (APPENDUID or COPYUID, RFC
    /// 4315) may be recorded in the folder's state row `id`: when the row has no UIDVALIDITY
    /// yet (it is recorded now) or the same one. `false` without a report.
    fn fits_uidvalidity(
        &mut self,
        folder: &FolderPath,
        id: FolderId,
        uidvalidity: Option<UidValidity>,
    ) -> Result<Result<bool, StepError>, SyncError> {
        let known = self.db.folder(id)?.and_then(|f| f.uidvalidity);
        Ok(match (uidvalidity, known) {
            (None, _) => Ok(false),
            (Some(uv), None) => self.set_uidvalidity(folder, uv).map(|()| true),
            (Some(uv), Some(k)) => Ok(uv == k),
        })
    }

    /// [`Op::Upload`]: a new local file sent with `APPEND` under its journal entry (the
    /// "Upload" item of the crash-safety argument of `apply`).
    pub(super) fn upload(&mut self, op: &Op) -> Result<StepResult, SyncError> {
        let Op::Upload {
            folder,
            local,
            flags,
            internaldate,
            message_id,
            ..
        } = op
        else {
            return Ok(Err(StepError::Internal("not an upload".into())));
        };
        let Some(entry) = self.ctx(folder).files.get(&local.0).cloned() else {
            return Ok(Err(StepError::Local(format!(
                "local file {local} vanished before upload"
            ))));
        };
        // Known READ-ONLY from a SELECT of this run (V0039): kept pending, no APPEND. Not
        // SELECTed just to ask: an unchanged folder's APPEND needs no SELECT (V0045).
        if self.read_only.contains(folder) {
            self.mark_pending(folder, PendingKey::Upload(local.clone()))?;
            return Ok(Ok(()));
        }
        let src = step_try!(self.local_folder(folder));
        let wire = step_try!(self.wire(folder));
        let id = step_try!(self.folder_row(folder));
        let reader = src.open_upload(&entry)?;
        let (len, hash) = (reader.crlf_len, reader.hash);
        // Seed V0014: binary data (NUL bytes) goes only in a BINARY literal8, never raw in a
        // normal literal; without BINARY the message waits locally, reported.
        if reader.has_nul && !self.remote.has_capability("BINARY") {
            return Ok(Err(StepError::Unusable(format!(
                "local file {local} holds binary data (NUL bytes) and the server does not offer \
                 BINARY (RFC 3516): not uploaded, kept locally"
            ))));
        }
        // The journal entry is durable before the APPEND leaves (see the module docs of
        // `apply`).
        let intent = append_intent(
            id,
            &entry,
            Some(hash),
            len,
            internaldate.0,
            message_id.as_deref(),
        );
        let intent_id = self.db.begin_intent(&intent)?;
        let append = Append {
            wire: &wire,
            flags: flag_list(flags),
            date: internaldate.0,
            intent: intent_id,
        };
        let result = step_try!(self.append_or_create(&append, &src, &entry, reader)?);
        let appended = match result {
            Ok(a) => a,
            Err(e) if e.is_fatal() => return Err(e.into()),
            Err(e) => return self.append_refused(folder, local, intent_id, e),
        };
        let fits = step_try!(self.fits_uidvalidity(folder, id, appended.map(|a| a.uidvalidity))?);
        let uid = match appended {
            Some(a) => Some(a.uid).filter(|_| fits),
            None => self.find_appended(folder, message_id.as_deref(), len)?,
        };
        let content = RowContent {
            size: len,
            internaldate: *internaldate,
            message_id: message_id.clone(),
            hash: Some(hash),
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

    /// `APPEND` of one local file, in a BINARY literal8 when it holds NUL bytes (seed V0014).
    fn append_file(&mut self, a: &Append<'_>, mut reader: UploadReader) -> AppendResult {
        let len = reader.crlf_len;
        if reader.has_nul {
            self.remote
                .append_binary(a.wire, &a.flags, Some(a.date), len, &mut reader)
        } else {
            self.remote
                .append(a.wire, &a.flags, Some(a.date), len, &mut reader)
        }
    }

    /// [`Self::append_file`], and once more after creating the folder when the server
    /// answered `[TRYCREATE]` (seeds V0047, V0058). A refused CREATE settles the journal
    /// entry (nothing landed) and fails the step.
    fn append_or_create(
        &mut self,
        a: &Append<'_>,
        src: &Folder,
        entry: &MessageEntry,
        reader: UploadReader,
    ) -> Result<Result<AppendResult, StepError>, SyncError> {
        let result = self.append_file(a, reader);
        if !matches!(
            &result,
            Err(RemoteError::No {
                trycreate: true,
                ..
            })
        ) {
            return Ok(Ok(result));
        }
        match self.remote.create(a.wire) {
            Ok(()) => {}
            Err(e) if e.is_fatal() => return Err(e.into()),
            Err(e) => {
                self.db.write(|tx| tx.resolve_intent(a.intent))?;
                return Ok(Err(StepError::server("CREATE after TRYCREATE refused", e)));
            }
        }
        let again = src.open_upload(entry)?;
        Ok(Ok(self.append_file(a, again)))
    }

    /// A refused APPEND: nothing landed, so the journal entry is settled.
    fn append_refused(
        &mut self,
        folder: &FolderPath,
        local: &LocalId,
        intent: IntentId,
        e: RemoteError,
    ) -> Result<StepResult, SyncError> {
        self.db.write(|tx| tx.resolve_intent(intent))?;
        // A folder the gather did not SELECT may be READ-ONLY (V0039): then the
        // refusal is that, and the file waits as a pending change, not an error.
        if matches!(self.access(folder)?, Access::ReadOnly) {
            self.mark_pending(folder, PendingKey::Upload(local.clone()))?;
            return Ok(Ok(()));
        }
        Ok(Err(StepError::server("APPEND refused", e)))
    }

    /// Without APPENDUID: the copy by Message-ID and size, when exactly one unbound message
    /// fits; otherwise `None` and the next run binds it by content.
    pub(super) fn find_appended(
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
            let bound = match id {
                Some(id) => self.db.message(id, d.uid)?.is_some(),
                None => false,
            };
            if !bound && d.size == Some(size) {
                fits.push(d.uid);
            }
        }
        Ok(if fits.len() == 1 { Some(fits[0]) } else { None })
    }
}

/// An `APPEND` of one local file: the folder's server name, the file's flags and
/// INTERNALDATE, and the journal entry that is settled if it is refused.
struct Append<'w> {
    wire: &'w Mailbox,
    flags: Vec<Flag>,
    date: i64,
    intent: IntentId,
}

/// What the server answered an `APPEND`: APPENDUID's UIDVALIDITY and UID (RFC 4315), if given.
type AppendResult = Result<Option<Appended>, RemoteError>;

/// The journal entry of an `APPEND` or a server copy of `entry` into the folder `id`, with the
/// content that finds the server's copy again after a cut: size, INTERNALDATE, Message-ID.
fn append_intent(
    id: FolderId,
    entry: &MessageEntry,
    hash: Option<mailfold_store::ContentHash>,
    size: u64,
    date: i64,
    message_id: Option<&str>,
) -> NewIntent {
    NewIntent {
        folder: Some(id),
        base: Some(entry.base.clone()),
        hash,
        detail: encode_intent_detail(size, date, message_id),
        ..NewIntent::new(IntentKind::Append)
    }
}
