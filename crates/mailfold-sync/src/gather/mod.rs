//! Gather: build the planner's three views ([`SyncInput`]) of one account from the server, the
//! Maildir and the state database, plus the bookkeeping the applier needs to act on the plan
//! (wire names, directories, state row ids, the scanned files).
//!
//! # Server view
//!
//! * Folders come from `LIST "" "*"` (seed V0041), with `RETURN (SUBSCRIBED SPECIAL-USE)` where
//!   LIST-EXTENDED is offered. INBOX is added when LIST omits it (V0042). `\NonExistent`
//!   entries are dropped; `\Noselect` ones are kept as hierarchy nodes without contents.
//! * **LIST/LSUB attribute rule (V0043):** when both LSUB and LIST describe a name, the most
//!   recent response wins for its attributes. We send LSUB first and LIST second, so the
//!   attributes that decide whether a folder can be selected are LIST's (an LSUB `\Noselect`
//!   only says that the name is not subscribed but has subscribed children); the subscription
//!   mark is taken from whichever response gave it.
//! * Each selectable folder is opened with SELECT, or EXAMINE for a pull-only account (V0040),
//!   one after the other without CLOSE (V0050), then `UID FETCH 1:* (UID FLAGS [MODSEQ])`; UIDs
//!   the state does not know (or all, after a UIDVALIDITY change) also get
//!   `RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]` so the planner can match
//!   them by content instead of downloading blindly. EXISTS and UIDVALIDITY are what SELECT
//!   must give (V0036); missing PERMANENTFLAGS means all (V0037), missing UIDNEXT is derived by
//!   the planner, missing UIDVALIDITY makes the folder read-only by content (V0037).
//!
//! * **Namespaces and the root folder (V0022):** the account's `root_folder`, or else the
//!   first personal namespace from NAMESPACE (e.g. `INBOX.` on Courier or Cyrus), is the
//!   server folder under which the mirror lives ([`FolderRoot`]): its children are the local
//!   top-level folders, INBOX stays INBOX, and folders outside it — and under other users'
//!   or shared namespaces — take no part, exactly like folders the patterns exclude.
//!
//! # Local view
//!
//! Every Maildir under the root (store scan: one `readdir` per directory). Files the state
//! knows are described from their state row (no file is opened, and with a `,S=` size in the
//! name not even `lstat`ed); unknown files are read once to learn their Message-ID, CRLF size
//! and content hash, which is what makes a first run against an existing Maildir, a lost state
//! database, or a crash after a download bind files instead of duplicating them.
//!
//! # Unchanged folders: decided before touching the disk
//!
//! A re-sync where nothing changed must cost next to nothing, so the order is: LIST,
//! the folder rows of the state (not their messages), the local listing with each folder's
//! directory stamp ([`DirStamp`]: `cur/` and `new/` inode, mtime and ctime with nanoseconds),
//! then the STATUS round. A folder whose server status equals the state's (the V0045 rule) and
//! whose stamp equals the one recorded at the end of its last complete run
//! ([`record_stamps`]), with no pending change and no open intent, is **skipped**: not
//! scanned, its rows not read, not selected. The planner sees it present on both sides and
//! not examined (no server view, no files, no rows), which plans nothing for it and never
//! takes it for deleted. Every other folder is read in full as before.
//!
//! Why that is safe: every change a mail reader makes to a Maildir (delivery, flag rename,
//! deletion, a move to another folder, which touches both folders) changes the directory's
//! mtime and ctime; a stamp is recorded only when it is known to describe exactly what the
//! state rows say (read before a scan whose folder the run then left alone, or read around
//! an end-of-run listing that matched the rows) and its times lie before a clock tick that
//! has already passed (two seconds before its reading, or before the file system's own time
//! from a probe), so no later change can hide in the same tick; and the state forgets a
//! folder's stamp on any write to its rows. [`record_stamps`] gives the full argument. What
//! a stamp cannot see is a file rewritten in place under the same name, which Maildir
//! forbids.
//!
//! # Partial folders: reading only what changed
//!
//! A folder whose stamp is the recorded one (nothing changed locally) but whose server
//! status moved (or any such folder, on a server without CONDSTORE, where STATUS cannot
//! tell) is read *partially* ([`examine_partial`]): the CONDSTORE/QRESYNC delta since the
//! recorded HIGHESTMODSEQ — or, without CONDSTORE, the complete flag listing merged against
//! the rows streamed in UID order — gives the UIDs that changed, appeared or vanished; only
//! those rows are read (by UID), and only their files are looked up, by the name a complete
//! run leaves (the listing digest, schema v4, proved at the stamp's recording that every row
//! had exactly that file). The planner gets those rows and files, the delta, and the number
//! of rows left out ([`StateFolder::omitted`]): it plans exactly what a complete view would
//! (a property test in mailfold-plan checks it). A delta that does not account for every
//! message, a changed UIDVALIDITY, or a file not where its row says sends the folder back
//! to the complete read. The run's own STORE and APPEND echo back in the next run's delta
//! and cost just the rows they name. From the moment its stamp proves it, a partial folder's
//! listing is also followed ([`Gathered::watch`], `ListingWatch`): at the end of the run its
//! stamp is checked from the names the kernel reported added or removed, not from a listing,
//! so the run's own renames cost what they rename ([`record_stamps`]).
//!
//! # State view
//!
//! Folder rows with a UIDVALIDITY, their message rows and pending marks; open journal
//! intents. Folders outside the account's patterns are left out of all three views, so an
//! excluded folder never looks deleted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::SystemTime;

use mailfold_store::{
    AliasRegistry, DirStamp, Folder, FolderId, FolderRecord, IntentKind, ListingWatch, Maildir,
    MessageEntry, RelPath, StateDb, StateRead,
};

use crate::account::{AccountSpec, Direction};
use crate::folder_root::FolderRoot;
use crate::plan::{
    FolderAttributes, FolderPath, Intent, IntentId, LocalFolder, LocalId, ModSeq, PermanentFlags,
    RemoteFolder, RemoteMailbox, RemoteMessages, StateFolder, SyncInput, Uid, UidValidity,
};
use crate::remote::Remote;
use crate::report::SyncReport;

mod flags_only;
mod fresh;
mod local;
mod names;
mod narrow;
mod partial;
mod server;
mod stamps;
mod state;

pub use crate::account::FRESH_WINDOW;
pub use flags_only::{gather_flags_only, FlagsOnlyFolder};
pub use fresh::{gather_fresh, trim_window, FreshFolder, FreshRead, FreshWindow, FreshWindows};
use local::{follow, scan_local};
use names::folder_root;
pub use names::{base_of, flagset, path_of_wire, wire_of_path};
pub use narrow::gather_folders;
use partial::{read_partial, Partial1, PartialRead};
use server::examine_folder;
pub use stamps::{record_stamps, record_stamps_with, StampCheck, STAMP_RETRY_WAIT};
pub use state::encode_intent_detail;
use state::{decode_intent_detail, known_of, server_copies, to_plan_hash, Known, StateRows};

/// A folder's directory stamp and the time it was read (for [`DirStamp::is_settled`]).
pub type StampReading = (DirStamp, SystemTime);

/// What the applier knows about one folder besides the planner's view.
#[derive(Debug, Clone, Default)]
pub struct FolderCtx {
    /// The server's name in wire form, when the server has the folder (or after creating it).
    pub wire: Option<Vec<u8>>,
    /// The hierarchy delimiter for this folder.
    pub delimiter: Option<char>,
    /// The state row, if any.
    pub state_id: Option<FolderId>,
    /// The UIDVALIDITY recorded in the state row.
    pub state_uidvalidity: Option<u32>,
    /// The local directory, if the Maildir exists.
    pub rel: Option<RelPath>,
    /// The files found by the scan, by base.
    pub files: HashMap<String, MessageEntry>,
    /// The server opened the folder read-only (V0039) or the account is pull-only.
    pub read_only: bool,
    /// UIDVALIDITY as SELECT gave it this run.
    pub uidvalidity: Option<u32>,
    /// Special-use attribute, recorded in the state row.
    pub special_use: Option<String>,
    /// Subscribed on the server.
    pub subscribed: bool,
    /// The stamp of the folder's `cur/` and `new/` read before this run scanned it, and when
    /// it was read; `None` when the folder was not scanned (skipped, or no Maildir).
    /// [`record_stamps`] keeps it if nothing moved it during the run.
    pub stamp: Option<StampReading>,
    /// The local folder was scanned this run.
    pub scanned: bool,
    /// Its message rows were read from the state database this run.
    pub loaded: bool,
    /// Skipped entirely: unchanged on the server (STATUS) and locally (its stamp), so not
    /// scanned, not loaded, not selected, and absent from the planner's work.
    pub skipped: bool,
    /// Read partially: changed on the server only, so only the rows and files its delta
    /// names were read (not scanned, not loaded whole).
    pub partial: bool,
}

/// The planner's input and the applier's bookkeeping.
#[derive(Debug, Default)]
pub struct Gathered {
    /// The three views.
    pub input: SyncInput,
    /// Per folder.
    pub folders: BTreeMap<FolderPath, FolderCtx>,
    /// The server's hierarchy delimiter (from INBOX or the first LIST entry).
    pub delimiter: Option<char>,
    /// Where the mirrored folders live on the server (V0022).
    pub root: FolderRoot,
    /// Folders left out of the views to be read, planned and applied one at a time
    /// ([`gather_with`] with `defer_fresh`): new to a mirror that holds nothing yet.
    pub fresh: Vec<FreshFolder>,
    /// Folders left out of the views to be read, planned and applied one at a time
    /// ([`gather_with`] with `defer_flags_only`): changed on the server by flag changes
    /// alone ([`FlagsOnlyFolder`]). The planner sees each as a skipped folder.
    pub flags_only: Vec<FlagsOnlyFolder>,
    /// The listings of the folders read partially, followed from the moment their stamps
    /// proved them on ([`ListingWatch`]), so that [`record_stamps`] knows what they hold
    /// after the run's writes without listing them.
    pub watch: ListingWatch,
}

/// What [`gather_with`] may do beyond [`gather`].
#[derive(Debug, Clone, Copy, Default)]
pub struct GatherOptions {
    /// Leave the folders of an account with an empty mirror and state out of the views
    /// ([`Gathered::fresh`]) instead of reading them all at once.
    pub defer_fresh: bool,
    /// Leave the folders changed on the server by flag changes alone out of the views
    /// ([`Gathered::flags_only`]) instead of reading them during the gather.
    pub defer_flags_only: bool,
}

impl Gathered {
    /// How many local folders were scanned (the counters are for tests and diagnostics; they
    /// count the folders still in [`Gathered::folders`]).
    pub fn scanned_folders(&self) -> usize {
        self.folders.values().filter(|c| c.scanned).count()
    }

    /// How many folders had their message rows read from the state database.
    pub fn loaded_folders(&self) -> usize {
        self.folders.values().filter(|c| c.loaded).count()
    }

    /// How many folders were read partially (changed on the server only).
    pub fn partial_folders(&self) -> usize {
        self.folders.values().filter(|c| c.partial).count()
    }

    /// How many folders were skipped entirely as unchanged on both sides.
    pub fn skipped_folders(&self) -> usize {
        self.folders.values().filter(|c| c.skipped).count()
    }

    /// The wire name of a local folder path, under the root.
    pub fn wire_of(&self, local: &FolderPath, delimiter: Option<char>) -> Result<Vec<u8>, String> {
        wire_of_path(&self.root.server_of(local), delimiter)
    }
}

/// Gathers everything for one run. Per-folder server failures are recorded in `report` and
/// the folder is left unexamined (so nothing is planned for its messages); a fatal server
/// error ends the run.
pub fn gather(
    remote: &mut dyn Remote,
    account: &AccountSpec,
    maildir: &Maildir,
    db: &StateDb,
    report: &mut SyncReport,
) -> Result<Gathered, crate::SyncError> {
    gather_with(
        remote,
        account,
        maildir,
        db,
        report,
        GatherOptions::default(),
    )
}

/// [`gather`] with options.
pub fn gather_with(
    remote: &mut dyn Remote,
    account: &AccountSpec,
    maildir: &Maildir,
    db: &StateDb,
    report: &mut SyncReport,
    options: GatherOptions,
) -> Result<Gathered, crate::SyncError> {
    let mut g = Gathered::default();
    let patterns = &account.folders;
    let shown = |p: &FolderPath| p.to_string();

    // ---- server folders
    // Only names whose delimiter can be used (`listing`).
    let mut entries = crate::listing::screen(remote.list_all()?, &mut report.warnings);
    g.delimiter = entries
        .iter()
        .find(|e| e.wire == b"INBOX")
        .or_else(|| entries.first())
        .and_then(|e| e.delimiter);
    g.root = folder_root(remote, account, g.delimiter)?;
    if !entries
        .iter()
        .any(|e| e.wire.eq_ignore_ascii_case(b"INBOX"))
    {
        // Seed V0042: some servers leave INBOX out of LIST; it always exists (RFC 3501 5.1).
        entries.push(crate::remote::ListEntry {
            wire: b"INBOX".to_vec(),
            delimiter: g.delimiter,
            noselect: false,
            nonexistent: false,
            special_use: None,
            subscribed: true,
            status: None,
        });
    }
    let mut remote_paths: Vec<(FolderPath, crate::remote::ListEntry)> = Vec::new();
    for e in entries {
        if e.nonexistent {
            continue;
        }
        let path = match path_of_wire(&e.wire, e.delimiter) {
            Ok(p) => p,
            Err(msg) => {
                report.warnings.push(format!(
                    "server folder name cannot be decoded, skipped: {msg}"
                ));
                continue;
            }
        };
        // Outside the root (or the root itself): not part of this mirror (V0022).
        let Some(path) = g.root.local_of(&path) else {
            continue;
        };
        if !patterns.matches(&shown(&path)) {
            continue;
        }
        remote_paths.push((path, e));
    }
    // One server name per local folder (`listing`).
    let remote_paths =
        crate::listing::one_per_folder(remote_paths, g.delimiter, &mut report.warnings);

    // ---- state folders: their rows only. Message rows are read further down, and only for
    // the folders that are looked at.
    let read_only_account = account.direction == Direction::Pull;
    let condstore = remote.has_capability("CONDSTORE") || remote.has_capability("QRESYNC");
    let mut state_folders: Vec<(FolderPath, FolderRecord)> = Vec::new();
    for f in db.folders()? {
        let Some(path) = path_of_wire(f.wire_name.as_bytes(), f.delimiter)
            .ok()
            .and_then(|p| g.root.local_of(&p))
        else {
            continue;
        };
        if !patterns.matches(&shown(&path)) {
            continue;
        }
        let ctx = g.folders.entry(path.clone()).or_default();
        ctx.state_id = Some(f.id);
        ctx.state_uidvalidity = f.uidvalidity.map(|u| u.get());
        ctx.delimiter = f.delimiter;
        ctx.rel = Some(f.local_path.clone());
        state_folders.push((path, f));
    }

    // ---- local folders: the listing and each folder's stamp, read before anything is
    // scanned (so a change made during the run moves the stamp past the one recorded).
    let listing = maildir.list_folders(db as &dyn AliasRegistry)?;
    for p in listing.skipped {
        report.warnings.push(format!(
            "directory skipped (name not usable): {}",
            p.display()
        ));
    }
    let mut local_folders: Vec<(FolderPath, Folder, Option<StampReading>)> = Vec::new();
    for lf in listing.folders {
        if !lf.is_maildir {
            continue;
        }
        let path = FolderPath(lf.name.components().to_vec());
        if !patterns.matches(&shown(&path)) {
            continue;
        }
        let folder = maildir.folder(&lf.rel)?;
        let read_at = SystemTime::now();
        let stamp = folder.stamp()?.map(|s| (s, read_at));
        local_folders.push((path, folder, stamp));
    }
    // A folder the state records whose directory is gone was renamed or deleted locally. A
    // rename shows as a new local folder (one no state row records) holding its files, which
    // the planner recognises from the cheap views (one RENAME, nothing read). With no new
    // local folder it can only be a deletion, which the planner makes only from a complete
    // server view (a delta cannot show that the folder holds nothing else): such a folder is
    // then read whole. (A deletion made together with a new folder waits for the next run.)
    let local_present: BTreeSet<FolderPath> =
        local_folders.iter().map(|(p, ..)| p.clone()).collect();
    let new_local = local_present
        .iter()
        .any(|p| !state_folders.iter().any(|(s, _)| s == p));
    let read_whole = |p: &FolderPath| !new_local && !local_present.contains(p);

    // ---- folders that may need no look at all: the server status and the local stamp
    // recorded at the end of the last complete run, with no pending change or open intent.
    let intents = db.open_intents()?;
    // An empty mirror with an empty state: nothing of any folder can match anything else,
    // so each folder can be read, planned and applied alone.
    let defer = options.defer_fresh
        && state_folders.is_empty()
        && local_folders.is_empty()
        && intents.is_empty();
    // Without CONDSTORE no STATUS can say "unchanged" (a flag change shows in none of its
    // items), so none of these is skipped; they are read partially instead (a merge of the
    // server's complete listing against the state, below).
    let candidates: HashMap<FolderPath, Known> = {
        let stamps = db.local_stamps()?;
        let mut busy = db.folders_with_pending()?;
        for i in &intents {
            busy.extend(i.intent.folder);
            busy.extend(i.intent.target_folder);
        }
        let local_stamps: HashMap<&FolderPath, (&RelPath, &DirStamp)> = local_folders
            .iter()
            .filter_map(|(p, f, s)| s.as_ref().map(|(s, _)| (p, (f.rel(), s))))
            .collect();
        state_folders
            .iter()
            .filter_map(|(path, f)| {
                let (uv, hms) = (f.uidvalidity?, f.highestmodseq);
                let recorded = stamps.get(&f.id)?;
                let (rel, now) = local_stamps.get(path)?;
                let same =
                    !busy.contains(&f.id) && *rel == &f.local_path && **now == recorded.stamp;
                same.then(|| {
                    let k = Known {
                        uidvalidity: uv.get(),
                        uidnext: f.uidnext.map(|u| u.get()),
                        highestmodseq: hms,
                        bound: BTreeSet::new(),
                        count: usize::try_from(recorded.messages).unwrap_or(usize::MAX),
                        all_bound: true,
                        read_only: f.read_only,
                    };
                    (path.clone(), k)
                })
            })
            .collect()
    };

    // ---- state rows of every other folder
    let mut rows = StateRows::default();
    for (path, f) in &state_folders {
        if !candidates.contains_key(path) {
            rows.load(db, path, f, &mut g)?;
        }
    }
    // What the state says of each folder, for the incremental paths below.
    let mut known: HashMap<FolderPath, Known> = g
        .input
        .state
        .iter()
        .map(|f| (f.path.clone(), known_of(f, &rows.read_only)))
        .collect();
    known.extend(candidates.iter().map(|(p, k)| (p.clone(), k.clone())));

    // Seed V0045: one pipelined round of STATUS (or the LIST-STATUS answer, V0044) tells which
    // folders changed; an unchanged one costs no SELECT. Only with CONDSTORE: without HIGHESTMODSEQ a flag change made by
    // another client shows in no STATUS item.
    let mut unchanged: BTreeSet<FolderPath> = BTreeSet::new();
    // Changed by flag changes alone (see [`FlagsOnlyFolder`]); only those whose local side is
    // unchanged too are read on their own, further down.
    let mut flags_only: BTreeSet<FolderPath> = BTreeSet::new();
    let defer_flags_only = options.defer_flags_only && !report.dry_run;
    if condstore {
        let asked: Vec<(&FolderPath, &crate::remote::ListEntry)> = remote_paths
            .iter()
            .filter(|(p, e)| {
                !e.noselect
                    && known
                        .get(p)
                        .is_some_and(|k| k.highestmodseq.is_some() && k.all_bound)
            })
            .map(|(p, e)| (p, e))
            .collect();
        if !asked.is_empty() {
            // Seed V0044: what LIST-STATUS already returned needs no STATUS command; the
            // rest go in one pipelined round.
            let names: Vec<Vec<u8>> = asked
                .iter()
                .filter(|(_, e)| e.status.is_none())
                .map(|(_, e)| e.wire.clone())
                .collect();
            let mut fetched = if names.is_empty() {
                Vec::new()
            } else {
                remote.status_all(&names)?
            }
            .into_iter();
            let statuses: Vec<Option<crate::remote::Status>> = asked
                .iter()
                .map(|(_, e)| match e.status {
                    Some(st) => Some(st),
                    None => fetched.next().flatten(),
                })
                .collect();
            for ((path, _), st) in asked.iter().zip(statuses) {
                let (Some(st), Some(k)) = (st, known.get(*path)) else {
                    continue;
                };
                // No message arrived or left (UIDVALIDITY, UIDNEXT and MESSAGES as recorded);
                // then either nothing changed, or only flags did (HIGHESTMODSEQ moved).
                let same_messages = st.uidvalidity == Some(k.uidvalidity)
                    && st.uidnext.is_some()
                    && st.uidnext == k.uidnext
                    && st.messages == u32::try_from(k.count).ok();
                let both_modseqs = st.highestmodseq.is_some() && k.highestmodseq.is_some();
                if same_messages && both_modseqs && st.highestmodseq == k.highestmodseq {
                    unchanged.insert((*path).clone());
                } else if same_messages && both_modseqs && defer_flags_only {
                    flags_only.insert((*path).clone());
                }
            }
        }
    }

    // Unchanged on both sides: skipped. The planner sees each as present everywhere and not
    // examined (no server view, no files, no rows: it plans nothing for it, as for a folder
    // whose SELECT failed), so it is never taken for deleted and the account-wide check still
    // counts it. The rest of the candidates are read in full like any other folder.
    let skipped: BTreeSet<FolderPath> = candidates
        .keys()
        .filter(|p| unchanged.contains(*p))
        .cloned()
        .collect();
    // Changed on the server only: read partially (see "Partial folders" in the module docs)
    // when the state can describe the folder's files without a listing.
    let mut partial: HashMap<FolderPath, FolderId> = HashMap::new();
    for (path, f) in &state_folders {
        let selectable = remote_paths.iter().any(|(p, e)| p == path && !e.noselect);
        if candidates.contains_key(path)
            && !skipped.contains(path)
            && selectable
            && db.listing_digest(f.id)?.is_some()
        {
            partial.insert(path.clone(), f.id);
        }
    }
    for (path, f) in &state_folders {
        if !candidates.contains_key(path) || partial.contains_key(path) {
            continue;
        }
        if skipped.contains(path) {
            if let (Some(k), Some(uv)) = (candidates.get(path), f.uidvalidity) {
                g.input.state.push(StateFolder {
                    path: path.clone(),
                    uidvalidity: UidValidity(uv.0),
                    uidnext: f.uidnext.map(Uid),
                    highestmodseq: k.highestmodseq.and_then(ModSeq::new),
                    messages: Vec::new(),
                    pending: Vec::new(),
                    omitted: 0,
                });
            }
            continue;
        }
        rows.load(db, path, f, &mut g)?;
        if let Some(sf) = g.input.state.iter().find(|s| &s.path == path) {
            known.insert(path.clone(), known_of(sf, &rows.read_only));
        }
    }
    for p in &skipped {
        g.folders.entry(p.clone()).or_default().skipped = true;
    }

    // ---- local scans
    let mut deferred: HashMap<FolderPath, (Folder, Option<StampReading>)> = HashMap::new();
    for (path, folder, stamp) in local_folders {
        if skipped.contains(&path) {
            g.input.local.push(LocalFolder {
                path,
                messages: Vec::new(),
            });
            continue;
        }
        if partial.contains_key(&path) {
            deferred.insert(path, (folder, stamp));
            continue;
        }
        scan_local(path, &folder, stamp, &rows, &mut g, report)?;
    }

    // ---- server contents
    let (remote_paths, fresh): (Vec<_>, Vec<_>) = remote_paths
        .into_iter()
        .partition(|(_, e)| !defer || e.noselect);
    if !fresh.is_empty() {
        // Sizes only matter when there is work to share out over several connections: a
        // single folder, or a single connection, costs no STATUS round.
        let share = fresh.len() > 1 && account.connections > 1;
        let names: Vec<Vec<u8>> = fresh
            .iter()
            .filter(|(_, e)| share && e.status.is_none())
            .map(|(_, e)| e.wire.clone())
            .collect();
        let mut fetched = if names.is_empty() {
            Vec::new()
        } else {
            remote.status_all(&names)?
        }
        .into_iter();
        for (path, entry) in fresh {
            let st = match entry.status {
                Some(st) => Some(st),
                None if share => fetched.next().flatten(),
                None => None,
            };
            let messages = st.and_then(|s| s.messages);
            g.fresh.push(FreshFolder {
                path,
                entry,
                messages,
            });
        }
        // Parents before children, as the plan would create them.
        g.fresh.sort_by(|a, b| a.path.cmp(&b.path));
    }
    for (path, e) in remote_paths {
        let ctx = g.folders.entry(path.clone()).or_default();
        ctx.wire = Some(e.wire.clone());
        ctx.delimiter = e.delimiter;
        ctx.special_use = e.special_use.clone();
        ctx.subscribed = e.subscribed;
        let attributes = FolderAttributes {
            noselect: e.noselect,
            nonexistent: false,
        };
        if skipped.contains(&path) {
            if let Some(k) = candidates.get(&path) {
                ctx.read_only = read_only_account || k.read_only;
                ctx.uidvalidity = Some(k.uidvalidity);
            }
            report.unchanged_folders += 1;
            g.input.remote.push(RemoteFolder {
                path,
                attributes,
                delimiter: e.delimiter,
                mailbox: None,
            });
            continue;
        }
        let k = known.get(&path);
        if let (Some(&id), Some(k), false) = (partial.get(&path), k, e.noselect) {
            let (folder, stamp) = deferred
                .remove(&path)
                .expect("every partial folder was deferred by the local listing above");
            if !report.dry_run {
                follow(&mut g.watch, db, id, &folder, stamp.as_ref())?;
            }
            let state = state_folders
                .iter()
                .find(|(p, _)| *p == path)
                .expect("a partial folder has a state row")
                .1
                .clone();
            let mut one = Partial1 {
                path: path.clone(),
                entry: e.clone(),
                id,
                known: k.clone(),
                state,
                folder,
                stamp,
                ctx: FolderCtx::default(),
            };
            if flags_only.contains(&path) {
                // Read, planned and applied on its own (`Gathered::flags_only`); until then
                // the planner sees it as a skipped folder: present, and not examined.
                one.ctx = g.folders.remove(&path).unwrap_or_default();
                let uv = one
                    .state
                    .uidvalidity
                    .expect("a partial folder has UIDVALIDITY");
                g.input.local.push(LocalFolder {
                    path: path.clone(),
                    messages: Vec::new(),
                });
                g.input.state.push(StateFolder {
                    path: path.clone(),
                    uidvalidity: UidValidity(uv.0),
                    uidnext: one.state.uidnext.map(Uid),
                    highestmodseq: one.state.highestmodseq.and_then(ModSeq::new),
                    messages: Vec::new(),
                    pending: Vec::new(),
                    omitted: 0,
                });
                g.input.remote.push(RemoteFolder {
                    path,
                    attributes,
                    delimiter: e.delimiter,
                    mailbox: None,
                });
                g.flags_only.push(FlagsOnlyFolder(one));
                continue;
            }
            match read_partial(
                remote,
                db,
                &one,
                read_only_account,
                &mut rows,
                &mut g,
                report,
            )? {
                PartialRead::Done | PartialRead::Unopened => continue,
                PartialRead::Whole(k) => {
                    // Read whole: the server view below, from the rows just loaded.
                    known.insert(path.clone(), k);
                }
            }
        }
        let ctx = g.folders.entry(path.clone()).or_default();
        let k = known.get(&path);
        let mailbox = if e.noselect {
            None
        } else if let (true, Some(k), Some(since)) = (
            unchanged.contains(&path) && !read_whole(&path),
            k,
            k.and_then(|k| k.highestmodseq).and_then(ModSeq::new),
        ) {
            // Nothing changed on the server: the view is "no changes since the state's
            // HIGHESTMODSEQ", which the planner completes from the state (RFC 7162).
            let ro = read_only_account || k.read_only;
            ctx.read_only = ro;
            ctx.uidvalidity = Some(k.uidvalidity);
            report.unchanged_folders += 1;
            Some(RemoteMailbox {
                uidvalidity: UidValidity::new(k.uidvalidity),
                uidnext: k.uidnext.and_then(Uid::new),
                highestmodseq: k.highestmodseq.and_then(ModSeq::new),
                // Not known without a SELECT; the default of V0037 (all), as for a server
                // that sends none. A keyword the server refuses fails only its own STORE.
                permanent_flags: PermanentFlags::all(),
                read_only: ro,
                messages: RemoteMessages::Changes {
                    since,
                    changed: Vec::new(),
                    vanished: Vec::new(),
                },
            })
        } else {
            match examine_folder(
                remote,
                &e.wire,
                // A dry run opens folders with EXAMINE: it changes nothing, \Recent included.
                read_only_account || report.dry_run,
                rows.rows.get(&path),
                k.filter(|k| k.all_bound && k.highestmodseq.is_some())
                    .filter(|_| !read_whole(&path)),
            ) {
                Ok((mut mb, uv)) => {
                    if report.dry_run && !read_only_account {
                        // EXAMINE shows every folder read-only with no PERMANENTFLAGS (RFC
                        // 3501 6.3.2): plan as after a SELECT, from what the state knows.
                        mb.read_only = k.is_some_and(|k| k.read_only);
                        mb.permanent_flags = PermanentFlags::all();
                    }
                    ctx.read_only = mb.read_only;
                    ctx.uidvalidity = uv;
                    if mb.read_only {
                        report.folder_mut(&shown(&path)).read_only = true;
                    }
                    Some(mb)
                }
                Err(err) if err.is_fatal() => return Err(err.into()),
                Err(err) => {
                    report
                        .folder_mut(&shown(&path))
                        .errors
                        .push(format!("cannot open folder: {err}"));
                    None
                }
            }
        };
        g.input.remote.push(RemoteFolder {
            path,
            attributes,
            delimiter: e.delimiter,
            mailbox,
        });
    }

    // ---- journal
    let id_to_path: HashMap<FolderId, FolderPath> = g
        .folders
        .iter()
        .filter_map(|(p, c)| c.state_id.map(|id| (id, p.clone())))
        .collect();
    for i in intents {
        if i.intent.kind != IntentKind::Append {
            continue;
        }
        let (Some(folder), Some(base)) = (
            i.intent.folder.and_then(|f| id_to_path.get(&f)),
            &i.intent.base,
        ) else {
            continue;
        };
        let mut content = decode_intent_detail(&i.intent.detail);
        content.hash = i.intent.hash.map(to_plan_hash);
        g.input.intents.push(Intent::Append {
            id: IntentId(u64::try_from(i.id.0).unwrap_or(0)),
            folder: folder.clone(),
            local: LocalId::new(base.as_str()),
            content,
        });
    }
    // ---- server copies of new files: a file no row of its folder names, whose content hash
    // the state binds in another folder (a mail reader's "save to folder"), may be copied
    // there on the server instead of uploaded (`Op::CopyRemote`). The files are new, so this
    // is one indexed lookup per new file, not per message.
    if !read_only_account {
        g.input.server_copies = server_copies(db, &g.input, &id_to_path)?;
    }
    Ok(g)
}
