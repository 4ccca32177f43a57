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
//! tell) is read *partially* (`partial::examine_partial`): the CONDSTORE/QRESYNC delta since the
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
//!
//! # Layout
//!
//! [`gather_with`] runs the steps in the order above; each seam is a submodule: `names`
//! (LIST, the root, wire names), `state` (the state view), `local` (the local view),
//! `triage` (which folders are skipped, read partially or read whole), `server` (whole reads
//! and deltas), `partial`, `fresh` and `flags_only` (folders read on their own), `stamps`
//! (the stamps recorded at the end of a run) and `narrow` ([`gather_folders`]).

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use mailfold_store::{
    DirStamp, Folder, FolderId, FolderRecord, ListingWatch, Maildir, MessageEntry, RelPath,
    StateDb, StateRead,
};

use crate::account::{AccountSpec, Direction};
use crate::folder_root::FolderRoot;
use crate::plan::{
    FolderAttributes, FolderPath, LocalFolder, ModSeq, RemoteFolder, RemoteMailbox, StateFolder,
    SyncInput, Uid, UidValidity,
};
use crate::remote::{ListEntry, Mailbox, Remote};
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
mod triage;

pub use crate::account::FRESH_WINDOW;
pub use flags_only::{gather_flags_only, FlagsOnlyFolder};
pub use fresh::{gather_fresh, trim_window, FreshFolder, FreshRead, FreshWindow, FreshWindows};
use local::{follow, scan_local, LocalListed, Presence};
pub use names::{base_of, flagset, path_of_wire, wire_of_path};
pub use narrow::gather_folders;
use partial::{read_partial, Partial1, PartialRead};
use server::{read_server_view, WholeRead};
pub use stamps::{record_stamps, record_stamps_with, StampCheck, STAMP_RETRY_WAIT};
pub use state::encode_intent_detail;
use state::{server_copies, Known, StateRows};
use triage::Triage;

/// A folder's directory stamp and the time it was read (for [`DirStamp::is_settled`]).
pub type StampReading = (DirStamp, SystemTime);

/// What the applier knows about one folder besides the planner's view.
#[derive(Debug, Clone, Default)]
pub struct FolderCtx {
    /// The server's name in wire form, when the server has the folder (or after creating it).
    pub wire: Option<Mailbox>,
    /// The hierarchy delimiter for this folder.
    pub delimiter: Option<char>,
    /// The state row, if any.
    pub state_id: Option<FolderId>,
    /// The UIDVALIDITY recorded in the state row.
    pub state_uidvalidity: Option<UidValidity>,
    /// The local directory, if the Maildir exists.
    pub rel: Option<RelPath>,
    /// The files found by the scan, by base.
    pub files: HashMap<String, MessageEntry>,
    /// The server opened the folder read-only (V0039) or the account is pull-only.
    pub read_only: bool,
    /// UIDVALIDITY as SELECT gave it this run.
    pub uidvalidity: Option<UidValidity>,
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
    pub fn wire_of(&self, local: &FolderPath, delimiter: Option<char>) -> Result<Mailbox, String> {
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

/// [`gather`] with options. Each step below is one part of the module docs, in the order
/// that lets an unchanged folder cost nothing: the cheap views first ([`Listed`]), then which
/// folders need what reading ([`Triage`]), and only then the message rows, the scans and the
/// SELECTs.
pub fn gather_with(
    remote: &mut dyn Remote,
    account: &AccountSpec,
    maildir: &Maildir,
    db: &StateDb,
    report: &mut SyncReport,
    options: GatherOptions,
) -> Result<Gathered, crate::SyncError> {
    gather_prelisted(remote, account, maildir, db, report, options, None)
}

/// The local folders and their stamps, read ahead of the gather ([`prefetch_local`]).
#[derive(Debug)]
pub struct LocalPrefetch {
    local: Vec<LocalListed>,
    warnings: Vec<String>,
}

/// Reads the local listing the gather starts from ([`local::local_folders`]) ahead of it, so
/// that a run can read it while its connection is still being opened and authenticated. It
/// is what the gather would read itself, only earlier: each stamp is still read before any
/// folder is scanned, and a change made after it moves the stamp past the one the run
/// records. The caller must not change the Maildir between this and the gather.
pub fn prefetch_local(
    maildir: &Maildir,
    db: &StateDb,
    account: &AccountSpec,
) -> Result<LocalPrefetch, crate::SyncError> {
    let mut scratch = SyncReport::default();
    let local = local::local_folders(maildir, db, account, &mut scratch)?;
    Ok(LocalPrefetch {
        local,
        warnings: scratch.warnings,
    })
}

/// [`gather_with`], starting from a local listing read ahead ([`prefetch_local`]) when given.
pub fn gather_prelisted(
    remote: &mut dyn Remote,
    account: &AccountSpec,
    maildir: &Maildir,
    db: &StateDb,
    report: &mut SyncReport,
    options: GatherOptions,
    prefetched: Option<LocalPrefetch>,
) -> Result<Gathered, crate::SyncError> {
    let mut g = Gathered::default();
    let listed = Listed::read(remote, account, maildir, db, &mut g, report, prefetched)?;
    let defer_fresh = options.defer_fresh && listed.mirror_is_empty();
    let defer_flags_only = options.defer_flags_only && !report.dry_run;
    let (triage, rows, known) = decide(remote, db, &listed, defer_flags_only, &mut g)?;
    let presence = Presence::of(&listed.local, &listed.state);
    let deferred = scan_local_folders(listed.local, &triage, &rows, &mut g, report)?;
    let (remote_paths, fresh): (Vec<_>, Vec<_>) = listed
        .remote
        .into_iter()
        .partition(|(_, e)| !defer_fresh || e.noselect);
    fresh::defer(remote, account, fresh, &mut g)?;
    let mut pass = ServerPass {
        db,
        read_only_account: account.direction == Direction::Pull,
        triage: &triage,
        records: listed.state.iter().map(|(p, f)| (p, f)).collect(),
        presence: &presence,
        known,
        rows,
        deferred,
    };
    for (path, e) in remote_paths {
        pass.read(remote, path, e, &mut g, report)?;
    }
    finish_input(db, account, listed.intents, &mut g)?;
    Ok(g)
}

/// The cheap views, read before anything else: nothing here reads a message row, scans a
/// folder or selects one.
struct Listed {
    /// The server folders of the mirror ([`names::server_folders`]).
    remote: Vec<(FolderPath, ListEntry)>,
    /// The state's folder rows ([`state::state_folders`]).
    state: Vec<(FolderPath, FolderRecord)>,
    /// The local folders with their stamps ([`local::local_folders`]).
    local: Vec<LocalListed>,
    /// The journal's open intents.
    intents: Vec<mailfold_store::Intent>,
}

impl Listed {
    /// LIST, the state's folder rows, the local listing with each folder's stamp (read before
    /// anything is scanned, or earlier: `prefetched`), the open intents.
    fn read(
        remote: &mut dyn Remote,
        account: &AccountSpec,
        maildir: &Maildir,
        db: &StateDb,
        g: &mut Gathered,
        report: &mut SyncReport,
        prefetched: Option<LocalPrefetch>,
    ) -> Result<Self, crate::SyncError> {
        let remote = names::server_folders(remote, account, g, report)?;
        let state = state::state_folders(db, account, g)?;
        let local = match prefetched {
            Some(p) => {
                report.warnings.extend(p.warnings);
                p.local
            }
            None => local::local_folders(maildir, db, account, report)?,
        };
        Ok(Listed {
            remote,
            state,
            local,
            intents: db.open_intents()?,
        })
    }

    /// An empty mirror with an empty state: nothing of any folder can match anything else,
    /// so each folder can be read, planned and applied alone ([`Gathered::fresh`]).
    fn mirror_is_empty(&self) -> bool {
        self.state.is_empty() && self.local.is_empty() && self.intents.is_empty()
    }
}

/// Which folders need what reading ([`Triage`]), with the message rows of the folders read
/// whole: those of every folder that is not a candidate first (the STATUS round asks about
/// them too), then, once the round has answered, those of the candidates read whole after
/// all. Marks the skipped folders in `g`.
fn decide(
    remote: &mut dyn Remote,
    db: &StateDb,
    listed: &Listed,
    defer_flags_only: bool,
    g: &mut Gathered,
) -> Result<(Triage, StateRows, HashMap<FolderPath, Known>), crate::SyncError> {
    let candidates = triage::candidates(db, &listed.intents, &listed.state, &listed.local)?;
    let mut rows = StateRows::default();
    let mut known = HashMap::new();
    let not_candidate = |p: &FolderPath| !candidates.contains_key(p);
    state::load_rows(db, &listed.state, not_candidate, &mut rows, &mut known, g)?;
    known.extend(candidates.iter().map(|(p, k)| (p.clone(), k.clone())));
    let triage = Triage::decide(
        remote,
        db,
        candidates,
        &known,
        &listed.remote,
        &listed.state,
        defer_flags_only,
    )?;
    let read_whole = |p: &FolderPath| triage.read_whole(p);
    state::load_rows(db, &listed.state, read_whole, &mut rows, &mut known, g)?;
    for p in &triage.skipped {
        g.folders.entry(p.clone()).or_default().skipped = true;
    }
    Ok((triage, rows, known))
}

/// Scans the local folders read whole. A skipped folder is not scanned (the planner sees it
/// unexamined: [`push_unexamined`]); a partial one is kept, unscanned, for its partial read:
/// those are returned.
fn scan_local_folders(
    local_folders: Vec<LocalListed>,
    triage: &Triage,
    rows: &StateRows,
    g: &mut Gathered,
    report: &mut SyncReport,
) -> Result<HashMap<FolderPath, (Folder, Option<StampReading>)>, crate::SyncError> {
    let mut deferred = HashMap::new();
    for (path, folder, stamp) in local_folders {
        if triage.skipped.contains(&path) {
            continue;
        }
        if triage.partial.contains_key(&path) {
            deferred.insert(path, (folder, stamp));
            continue;
        }
        scan_local(path, &folder, stamp, rows, g, report)?;
    }
    Ok(deferred)
}

/// The last of the views: the journal's open APPEND intents, and the server copies of new
/// files. A file no row of its folder names, whose content hash the state binds in another
/// folder (a mail reader's "save to folder"), may be copied there on the server instead of
/// uploaded (`Op::CopyRemote`). The files are new, so this is one indexed lookup per new
/// file, not per message.
fn finish_input(
    db: &StateDb,
    account: &AccountSpec,
    intents: Vec<mailfold_store::Intent>,
    g: &mut Gathered,
) -> Result<(), crate::SyncError> {
    let id_to_path: HashMap<FolderId, FolderPath> = g
        .folders
        .iter()
        .filter_map(|(p, c)| c.state_id.map(|id| (id, p.clone())))
        .collect();
    g.input
        .intents
        .extend(state::append_intents(intents, &id_to_path));
    if account.direction != Direction::Pull {
        g.input.server_copies = server_copies(db, &g.input, &id_to_path)?;
    }
    Ok(())
}

/// Puts a folder left for later in the planner's views: skipped as unchanged on both sides,
/// or deferred as changed by flag changes alone ([`FlagsOnlyFolder`]). The planner sees it
/// present everywhere and not examined (an empty local view, a state view without rows, a
/// server view without mailbox), which plans nothing for it, as for a folder whose SELECT
/// failed: it is never taken for deleted, and the account-wide check still counts it.
fn push_unexamined(
    input: &mut SyncInput,
    path: &FolderPath,
    state: &FolderRecord,
    entry: &ListEntry,
) {
    input.local.push(LocalFolder {
        path: path.clone(),
        messages: Vec::new(),
    });
    // Every folder left for later has UIDVALIDITY (`triage::candidates` asks for it).
    if let Some(uv) = state.uidvalidity {
        input.state.push(StateFolder {
            path: path.clone(),
            uidvalidity: uv,
            uidnext: state.uidnext.map(Uid),
            highestmodseq: state.highestmodseq.and_then(ModSeq::new),
            messages: Vec::new(),
            pending: Vec::new(),
            omitted: 0,
        });
    }
    input.remote.push(RemoteFolder {
        path: path.clone(),
        attributes: attributes_of(entry),
        delimiter: entry.delimiter,
        mailbox: None,
    });
}

/// The planner's attributes of a listed folder (`\NonExistent` ones never get this far).
fn attributes_of(e: &ListEntry) -> FolderAttributes {
    FolderAttributes {
        noselect: e.noselect,
        nonexistent: false,
    }
}

/// What reading the server folders needs of the steps before it.
struct ServerPass<'a> {
    db: &'a StateDb,
    read_only_account: bool,
    triage: &'a Triage,
    /// The state's folder rows, by local path.
    records: HashMap<&'a FolderPath, &'a FolderRecord>,
    presence: &'a Presence,
    /// What the state says of each folder, updated when a partial read falls back to a
    /// whole one.
    known: HashMap<FolderPath, Known>,
    rows: StateRows,
    /// The local folders kept unscanned for their partial read.
    deferred: HashMap<FolderPath, (Folder, Option<StampReading>)>,
}

impl ServerPass<'_> {
    /// Reads one server folder into `g`: skipped, read partially, left for later, or read
    /// (whole or as a delta, or as unchanged by STATUS).
    fn read(
        &mut self,
        remote: &mut dyn Remote,
        path: FolderPath,
        e: ListEntry,
        g: &mut Gathered,
        report: &mut SyncReport,
    ) -> Result<(), crate::SyncError> {
        let ctx = g.folders.entry(path.clone()).or_default();
        ctx.wire = Some(e.wire.clone());
        ctx.delimiter = e.delimiter;
        ctx.special_use = e.special_use.clone();
        ctx.subscribed = e.subscribed;
        if self.triage.skipped.contains(&path) {
            if let Some(k) = self.triage.candidates.get(&path) {
                ctx.read_only = self.read_only_account || k.read_only;
                ctx.uidvalidity = Some(k.uidvalidity);
            }
            report.unchanged_folders += 1;
            if let Some(state) = self.records.get(&path) {
                push_unexamined(&mut g.input, &path, state, &e);
            }
            return Ok(());
        }
        if !e.noselect && self.read_partially(remote, &path, &e, g, report)? {
            return Ok(());
        }
        let mailbox = if e.noselect {
            None
        } else {
            self.read_selectable(remote, &path, &e.wire, g, report)?
        };
        g.input.remote.push(RemoteFolder {
            path,
            attributes: attributes_of(&e),
            delimiter: e.delimiter,
            mailbox,
        });
        Ok(())
    }

    /// A folder changed on the server only: read partially ([`read_partial`]), or left for
    /// later when only flags changed ([`flags_only::defer`]). `true` when the folder is done
    /// with; `false` when it is not a partial folder or its server view is still to be read
    /// whole (the delta or the files could not be trusted; its rows are loaded by then).
    fn read_partially(
        &mut self,
        remote: &mut dyn Remote,
        path: &FolderPath,
        e: &ListEntry,
        g: &mut Gathered,
        report: &mut SyncReport,
    ) -> Result<bool, crate::SyncError> {
        let (Some(&id), Some(k)) = (self.triage.partial.get(path), self.known.get(path)) else {
            return Ok(false);
        };
        let (folder, stamp) = self
            .deferred
            .remove(path)
            .expect("every partial folder was deferred by the local listing above");
        if !report.dry_run {
            follow(&mut g.watch, self.db, id, &folder, stamp.as_ref())?;
        }
        let state = (*self
            .records
            .get(path)
            .expect("a partial folder has a state row"))
        .clone();
        let one = Partial1 {
            path: path.clone(),
            entry: e.clone(),
            id,
            known: k.clone(),
            state,
            folder,
            stamp,
            ctx: FolderCtx::default(),
        };
        if self.triage.flags_only.contains(path) {
            flags_only::defer(one, g);
            return Ok(true);
        }
        let read_only_account = self.read_only_account;
        match read_partial(
            remote,
            self.db,
            &one,
            read_only_account,
            &mut self.rows,
            g,
            report,
        )? {
            PartialRead::Done | PartialRead::Unopened => Ok(true),
            PartialRead::Whole(k) => {
                self.known.insert(path.clone(), k);
                Ok(false)
            }
        }
    }

    /// The server view of a selectable folder: "no changes" when STATUS showed it unchanged
    /// ([`server::unchanged_view`], no SELECT), else read whole or as a delta
    /// ([`server::read_server_view`]). `None` when it could not be opened (reported).
    fn read_selectable(
        &self,
        remote: &mut dyn Remote,
        path: &FolderPath,
        wire: &Mailbox,
        g: &mut Gathered,
        report: &mut SyncReport,
    ) -> Result<Option<RemoteMailbox>, crate::SyncError> {
        let ctx = g.folders.entry(path.clone()).or_default();
        let k = self.known.get(path);
        let whole = self.presence.read_whole(path);
        let since = k.and_then(|k| k.highestmodseq);
        if let (true, Some(k), Some(since)) =
            (self.triage.unchanged.contains(path) && !whole, k, since)
        {
            report.unchanged_folders += 1;
            let ro = self.read_only_account;
            return Ok(Some(server::unchanged_view(k, since, ro, ctx)));
        }
        let read = WholeRead {
            path,
            wire,
            read_only_account: self.read_only_account,
            rows: self.rows.rows.get(path),
            known: k,
            incremental: !whole,
        };
        read_server_view(remote, read, ctx, report)
    }
}
