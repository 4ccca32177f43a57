//! Downloads: a folder's new messages fetched in one pipelined batch (`UID FETCH
//! BODY.PEEK[]`, V0054), each body streamed to its own file (unnamed until placed, or in
//! `tmp/`: [`mailfold_store::MessageWriter`]) and checked against
//! RFC822.SIZE (V0007), a header-only copy for a message over the size limit (V0010, V0070).
//! The writes keep the order of the "Download" item of the crash-safety argument in the
//! `apply` module docs: every body is written, then fsynced and moved into place
//! [`PLACE_BATCH`] at a time (a batch's fsyncs run on a thread of their own while the next
//! bodies arrive), then each directory is fsynced once, and only then are the rows handed to
//! the commit group.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use mailfold_store::{
    Folder, MaildirFlags, MessageEntry, MessageRecord, MessageWriter, NewMessage, Subdir,
    UnplacedMessage, UnsyncedDir, WrittenMessage,
};

use crate::plan::{Body, FlagSet, FolderPath, Location, Op, RowContent, Uid};
use crate::progress::{Progress, ProgressEvent};
use crate::remote::BodyEvent;
use crate::step_error::StepError;
use crate::SyncError;

use super::{hook_reached, letters, name, record, Applier, ABORT_EXIT_CODE};

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
        let mut errors: Vec<StepError> = Vec::new();
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
                    syncing: VecDeque::new(),
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
        let got: std::collections::HashSet<Uid> = written.iter().map(|(u, ..)| *u).collect();
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
                Ok(id) => self.defer(move |tx| tx.replace_messages(id, &recs))?,
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
                    *uid,
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
                    w.headers.push(*uid);
                } else {
                    w.full.push(*uid);
                }
            }
        }
        w
    }

    /// One `UID FETCH` of `uids` (whole bodies, or headers only), each body streamed into its
    /// own file ([`Receiver`]); every finished file is then placed ([`Placing::place`]).
    fn fetch_pass(
        &mut self,
        uids: &[Uid],
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
            rx.placing
                .errors
                .push(StepError::server("FETCH refused", e));
        }
        Ok(())
    }

    /// The rows of a batch's written files, and the folder's view of its files brought up to
    /// date. A file in a directory whose fsync failed (`not_durable`), or one the plan does not
    /// record, gets no row: the next gather reads it and the planner binds it by content.
    fn downloaded_rows(
        &mut self,
        folder: &FolderPath,
        wants: &BTreeMap<Uid, Want>,
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
            let u = *uid;
            let content = RowContent {
                size: w.size,
                internaldate: crate::plan::UnixTime(w.date),
                message_id: w.message_id.clone(),
                hash: if w.partial { None } else { Some(m.hash) },
                partial: w.partial,
            };
            recs.push(record(u, &m.entry.base, &w.flags, &content));
        }
        recs
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
    wants: BTreeMap<Uid, Want>,
    full: Vec<Uid>,
    headers: Vec<Uid>,
}

/// Each file a batch put in place, with the directory whose fsync its entry still waits for
/// (`None`: nothing to wait for, with fsync off or a replaced partial copy, which syncs its
/// own).
type Written = Vec<(Uid, WrittenMessage, Option<UnsyncedDir>)>;

/// One fsync per directory the batch linked files into, before any of its rows can reach the
/// commit group. A directory that cannot be synced keeps its files (the next gather reads them
/// and the planner binds them by content) but records none of them: those directories are
/// returned, each failure is in `errors`.
fn sync_directories<'w>(
    written: &'w Written,
    errors: &mut Vec<StepError>,
) -> BTreeSet<&'w UnsyncedDir> {
    let unsynced: BTreeSet<&UnsyncedDir> =
        written.iter().filter_map(|(.., d)| d.as_ref()).collect();
    let mut not_durable: BTreeSet<&UnsyncedDir> = BTreeSet::new();
    for dir in unsynced {
        if let Err(e) = MessageWriter::sync_directory(dir) {
            errors.push(StepError::local(e).context("new messages not recorded"));
            not_durable.insert(dir);
        }
    }
    not_durable
}

/// The bodies of one fetch as they stream in: the file being written, checked against its
/// [`Want`] (seed V0007), and the batch's finished files ([`Placing`]).
struct Receiver<'p, 'f> {
    wants: &'f BTreeMap<Uid, Want>,
    dest: &'f Folder,
    /// The body being written: its UID, its file and the bytes received so far.
    cur: Option<(Uid, MessageWriter, u64)>,
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
                self.placing.errors.push(StepError::Unusable(format!(
                    "UID {uid}: body not attributable; not stored"
                )));
            }
            BodyEvent::End { uid } => self.end(uid),
        }
    }

    /// A body begins: its file is created (unnamed, or in `tmp/`), bounded by [`body_limit`].
    fn start(&mut self, uid: Uid, len: u64) {
        let Some(w) = self.wants.get(&uid) else {
            return;
        };
        // Seed V0007 before a byte is written: see `body_limit`.
        let Some(limit) = body_limit(w.partial, w.size, len) else {
            self.placing.errors.push(StepError::Unusable(format!(
                "UID {uid}: the server sent {len} bytes, RFC822.SIZE said {}; not stored",
                w.size
            )));
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
            Err(e) => self
                .placing
                .errors
                .push(StepError::local(e).context(format!("UID {uid}"))),
        }
    }

    fn data(&mut self, uid: Uid, bytes: &[u8]) {
        self.placing.progress.event(ProgressEvent::Bytes {
            folder: self.placing.folder,
            bytes: bytes.len() as u64,
        });
        if let Some((u, wr, n)) = self.cur.as_mut() {
            if *u == uid {
                *n += bytes.len() as u64;
                if let Err(e) = wr.write_chunk(bytes) {
                    self.placing
                        .errors
                        .push(StepError::local(e).context(format!("UID {uid}")));
                    self.cur = None;
                }
            }
        }
    }

    /// A body is complete: checked against RFC822.SIZE, finished, and handed to [`Placing`].
    fn end(&mut self, uid: Uid) {
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
            self.placing.errors.push(StepError::Unusable(format!(
                "UID {uid}: received {n} bytes, RFC822.SIZE said {}; not stored",
                w.size
            )));
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
                self.placing
                    .errors
                    .push(StepError::local(e).context(format!("UID {uid}")));
                let _ = wr.abort();
                return;
            }
        }
        self.placing.finished(uid, wr, w.replace.as_ref(), subdir);
    }
}

/// The most batches of finished downloads whose fsyncs run at once ([`Placing::hand_over`]):
/// enough to keep the bodies flowing while earlier batches wait for their journal commits,
/// few enough to bound the open files (this times [`PLACE_BATCH`]) and threads.
const SYNC_IN_FLIGHT: usize = 4;

/// Fsyncs a batch's files together, so that they share journal commits.
fn sync_batch(mut batch: Vec<(Uid, UnplacedMessage)>) -> Synced {
    let synced =
        mailfold_store::sync_unplaced(&mut batch.iter_mut().map(|(_, u)| u).collect::<Vec<_>>());
    batch
        .into_iter()
        .zip(synced)
        .map(|((uid, u), r)| (uid, u, r))
        .collect()
}

/// The most finished downloads kept unplaced before they are fsynced and moved into place
/// together: enough for a journaled file system to carry many in one commit, few enough that
/// their open files and buffers stay small whatever the batch.
const PLACE_BATCH: usize = 32;

/// A message put in place, with the directory whose fsync its entry waits for, or why not.
type Placed = mailfold_store::Result<(WrittenMessage, Option<UnsyncedDir>)>;

/// Finished files of a download batch, each with what its fsync gave
/// ([`mailfold_store::sync_unplaced`]).
type Synced = Vec<(Uid, UnplacedMessage, mailfold_store::Result<()>)>;

/// A download batch's finished files and what placing them records.
struct Placing<'p, 'f> {
    placed: Vec<(Uid, Placed)>,
    unplaced: Vec<(Uid, UnplacedMessage)>,
    /// Earlier [`PLACE_BATCH`]es of finished files, oldest first, each being fsynced on a
    /// thread of its own while the next bodies arrive; each is placed before any later file.
    syncing: VecDeque<std::thread::JoinHandle<Synced>>,
    written: &'p mut Written,
    errors: &'p mut Vec<StepError>,
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
        uid: Uid,
        wr: MessageWriter,
        replace: Option<&MessageEntry>,
        subdir: Subdir,
    ) {
        match replace {
            // Rare (a partial copy made whole): in place at once.
            Some(old) => match wr.commit_replacing(old) {
                Ok(m) => self.placed.push((uid, Ok((m, None)))),
                Err(e) => self
                    .errors
                    .push(StepError::local(e).context(format!("UID {uid}"))),
            },
            // Put in place once the batch's bodies are all written (see
            // `MessageWriter::finish`); the directory's fsync is left for once
            // per batch, before the rows (module docs of `apply`, "Crash safety").
            None => match wr.finish(subdir) {
                Ok(u) => self.unplaced.push((uid, u)),
                Err(e) => self
                    .errors
                    .push(StepError::local(e).context(format!("UID {uid}"))),
            },
        }
        if self.unplaced.len() >= PLACE_BATCH {
            self.hand_over();
        }
    }

    /// Starts the fsync of the finished files on a thread while the next bodies arrive, and
    /// places the batches handed over before whose fsync is done, oldest first (the files go
    /// in place in the order they were finished). It waits for the oldest only when more than
    /// [`SYNC_IN_FLIGHT`] are under way. With fsync off there is nothing to wait for: they
    /// are placed at once.
    fn hand_over(&mut self) {
        if !self.unplaced.iter().any(|(_, u)| u.needs_sync()) {
            self.place();
            return;
        }
        let batch = std::mem::take(&mut self.unplaced);
        // The batch goes to the thread by a channel, so that it stays here when no thread can
        // be started (a process limit): it is then fsynced and placed on this one.
        let (tx, rx) = std::sync::mpsc::channel();
        let started = std::thread::Builder::new()
            .spawn(move || rx.recv().map(sync_batch).unwrap_or_default());
        let kept = match started {
            Ok(handle) => match tx.send(batch) {
                Ok(()) => {
                    self.syncing.push_back(handle);
                    None
                }
                Err(back) => Some(back.0),
            },
            Err(_) => Some(batch),
        };
        if let Some(batch) = kept {
            self.unplaced = batch;
            self.place();
            return;
        }
        while let Some(oldest) = self.syncing.front() {
            if !oldest.is_finished() && self.syncing.len() <= SYNC_IN_FLIGHT {
                break;
            }
            self.settle_oldest();
        }
    }

    /// Places the oldest batch whose fsync [`Self::hand_over`] started, once it is done.
    fn settle_oldest(&mut self) {
        let Some(syncing) = self.syncing.pop_front() else {
            return;
        };
        // Its thread cannot panic (`sync_unplaced` returns its errors); if it did, its files
        // were dropped with it (their temporary files removed), unplaced and unrecorded.
        match syncing.join() {
            Ok(synced) => self.put_in_place(synced),
            Err(_) => self.errors.push(StepError::Local(
                "new messages not written: the thread syncing them stopped".into(),
            )),
        }
    }

    /// Fsyncs (with fsync on) and moves into place every finished file, in the order they
    /// were finished, after all of them were written (`MessageWriter::finish`); each is a step
    /// of the test hook.
    fn place(&mut self) {
        while !self.syncing.is_empty() {
            self.settle_oldest();
        }
        let batch = std::mem::take(&mut self.unplaced);
        self.put_in_place(sync_batch(batch));
    }

    /// Moves the files of `synced` whose fsync succeeded into place, after the ones placed at
    /// once (a partial copy made whole).
    fn put_in_place(&mut self, synced: Synced) {
        let done = self.placed.drain(..).chain(
            synced
                .into_iter()
                .map(|(uid, u, synced)| (uid, synced.and_then(|()| u.place_deferred()))),
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
                Err(e) => self
                    .errors
                    .push(StepError::local(e).context(format!("UID {uid}"))),
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
