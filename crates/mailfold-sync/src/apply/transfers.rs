//! Transfers: bodies downloaded into the Maildir in pipelined batches (V0054), local files
//! appended to the server (V0014, V0047), and server copies (`UID COPY`) of local files whose
//! message the server already holds. They keep the order of the "Download", "Upload" and
//! "Server copy" items of the crash-safety argument in the docs of [`super`]: bodies are
//! written, then fsynced and moved into place [`PLACE_BATCH`] at a time, each directory is
//! fsynced once, and only then are the rows handed to the commit group; the journal entry of an
//! APPEND or a COPY is committed before the command is sent.

use std::collections::{BTreeMap, BTreeSet};

use mailfold_store::{
    Folder, FolderId, IntentId, IntentKind, MaildirFlags, MessageEntry, MessageRecord,
    MessageWriter, NewIntent, NewMessage, StateRead, Subdir, Uid as StoreUid, UnplacedMessage,
    UnsyncedDir, UploadReader, WrittenMessage,
};

use crate::gather::encode_intent_detail;
use crate::plan::{Body, FlagSet, FolderPath, LocalId, Location, Op, PendingKey, RowContent, Uid};
use crate::progress::{Progress, ProgressEvent};
use crate::remote::{BodyEvent, RemoteError, StoreOp};
use crate::SyncError;

use super::folders::Access;
use super::{
    hook_reached, letters, name, record, replace_row, wire_list, Applier, StepResult,
    ABORT_EXIT_CODE,
};

impl Applier<'_> {
    /// A batch of downloads into one folder, between its [`ProgressEvent::FolderStarted`] and
    /// [`ProgressEvent::FolderDone`]. The declared bytes are the RFC822.SIZE of the whole
    /// bodies to fetch; a headers-only download (V0010) declares nothing, since only its
    /// header arrives.
    pub(super) fn downloads(&mut self, folder: &FolderPath, ops: &[Op]) -> Result<(), SyncError> {
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
    /// file, then the rows as one change of the commit group. The steps keep the order of the
    /// "Download" item of the crash-safety argument: every body written and placed
    /// ([`Self::fetch_pass`]), then each directory fsynced once ([`sync_directories`]), then
    /// the rows of the durable files deferred to the group ([`Self::downloaded_rows`]).
    pub(super) fn download_batch(
        &mut self,
        folder: &FolderPath,
        ops: &[Op],
    ) -> Result<(), SyncError> {
        let Wanted {
            wants,
            full,
            headers,
        } = self.download_wants(folder, ops);
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
        let mut written: Written = Vec::new();
        let mut errors: Vec<String> = Vec::new();
        let mut steps = self.steps;
        for (uids, headers_only) in [(full, false), (headers, true)] {
            if uids.is_empty() {
                continue;
            }
            let mut rx = Receiver {
                wants: &wants,
                dest: &dest,
                cur: None,
                placing: Placing {
                    placed: Vec::new(),
                    unplaced: Vec::new(),
                    written: &mut written,
                    errors: &mut errors,
                    progress: self.progress,
                    folder,
                    steps: &mut steps,
                    abort_after: self.abort_after,
                },
            };
            self.fetch_pass(&uids, headers_only, &mut rx)?;
        }
        self.steps = steps;
        let not_durable = sync_directories(&written, &mut errors);
        let got: std::collections::HashSet<u32> = written.iter().map(|(u, ..)| *u).collect();
        let missing = wants.keys().filter(|u| !got.contains(u)).count();
        if missing > 0 && errors.is_empty() {
            // Another client expunged them between our view and the fetch (V0023); the next
            // run sees them gone.
            self.report.folder_mut(&name(folder)).warnings.push(format!(
                "{missing} message(s) vanished from the server during the sync"
            ));
        }
        let recs = self.downloaded_rows(folder, &wants, &written, &not_durable);
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

    /// What each [`Op::Download`] of the batch is to become, by UID, and which UIDs to fetch
    /// whole and which header-only (V0010).
    fn download_wants(&mut self, folder: &FolderPath, ops: &[Op]) -> Wanted {
        let mut w = Wanted::default();
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
                w.wants.insert(
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
                    w.headers.push(uid.get());
                } else {
                    w.full.push(uid.get());
                }
            }
        }
        w
    }

    /// One `UID FETCH` of `uids` (whole bodies, or headers only), each body streamed into its
    /// own file ([`Receiver`]); every finished file is then placed ([`Placing::place`]).
    fn fetch_pass(
        &mut self,
        uids: &[u32],
        headers_only: bool,
        rx: &mut Receiver<'_, '_>,
    ) -> Result<(), SyncError> {
        let res = self
            .remote
            .fetch_bodies(uids, headers_only, &mut |ev| rx.event(ev));
        rx.placing.place();
        if let Err(e) = res {
            if e.is_fatal() {
                return Err(e.into());
            }
            rx.placing.errors.push(format!("FETCH refused: {e}"));
        }
        Ok(())
    }

    /// The rows of a batch's written files, and the folder's view of its files brought up to
    /// date. A file in a directory whose fsync failed (`not_durable`), or one the plan does not
    /// record, gets no row: the next gather reads it and the planner binds it by content.
    fn downloaded_rows(
        &mut self,
        folder: &FolderPath,
        wants: &BTreeMap<u32, Want>,
        written: &Written,
        not_durable: &BTreeSet<&UnsyncedDir>,
    ) -> Vec<MessageRecord> {
        let mut recs = Vec::new();
        for (uid, m, dir) in written {
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
        recs
    }

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
        let id = step_try!(self.folder_row(to));
        step_try!(self.open_copy_source(from, &src, *uid)?);
        // The journal entry is durable before the COPY leaves: the copy keeps the source's
        // size, INTERNALDATE and Message-ID, which is what finds it again after a cut.
        let intent = append_intent(
            id,
            &entry,
            content.hash.map(|h| mailfold_store::ContentHash(h.0)),
            content.size,
            content.internaldate.0,
            content.message_id.as_deref(),
        );
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
        let fits = step_try!(self.fits_uidvalidity(to, id, copied.as_ref().map(|c| c.0))?);
        let new_uid = copied
            .filter(|_| fits)
            .and_then(|(_, pairs)| pairs.into_iter().find(|(s, _)| *s == uid.get()))
            .and_then(|(_, d)| Uid::new(d));
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
        src: &[u8],
        uid: Uid,
    ) -> Result<StepResult, SyncError> {
        if self.selected.as_ref().is_some_and(|(w, _)| *w == src) {
            return Ok(Ok(()));
        }
        match self.remote.select(src, true) {
            Ok(sel) => {
                self.selected = Some((src.to_vec(), true));
                // The UID is the state's: only under the UIDVALIDITY it was recorded with.
                let known = self.ctx(from).state_uidvalidity;
                if sel.uidvalidity.is_none() || sel.uidvalidity != known {
                    return Ok(Err(format!(
                        "UID {uid} not copied from {from}: its UIDVALIDITY changed"
                    )));
                }
                Ok(Ok(()))
            }
            Err(e) if e.is_fatal() => Err(e.into()),
            Err(e) => {
                self.selected = None;
                Ok(Err(format!("cannot open {from} to copy from: {e}")))
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
            return Ok(Err(format!(
                "flags of the copy of UID {uid} not stored: {e}"
            )));
        }
        match self
            .remote
            .store(&[new_uid.get()], StoreOp::Replace, &wire_list(flags), None)
        {
            Ok(_) => Ok(Ok(())),
            Err(e) if e.is_fatal() => Err(e.into()),
            Err(e) => Ok(Err(format!(
                "flags of the copy of UID {uid} not stored: {e}"
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
        uidvalidity: Option<u32>,
    ) -> Result<Result<bool, String>, SyncError> {
        let known = self
            .db
            .folder(id)?
            .and_then(|f| f.uidvalidity)
            .map(|u| u.get());
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
        let src = step_try!(self.local_folder(folder));
        let wire = step_try!(self.wire(folder));
        let id = step_try!(self.folder_row(folder));
        let reader = src.open_upload(&entry)?;
        let (len, hash) = (reader.crlf_len, reader.hash);
        // Seed V0014: binary data (NUL bytes) goes only in a BINARY literal8, never raw in a
        // normal literal; without BINARY the message waits locally, reported.
        if reader.has_nul && !self.remote.has_capability("BINARY") {
            return Ok(Err(format!(
                "local file {local} holds binary data (NUL bytes) and the server does not offer \
                 BINARY (RFC 3516): not uploaded, kept locally"
            )));
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
            flags: wire_list(flags),
            date: internaldate.0,
            intent: intent_id,
        };
        let result = step_try!(self.append_or_create(&append, &src, &entry, reader)?);
        let appended = match result {
            Ok(a) => a,
            Err(e) if e.is_fatal() => return Err(e.into()),
            Err(e) => return self.append_refused(folder, local, intent_id, e),
        };
        let fits = step_try!(self.fits_uidvalidity(folder, id, appended.map(|a| a.0))?);
        let uid = match appended {
            Some((_, uid)) => Uid::new(uid).filter(|_| fits),
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
    ) -> Result<Result<AppendResult, String>, SyncError> {
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
                return Ok(Err(format!("CREATE after TRYCREATE refused: {e}")));
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
        Ok(Err(format!("APPEND refused: {e}")))
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
}

/// An `APPEND` of one local file: the folder's server name, the file's flags and
/// INTERNALDATE, and the journal entry that is settled if it is refused.
struct Append<'w> {
    wire: &'w [u8],
    flags: Vec<String>,
    date: i64,
    intent: IntentId,
}

/// What the server answered an `APPEND`: APPENDUID's UIDVALIDITY and UID (RFC 4315), if given.
type AppendResult = Result<Option<(u32, u32)>, RemoteError>;

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

/// What a download is to become: the [`Op::Download`]'s data the written file and its row need.
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

/// A download batch's [`Want`]s by UID, and the UIDs to fetch whole and header-only (V0010).
#[derive(Default)]
struct Wanted {
    wants: BTreeMap<u32, Want>,
    full: Vec<u32>,
    headers: Vec<u32>,
}

/// Each file a batch put in place, with the directory whose fsync its entry still waits for
/// (`None`: nothing to wait for, with fsync off or a replaced partial copy, which syncs its
/// own).
type Written = Vec<(u32, WrittenMessage, Option<UnsyncedDir>)>;

/// One fsync per directory the batch linked files into, before any of its rows can reach the
/// commit group. A directory that cannot be synced keeps its files (the next gather reads them
/// and the planner binds them by content) but records none of them: those directories are
/// returned, each failure is in `errors`.
fn sync_directories<'w>(
    written: &'w Written,
    errors: &mut Vec<String>,
) -> BTreeSet<&'w UnsyncedDir> {
    let unsynced: BTreeSet<&UnsyncedDir> =
        written.iter().filter_map(|(.., d)| d.as_ref()).collect();
    let mut not_durable: BTreeSet<&UnsyncedDir> = BTreeSet::new();
    for dir in unsynced {
        if let Err(e) = MessageWriter::sync_directory(dir) {
            errors.push(format!("new messages not recorded: {e}"));
            not_durable.insert(dir);
        }
    }
    not_durable
}

/// The bodies of one fetch as they stream in: the file being written, checked against its
/// [`Want`] (seed V0007), and the batch's finished files ([`Placing`]).
struct Receiver<'p, 'f> {
    wants: &'f BTreeMap<u32, Want>,
    dest: &'f Folder,
    /// The body being written: its UID, its file and the bytes received so far.
    cur: Option<(u32, MessageWriter, u64)>,
    placing: Placing<'p, 'f>,
}

impl Receiver<'_, '_> {
    fn event(&mut self, ev: BodyEvent<'_>) {
        match ev {
            BodyEvent::Start { uid, len } => self.start(uid, len),
            BodyEvent::Data { uid, bytes } => self.data(uid, bytes),
            BodyEvent::Abort { uid } => {
                if let Some((_, wr, _)) = self.cur.take() {
                    let _ = wr.abort();
                }
                self.placing
                    .errors
                    .push(format!("UID {uid}: body not attributable; not stored"));
            }
            BodyEvent::End { uid } => self.end(uid),
        }
    }

    /// A body begins: its file is created in `tmp/`, bounded by [`body_limit`].
    fn start(&mut self, uid: u32, len: u64) {
        let Some(w) = self.wants.get(&uid) else {
            return;
        };
        // Seed V0007 before a byte is written: see `body_limit`.
        let Some(limit) = body_limit(w.partial, w.size, len) else {
            self.placing.errors.push(format!(
                "UID {uid}: the server sent {len} bytes, RFC822.SIZE said {}; not stored",
                w.size
            ));
            return;
        };
        let opts = NewMessage {
            flags: letters(&w.flags, &MaildirFlags::empty()),
            internaldate: Some(w.date),
        };
        match self.dest.create_message(opts) {
            Ok(mut wr) => {
                wr.limit(limit);
                self.cur = Some((uid, wr, 0));
            }
            Err(e) => self.placing.errors.push(format!("UID {uid}: {e}")),
        }
    }

    fn data(&mut self, uid: u32, bytes: &[u8]) {
        self.placing.progress.event(ProgressEvent::Bytes {
            folder: self.placing.folder,
            bytes: bytes.len() as u64,
        });
        if let Some((u, wr, n)) = self.cur.as_mut() {
            if *u == uid {
                *n += bytes.len() as u64;
                if let Err(e) = wr.write_chunk(bytes) {
                    self.placing.errors.push(format!("UID {uid}: {e}"));
                    self.cur = None;
                }
            }
        }
    }

    /// A body is complete: checked against RFC822.SIZE, finished, and handed to [`Placing`].
    fn end(&mut self, uid: u32) {
        let Some((u, wr, n)) = self.cur.take() else {
            return;
        };
        let wants = self.wants;
        let Some(w) = wants.get(&uid).filter(|_| u == uid) else {
            return;
        };
        // Seed V0007: the bytes received must be what RFC822.SIZE announced;
        // a short or long body is not kept.
        if !w.partial && n != w.size {
            self.placing.errors.push(format!(
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
                self.placing.errors.push(format!("UID {uid}: {e}"));
                let _ = wr.abort();
                return;
            }
        }
        self.placing.finished(uid, wr, w.replace.as_ref(), subdir);
    }
}

/// The most finished downloads kept in `tmp/` before they are fsynced and moved into place
/// together: enough for a journaled file system to carry many in one commit, few enough that
/// their open files and buffers stay small whatever the batch.
const PLACE_BATCH: usize = 32;

/// A message put in place, with the directory whose fsync its entry waits for, or why not.
type Placed = mailfold_store::Result<(WrittenMessage, Option<UnsyncedDir>)>;

/// A download batch's finished files and what placing them records.
struct Placing<'p, 'f> {
    placed: Vec<(u32, Placed)>,
    unplaced: Vec<(u32, UnplacedMessage)>,
    written: &'p mut Written,
    errors: &'p mut Vec<String>,
    progress: &'f dyn Progress,
    folder: &'f FolderPath,
    steps: &'p mut u64,
    abort_after: Option<u64>,
}

impl Placing<'_, '_> {
    /// A finished body: a partial copy made whole goes in place at once; any other is put in
    /// place once the batch's bodies are all written, or [`PLACE_BATCH`] of them are.
    fn finished(
        &mut self,
        uid: u32,
        wr: MessageWriter,
        replace: Option<&MessageEntry>,
        subdir: Subdir,
    ) {
        match replace {
            // Rare (a partial copy made whole): in place at once.
            Some(old) => match wr.commit_replacing(old) {
                Ok(m) => self.placed.push((uid, Ok((m, None)))),
                Err(e) => self.errors.push(format!("UID {uid}: {e}")),
            },
            // Put in place once the batch's bodies are all written (see
            // `MessageWriter::finish`); the directory's fsync is left for once
            // per batch, before the rows (module docs of `apply`, "Crash safety").
            None => match wr.finish(subdir) {
                Ok(u) => self.unplaced.push((uid, u)),
                Err(e) => self.errors.push(format!("UID {uid}: {e}")),
            },
        }
        if self.unplaced.len() >= PLACE_BATCH {
            self.place();
        }
    }

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
