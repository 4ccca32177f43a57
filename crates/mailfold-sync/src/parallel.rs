//! Applying one plan over several connections at once (`connections` in the account).
//!
//! The plan is made once, on the main connection, from one gathered view. [`split`] then cuts
//! it in two:
//!
//! * the **main sequence**, applied first, in plan order, on the main connection: every
//!   operation touching two folders (moves, folder renames), every operation touching none
//!   ([`Op::DropIntent`]), and *all* operations of every folder such an operation touches, or
//!   whose order against another folder matters (creating or deleting a server folder,
//!   deleting a local one, next to an ancestor or descendant folder of the same plan). Such a
//!   folder is "pinned": its operations keep their plan order relative to each other and to the
//!   cross-folder ones, exactly as on one connection;
//! * one **group per remaining folder**, holding that folder's operations in plan order. No
//!   operation of a group reads or writes anything another group or the main sequence touches
//!   (the planner emits each folder's steps from that folder's three views alone), so the
//!   groups may run in any order and at once.
//!
//! The groups wait in a queue, largest first (messages to transfer, then bytes), until the main
//! sequence is done; then the main connection and the extra workers take from it. A worker is a
//! thread with its own session ([`crate::remote_imap::NetRemote::connect`]), its own state database
//! connection (SQLite WAL; the store sets a busy timeout, and every transaction is short) and
//! its own [`Applier`] over a [`Gathered`] holding only its group's [`FolderCtx`]. Extra
//! connections cost a login each, so only groups with enough work to pay for one
//! ([`MIN_DOWNLOADS`] messages or [`MIN_BYTES`] bytes) count: with `n` such groups at most
//! `n - 1` extra connections are opened (the main connection takes one group itself), and a
//! small or no-change run opens none. Extra workers log in while the main sequence runs.
//!
//! A large fresh folder counts as one group per window of it ([`SharedFolder`]): the
//! connection that takes it applies its first window, then queues the others, and a
//! connection that finds the queue empty waits while some fresh folder being read may still
//! queue windows. Such a folder's state (UIDNEXT, HIGHESTMODSEQ) is recorded by whichever
//! connection finishes its last window, after every window's rows are committed; a run cut
//! before leaves the folder with rows but no state, which the next run reads whole and
//! completes, as for a folder read window by window on one connection.
//!
//! Crash safety is the applier's, unchanged: each operation's effect is followed by its own
//! commit, journaled where its outcome could be unknown. A worker that loses its connection
//! makes the whole run fail like a lost main connection (the other workers finish the group in
//! hand and take no more); what was committed stays, and the next run plans the rest. A worker
//! that cannot log in at all (a server's limit on connections per user) only leaves a warning:
//! the other connections take its share.
//!
//! With the crash-test hook set ([`crate::apply::ABORT_ENV`]) everything runs on the main
//! connection, so that step numbers stay deterministic, unless the test asks for the
//! connections too ([`crate::apply::ABORT_IN_PARALLEL_ENV`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use mailfold_store::{Maildir, StateDb};

use crate::account::AccountSpec;
use crate::apply::{Applier, ABORT_ENV, ABORT_IN_PARALLEL_ENV};
use crate::gather::{self, FlagsOnlyFolder, FolderCtx, FreshFolder, Gathered};
use crate::plan::{self, FolderPath, Op, Plan, PlanConfig};
use crate::progress::{Progress, ProgressEvent};
use crate::remote::{Remote, RemoteError};
use crate::report::{FolderReport, SyncReport, Traffic};
use crate::step_error::StepError;
use crate::SyncError;

/// A folder with at least this many messages to download or upload is worth a login.
pub const MIN_DOWNLOADS: usize = 50;

/// A folder with at least this many bytes to download or upload is worth a login.
pub const MIN_BYTES: u64 = 5 * 1024 * 1024;

/// This many folders changed by flag changes alone ([`Gathered::flags_only`]) are worth a
/// login: each costs the server a SELECT with its changes and the client a few renames and
/// rows, against a login's greeting and authentication.
pub const FLAGS_ONLY_PER_CONNECTION: usize = 8;

/// One folder's operations, applied by one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The folder.
    pub folder: FolderPath,
    /// Its operations, in plan order.
    pub ops: Vec<Op>,
    /// Messages to download or upload.
    pub transfers: usize,
    /// Their declared sizes, summed.
    pub bytes: u64,
    /// A folder of an empty mirror not planned yet: the connection that takes the group
    /// reads it, plans it alone and applies that plan ([`crate::gather::gather_fresh`]).
    /// `transfers` is then its MESSAGES count.
    pub fresh: bool,
}

impl Group {
    /// Whether the group has enough work to pay for a connection of its own.
    pub fn is_big(&self) -> bool {
        self.transfers >= MIN_DOWNLOADS || self.bytes >= MIN_BYTES
    }
}

/// A plan cut into what must run in order on the main connection and what may run at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    /// Operations applied first, in plan order, on the main connection.
    pub main: Vec<Op>,
    /// Per-folder groups, largest first.
    pub groups: Vec<Group>,
}

impl Split {
    /// Groups worth an extra connection.
    pub fn big_groups(&self) -> usize {
        self.groups.iter().filter(|g| g.is_big()).count()
    }
}

/// Operations whose order against another folder's operations matters when the folders are
/// in one hierarchy: a server folder created before (or deleted after) its children, a local
/// directory deleted while a child folder is written below it.
fn orders_hierarchy(op: &Op) -> bool {
    matches!(
        op,
        Op::CreateRemoteFolder { .. }
            | Op::DeleteRemoteFolder { .. }
            | Op::DeleteLocalFolder { .. }
    )
}

/// Whether `a` is `b`'s ancestor or descendant (or `b` itself).
fn related(a: &FolderPath, b: &FolderPath) -> bool {
    let n = a.0.len().min(b.0.len());
    a.0[..n] == b.0[..n]
}

/// Cuts `plan` into the main sequence and per-folder groups (see the module docs).
pub fn split(plan: &Plan) -> Split {
    let mut all: BTreeSet<&FolderPath> = BTreeSet::new();
    let mut pinned: BTreeSet<FolderPath> = BTreeSet::new();
    let mut hierarchy: BTreeSet<&FolderPath> = BTreeSet::new();
    for op in &plan.ops {
        let folders = op.folders();
        if folders.len() != 1 {
            pinned.extend(folders.iter().map(|f| (*f).clone()));
        }
        if orders_hierarchy(op) {
            hierarchy.extend(folders.iter().copied());
        }
        all.extend(folders);
    }
    for h in &hierarchy {
        for f in &all {
            if f != h && related(f, h) {
                pinned.insert((*f).clone());
                pinned.insert((*h).clone());
            }
        }
    }
    let mut main = Vec::new();
    let mut groups: BTreeMap<FolderPath, Group> = BTreeMap::new();
    for op in &plan.ops {
        let folders = op.folders();
        let only = match folders.as_slice() {
            [f] if !pinned.contains(*f) => (*f).clone(),
            _ => {
                main.push(op.clone());
                continue;
            }
        };
        let g = groups.entry(only.clone()).or_insert_with(|| Group {
            folder: only,
            ops: Vec::new(),
            transfers: 0,
            bytes: 0,
            fresh: false,
        });
        match op {
            Op::Download { size, .. } | Op::Upload { size, .. } => {
                g.transfers += 1;
                g.bytes = g.bytes.saturating_add(*size);
            }
            _ => {}
        }
        g.ops.push(op.clone());
    }
    let mut groups: Vec<Group> = groups.into_values().collect();
    // Largest first, so the longest folder does not start last; ties by name keep it stable.
    groups.sort_by(|a, b| {
        (b.transfers, b.bytes)
            .cmp(&(a.transfers, a.bytes))
            .then_with(|| a.folder.cmp(&b.folder))
    });
    Split { main, groups }
}

/// How many extra connections a run opens for `split` with `connections` allowed.
pub fn extra_connections(split: &Split, connections: u8) -> usize {
    extra_connections_for(split.big_groups(), connections)
}

/// How many extra connections `big` groups of work are worth with `connections` allowed.
fn extra_connections_for(big: usize, connections: u8) -> usize {
    let allowed = usize::from(connections).saturating_sub(1);
    allowed.min(big.saturating_sub(1))
}

/// What a connection needs besides a group's operations.
enum Job {
    /// The folder's context from the run's gather.
    Planned(FolderCtx),
    /// A fresh folder, read and planned by the connection that takes it.
    Fresh(FreshFolder),
    /// Folders changed on the server by flag changes alone, read and planned by the
    /// connection that takes them, and applied together.
    FlagsOnly(Vec<FlagsOnlyFolder>),
    /// One window of a large fresh folder another connection opened and created
    /// ([`SharedFolder`]), read, planned and applied by the connection that takes it.
    Window(Arc<SharedFolder>, gather::FreshWindows),
}

/// A large fresh folder whose windows after the first are shared out over the connections.
/// The connection that took the folder lists its UIDs, applies the first window (which
/// creates the folder locally and in the state), then queues the others; any connection
/// takes them, each selecting the folder on its own session. The folder's UIDNEXT and
/// HIGHESTMODSEQ (the claim that everything below is mirrored, V0045) are recorded by the
/// connection that finishes the last window outstanding, after every window's rows were
/// committed, and only if no window failed: otherwise the next run reads the folder again.
struct SharedFolder {
    path: FolderPath,
    wire: crate::remote::Mailbox,
    /// UIDVALIDITY of the SELECT that listed the UIDs: a connection that finds another one
    /// downloads nothing (its UIDs would name other messages).
    uidvalidity: Option<crate::remote::UidValidity>,
    /// The folder's context after the first window (state row, directory), its files left out.
    ctx: FolderCtx,
    left: Mutex<WindowsLeft>,
}

/// The windows of a [`SharedFolder`] not finished yet, and whether one failed.
struct WindowsLeft {
    windows: usize,
    failed: bool,
}

impl SharedFolder {
    /// Records one window finished (`ok`: without an error of the folder); true when it was
    /// the last outstanding and none failed, so the folder's state may be recorded now.
    fn window_done(&self, ok: bool) -> bool {
        let mut left = self.left.lock().unwrap_or_else(PoisonError::into_inner);
        left.windows = left.windows.saturating_sub(1);
        left.failed |= !ok;
        left.windows == 0 && !left.failed
    }
}

/// The shared queue of groups.
struct Queue {
    /// Groups not started, largest last (popped from the end).
    groups: Vec<(Group, Job)>,
    /// Fresh folders being read by a connection, which may still queue windows
    /// ([`SharedFolder`]): an idle connection waits for them instead of leaving.
    producing: usize,
    /// The main sequence is done: groups may start.
    open: bool,
    /// Some connection failed: take no more groups.
    abort: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A worker that panicked while holding the lock left the queue consistent (every
        // change is a single push, pop or flag write), so its data is still usable.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, f: impl FnOnce(&mut Queue)) {
        f(&mut self.lock());
        self.changed.notify_all();
    }

    /// The next group, waiting for the main sequence first, and while the queue is empty but
    /// a fresh folder being read may still queue windows; `None` when there is no more work
    /// or the run is aborted. Taking a fresh folder counts it as producing, in the same lock,
    /// until the [`Producing`] guard the caller makes of it is dropped.
    fn next(&self) -> Option<(Group, Job)> {
        let mut q = self.lock();
        loop {
            if q.abort {
                return None;
            }
            if q.open {
                if let Some(next) = q.groups.pop() {
                    if matches!(next.1, Job::Fresh(_)) {
                        q.producing += 1;
                    }
                    return Some(next);
                }
                if q.producing == 0 {
                    return None;
                }
            }
            q = self.changed.wait(q).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Queues a shared folder's windows, to be taken before the other groups (its first
    /// window is applied: finishing the folder sooner lets its state be recorded sooner).
    fn queue_windows(&self, folder: &Arc<SharedFolder>, windows: Vec<gather::FreshWindows>) {
        self.set(|q| {
            for w in windows.into_iter().rev() {
                let group = Group {
                    folder: folder.path.clone(),
                    ops: Vec::new(),
                    transfers: w.messages(),
                    bytes: 0,
                    fresh: false,
                };
                q.groups.push((group, Job::Window(Arc::clone(folder), w)));
            }
        });
    }
}

/// A fresh folder taken from the queue ([`Shared::next`]) is being read: dropped (on every
/// path out of its reading, a panic included), the folder no longer holds idle connections.
struct Producing<'a>(&'a Shared);

impl Drop for Producing<'_> {
    fn drop(&mut self) {
        self.0.set(|q| q.producing = q.producing.saturating_sub(1));
    }
}

/// Ends the workers' wait for the main sequence if the main thread leaves without opening
/// the queue (an error, or a panic unwinding through the scope, which joins the workers
/// before it goes on: they must not wait forever).
struct AbortUnlessOpened<'a>(&'a Shared);

impl Drop for AbortUnlessOpened<'_> {
    fn drop(&mut self) {
        self.0.set(|q| q.abort |= !q.open);
    }
}

/// The [`ProgressEvent::Planned`] summary of a whole plan: the total work a front end sizes
/// its bars by.
pub(crate) fn planned_event(plan: &Plan) -> ProgressEvent<'static> {
    let mut folders = BTreeSet::new();
    let (mut downloads, mut uploads) = (0, 0);
    for op in &plan.ops {
        match op {
            Op::Download { .. } => downloads += 1,
            Op::Upload { .. } => uploads += 1,
            _ => {}
        }
        folders.extend(op.folders());
    }
    ProgressEvent::Planned {
        folders: folders.len(),
        downloads,
        uploads,
        ops: plan.ops.len(),
    }
}

/// Passes on every event but [`ProgressEvent::Planned`]: each applier announces the plan it
/// is given, and a split run's appliers get parts of it; the run announces the whole plan
/// once instead.
struct WithoutPlanned<'a>(&'a dyn Progress);

impl Progress for WithoutPlanned<'_> {
    fn event(&self, event: ProgressEvent<'_>) {
        if !matches!(event, ProgressEvent::Planned { .. }) {
            self.0.event(event);
        }
    }
}

/// What one connection did with the groups it took.
#[derive(Default)]
struct Done {
    report: SyncReport,
    ctxs: Vec<(FolderPath, FolderCtx)>,
    traffic: Option<Traffic>,
}

/// The plan of one folder's views, its warnings and refusals added to `report`.
fn plan_into(input: &crate::plan::SyncInput, config: &PlanConfig, report: &mut SyncReport) -> Plan {
    let plan = plan::plan(input, config);
    report
        .warnings
        .extend(plan.warnings.iter().map(ToString::to_string));
    report
        .refused
        .extend(plan.refused.iter().map(ToString::to_string));
    plan
}

/// What every connection of a run works with alike: the account, the planner's settings, the
/// Maildir, and where progress goes. Each connection has its own server session and state
/// database connection besides, and each group its own folder contexts and report.
#[derive(Clone, Copy)]
struct Run<'a> {
    account: &'a AccountSpec,
    config: &'a PlanConfig,
    maildir: &'a Maildir,
    progress: &'a dyn Progress,
}

impl<'a> Run<'a> {
    /// The same run, its progress going to `progress`.
    fn telling(self, progress: &'a dyn Progress) -> Run<'a> {
        Run { progress, ..self }
    }
}

/// Applies `plan` over `remote` with the folder contexts of `g`, counting its steps.
fn apply_one(
    remote: &mut dyn Remote,
    run: Run<'_>,
    db: &mut StateDb,
    g: &mut Gathered,
    report: &mut SyncReport,
    plan: &Plan,
) -> Result<(), SyncError> {
    let mut applier =
        Applier::new(remote, run.account, run.maildir, db, g, report).with_progress(run.progress);
    let res = applier.apply(plan);
    report.steps += applier.steps();
    res
}

/// Reads, plans and applies one fresh folder on `remote` (see [`Group::fresh`]), its context
/// into `g`: whole, or window by window when it is large ([`gather::FreshWindows`]), the
/// files each window wrote forgotten before the next is read, so that memory follows the
/// window. With `share` (other connections work the same queue), the windows after a first
/// that went well are queued for any of them ([`SharedFolder`]) instead. Nothing happens
/// when the folder could not be opened (reported).
fn apply_fresh(
    remote: &mut dyn Remote,
    run: Run<'_>,
    db: &mut StateDb,
    g: &mut Gathered,
    report: &mut SyncReport,
    fresh: &FreshFolder,
    share: Option<&Shared>,
) -> Result<(), SyncError> {
    let Some((read, ctx)) = gather::gather_fresh(remote, run.account, fresh, report)? else {
        return Ok(());
    };
    g.folders.insert(fresh.path.clone(), ctx);
    let mut windows = match read {
        gather::FreshRead::Whole(input) => {
            let plan = plan_into(&input, run.config, report);
            return apply_one(remote, run, db, g, report, &plan);
        }
        gather::FreshRead::Windows(w) => w,
    };
    // One announcement for the whole folder (filtered out where the run announced it
    // already), none per window.
    run.progress.event(ProgressEvent::Planned {
        folders: 1,
        downloads: windows.messages(),
        uploads: 0,
        ops: windows.messages(),
    });
    let quiet = WithoutPlanned(run.progress);
    let run = run.telling(&quiet);
    // A window that failed keeps the folder's state from being recorded by the last one
    // (each window has an applier of its own, which knows only its own failures).
    let mut failed = false;
    loop {
        let window = match windows.next(remote) {
            Ok(Some(w)) => w,
            Ok(None) => return Ok(()),
            Err(e) if e.is_fatal() => return Err(e.into()),
            Err(e) => {
                // The windows applied so far are recorded; the folder's UIDNEXT is not, so
                // the next run reads it again and fetches what is missing.
                report
                    .folder_mut(&fresh.path.to_string())
                    .errors
                    .push(StepError::server("cannot read folder", e));
                return Ok(());
            }
        };
        let mut plan = plan_into(&window.input, run.config, report);
        gather::trim_window(&mut plan, window.first, window.last && !failed);
        let errors = folder_errors(report, &fresh.path);
        apply_one(remote, run, db, g, report, &plan)?;
        if let Some(ctx) = g.folders.get_mut(&fresh.path) {
            ctx.files = Default::default();
        }
        failed |= folder_errors(report, &fresh.path) != errors;
        // With other connections to share them, the windows after a first that went well
        // are queued for any connection (a first that failed leaves them here, in order).
        let Some(shared) = share.filter(|_| window.first && !window.last && !failed) else {
            continue;
        };
        let rest = windows.share_rest();
        let folder = Arc::new(SharedFolder {
            path: fresh.path.clone(),
            wire: fresh.entry.wire.clone(),
            uidvalidity: windows.uidvalidity(),
            ctx: g.folders.get(&fresh.path).cloned().unwrap_or_default(),
            left: Mutex::new(WindowsLeft {
                windows: rest.len(),
                failed: false,
            }),
        });
        shared.queue_windows(&folder, rest);
        return Ok(());
    }
}

/// How many errors `report` holds for the folder `path`.
fn folder_errors(report: &SyncReport, path: &FolderPath) -> usize {
    let name = path.to_string();
    report
        .folders
        .iter()
        .find(|f| f.folder == name)
        .map_or(0, |f| f.errors.len())
}

/// Reads, plans and applies one window of a [`SharedFolder`] on `remote`, then, when it was
/// the last outstanding and none failed, records the folder's UIDNEXT and HIGHESTMODSEQ.
fn apply_window(
    remote: &mut dyn Remote,
    run: Run<'_>,
    db: &mut StateDb,
    g: &mut Gathered,
    report: &mut SyncReport,
    folder: &SharedFolder,
    mut reader: gather::FreshWindows,
) -> Result<(), SyncError> {
    g.folders.insert(folder.path.clone(), folder.ctx.clone());
    let read_only_account = run.account.direction == crate::account::Direction::Pull;
    let read = match remote.select(&folder.wire, read_only_account) {
        Ok(sel) if sel.uidvalidity == folder.uidvalidity => reader.next(remote),
        Ok(_) => {
            report
                .folder_mut(&folder.path.to_string())
                .errors
                .push(StepError::Unusable(
                    "UIDVALIDITY changed during the sync; the folder is read again next run".into(),
                ));
            Ok(None)
        }
        Err(e) => Err(e),
    };
    let errors = folder_errors(report, &folder.path);
    let mut closing = Vec::new();
    let ok = match read {
        Ok(Some(window)) => {
            let mut plan = plan_into(&window.input, run.config, report);
            // The folder's own steps were the first window's; its state waits for the last
            // window outstanding, whichever connection has it.
            closing = plan
                .ops
                .iter()
                .filter(|op| matches!(op, Op::SetFolderState { .. }))
                .cloned()
                .collect();
            gather::trim_window(&mut plan, false, false);
            apply_one(remote, run, db, g, report, &plan)?;
            folder_errors(report, &folder.path) == errors
        }
        Ok(None) => false,
        Err(e) if e.is_fatal() => {
            folder.window_done(false);
            return Err(e.into());
        }
        Err(e) => {
            report
                .folder_mut(&folder.path.to_string())
                .errors
                .push(StepError::server("cannot read folder", e));
            false
        }
    };
    if folder.window_done(ok) && !closing.is_empty() {
        let plan = Plan {
            ops: closing,
            ..Plan::default()
        };
        apply_one(remote, run, db, g, report, &plan)?;
    }
    Ok(())
}

/// Reads and plans one folder of [`Gathered::flags_only`] on `remote`; its warnings and
/// refusals go into `report`. `None` when the folder could not be opened (reported).
fn plan_flags_only(
    remote: &mut dyn Remote,
    account: &AccountSpec,
    config: &PlanConfig,
    db: &StateDb,
    folder: &FlagsOnlyFolder,
    report: &mut SyncReport,
) -> Result<Option<(Plan, FolderCtx)>, SyncError> {
    let Some((input, ctx)) = gather::gather_flags_only(remote, account, db, folder, report)? else {
        return Ok(None);
    };
    Ok(Some((plan_into(&input, config, report), ctx)))
}

/// Reads and plans each of `folders` ([`Gathered::flags_only`]) on `remote`, one after the
/// other, then applies their plans as one, their contexts into `g`: their records then share
/// the applier's commit group instead of a commit (a fsync, with fsync on) per folder.
fn apply_flags_only(
    remote: &mut dyn Remote,
    run: Run<'_>,
    db: &mut StateDb,
    g: &mut Gathered,
    report: &mut SyncReport,
    folders: &[FlagsOnlyFolder],
) -> Result<(), SyncError> {
    let mut ops = Vec::new();
    for f in folders {
        if let Some((plan, ctx)) = plan_flags_only(remote, run.account, run.config, db, f, report)?
        {
            g.folders.insert(f.path().clone(), ctx);
            ops.extend(plan.ops);
        }
    }
    let plan = Plan {
        ops,
        ..Plan::default()
    };
    apply_one(remote, run, db, g, report, &plan)
}

/// Applies the groups it takes from `shared` over `remote`, into `done`.
fn work(
    shared: &Shared,
    remote: &mut dyn Remote,
    run: Run<'_>,
    db: &mut StateDb,
    template: &Gathered,
    done: &mut Done,
) -> Result<(), SyncError> {
    while let Some((group, job)) = shared.next() {
        let mut g = Gathered {
            delimiter: template.delimiter,
            root: template.root.clone(),
            ..Gathered::default()
        };
        let report = &mut done.report;
        let res = match job {
            Job::Planned(ctx) => {
                g.folders.insert(group.folder.clone(), ctx);
                let plan = Plan {
                    ops: group.ops,
                    ..Plan::default()
                };
                apply_one(remote, run, db, &mut g, report, &plan)
            }
            Job::Fresh(fresh) => {
                let _producing = Producing(shared);
                apply_fresh(remote, run, db, &mut g, report, &fresh, Some(shared))
            }
            Job::FlagsOnly(folders) => apply_flags_only(remote, run, db, &mut g, report, &folders),
            Job::Window(folder, reader) => {
                apply_window(remote, run, db, &mut g, report, &folder, reader)
            }
        };
        // The group is done: what the end of the run needs of its folder is the stamp and
        // the flags of the context, not the files it found or wrote (one entry per message:
        // kept, they would make the run's memory follow the mailbox).
        for ctx in g.folders.values_mut() {
            ctx.files = Default::default();
        }
        done.ctxs.extend(g.folders);
        if let Err(e) = res {
            shared.set(|q| q.abort = true);
            return Err(e);
        }
    }
    Ok(())
}

/// An extra worker: connects, opens its own state database connection, works the queue and
/// logs out. A worker that cannot log in (a server limiting connections per user, say) takes
/// no group and leaves a warning: the other connections do its share, so a limit does not
/// fail every run. Losing the connection once working fails the run.
fn extra_worker(
    shared: &Shared,
    run: Run<'_>,
    template: &Gathered,
) -> (Done, Result<(), SyncError>) {
    let mut done = Done::default();
    let res = (|| {
        let mut db = crate::open_worker_db(run.account)?;
        let mut remote = match crate::remote_imap::NetRemote::connect(run.account) {
            Ok(r) => r,
            Err(e) => {
                done.report.warnings.push(format!(
                    "an extra connection could not be opened ({e}); its folders were synced \
                     over the others"
                ));
                return Ok(());
            }
        };
        let res = work(shared, &mut remote, run, &mut db, template, &mut done);
        done.report.alerts.extend(remote.take_alerts());
        done.report.warnings.extend(remote.take_warnings());
        remote.logout();
        done.traffic = Some(Traffic::of(&remote.stats()));
        res
    })();
    if res.is_err() {
        shared.set(|q| q.abort = true);
    }
    (done, res)
}

/// Applies `plan` as the module docs say: over the main connection alone when `connections`
/// is 1, the test hook is set or the plan is small; otherwise over extra connections too.
/// The fresh folders of `g` ([`Gathered::fresh`]) are then read, planned with `config` and
/// applied one at a time each, as groups of their own. Every connection's results are
/// merged into `report` (its steps included; the extra connections' traffic is added to
/// `report.traffic`).
#[allow(clippy::too_many_arguments)]
pub fn apply_plan(
    remote: &mut dyn Remote,
    account: &AccountSpec,
    config: &PlanConfig,
    maildir: &Maildir,
    db: &mut StateDb,
    g: &mut Gathered,
    report: &mut SyncReport,
    plan: &Plan,
    progress: &dyn Progress,
) -> Result<(), SyncError> {
    let sched = schedule(plan, account, g);
    let run = Run {
        account,
        config,
        maildir,
        progress,
    };
    let hook_alone =
        std::env::var_os(ABORT_ENV).is_some() && std::env::var_os(ABORT_IN_PARALLEL_ENV).is_none();
    if sched.extra == 0 || hook_alone {
        apply_here(remote, run, db, g, report, plan, sched)
    } else {
        apply_spread(remote, run, db, g, report, sched)
    }
}

/// What a run applies, scheduled ([`schedule`]): the plan's groups, the fresh folders and
/// the batches of folders changed by flag changes alone, each a group, largest first.
struct Schedule {
    /// The plan split into the main connection's operations and per-folder groups, the
    /// fresh folders' and the flag batches' groups added.
    split: Split,
    /// The fresh folders, by path (parents first), read and planned by the connection that
    /// takes each.
    fresh: BTreeMap<FolderPath, FreshFolder>,
    /// The batches of folders changed by flag changes alone, by the path of their first.
    flag_batches: BTreeMap<FolderPath, Vec<FlagsOnlyFolder>>,
    /// The run's announcement: the plan's counts and the fresh folders' STATUS counts.
    announced: ProgressEvent<'static>,
    /// Every fresh folder's size is known, so `announced` is the whole run's.
    sized: bool,
    /// Connections to open besides the main one.
    extra: usize,
}

/// Schedules `plan` and the folders of `g` read later (its fresh and flags-only folders,
/// taken out of `g`): how many extra connections the work is worth, and the groups.
fn schedule(plan: &Plan, account: &AccountSpec, g: &mut Gathered) -> Schedule {
    let mut split = split(plan);
    let fresh = std::mem::take(&mut g.fresh);
    let fresh_messages: usize = fresh.iter().map(|f| f.messages.unwrap_or(0) as usize).sum();
    // Announced up front only when every fresh folder's size is known; otherwise each
    // applier announces its own plan.
    let sized = fresh.iter().all(|f| f.messages.is_some());
    for f in &fresh {
        split.groups.push(Group {
            folder: f.path.clone(),
            ops: Vec::new(),
            transfers: f.messages.unwrap_or(0) as usize,
            bytes: 0,
            fresh: true,
        });
    }
    // Largest first, as `split` orders its own groups.
    split.groups.sort_by(|a, b| {
        (b.transfers, b.bytes)
            .cmp(&(a.transfers, a.bytes))
            .then_with(|| a.folder.cmp(&b.folder))
    });
    let fresh: BTreeMap<FolderPath, FreshFolder> =
        fresh.into_iter().map(|f| (f.path.clone(), f)).collect();
    // Folders changed by flag changes alone: worth an extra login per
    // FLAGS_ONLY_PER_CONNECTION of them.
    let flag_folders = std::mem::take(&mut g.flags_only);
    let flag_count = flag_folders.len();
    // A large fresh folder's windows after the first are shared out like groups of their own.
    let window = account.fresh_window.max(1);
    let windows: usize = split
        .groups
        .iter()
        .filter(|g| g.fresh)
        .map(|g| g.transfers.div_ceil(window).saturating_sub(1))
        .sum();
    let extra = extra_connections_for(split.big_groups() + windows, account.connections).max(
        usize::from(account.connections)
            .saturating_sub(1)
            .min(flag_count / FLAGS_ONLY_PER_CONNECTION),
    );
    // One batch of them per connection, after the other groups (their size is not known
    // before they are read); a batch's plans are applied together (`apply_flags_only`).
    let mut flag_batches: BTreeMap<FolderPath, Vec<FlagsOnlyFolder>> = BTreeMap::new();
    if flag_count > 0 {
        let per = flag_count.div_ceil((extra + 1).min(flag_count));
        let mut rest = flag_folders.into_iter().peekable();
        while rest.peek().is_some() {
            let batch: Vec<FlagsOnlyFolder> = rest.by_ref().take(per).collect();
            let key = batch[0].path().clone();
            split.groups.push(Group {
                folder: key.clone(),
                ops: Vec::new(),
                transfers: 0,
                bytes: 0,
                fresh: false,
            });
            flag_batches.insert(key, batch);
        }
    }
    // Fresh folders are planned later, by the connection that takes each: announce what
    // their STATUS counts say (a download, and so an operation, per message).
    let mut announced = planned_event(plan);
    if let ProgressEvent::Planned {
        folders,
        downloads,
        ops,
        ..
    } = &mut announced
    {
        *folders += fresh.len() + flag_count;
        *downloads += fresh_messages;
        *ops += fresh_messages;
    }
    Schedule {
        split,
        fresh,
        flag_batches,
        announced,
        sized,
        extra,
    }
}

/// [`apply_plan`] on the main connection alone: the plan, then the fresh folders in path
/// order (parents first), one plan each (or one per window), then the folders changed by
/// flag changes alone, one plan each.
fn apply_here(
    remote: &mut dyn Remote,
    run: Run<'_>,
    db: &mut StateDb,
    g: &mut Gathered,
    report: &mut SyncReport,
    plan: &Plan,
    sched: Schedule,
) -> Result<(), SyncError> {
    // With fresh folders several plans are applied here: the run announces their total
    // once, as a split run does.
    let progress = run.progress;
    let quiet = WithoutPlanned(progress);
    let (first, rest): (&dyn Progress, &dyn Progress) = if sched.fresh.is_empty() {
        (progress, progress)
    } else if sched.sized {
        progress.event(sched.announced);
        (&quiet, &quiet)
    } else if plan.ops.is_empty() {
        // One fresh folder, size unknown: its own plan is the run's announcement.
        (&quiet, progress)
    } else {
        (progress, progress)
    };
    apply_one(remote, run.telling(first), db, g, report, plan)?;
    let run = run.telling(rest);
    for f in sched.fresh.into_values() {
        apply_fresh(remote, run, db, g, report, &f, None)?;
    }
    for batch in sched.flag_batches.into_values() {
        apply_flags_only(remote, run, db, g, report, &batch)?;
    }
    Ok(())
}

/// [`apply_plan`] over extra connections too: the main connection applies the operations
/// that must come first, then every connection takes groups from one queue until it is
/// empty; the results are merged in the end, and the first error is the run's.
fn apply_spread(
    remote: &mut dyn Remote,
    run: Run<'_>,
    db: &mut StateDb,
    g: &mut Gathered,
    report: &mut SyncReport,
    sched: Schedule,
) -> Result<(), SyncError> {
    let Schedule {
        split: Split { main, groups },
        mut fresh,
        mut flag_batches,
        announced,
        extra,
        ..
    } = sched;
    let queued = queued_jobs(groups, &mut fresh, &mut flag_batches, g);
    run.progress.event(announced);
    let quiet = WithoutPlanned(run.progress);
    let run = run.telling(&quiet);
    let template = Gathered {
        delimiter: g.delimiter,
        root: g.root.clone(),
        ..Gathered::default()
    };
    let shared = Shared {
        queue: Mutex::new(Queue {
            groups: queued,
            producing: 0,
            open: false,
            abort: false,
        }),
        changed: Condvar::new(),
    };
    let mut mine = Done::default();
    let (main_res, extras) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..extra)
            .map(|_| s.spawn(|| extra_worker(&shared, run, &template)))
            .collect();
        let opened = AbortUnlessOpened(&shared);
        let main_plan = Plan {
            ops: main,
            ..Plan::default()
        };
        let res = apply_one(remote, run, db, g, report, &main_plan);
        let res = match res {
            Ok(()) => {
                shared.set(|q| q.open = true);
                work(&shared, remote, run, db, &template, &mut mine)
            }
            Err(e) => {
                shared.set(|q| q.abort = true);
                Err(e)
            }
        };
        drop(opened);
        let extras: Vec<_> = handles.into_iter().map(joined).collect();
        (res, extras)
    });
    let mut first_err = main_res.err();
    merge(report, g, mine);
    for (done, res) in extras {
        merge(report, g, done);
        if let Err(e) = res {
            first_err.get_or_insert(e);
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The groups as the queue holds them, each with its job: a fresh folder's or a flag batch's
/// (taken out of `fresh` and `flag_batches`), else the folder's context from the gather
/// (taken out of `g`). The queue pops from the end, so the largest group goes last.
fn queued_jobs(
    groups: Vec<Group>,
    fresh: &mut BTreeMap<FolderPath, FreshFolder>,
    flag_batches: &mut BTreeMap<FolderPath, Vec<FlagsOnlyFolder>>,
    g: &mut Gathered,
) -> Vec<(Group, Job)> {
    let mut queued = Vec::with_capacity(groups.len());
    for group in groups.into_iter().rev() {
        let job = match fresh.remove(&group.folder).filter(|_| group.fresh) {
            Some(f) => Job::Fresh(f),
            None => match flag_batches.remove(&group.folder) {
                Some(batch) => Job::FlagsOnly(batch),
                None => Job::Planned(g.folders.remove(&group.folder).unwrap_or_default()),
            },
        };
        queued.push((group, job));
    }
    queued
}

/// An extra connection's results once its thread ended; a thread that panicked is a
/// worker that stopped, an error of the run.
fn joined(
    h: std::thread::ScopedJoinHandle<'_, (Done, Result<(), SyncError>)>,
) -> (Done, Result<(), SyncError>) {
    h.join().unwrap_or_else(|_| {
        (
            Done::default(),
            Err(SyncError::Remote(RemoteError::Fatal(
                "a sync worker stopped unexpectedly".into(),
            ))),
        )
    })
}

/// Adds one connection's results to the run's.
fn merge(report: &mut SyncReport, g: &mut Gathered, done: Done) {
    let Done {
        report: part,
        ctxs,
        traffic,
    } = done;
    g.folders.extend(ctxs);
    for f in part.folders {
        merge_folder(report.folder_mut(&f.folder), f);
    }
    report.alerts.extend(part.alerts);
    report.warnings.extend(part.warnings);
    report.refused.extend(part.refused);
    report.errors.extend(part.errors);
    report.steps += part.steps;
    if let Some(t) = traffic {
        add_traffic(report.traffic.get_or_insert_with(Traffic::default), &t);
    }
}

/// Adds `from` to `into` (a folder's results from two connections).
fn merge_folder(into: &mut FolderReport, from: FolderReport) {
    // Every field is named, so that a new one cannot be forgotten here.
    let FolderReport {
        folder: _,
        downloaded,
        completed,
        renamed_from,
        uploaded,
        copied,
        bound,
        local_flag_changes,
        remote_flag_changes,
        local_deletions,
        remote_deletions,
        local_moves,
        remote_moves,
        created_local,
        created_remote,
        deleted,
        pending,
        read_only,
        warnings,
        errors,
    } = from;
    into.downloaded += downloaded;
    into.completed += completed;
    if renamed_from.is_some() {
        into.renamed_from = renamed_from;
    }
    into.uploaded += uploaded;
    into.copied += copied;
    into.bound += bound;
    into.local_flag_changes += local_flag_changes;
    into.remote_flag_changes += remote_flag_changes;
    into.local_deletions += local_deletions;
    into.remote_deletions += remote_deletions;
    into.local_moves += local_moves;
    into.remote_moves += remote_moves;
    into.created_local |= created_local;
    into.created_remote |= created_remote;
    into.deleted |= deleted;
    into.pending += pending;
    into.read_only |= read_only;
    into.warnings.extend(warnings);
    into.errors.extend(errors);
}

/// Adds one session's traffic to a run's.
pub fn add_traffic(into: &mut Traffic, from: &Traffic) {
    for (name, n) in &from.commands {
        *into.commands.entry(name.clone()).or_insert(0) += n;
    }
    into.bytes_sent += from.bytes_sent;
    into.bytes_received += from.bytes_received;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Body, FlagSet, Location, Uid, UnixTime};

    fn path(s: &str) -> FolderPath {
        FolderPath(s.split('/').map(str::to_owned).collect())
    }

    fn download(folder: &str, uid: u32, size: u64) -> Op {
        Op::Download {
            folder: path(folder),
            uid: Uid(std::num::NonZeroU32::new(uid).unwrap_or(std::num::NonZeroU32::MIN)),
            flags: FlagSet::default(),
            location: Location::New,
            body: Body::Full,
            size,
            internaldate: UnixTime(0),
            message_id: None,
            replace: None,
            record: true,
        }
    }

    #[test]
    fn single_folder_work_is_grouped_largest_first() {
        let mut ops = vec![Op::CreateLocalFolder { folder: path("A") }];
        ops.extend((1..=3).map(|u| download("A", u, 10)));
        ops.extend((1..=5).map(|u| download("B", u, 10)));
        let s = split(&Plan {
            ops,
            ..Plan::default()
        });
        assert!(s.main.is_empty());
        assert_eq!(s.groups.len(), 2);
        assert_eq!(s.groups[0].folder, path("B"));
        assert_eq!(s.groups[0].transfers, 5);
        assert_eq!(s.groups[1].ops.len(), 4);
        assert_eq!(extra_connections(&s, 3), 0, "small groups open nothing");
    }

    #[test]
    fn moves_pin_both_folders_to_the_main_sequence() {
        let mut ops: Vec<Op> = (1..=60).map(|u| download("A", u, 1)).collect();
        ops.push(Op::RenameLocalFolder {
            from: path("A"),
            to: path("C"),
        });
        ops.extend((1..=60).map(|u| download("B", u, 1)));
        ops.extend((1..=60).map(|u| download("D", u, 1)));
        let s = split(&Plan {
            ops,
            ..Plan::default()
        });
        assert_eq!(s.main.len(), 61);
        assert_eq!(s.groups.len(), 2);
        assert_eq!(extra_connections(&s, 4), 1);
        assert_eq!(extra_connections(&s, 1), 0);
    }

    #[test]
    fn server_folder_creation_pins_its_hierarchy() {
        let mut ops = vec![
            Op::CreateRemoteFolder { folder: path("A") },
            Op::CreateRemoteFolder {
                folder: path("A/B"),
            },
            Op::CreateRemoteFolder { folder: path("AB") },
        ];
        ops.extend((1..=60).map(|u| download("AB", u, 1)));
        let s = split(&Plan {
            ops,
            ..Plan::default()
        });
        assert_eq!(s.main.len(), 2);
        assert_eq!(s.groups.len(), 1);
        assert_eq!(s.groups[0].folder, path("AB"));
    }

    #[test]
    fn bytes_alone_make_a_group_big() {
        let s = split(&Plan {
            ops: vec![download("A", 1, MIN_BYTES), download("B", 1, MIN_BYTES)],
            ..Plan::default()
        });
        assert_eq!(s.big_groups(), 2);
        assert_eq!(extra_connections(&s, 2), 1);
    }
}
