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
use std::io::Read;
use std::time::{Duration, SystemTime};

use mailfold_proto::core::Mailbox;
use mailfold_store::{
    crlf::canonical_digest_of, AliasRegistry, DirStamp, Folder, FolderId, FolderName, FolderRecord,
    IntentKind, ListingWatch, Maildir, MessageBase, MessageEntry, MessageRecord, PendingKind,
    RelPath, StateDb, StateRead, Subdir,
};

use crate::account::{AccountSpec, Direction};
use crate::folder_root::FolderRoot;
use crate::plan::{
    Content, ContentHash, FlagSet, FolderAttributes, FolderPath, Intent, IntentId, LocalFolder,
    LocalId, LocalMessage, Location, ModSeq, PendingKey, PermanentFlags, RemoteFolder,
    RemoteMailbox, RemoteMessage, RemoteMessages, ServerCopy, StateFolder, StateMessage, SyncInput,
    Uid, UidRange, UidValidity, UnixTime,
};
use crate::remote::{header_message_id, Remote, RemoteError};
use crate::report::SyncReport;

/// How much of an unknown file is read to find its Message-ID.
const HEADER_PEEK: u64 = 64 * 1024;

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

/// The account's root: `root_folder` when configured, else the first personal namespace
/// (seed V0022), with other users' and shared namespaces excluded either way.
fn folder_root(
    remote: &mut dyn Remote,
    account: &AccountSpec,
    delimiter: Option<char>,
) -> Result<FolderRoot, RemoteError> {
    let ns = remote.namespace()?;
    // One rule for the sync and the CLI's commands (they name folders the same way).
    Ok(crate::account::folder_root(
        account.root_folder.as_deref(),
        ns.as_ref(),
        delimiter,
    ))
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

/// A server folder of an account whose mirror and state hold nothing yet: no message of it
/// can match anything already mirrored, so it is read, planned and applied on its own
/// ([`gather_fresh`]), and memory follows the largest folder instead of the account.
#[derive(Debug, Clone)]
pub struct FreshFolder {
    /// The local folder path.
    pub path: FolderPath,
    /// Its LIST entry.
    pub entry: crate::remote::ListEntry,
    /// MESSAGES from LIST-STATUS or STATUS, to size the work over several connections;
    /// `None` when not asked (one folder, or one connection: nothing to share out).
    pub messages: Option<u32>,
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

/// The folder path of a wire name.
pub fn path_of_wire(wire: &[u8], delimiter: Option<char>) -> Result<FolderPath, String> {
    let decoded = Mailbox::from_wire(wire.to_vec())
        .to_utf8()
        .map_err(|e| format!("{}: {e}", String::from_utf8_lossy(wire)))?;
    let name = FolderName::split(&decoded, delimiter).map_err(|e| e.to_string())?;
    Ok(FolderPath(name.components().to_vec()))
}

/// The wire name of a folder path; refuses a component holding the delimiter (V0020).
pub fn wire_of_path(path: &FolderPath, delimiter: Option<char>) -> Result<Vec<u8>, String> {
    let name = FolderName::new(path.0.clone()).map_err(|e| e.to_string())?;
    let joined = name.join(delimiter).map_err(|e| e.to_string())?;
    Ok(Mailbox::from_utf8(&joined).as_wire().to_vec())
}

/// Converts flags in wire text to the planner's set (`\Recent` dropped, V0004).
pub fn flagset<S: AsRef<str>>(flags: &[S]) -> FlagSet {
    FlagSet::from_imap(flags.iter().map(AsRef::as_ref))
}

/// The flags of a state row (system flags and keywords).
fn row_flags(r: &MessageRecord) -> FlagSet {
    flagset(&r.flags).union(&flagset(&r.keywords))
}

fn to_plan_hash(h: mailfold_store::ContentHash) -> ContentHash {
    ContentHash(h.0)
}

fn unix_of(t: std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
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

/// The most candidates kept per new file: one usable source is enough, a few cover sources
/// the plan removes or cannot read.
const COPY_CANDIDATES: usize = 4;

/// [`SyncInput::server_copies`] for the unknown local files of `input`.
fn server_copies(
    db: &StateDb,
    input: &SyncInput,
    id_to_path: &HashMap<FolderId, FolderPath>,
) -> Result<Vec<ServerCopy>, crate::SyncError> {
    let mut out = Vec::new();
    for lf in &input.local {
        let named: BTreeSet<&LocalId> = input
            .state
            .iter()
            .filter(|s| s.path == lf.path)
            .flat_map(|s| s.messages.iter().map(|m| &m.local))
            .collect();
        for m in &lf.messages {
            let Some(hash) = m.hash.filter(|_| !m.partial && !named.contains(&m.id)) else {
                continue;
            };
            let rows = db.messages_by_hash(&mailfold_store::ContentHash(hash.0))?;
            let found = rows
                .iter()
                .filter(|(_, r)| !r.partial)
                .filter_map(|(f, r)| Some((id_to_path.get(f)?, r)))
                .filter(|(p, _)| **p != lf.path)
                .take(COPY_CANDIDATES);
            for (from, r) in found {
                out.push(ServerCopy {
                    folder: lf.path.clone(),
                    local: m.id.clone(),
                    from: from.clone(),
                    row: state_message(Some(r.uid), r),
                });
            }
        }
    }
    Ok(out)
}

/// What [`gather_fresh`] read of a fresh folder.
#[derive(Debug)]
pub enum FreshRead {
    /// The whole folder in one view.
    Whole(SyncInput),
    /// A folder of more than [`AccountSpec::fresh_window`] messages: its UIDs, to be read, planned and
    /// applied window by window.
    Windows(FreshWindows),
}

/// Reads one folder of [`Gathered::fresh`] (SELECT or EXAMINE, UIDs, flags and content
/// details) into views of its own: the server's, with no local folder and no state; a folder
/// larger than the window only as far as its UIDs ([`FreshWindows`]). `None` when the folder
/// could not be opened (recorded in `report`); a fatal server error is an error.
pub fn gather_fresh(
    remote: &mut dyn Remote,
    account: &AccountSpec,
    fresh: &FreshFolder,
    report: &mut SyncReport,
) -> Result<Option<(FreshRead, FolderCtx)>, crate::SyncError> {
    let e = &fresh.entry;
    let mut ctx = FolderCtx {
        wire: Some(e.wire.clone()),
        delimiter: e.delimiter,
        special_use: e.special_use.clone(),
        subscribed: e.subscribed,
        ..FolderCtx::default()
    };
    let read_only_account = account.direction == Direction::Pull;
    let window = account.fresh_window.max(1);
    let mut read = || -> Result<FreshRead, RemoteError> {
        let sel = remote.select(&e.wire, read_only_account)?;
        ctx.read_only = sel.read_only;
        ctx.uidvalidity = sel.uidvalidity;
        if usize::try_from(sel.exists).unwrap_or(usize::MAX) > window {
            let uids = remote.fetch_uids()?;
            return Ok(FreshRead::Windows(FreshWindows {
                path: fresh.path.clone(),
                delimiter: e.delimiter,
                selected: sel,
                uids,
                next: 0,
                window,
            }));
        }
        let flags = remote.fetch_flags()?;
        let messages = with_details(remote, flags, &BTreeSet::new())?;
        let mb = mailbox_of(&sel, RemoteMessages::Complete(messages));
        Ok(FreshRead::Whole(one_folder_input(
            &fresh.path,
            e.delimiter,
            mb,
        )))
    };
    let read = match read() {
        Ok(r) => r,
        Err(err) if err.is_fatal() => return Err(err.into()),
        Err(err) => {
            report
                .folder_mut(&fresh.path.to_string())
                .errors
                .push(format!("cannot open folder: {err}"));
            return Ok(None);
        }
    };
    if ctx.read_only {
        report.folder_mut(&fresh.path.to_string()).read_only = true;
    }
    Ok(Some((read, ctx)))
}

pub use crate::account::FRESH_WINDOW;

/// A fresh folder of more than [`AccountSpec::fresh_window`] messages, read window by window in UID
/// order ([`FreshWindows::next`]) on the connection that selected it. Each window is a
/// complete view of its messages alone: nothing in a fresh folder can match anything else,
/// so each window's plan is the part of the whole folder's plan that concerns its messages
/// ([`trim_window`] keeps the folder's own steps where they belong).
#[derive(Debug)]
pub struct FreshWindows {
    path: FolderPath,
    delimiter: Option<char>,
    selected: crate::remote::Selected,
    uids: Vec<u32>,
    next: usize,
    window: usize,
}

/// One window of a [`FreshWindows`].
#[derive(Debug)]
pub struct FreshWindow {
    /// The views of this window's messages.
    pub input: SyncInput,
    /// The first window of the folder.
    pub first: bool,
    /// The last window of the folder.
    pub last: bool,
}

impl FreshWindows {
    /// The local folder path.
    pub fn path(&self) -> &FolderPath {
        &self.path
    }

    /// How many messages the folder held when its UIDs were read.
    pub fn messages(&self) -> usize {
        self.uids.len()
    }

    /// Reads the next window (flags and content details of its UIDs) on `remote`, where
    /// the folder must still be selected (the window before it was applied on the same
    /// connection). `None` after the last.
    pub fn next(&mut self, remote: &mut dyn Remote) -> Result<Option<FreshWindow>, RemoteError> {
        if self.next > 0 && self.next >= self.uids.len() {
            return Ok(None);
        }
        let first = self.next == 0;
        let end = self.next.saturating_add(self.window).min(self.uids.len());
        let uids = &self.uids[self.next..end];
        self.next = end.max(1);
        let flags = if uids.is_empty() {
            Vec::new()
        } else {
            remote.fetch_flags_of(uids)?
        };
        let messages = with_details(remote, flags, &BTreeSet::new())?;
        let mb = mailbox_of(&self.selected, RemoteMessages::Complete(messages));
        Ok(Some(FreshWindow {
            input: one_folder_input(&self.path, self.delimiter, mb),
            first,
            last: self.next >= self.uids.len(),
        }))
    }
}

/// Keeps of a window's plan what belongs to its place in the folder: the folder's own steps
/// (creating it, recording its UIDVALIDITY) in the first window only, its UIDNEXT and
/// HIGHESTMODSEQ in the last only (recorded earlier, they would tell the next run that the
/// later windows' messages are mirrored: V0045), the downloads in every window.
pub fn trim_window(plan: &mut crate::plan::Plan, first: bool, last: bool) {
    plan.ops.retain(|op| match op {
        crate::plan::Op::Download { .. } => true,
        crate::plan::Op::SetFolderState { .. } => last,
        _ => first,
    });
}

/// The planner's input for one server folder alone.
fn one_folder_input(path: &FolderPath, delimiter: Option<char>, mb: RemoteMailbox) -> SyncInput {
    SyncInput {
        remote: vec![RemoteFolder {
            path: path.clone(),
            attributes: FolderAttributes {
                noselect: false,
                nonexistent: false,
            },
            delimiter,
            mailbox: Some(mb),
        }],
        ..SyncInput::default()
    }
}

/// The message rows read so far, by folder, for the scans and the server reads.
#[derive(Debug, Default)]
struct StateRows {
    rows: HashMap<FolderPath, (FolderId, u32, Vec<MessageRecord>)>,
    unbound: HashMap<FolderPath, Vec<MessageRecord>>,
    read_only: BTreeSet<FolderPath>,
}

impl StateRows {
    /// Reads one folder's rows and pending marks into the planner's state view (a folder
    /// without UIDVALIDITY has none that mean anything).
    fn load(
        &mut self,
        db: &StateDb,
        path: &FolderPath,
        f: &FolderRecord,
        g: &mut Gathered,
    ) -> Result<(), crate::SyncError> {
        let Some(uv) = f.uidvalidity else {
            return Ok(());
        };
        if f.read_only {
            self.read_only.insert(path.clone());
        }
        g.folders.entry(path.clone()).or_default().loaded = true;
        let rows = db.messages(f.id)?;
        // Rows unbound by a UIDVALIDITY change (V0003): the planner re-binds them by content.
        let unbound = db.unbound_messages(f.id)?;
        let mut pending = Vec::new();
        for p in db.pending(Some(f.id))? {
            let key = match (p.change.kind, p.change.uid, &p.change.base) {
                (PendingKind::Append, _, Some(b)) => PendingKey::Upload(LocalId::new(b.as_str())),
                (PendingKind::Flags, Some(u), _) => PendingKey::Flags(Uid(u.0)),
                (PendingKind::Expunge, Some(u), _) => PendingKey::Expunge(Uid(u.0)),
                _ => continue,
            };
            pending.push(key);
        }
        g.input.state.push(StateFolder {
            path: path.clone(),
            uidvalidity: UidValidity(uv.0),
            uidnext: f.uidnext.map(Uid),
            highestmodseq: f.highestmodseq.and_then(ModSeq::new),
            messages: rows
                .iter()
                .map(|r| state_message(Some(r.uid), r))
                .chain(unbound.iter().map(|r| state_message(None, r)))
                .collect(),
            pending,
            omitted: 0,
        });
        self.rows.insert(path.clone(), (f.id, uv.get(), rows));
        self.unbound.insert(path.clone(), unbound);
        Ok(())
    }
}

/// A state row as the planner sees it; `uid` is `None` for an unbound row.
fn state_message(uid: Option<mailfold_store::Uid>, r: &MessageRecord) -> StateMessage {
    StateMessage {
        uid: uid.map(|u| Uid(u.0)),
        local: LocalId::new(r.base.as_str()),
        flags: row_flags(r),
        size: r.size.unwrap_or(0),
        internaldate: UnixTime(r.internaldate.map_or(0, |d| d.unix)),
        message_id: r.message_id.clone(),
        hash: r.hash.map(to_plan_hash),
        partial: r.partial,
    }
}

/// Scans one local folder whose rows (if any) are in `rows`, into the planner's local view
/// and the folder's context.
fn scan_local(
    path: FolderPath,
    folder: &Folder,
    stamp: Option<StampReading>,
    rows: &StateRows,
    g: &mut Gathered,
    report: &mut SyncReport,
) -> Result<(), crate::SyncError> {
    let state = rows
        .rows
        .get(&path)
        .map(|(_, _, r)| r.as_slice())
        .unwrap_or(&[]);
    let unbound = rows.unbound.get(&path).map_or(&[][..], Vec::as_slice);
    let by_base: HashMap<&str, &MessageRecord> = state
        .iter()
        .chain(unbound)
        .map(|r| (r.base.as_str(), r))
        .collect();
    // A file the state describes completely needs no lstat: its name gives the size,
    // the row the date (see `describe_local`).
    let files = folder.scan_with(&|b: &MessageBase| {
        let r = by_base.get(b.as_str())?;
        let complete = r.hash.is_some() && r.size.is_some() && r.size == b.crlf_size_field();
        let date = r.internaldate?;
        complete.then(|| system_time_of(date.unix))
    })?;
    let mut messages = Vec::with_capacity(files.len());
    let ctx = g.folders.entry(path.clone()).or_default();
    ctx.scanned = true;
    ctx.rel = Some(folder.rel().clone());
    ctx.stamp = stamp;
    for e in files {
        match describe_local(folder, &e, by_base.get(e.base.as_str()).copied()) {
            Ok(m) => messages.push(m),
            Err(err) => report.folder_mut(&path.to_string()).warnings.push(format!(
                "{}: cannot read ({err}); left alone",
                e.path.display()
            )),
        }
        ctx.files.insert(e.base.as_str().to_owned(), e);
    }
    g.input.local.push(LocalFolder { path, messages });
    Ok(())
}

/// Starts following a partial folder's listing ([`ListingWatch`]) from its rows' digest,
/// which is what its directories hold while their stamp is still the one read at the start
/// of the run (`earlier`, equal to the recorded stamp; its equality with the stamp read
/// after the watch began closes the gap between the two readings).
fn follow(
    watch: &mut ListingWatch,
    db: &StateDb,
    id: FolderId,
    folder: &Folder,
    earlier: Option<&StampReading>,
) -> Result<(), crate::SyncError> {
    let (Some((earlier, _)), Some((digest, count))) = (earlier, db.listing_digest(id)?) else {
        return Ok(());
    };
    if !watch.is_active() {
        *watch = ListingWatch::new();
    }
    if let Some(now) = watch.add(id, folder, digest, count) {
        if now != *earlier {
            watch.forget(id);
        }
    }
    Ok(())
}

/// A folder to read partially, with everything the read needs of the gather.
#[derive(Debug)]
struct Partial1 {
    path: FolderPath,
    entry: crate::remote::ListEntry,
    id: FolderId,
    known: Known,
    state: FolderRecord,
    folder: Folder,
    stamp: Option<StampReading>,
    /// The folder's context so far (only for a folder read on its own).
    ctx: FolderCtx,
}

/// A folder changed on the server by flag changes alone: its STATUS shows the UIDVALIDITY,
/// UIDNEXT and MESSAGES the state records and only HIGHESTMODSEQ moved, so no message
/// arrived or left (RFC 7162 3.1.2: every change moves HIGHESTMODSEQ, a new message moves
/// UIDNEXT, an expunge lowers MESSAGES), and its local directories did not change (its
/// stamp). Nothing in it can match anything in another folder, so it is read partially,
/// planned and applied on its own ([`gather_flags_only`]), by whichever connection takes it
/// ([`crate::parallel`]): on an account with many such folders (a phone marking mail read
/// everywhere) their SELECT rounds and their local work spread over the connections instead
/// of adding up on one. Its listing is followed from the gather on ([`Gathered::watch`]).
#[derive(Debug)]
pub struct FlagsOnlyFolder(Partial1);

impl FlagsOnlyFolder {
    /// The local folder path.
    pub fn path(&self) -> &FolderPath {
        &self.0.path
    }
}

/// Reads one folder of [`Gathered::flags_only`] (on `remote`, which may be another
/// connection than the gather's) into views of its own, as the gather would have read it:
/// the delta and the rows and files it names, or, when the delta cannot be trusted (a
/// message arrived after the STATUS, say), the whole folder. `None` when the folder could
/// not be opened (recorded in `report`); a fatal server error is an error.
pub fn gather_flags_only(
    remote: &mut dyn Remote,
    account: &AccountSpec,
    db: &StateDb,
    f: &FlagsOnlyFolder,
    report: &mut SyncReport,
) -> Result<Option<(SyncInput, FolderCtx)>, crate::SyncError> {
    let one = &f.0;
    let read_only_account = account.direction == Direction::Pull;
    let mut g = Gathered::default();
    g.folders.insert(one.path.clone(), one.ctx.clone());
    let mut rows = StateRows::default();
    let read = read_partial(
        remote,
        db,
        one,
        read_only_account,
        &mut rows,
        &mut g,
        report,
    )?;
    if let PartialRead::Unopened = read {
        return Ok(None);
    }
    if let PartialRead::Whole(k) = read {
        let full = k.all_bound && k.highestmodseq.is_some();
        let mailbox = match examine_folder(
            remote,
            &one.entry.wire,
            read_only_account,
            rows.rows.get(&one.path),
            Some(&k).filter(|_| full),
        ) {
            Ok((mb, uv)) => {
                let ctx = g.folders.entry(one.path.clone()).or_default();
                ctx.read_only = mb.read_only;
                ctx.uidvalidity = uv;
                if mb.read_only {
                    report.folder_mut(&one.path.to_string()).read_only = true;
                }
                mb
            }
            Err(err) if err.is_fatal() => return Err(err.into()),
            Err(err) => {
                report
                    .folder_mut(&one.path.to_string())
                    .errors
                    .push(format!("cannot open folder: {err}"));
                return Ok(None);
            }
        };
        g.input.remote.push(RemoteFolder {
            path: one.path.clone(),
            attributes: FolderAttributes {
                noselect: false,
                nonexistent: false,
            },
            delimiter: one.entry.delimiter,
            mailbox: Some(mailbox),
        });
    }
    let ctx = g.folders.remove(&one.path).unwrap_or_default();
    Ok(Some((g.input, ctx)))
}

/// What [`read_partial`] did.
enum PartialRead {
    /// The folder's three views are in the gathered input.
    Done,
    /// It could not be opened: that is in the report, with empty views in the input.
    Unopened,
    /// The delta or the files could not be trusted: the folder's rows were loaded and its
    /// directories scanned; its server view is still to be read whole, with what the state
    /// now says of it.
    Whole(Known),
}

/// Reads one folder changed on the server only, partially ([`examine_partial`]), into `g`.
#[allow(clippy::too_many_arguments)]
fn read_partial(
    remote: &mut dyn Remote,
    db: &StateDb,
    one: &Partial1,
    read_only_account: bool,
    rows: &mut StateRows,
    g: &mut Gathered,
    report: &mut SyncReport,
) -> Result<PartialRead, crate::SyncError> {
    let (path, k, folder) = (&one.path, &one.known, &one.folder);
    let shown = path.to_string();
    let attributes = FolderAttributes {
        noselect: false,
        nonexistent: false,
    };
    let examine = read_only_account || report.dry_run;
    match examine_partial(remote, &one.entry.wire, examine, k, db, one.id, folder) {
        Ok(Partial::View(mut view)) => {
            if report.dry_run && !read_only_account {
                // As for a complete read in a dry run (EXAMINE): plan as after a
                // SELECT, from what the state knows.
                view.mailbox.read_only = k.read_only;
                view.mailbox.permanent_flags = PermanentFlags::all();
            }
            let ctx = g.folders.entry(path.clone()).or_default();
            ctx.read_only = view.mailbox.read_only;
            ctx.uidvalidity = view.uidvalidity;
            ctx.rel = Some(folder.rel().clone());
            ctx.stamp = one.stamp;
            ctx.partial = true;
            if view.mailbox.read_only {
                report.folder_mut(&shown).read_only = true;
            }
            let mut messages = Vec::with_capacity(view.files.len());
            for (entry, row) in view.files.into_iter().zip(&view.rows) {
                match describe_local(folder, &entry, Some(row)) {
                    Ok(m) => messages.push(m),
                    Err(err) => report.folder_mut(&shown).warnings.push(format!(
                        "{}: cannot read ({err}); left alone",
                        entry.path.display()
                    )),
                }
                ctx.files.insert(entry.base.as_str().to_owned(), entry);
            }
            g.input.local.push(LocalFolder {
                path: path.clone(),
                messages,
            });
            let uv = one
                .state
                .uidvalidity
                .expect("a partial folder has UIDVALIDITY");
            g.input.state.push(StateFolder {
                path: path.clone(),
                uidvalidity: UidValidity(uv.0),
                uidnext: one.state.uidnext.map(Uid),
                highestmodseq: one.state.highestmodseq.and_then(ModSeq::new),
                omitted: k.count.saturating_sub(view.rows.len()),
                messages: view
                    .rows
                    .iter()
                    .map(|r| state_message(Some(r.uid), r))
                    .collect(),
                pending: Vec::new(),
            });
            g.input.remote.push(RemoteFolder {
                path: path.clone(),
                attributes,
                delimiter: one.entry.delimiter,
                mailbox: Some(view.mailbox),
            });
            Ok(PartialRead::Done)
        }
        Ok(Partial::Complete) => {
            // The delta or the files could not be trusted: read the folder whole, like any
            // folder with a local change.
            rows.load(db, path, &one.state, g)?;
            let k = match g.input.state.iter().find(|s| &s.path == path) {
                Some(sf) => known_of(sf, &rows.read_only),
                None => k.clone(),
            };
            scan_local(path.clone(), folder, one.stamp, rows, g, report)?;
            Ok(PartialRead::Whole(k))
        }
        Err(crate::SyncError::Remote(err)) if !err.is_fatal() => {
            report
                .folder_mut(&shown)
                .errors
                .push(format!("cannot open folder: {err}"));
            g.input.local.push(LocalFolder {
                path: path.clone(),
                messages: Vec::new(),
            });
            g.input.remote.push(RemoteFolder {
                path: path.clone(),
                attributes,
                delimiter: one.entry.delimiter,
                mailbox: None,
            });
            Ok(PartialRead::Unopened)
        }
        Err(err) => Err(err),
    }
}

/// What [`examine_partial`] found.
enum Partial {
    /// A delta the planner can use with the rows and files it names.
    View(PartialView),
    /// The folder must be read whole (a delta that does not account for every message, a
    /// server without CONDSTORE, a file not where its row says). It is selected already.
    Complete,
}

/// A folder changed on the server only, read partially.
struct PartialView {
    /// The delta since the state's HIGHESTMODSEQ.
    mailbox: RemoteMailbox,
    /// UIDVALIDITY as SELECT gave it.
    uidvalidity: Option<u32>,
    /// The rows the delta names (changed or vanished UIDs), by UID.
    rows: Vec<MessageRecord>,
    /// Each row's file, in the same order.
    files: Vec<MessageEntry>,
}

/// Reads a folder whose directories did not change since its last complete run (its local
/// stamp) while the server reports a change: the CONDSTORE/QRESYNC delta, the rows of the
/// UIDs it names (indexed lookups, RFC 7162), and those rows' files, found where a
/// complete run left them (`cur/` or `new/`, the base and the flag letters the row
/// records: the listing digest checked that every row's file had exactly that base and
/// those letters when the stamp was recorded). Nothing else of the folder is read: the
/// planner takes the rest as in sync ([`StateFolder::omitted`]).
fn examine_partial(
    remote: &mut dyn Remote,
    wire: &[u8],
    read_only: bool,
    k: &Known,
    db: &StateDb,
    id: FolderId,
    folder: &Folder,
) -> Result<Partial, crate::SyncError> {
    let changes = match k.highestmodseq {
        Some(since) => remote.select_changes(wire, read_only, k.uidvalidity, since)?,
        None => None,
    };
    let Some(ch) = changes else {
        return merge_listing(remote, wire, read_only, k, db, id, folder);
    };
    let since = k.highestmodseq.unwrap_or(0);
    let (Some(since), true) = (
        ModSeq::new(since),
        ch.selected.uidvalidity == Some(k.uidvalidity),
    ) else {
        return Ok(Partial::Complete);
    };
    let changed_uids: Vec<mailfold_store::Uid> = ch
        .changed
        .iter()
        .filter_map(|m| mailfold_store::Uid::new(m.uid))
        .collect();
    let mut rows = db.messages_by_uids(id, &changed_uids)?;
    let known: BTreeSet<u32> = rows.iter().map(|r| r.uid.get()).collect();
    let new = ch
        .changed
        .iter()
        .filter(|m| !known.contains(&m.uid))
        .count();
    let gone = match &ch.vanished {
        Some(v) => db.messages_in_uid_ranges(id, v)?,
        None => Vec::new(),
    };
    // The same rule as the complete path's incremental view: the delta is trusted only when
    // it accounts for every message the server holds.
    let exists = usize::try_from(ch.selected.exists).unwrap_or(usize::MAX);
    if exists != (k.count + new).saturating_sub(gone.len()) {
        return Ok(Partial::Complete);
    }
    rows.extend(gone);
    rows.sort_by_key(|r| r.uid);
    rows.dedup_by_key(|r| r.uid);
    let mut files = Vec::with_capacity(rows.len());
    for r in &rows {
        match find_file(folder, r) {
            Some(e) => files.push(e),
            None => return Ok(Partial::Complete),
        }
    }
    let sel = ch.selected;
    let changed = with_details(remote, ch.changed, &known)?;
    let vanished = uid_ranges(ch.vanished.unwrap_or_default());
    Ok(Partial::View(PartialView {
        mailbox: mailbox_of(
            &sel,
            RemoteMessages::Changes {
                since,
                changed,
                vanished,
            },
        ),
        uidvalidity: sel.uidvalidity,
        rows,
        files,
    }))
}

/// [`examine_partial`] for a server without CONDSTORE (or a folder without
/// HIGHESTMODSEQ): SELECT, the complete `UID FETCH 1:* (UID FLAGS)` listing, merged against
/// the state's rows in UID order one row at a time (never holding the folder's rows), into
/// the messages whose flags differ, the new ones and the vanished ones. The planner then
/// gets a complete view of just those (absent named rows are gone) with the rest omitted.
fn merge_listing(
    remote: &mut dyn Remote,
    wire: &[u8],
    read_only: bool,
    k: &Known,
    db: &StateDb,
    id: FolderId,
    folder: &Folder,
) -> Result<Partial, crate::SyncError> {
    let sel = remote.select(wire, read_only)?;
    if sel.uidvalidity != Some(k.uidvalidity) {
        return Ok(Partial::Complete);
    }
    let mut listing = remote.fetch_flags()?;
    listing.sort_by_key(|m| m.uid);
    listing.dedup_by_key(|m| m.uid);
    let uidnext = sel
        .uidnext
        .or_else(|| listing.last().and_then(|m| m.uid.checked_add(1)));
    let mut differs: Vec<u32> = Vec::new();
    let mut gone: Vec<mailfold_store::Uid> = Vec::new();
    let mut seen_rows = 0usize;
    let mut i = 0;
    db.for_each_message_flags(id, &mut |uid, flags, keywords| {
        seen_rows += 1;
        let uid = uid.get();
        while listing.get(i).is_some_and(|m| m.uid < uid) {
            differs.push(listing[i].uid);
            i += 1;
        }
        match listing.get(i) {
            Some(m) if m.uid == uid => {
                let row = flagset(&split_words(flags)).union(&flagset(&split_words(keywords)));
                if flagset(&m.flags) != row {
                    differs.push(uid);
                }
                i += 1;
            }
            _ => gone.extend(mailfold_store::Uid::new(uid)),
        }
    })?;
    differs.extend(listing[i..].iter().map(|m| m.uid));
    if seen_rows != k.count {
        return Ok(Partial::Complete);
    }
    let named: Vec<mailfold_store::Uid> = differs
        .iter()
        .filter_map(|&u| mailfold_store::Uid::new(u))
        .chain(gone.iter().copied())
        .collect();
    let rows = db.messages_by_uids(id, &named)?;
    let known: BTreeSet<u32> = rows.iter().map(|r| r.uid.get()).collect();
    let mut files = Vec::with_capacity(rows.len());
    for r in &rows {
        match find_file(folder, r) {
            Some(e) => files.push(e),
            None => return Ok(Partial::Complete),
        }
    }
    let wanted: BTreeSet<u32> = differs.iter().copied().collect();
    listing.retain(|m| wanted.contains(&m.uid));
    let messages = with_details(remote, listing, &known)?;
    Ok(Partial::View(PartialView {
        mailbox: RemoteMailbox {
            // The listing's last UID stands in for a UIDNEXT the server did not send (V0037).
            uidnext: uidnext.and_then(Uid::new),
            ..mailbox_of(&sel, RemoteMessages::Complete(messages))
        },
        uidvalidity: sel.uidvalidity,
        rows,
        files,
    }))
}

/// The words of a stored flag list.
fn split_words(s: &str) -> Vec<&str> {
    s.split(' ').filter(|w| !w.is_empty()).collect()
}

/// The file of a row in a folder whose listing digest matched its rows: `cur/` with the
/// row's letters (where mailfold and mail readers keep read mail), else `new/` without or
/// with them. `None` when none is there as a regular file (for example a name with
/// non-standard letters, which the digest leaves aside): the caller then lists the folder.
fn find_file(folder: &Folder, r: &MessageRecord) -> Option<MessageEntry> {
    let flags = mailfold_store::MaildirFlags::from_imap(
        r.flags.iter().chain(&r.keywords).map(String::as_str),
        &mailfold_store::MaildirFlags::empty(),
    );
    let base = r.base.as_str();
    let candidates = [
        (Subdir::Cur, format!("{base}:2,{flags}")),
        (Subdir::New, base.to_owned()),
        (Subdir::New, format!("{base}:2,{flags}")),
    ];
    for (subdir, name) in candidates {
        let path = folder.path().join(subdir.as_str()).join(&name);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let (parsed_base, parsed_flags) = MessageBase::parse_file_name(&name)?;
        return Some(MessageEntry {
            base: parsed_base,
            flags: parsed_flags,
            subdir,
            path,
            size: meta.len(),
            mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        });
    }
    None
}

/// What the state view of a folder says, for the incremental paths.
fn known_of(f: &StateFolder, read_only: &BTreeSet<FolderPath>) -> Known {
    let bound: BTreeSet<u32> = f
        .messages
        .iter()
        .filter_map(|m| m.uid)
        .map(|u| u.get())
        .collect();
    Known {
        uidvalidity: f.uidvalidity.0.get(),
        uidnext: f.uidnext.map(|u| u.get()),
        highestmodseq: f.highestmodseq.map(|m| m.0.get()),
        all_bound: bound.len() == f.messages.len(),
        count: bound.len(),
        bound,
        read_only: read_only.contains(&f.path),
    }
}

/// A Unix time as a `SystemTime` (dates before 1970 included).
fn system_time_of(unix: i64) -> SystemTime {
    let d = Duration::from_secs(unix.unsigned_abs());
    if unix >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(d)
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(d)
    }
    .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// What the state knows of a folder, for the incremental paths (seeds V0002, V0045).
#[derive(Debug, Clone)]
struct Known {
    uidvalidity: u32,
    uidnext: Option<u32>,
    highestmodseq: Option<u64>,
    /// UIDs of the bound rows (empty for a folder whose rows were not read).
    bound: BTreeSet<u32>,
    /// How many rows are bound (from `bound`, or from the local stamp's record).
    count: usize,
    /// No row is unbound (no UIDVALIDITY change is being recovered from).
    all_bound: bool,
    /// The server opened it READ-ONLY last time (V0039).
    read_only: bool,
}

/// Server messages with their content details fetched for the UIDs the state does not know.
fn with_details(
    remote: &mut dyn Remote,
    flags: Vec<crate::remote::MessageFlags>,
    known: &BTreeSet<u32>,
) -> Result<Vec<RemoteMessage>, RemoteError> {
    let unknown: Vec<u32> = flags
        .iter()
        .map(|m| m.uid)
        .filter(|u| !known.contains(u))
        .collect();
    let details: HashMap<u32, crate::remote::MessageDetails> = if unknown.is_empty() {
        HashMap::new()
    } else {
        remote
            .fetch_details(&unknown)?
            .into_iter()
            .map(|d| (d.uid, d))
            .collect()
    };
    Ok(flags
        .into_iter()
        .filter_map(|m| {
            let uid = Uid::new(m.uid)?;
            let d = details.get(&m.uid);
            Some(RemoteMessage {
                uid,
                flags: flagset(&m.flags),
                modseq: m.modseq.and_then(ModSeq::new),
                size: d.and_then(|d| d.size),
                internaldate: d.and_then(|d| d.internaldate).map(UnixTime),
                message_id: d.and_then(|d| d.message_id.clone()),
            })
        })
        .collect())
}

/// SELECT/EXAMINE a folder and read its messages (see the module docs). With `incremental`
/// (the state's UIDVALIDITY and HIGHESTMODSEQ, every row bound) and a server with
/// CONDSTORE/QRESYNC, only what changed since is read (RFC 7162); otherwise every UID and
/// its flags (seed V0002).
fn examine_folder(
    remote: &mut dyn Remote,
    wire: &[u8],
    read_only: bool,
    state: Option<&(FolderId, u32, Vec<MessageRecord>)>,
    incremental: Option<&Known>,
) -> Result<(RemoteMailbox, Option<u32>), RemoteError> {
    let mut selected = None;
    if let Some(k) = incremental {
        let since = k.highestmodseq.unwrap_or(0);
        if let Some(ch) = remote.select_changes(wire, read_only, k.uidvalidity, since)? {
            let same_validity = ch.selected.uidvalidity == Some(k.uidvalidity);
            let new = ch
                .changed
                .iter()
                .filter(|m| !k.bound.contains(&m.uid))
                .count();
            let exists = usize::try_from(ch.selected.exists).unwrap_or(usize::MAX);
            let vanished = match ch.vanished {
                // The changes view is trusted only when it accounts for every message the
                // server holds: the known ones, less those vanished, plus the new ones. A
                // message the state never recorded although it is older than the state's
                // HIGHESTMODSEQ (a download that failed under an older version that still
                // recorded the folder as synced) would otherwise stay hidden forever; then the
                // complete view below finds it.
                Some(v) => {
                    // `v` is ascending and disjoint (the set's own form): binary search.
                    let gone = k
                        .bound
                        .iter()
                        .filter(|&&u| {
                            let i = v.partition_point(|&(_, last)| last < u);
                            v.get(i).is_some_and(|&(first, _)| first <= u)
                        })
                        .count();
                    (exists == k.bound.len() - gone + new).then_some(v)
                }
                // CONDSTORE without QRESYNC: no expunge happened exactly when EXISTS equals
                // the known messages plus the new ones (UIDs only grow, RFC 3501 2.3.1.1).
                None => (exists == k.bound.len() + new).then(Vec::new),
            };
            match (same_validity, vanished, ModSeq::new(since)) {
                (true, Some(vanished), Some(since)) => {
                    let sel = ch.selected;
                    let changed = with_details(remote, ch.changed, &k.bound)?;
                    let vanished = uid_ranges(vanished);
                    let mb = mailbox_of(
                        &sel,
                        RemoteMessages::Changes {
                            since,
                            changed,
                            vanished,
                        },
                    );
                    return Ok((mb, sel.uidvalidity));
                }
                // Selected already; read everything below.
                _ => selected = Some(ch.selected),
            }
        }
    }
    let sel = match selected {
        Some(s) => s,
        None => remote.select(wire, read_only)?,
    };
    let flags = remote.fetch_flags()?;
    let known: BTreeSet<u32> = match (state, sel.uidvalidity) {
        (Some((_, uv, rows)), Some(now)) if *uv == now => {
            rows.iter().map(|r| r.uid.get()).collect()
        }
        _ => BTreeSet::new(),
    };
    let messages = with_details(remote, flags, &known)?;
    let mb = mailbox_of(&sel, RemoteMessages::Complete(messages));
    Ok((mb, sel.uidvalidity))
}

/// The planner's view of a selected folder holding `messages`.
fn mailbox_of(sel: &crate::remote::Selected, messages: RemoteMessages) -> RemoteMailbox {
    RemoteMailbox {
        uidvalidity: sel.uidvalidity.and_then(UidValidity::new),
        uidnext: sel.uidnext.and_then(Uid::new),
        highestmodseq: sel.highestmodseq.and_then(ModSeq::new),
        permanent_flags: permanent_flags_of(&sel.permanent_flags),
        read_only: sel.read_only,
        messages,
    }
}

/// A VANISHED answer's ranges as the planner takes them (UID 0 is not a UID).
fn uid_ranges(ranges: Vec<(u32, u32)>) -> Vec<UidRange> {
    ranges
        .into_iter()
        .filter_map(|(a, b)| {
            Some(UidRange {
                first: Uid::new(a.max(1))?,
                last: Uid::new(b)?,
            })
        })
        .collect()
}

/// PERMANENTFLAGS as the planner takes them; missing means all (V0037).
fn permanent_flags_of(list: &Option<Vec<String>>) -> PermanentFlags {
    match list {
        None => PermanentFlags::all(),
        Some(list) => PermanentFlags {
            flags: flagset(list),
            new_keywords: list.iter().any(|f| f == "\\*"),
        },
    }
}

/// The flags the planner sees on a local file: its name's letters, plus the keywords of its
/// state row that no letter carries (seed V0005).
fn local_flags(e: &MessageEntry, row: Option<&MessageRecord>) -> FlagSet {
    let mut flags = flagset(&e.flags.to_imap());
    if let Some(r) = row {
        // Keywords with a letter (`$Forwarded` ↔ `P`) are the file name's business: the row's
        // copy would hide a local removal.
        for k in &r.keywords {
            if !mailfold_store::MaildirFlags::has_letter_for(k) {
                flags = flags.union(&flagset(&[k]));
            }
        }
    }
    flags
}

/// Describes a local file for the planner. A file with a state row is described from the row
/// (its keywords live there, seed V0005) without being opened, unless its size disagrees with
/// the row; any other file is read once for its Message-ID, size and hash.
fn describe_local(
    folder: &Folder,
    e: &MessageEntry,
    row: Option<&MessageRecord>,
) -> Result<LocalMessage, std::io::Error> {
    let flags = local_flags(e, row);
    let location = match e.subdir {
        Subdir::New => Location::New,
        Subdir::Cur => Location::Cur,
    };
    let mtime = UnixTime(unix_of(e.mtime));
    let lf_matches = !matches!(e.base.size_field(), Some(s) if s != e.size);
    if let (Some(r), Some(size)) = (row, e.base.crlf_size_field()) {
        if lf_matches && r.size == Some(size) {
            return Ok(LocalMessage {
                id: LocalId::new(e.base.as_str()),
                location,
                flags,
                size,
                mtime,
                message_id: r.message_id.clone(),
                hash: r.hash.map(to_plan_hash),
                partial: r.partial,
            });
        }
    }
    // Read through the folder's held handle: a file swapped for a link since the scan is
    // refused (left alone with a warning), never read through.
    let open = || folder.open_message(e).map_err(std::io::Error::other);
    let (hash, size) = canonical_digest_of(open()?)?;
    let mut head = Vec::new();
    open()?.take(HEADER_PEEK).read_to_end(&mut head)?;
    Ok(LocalMessage {
        id: LocalId::new(e.base.as_str()),
        location,
        flags,
        size,
        mtime,
        message_id: header_message_id(&head),
        hash: Some(to_plan_hash(hash)),
        partial: row.is_some_and(|r| r.partial),
    })
}

/// Records the local stamp of every folder that ended this run complete, so that the next run
/// can skip it while neither its server status nor its directories change. Call it
/// once at the end of a run, after every local write and state transaction of the run
/// (`sync_with_remote` does), with the run's [`Gathered`] (its folder contexts carry the
/// stamps read before the scans) and report. Returns how many stamps were written; a run that
/// changed nothing writes none and commits nothing.
///
/// A folder is considered when it was not skipped this run, its state row (if the run began
/// with one) still names the same directory, the row has UIDVALIDITY and HIGHESTMODSEQ (without them STATUS cannot say
/// "unchanged" anyway), and the run ended complete: no refusal, no account error, no error in
/// the folder, no pending change for it and no open journal intent naming it. Its stamp is
/// then recorded in one of three ways:
///
/// * **Untouched during the run**: the stamp read before the scan is settled
///   ([`DirStamp::is_settled`]: more than two seconds older than its reading, fine-grained)
///   and the directories still show it. The scan saw what the stamp describes and the run
///   wrote nothing there. No listing is needed.
/// * **Written during the run** (this run's downloads, flag renames, deletions), or changed
///   by a mail reader shortly before it: the folder is checked again now. A probe
///   file in its `tmp/` gives the file system's current time T ([`Folder::fs_time`]); then the
///   stamp S1 is read, the names in `new/` and `cur/` are listed (no `stat` of files), and the
///   stamp S2 is read. S1 is recorded only if S1 == S2, every time in S1 is strictly before T
///   ([`DirStamp::is_before`]), and the listing is exactly what the state now says the folder
///   holds: every row's base once, carrying the flags the row records (letters in the name,
///   keywords without a letter in the row, as [`gather`] reads them), the size in the name
///   the row's size, and no file the state does not know. Then the next run, finding S1
///   again, would have scanned files that describe exactly the rows it would load: skipping
///   it loses nothing.
/// * **Written during the run, and followed** (a folder read partially, whose listing the
///   run followed from the moment its stamp proved it: [`ListingWatch`]): the same probe T and
///   stamp S1, then, instead of a listing and S2, the kernel's reports of every name added to
///   or removed from `cur/` and `new/` since the watch began, folded into the digest the rows
///   had then; S1 is recorded when that digest and count are the rows' now and S1 is before
///   T. A change before the reports were read is among them (the kernel queues a directory's
///   report before the call that changed it returns); one after moves the stamp past S1, as
///   below. Anything the watch could not follow sends the folder to the listing check.
///
/// Why a later change by a mail reader necessarily changes the stamp: every such change adds,
/// removes or renames an entry of `new/` or `cur/`, which sets that directory's mtime and
/// ctime to the file system's current time, which is T or later for anything done after the
/// probe (the file system's clock does not run backwards; ctime cannot be set from user
/// space; a replaced directory has another inode). Since S1's times are all before T, the
/// new times differ from S1's. Why a change racing with the listing is caught: one made
/// before S1 was read shows in the listing (which starts after it) and so breaks the
/// comparison with the state; one made after it moves S2 away from S1. A change in the same
/// clock tick as the run's last write (S1 not before T) is the one case the times cannot
/// tell apart: then the folder waits for the file system's clock to move past S1 (probing it
/// every millisecond, at most [`STAMP_RETRY_WAIT`], one wait for all such folders together)
/// and is checked once more, else left unstamped. On a file system with
/// whole-second times nothing is recorded this way ([`DirStamp::is_fine`]): they keep the two
/// second rule of the first way.
///
/// The state clears a folder's stamp whenever its rows or status change
/// ([`mailfold_store::Txn`]), so a recorded stamp always goes with the rows it was taken with.
pub fn record_stamps(
    db: &mut StateDb,
    maildir: &Maildir,
    g: &Gathered,
    report: &SyncReport,
) -> Result<usize, crate::SyncError> {
    record_stamps_with(db, maildir, g, report, &mut |_, _| {})
}

/// The longest [`record_stamps`] waits, once per run, for the file system's clock to move on
/// past folders whose last change fell in the same clock tick as its probe. Linux's coarse
/// file-system clock advances every 1–10 ms (HZ of 1000 down to 100); five such ticks leave
/// room for a busy machine. The wait ends as soon as probes show the tick has passed.
pub const STAMP_RETRY_WAIT: Duration = Duration::from_millis(50);

/// How [`record_stamps`] checks a folder's directories against its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StampCheck {
    /// The names in `cur/` and `new/` are listed and compared with the rows.
    Listing,
    /// The listing is known without reading it: the one the stamp proved at the start of the
    /// run, with every change since as the kernel reported it ([`ListingWatch`]).
    Followed,
}

/// [`record_stamps`] with a hook called for each folder it checks again, at the moment a
/// concurrent change is the hardest to notice (between the listing and the second stamp
/// reading; for a followed folder, between the stamp reading and the reading of the
/// kernel's reports): tests use it to make a change at exactly the moment a concurrent mail
/// reader could, and to see how each folder was checked.
pub fn record_stamps_with(
    db: &mut StateDb,
    maildir: &Maildir,
    g: &Gathered,
    report: &SyncReport,
    during_listing: &mut dyn FnMut(&Folder, StampCheck),
) -> Result<usize, crate::SyncError> {
    if report.dry_run || !report.refused.is_empty() || !report.errors.is_empty() {
        return Ok(0);
    }
    let rows: HashMap<FolderId, FolderRecord> =
        db.folders()?.into_iter().map(|f| (f.id, f)).collect();
    let by_path: HashMap<FolderPath, FolderId> = rows
        .values()
        .filter_map(|f| {
            let p = path_of_wire(f.wire_name.as_bytes(), f.delimiter).ok()?;
            Some((g.root.local_of(&p)?, f.id))
        })
        .collect();
    let recorded = db.local_stamps()?;
    let mut busy = db.folders_with_pending()?;
    for i in db.open_intents()? {
        busy.extend(i.intent.folder);
        busy.extend(i.intent.target_folder);
    }
    let mut todo = Vec::new();
    let mut to_verify = Vec::new();
    for (path, ctx) in &g.folders {
        // A skipped folder keeps the stamp it has. One without a state row at the start may
        // have one now (created and filled by this run): its id is looked up by name below.
        if ctx.skipped {
            continue;
        }
        let Some(id) = ctx.state_id.or_else(|| by_path.get(path).copied()) else {
            continue;
        };
        let name = path.to_string();
        if report
            .folders
            .iter()
            .any(|f| f.folder == name && (!f.errors.is_empty() || f.pending > 0))
            || busy.contains(&id)
        {
            continue;
        }
        let Some(row) = rows.get(&id) else { continue };
        let rel = &row.local_path;
        // Without HIGHESTMODSEQ (a server without CONDSTORE) a stamp never lets the folder be
        // skipped (STATUS cannot say "unchanged"), but it lets the next run read it partially.
        if row.uidvalidity.is_none() || ctx.rel.as_ref().is_some_and(|r| r != rel) {
            continue;
        }
        let Ok(folder) = maildir.folder(rel) else {
            continue;
        };
        let now = folder.stamp().ok().flatten();
        match ctx.stamp {
            Some((before, read_at))
                if ctx.scanned && now == Some(before) && before.is_settled(read_at) =>
            {
                // Scanned and loaded whole, unchanged since: the rows the scan matched are
                // the ones the keys are rebuilt from, when they are not known yet.
                todo.push((id, before, db.listing_digest(id)?.is_none()));
            }
            _ => to_verify.push((id, folder)),
        }
    }
    let mut again = Vec::new();
    for (id, folder) in to_verify {
        match verify(db, &folder, id, &g.watch, during_listing)? {
            Verified::Matches(stamp, rebuild) => todo.push((id, stamp, rebuild)),
            Verified::SameTick(s1) => again.push((id, folder, s1)),
            Verified::No => {}
        }
    }
    if !again.is_empty() {
        wait_for_next_tick(&again);
        for (id, folder, _) in again {
            if let Verified::Matches(stamp, rebuild) =
                verify(db, &folder, id, &g.watch, during_listing)?
            {
                todo.push((id, stamp, rebuild));
            }
        }
    }
    let mut fresh = Vec::with_capacity(todo.len());
    for (id, stamp, rebuild) in todo {
        if let Some(r) = recorded.get(&id) {
            if !rebuild && r.stamp == stamp && r.messages == db.message_counts(id)?.0 {
                continue;
            }
        }
        fresh.push((id, stamp, rebuild));
    }
    if fresh.is_empty() {
        return Ok(0);
    }
    Ok(db.write(|tx| {
        let mut n = 0;
        for (id, stamp, rebuild) in &fresh {
            if *rebuild {
                tx.rebuild_listing_keys(*id)?;
            }
            n += usize::from(tx.set_local_stamp(*id, stamp)?);
        }
        Ok(n)
    })?)
}

/// Waits until the file system's clock, as probes in each folder read it ([`Folder::fs_time`]),
/// has moved past every given stamp, and at most [`STAMP_RETRY_WAIT`]: usually one tick of
/// the coarse clock (a few milliseconds) rather than the whole allowance.
fn wait_for_next_tick(folders: &[(FolderId, Folder, DirStamp)]) {
    const STEP: Duration = Duration::from_millis(1);
    let start = std::time::Instant::now();
    while start.elapsed() < STAMP_RETRY_WAIT {
        std::thread::sleep(STEP);
        let passed = folders
            .iter()
            .all(|(_, folder, s1)| matches!(folder.fs_time(), Ok(Some(now)) if s1.is_before(now)));
        if passed {
            return;
        }
    }
}

/// What checking a folder's directories against the state found.
enum Verified {
    /// The listing is what the state describes, under this stamp, which can be recorded;
    /// `true` when it was compared row by row, so the listing keys are rebuilt with it.
    Matches(DirStamp, bool),
    /// Everything matched but this stamp's latest time is in the file system's current clock
    /// tick: worth one more try once the clock has moved on (at most [`STAMP_RETRY_WAIT`]).
    SameTick(DirStamp),
    /// Not recordable now (a difference, a concurrent change, coarse times, an I/O error).
    No,
}

/// Checks one folder at the end of a run (see [`record_stamps`]): probe time T, stamp S1,
/// listing, stamp S2, then the listing against the state rows. A folder whose listing was
/// followed since the start of the run ([`ListingWatch`]) is checked without listing first
/// ([`verify_followed`]). Local I/O errors mean "no stamp", never a failed run; state
/// database errors are errors.
fn verify(
    db: &StateDb,
    folder: &Folder,
    id: FolderId,
    watch: &ListingWatch,
    during_listing: &mut dyn FnMut(&Folder, StampCheck),
) -> Result<Verified, crate::SyncError> {
    // A folder with rows unbound by a UIDVALIDITY change is still being recovered: never
    // stamped (the state refuses it too).
    if db.message_counts(id)?.1 > 0 {
        return Ok(Verified::No);
    }
    if watch.follows(id) {
        if let Some(v) = verify_followed(db, folder, id, watch, during_listing)? {
            return Ok(v);
        }
    }
    // With a known listing digest (schema v4) the names alone are compared, through the
    // digest; otherwise the rows are read and compared one by one, and a match makes the
    // digest known for the next time.
    let digest = db.listing_digest(id)?;
    let rows = match digest {
        Some(_) => None,
        None => Some(db.messages(id)?),
    };
    let Ok(Some(fs_now)) = folder.fs_time() else {
        return Ok(Verified::No);
    };
    let Ok(Some(s1)) = folder.stamp() else {
        return Ok(Verified::No);
    };
    if !s1.is_fine() {
        return Ok(Verified::No);
    }
    // Every file is "known": its name gives base, flags and (with `,S=`) size, and no file is
    // `stat`ed; the date is not compared.
    let Ok(files) = folder.scan_with(&|_| Some(SystemTime::UNIX_EPOCH)) else {
        return Ok(Verified::No);
    };
    during_listing(folder, StampCheck::Listing);
    let Ok(Some(s2)) = folder.stamp() else {
        return Ok(Verified::No);
    };
    let matches = match (&digest, &rows) {
        (Some(d), _) => listing_matches_digest(&files, *d),
        (None, Some(rows)) => listing_matches(&files, rows),
        (None, None) => false,
    };
    if s1 != s2 || !matches {
        return Ok(Verified::No);
    }
    let rebuild = digest.is_none();
    Ok(if s1.is_before(fs_now) {
        Verified::Matches(s1, rebuild)
    } else {
        Verified::SameTick(s1)
    })
}

/// [`verify`] for a folder whose listing was followed: probe time T, stamp S1, then every
/// change the kernel reported up to now folded into the listing the stamp proved at the
/// start, compared with the rows' digest. A change before the reports were read is among
/// them; one after it is stamped at T or later, so it moves the stamp away from S1 (S1 is
/// recorded only when all its times are before T, as in [`verify`]). `None` when the
/// listing is not known after all (a report lost, the directories replaced) or disagrees
/// with the rows: the caller then lists the folder.
fn verify_followed(
    db: &StateDb,
    folder: &Folder,
    id: FolderId,
    watch: &ListingWatch,
    during_listing: &mut dyn FnMut(&Folder, StampCheck),
) -> Result<Option<Verified>, crate::SyncError> {
    let Ok(Some(fs_now)) = folder.fs_time() else {
        return Ok(Some(Verified::No));
    };
    let Ok(Some(s1)) = folder.stamp() else {
        return Ok(Some(Verified::No));
    };
    if !s1.is_fine() {
        return Ok(Some(Verified::No));
    }
    during_listing(folder, StampCheck::Followed);
    watch.drain();
    let Some(now) = watch.listing(id, &s1) else {
        return Ok(None);
    };
    if db.listing_digest(id)? != Some(now) {
        return Ok(None);
    }
    Ok(Some(if s1.is_before(fs_now) {
        Verified::Matches(s1, false)
    } else {
        Verified::SameTick(s1)
    }))
}

/// Whether a folder's files are exactly what its state rows describe, as the next run's scan
/// and planner would see them: one file per row base, no other file, the flags the planner
/// would read off each file ([`local_flags`]) equal to the row's, and a `,W=` size in a name
/// equal to the row's size (else the next scan would read the file: not "unchanged").
fn listing_matches(files: &[MessageEntry], rows: &[MessageRecord]) -> bool {
    if files.len() != rows.len() {
        return false;
    }
    let by_base: HashMap<&str, &MessageRecord> =
        rows.iter().map(|r| (r.base.as_str(), r)).collect();
    if by_base.len() != rows.len() {
        return false;
    }
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    files.iter().all(|e| {
        let Some(r) = by_base.get(e.base.as_str()) else {
            return false;
        };
        let size_ok = e
            .base
            .crlf_size_field()
            .is_none_or(|size| r.size == Some(size));
        seen.insert(e.base.as_str()) && size_ok && local_flags(e, Some(r)) == row_flags(r)
    })
}

/// [`listing_matches`] through the folder's listing digest and row count (schema v4): the
/// files' keys ([`mailfold_store::listing_key_of_file`]) fold to the digest of the rows'
/// keys, there are as many files as rows, and no base appears twice. Distinct bases give
/// distinct keys (64-bit hashes), so equal digests mean equal sets of keys, and a file's key
/// equals its row's exactly when [`listing_matches`] would accept the pair.
fn listing_matches_digest(files: &[MessageEntry], (digest, count): (i64, u64)) -> bool {
    if files.len() as u64 != count {
        return false;
    }
    let mut bases: Vec<&str> = files.iter().map(|e| e.base.as_str()).collect();
    bases.sort_unstable();
    if bases.windows(2).any(|w| w[0] == w[1]) {
        return false;
    }
    let keys = files
        .iter()
        .map(|e| mailfold_store::listing_key_of_file(&e.base, &e.flags));
    mailfold_store::fold_listing_keys(keys) == digest
}

/// The journal detail of an APPEND intent: what was sent, so the copy can be recognised.
pub fn encode_intent_detail(size: u64, date: i64, message_id: Option<&str>) -> String {
    format!("size={size};date={date};mid={}", message_id.unwrap_or(""))
}

fn decode_intent_detail(s: &str) -> Content {
    let mut c = Content::default();
    for part in s.splitn(3, ';') {
        if let Some(v) = part.strip_prefix("size=") {
            c.size = v.parse().ok();
        } else if let Some(v) = part.strip_prefix("date=") {
            c.date = v.parse().ok().map(UnixTime);
        } else if let Some(v) = part.strip_prefix("mid=") {
            c.message_id = Some(v.to_owned()).filter(|v| !v.is_empty());
        }
    }
    c
}

/// A base from a planner id (the planner only hands back ids the gather produced).
pub fn base_of(id: &LocalId) -> Result<MessageBase, String> {
    MessageBase::new(&id.0).map_err(|e| e.to_string())
}

/// The narrow gather of a change made outside a full sync ([`crate::changes`]): the applier's
/// context for `folders` only, and the account's delimiter and root by the rule [`gather`]
/// uses. For each folder: its state row (id, UIDVALIDITY, server name, delimiter, directory)
/// when it has one, else its Maildir directory when it exists. Nothing is listed, selected or
/// scanned and no message row is read: a change names its messages itself
/// ([`FolderCtx::files`] is filled by the caller). The delimiter is the one the state rows
/// record (INBOX's, else any); only an account with no row that records one asks the server
/// (`LIST "" ""`).
pub fn gather_folders(
    remote: &mut dyn Remote,
    account: &AccountSpec,
    maildir: &Maildir,
    db: &StateDb,
    folders: &[FolderPath],
) -> Result<Gathered, crate::SyncError> {
    let mut g = Gathered::default();
    let rows = db.folders()?;
    g.delimiter = rows
        .iter()
        .find(|r| r.wire_name.eq_ignore_ascii_case("INBOX"))
        .or_else(|| rows.iter().find(|r| r.delimiter.is_some()))
        .and_then(|r| r.delimiter);
    if g.delimiter.is_none() {
        g.delimiter = remote.delimiter()?;
    }
    g.root = folder_root(remote, account, g.delimiter)?;
    for path in folders {
        let row = rows.iter().find(|r| {
            path_of_wire(r.wire_name.as_bytes(), r.delimiter)
                .ok()
                .and_then(|p| g.root.local_of(&p))
                .as_ref()
                == Some(path)
        });
        let ctx = g.folders.entry(path.clone()).or_default();
        match row {
            Some(r) => {
                ctx.state_id = Some(r.id);
                ctx.state_uidvalidity = r.uidvalidity.map(|u| u.get());
                ctx.delimiter = r.delimiter;
                ctx.wire = Some(r.wire_name.as_bytes().to_vec());
                ctx.special_use = r.special_use.clone();
                ctx.subscribed = r.subscribed;
                ctx.rel = Some(r.local_path.clone());
            }
            None => {
                let Ok(name) = FolderName::new(path.0.clone()) else {
                    continue;
                };
                ctx.rel = maildir.locate_folder(&name, db as &dyn AliasRegistry)?;
                ctx.subscribed = true;
            }
        }
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intent_detail_round_trips() {
        let c = decode_intent_detail(&encode_intent_detail(42, 1_700_000_000, Some("<a;b@x>")));
        assert_eq!(c.size, Some(42));
        assert_eq!(c.date, Some(UnixTime(1_700_000_000)));
        assert_eq!(c.message_id.as_deref(), Some("<a;b@x>"));
        let c = decode_intent_detail(&encode_intent_detail(1, 2, None));
        assert_eq!(c.message_id, None);
    }

    /// Seed V0022: a server that nests every folder under `INBOX.` (Courier, Cyrus without
    /// altnamespace) mirrors `INBOX.Sent` as `Sent` and back; other users' folders and the
    /// root itself take no part.
    #[test]
    fn v0022_root_under_inbox_maps_both_ways() {
        let mut root = FolderRoot::from_name("INBOX.", Some('.'));
        root.foreign = vec![vec!["user".to_owned()]];
        let p = |s: &[&str]| FolderPath::from_components(s.iter().copied());
        assert_eq!(root.local_of(&p(&["INBOX", "Sent"])), Some(p(&["Sent"])));
        assert_eq!(
            root.local_of(&p(&["inbox", "A", "B"])),
            Some(p(&["A", "B"]))
        );
        assert_eq!(root.local_of(&p(&["INBOX"])), Some(p(&["INBOX"])));
        assert_eq!(root.local_of(&p(&["user", "bob", "Sent"])), None);
        assert_eq!(root.local_of(&p(&["Elsewhere"])), None);
        assert_eq!(root.server_of(&p(&["Sent"])), p(&["INBOX", "Sent"]));
        assert_eq!(root.server_of(&p(&["INBOX"])), p(&["INBOX"]));
        let none = FolderRoot::default();
        assert_eq!(none.local_of(&p(&["Work"])), Some(p(&["Work"])));
        assert_eq!(none.server_of(&p(&["Work"])), p(&["Work"]));
    }

    #[test]
    fn wire_names_round_trip_with_delimiter() {
        let p = path_of_wire(b"INBOX.Caf&AOk-", Some('.')).unwrap();
        assert_eq!(p, FolderPath::from_components(["INBOX", "Café"]));
        assert_eq!(
            wire_of_path(&p, Some('.')).unwrap(),
            b"INBOX.Caf&AOk-".to_vec()
        );
        // V0020: a component holding the delimiter cannot be sent.
        assert!(wire_of_path(&FolderPath::from_components(["a.b"]), Some('.')).is_err());
    }
}
