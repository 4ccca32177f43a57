//! mailfold-sync: the sync planner and applier.
//!
//! One run for one account ([`sync_account`]):
//!
//! 1. **Open** the Maildir and the state database. A missing database is created *fresh* (a
//!    first run, or a lost database: every message is matched by content, nothing is deleted);
//!    a corrupt or truncated one stops the run with an error instead of being taken for empty.
//! 2. **Connect** and authenticate over `mailfold-net` ([`remote_imap::NetRemote`], behind the
//!    [`remote::Remote`] trait): TLS, STARTTLS, SASL policy and their hardening are all there.
//! 3. **Gather** the three views — server, Maildir, state — into the planner's input
//!    ([`gather`]).
//! 4. **Plan**: the pure function [`plan::plan`] decides every operation, including the
//!    safety valve (a folder losing too much on one side is refused unless `--force`).
//! 5. **Apply** the operations in order, each effect before its state record; the records of
//!    consecutive steps are committed together in one transaction (grouped commits), and a
//!    step whose network outcome could be unknown (APPEND, moves) is journaled and committed
//!    alone before it is sent ([`apply`], whose module docs carry the crash-safety argument). With `connections` above 1, folders with enough
//!    work are applied at once over extra sessions ([`parallel`]): operations that span
//!    folders (moves, folder renames, journal clean-up) and every folder they or a server
//!    folder hierarchy change touch go first, in plan order, on the main connection; each
//!    remaining folder's operations are then one group, and the groups are taken largest
//!    first by the main connection and up to `connections - 1` workers, each with its own
//!    session, state-database connection and applier. A folder is worth an extra login only
//!    with [`parallel::MIN_DOWNLOADS`] messages or [`parallel::MIN_BYTES`] bytes to move, so
//!    a small or no-change run stays on one connection. A worker's lost connection fails the
//!    run as a lost main connection does; every step stays journaled as on one connection, so
//!    the next run resumes.
//! 6. **Report** per folder what changed on each side ([`SyncReport`]), with the server's
//!    ALERTs, warnings, pending local changes, refusals and errors.
#![forbid(unsafe_code)]

pub mod account;
pub mod adopt;
pub mod apply;
pub mod changes;
pub mod error;
pub mod folder_root;
pub mod gather;
pub mod inspect;
pub mod listing;
pub use mailfold_plan as plan;
pub mod parallel;
pub mod progress;
pub mod remote;
pub mod remote_imap;
pub mod report;
pub mod step_error;
pub mod watch;

pub use account::{
    AccountSecret, AccountSpec, Direction, DownloadMode, FolderPatterns, PendingSecret,
    SecretError, SyncOptions, TlsMode,
};
pub use error::SyncError;
pub use mailfold_sasl::{MechanismName, Secret};
pub use progress::{NoProgress, Progress, ProgressEvent};
pub use remote::Remote;
pub use remote_imap::NetRemote;
pub use report::{FolderReport, SyncReport, Traffic};
pub use step_error::StepError;
pub use watch::{watch_account, RoundGuard, RoundLock, StopSignal, WatchOptions};

use mailfold_store::{Maildir, MaildirOptions, StateDb};

use crate::plan::{PlanConfig, SafetyValve};

/// Syncs one account: connect, gather, plan, apply, log out. See the crate docs.
///
/// Returns `Err` only when the run could not proceed at all (store unusable, connection or
/// authentication failed, connection lost mid-run). Per-folder problems, refusals by the
/// safety valve and the server's NO texts are in the report; [`SyncReport::is_complete`] says
/// whether every folder synced.
pub fn sync_account(account: &AccountSpec, opts: &SyncOptions) -> Result<SyncReport, SyncError> {
    sync_account_with_progress(account, opts, &NoProgress)
}

/// [`sync_account`], telling `progress` what happens as it happens (the CLI's progress bars).
/// The events never change what the run does; the returned report is the authority.
pub fn sync_account_with_progress(
    account: &AccountSpec,
    opts: &SyncOptions,
    progress: &dyn Progress,
) -> Result<SyncReport, SyncError> {
    let (maildir, mut db, mut remote, local) = secret_first(account, open_and_connect(account))?;
    let result = sync_prelisted(
        &mut remote,
        account,
        opts,
        &maildir,
        &mut db,
        progress,
        Some(local),
    );
    remote.logout();
    result.map(|mut r| {
        // Parallel workers' traffic is already in the report; the main session's joins it.
        let main = report::Traffic::of(&remote.stats());
        match &mut r.traffic {
            Some(t) => parallel::add_traffic(t, &main),
            None => r.traffic = Some(main),
        }
        r
    })
}

/// The run's start: the connection on a thread of its own, and meanwhile the store and the
/// local listing the gather starts from ([`gather::prefetch_local`]), so that opening the
/// state database and reading every folder's stamp cost nothing while the server greets and
/// authenticates. The connection waits for a [`AccountSecret::Pending`] secret only when it
/// is about to authenticate; until then the secret's fetch (a password command) runs beside
/// all of that. A first run (no Maildir or no state database yet) waits for the secret before
/// creating either, so that a failing command leaves nothing behind. An existing store is
/// only opened, checked and listed before the secret arrives: no mail and no sync state is
/// written (opening does bring a database left by an older version to the current schema,
/// as this run would have done after the secret anyway). When the store fails, that is the
/// run's error, as when it was opened first, and the connection is dropped.
fn open_and_connect(
    account: &AccountSpec,
) -> Result<
    (
        Maildir,
        StateDb,
        remote_imap::NetRemote,
        gather::LocalPrefetch,
    ),
    SyncError,
> {
    if account.secret.is_pending() && !(account.maildir.is_dir() && account.state_db.exists()) {
        account.secret.wait().map_err(SyncError::Secret)?;
    }
    let (store, remote) = std::thread::scope(|s| {
        let connecting = s.spawn(|| remote_imap::NetRemote::connect(account));
        let store = open_store(account).and_then(|(maildir, db)| {
            let local = gather::prefetch_local(&maildir, &db, account)?;
            Ok((maildir, db, local))
        });
        let remote = connecting.join().unwrap_or_else(|_| {
            Err(remote::RemoteError::Fatal(
                "the connecting thread stopped unexpectedly".into(),
            ))
        });
        (store, remote)
    });
    let (maildir, db, local) = store?;
    Ok((maildir, db, remote?, local))
}

/// `result`, unless the account's pending secret could not be had: then that failure, and
/// only it, is the run's error, as when the secret was fetched before the run began (a
/// store or connection failure that happened meanwhile would not have been reached). Waits
/// for the secret when it is still being fetched, so no command outlives the run.
pub fn secret_first<T>(
    account: &AccountSpec,
    result: Result<T, SyncError>,
) -> Result<T, SyncError> {
    match result {
        Err(e) => Err(account.secret.failure().map_or(e, SyncError::Secret)),
        ok => ok,
    }
}

/// Opens the account's Maildir (created if missing) and state database (created fresh if
/// missing; an existing but unreadable one is an error, never replaced).
pub fn open_store(account: &AccountSpec) -> Result<(Maildir, StateDb), SyncError> {
    let maildir = Maildir::open(
        &account.maildir,
        MaildirOptions {
            fsync: account.fsync,
            layout: account.layout,
            ..MaildirOptions::default()
        },
    )?;
    let db = match StateDb::open(&account.state_db) {
        Ok(db) => db,
        Err(mailfold_store::Error::StateMissing { .. }) => StateDb::create(&account.state_db)?,
        Err(e) => return Err(e.into()),
    };
    // The database's durability follows the Maildir's: one without the other buys nothing.
    db.set_fsync(account.fsync)?;
    Ok((maildir, db))
}

/// A second connection to the state database [`open_store`] opened, for a parallel worker
/// ([`parallel`]): it must exist already (never created here, so a worker cannot start a
/// fresh database beside the run's).
fn open_worker_db(account: &AccountSpec) -> Result<StateDb, SyncError> {
    // The main connection is live beside it (its write-ahead log is not empty), which the
    // default check would take for an unclean end and answer with a whole-file quick_check;
    // the main connection has already checked the file this run.
    let db = StateDb::open_with(&account.state_db, mailfold_store::IntegrityCheck::Cheap)?;
    db.set_fsync(account.fsync)?;
    Ok(db)
}

/// The run over an already connected [`Remote`] (tests use it to watch or disturb the
/// session; [`sync_account`] uses it with [`remote_imap::NetRemote`]).
pub fn sync_with_remote(
    remote: &mut dyn Remote,
    account: &AccountSpec,
    opts: &SyncOptions,
    maildir: &Maildir,
    db: &mut StateDb,
) -> Result<SyncReport, SyncError> {
    sync_with_remote_progress(remote, account, opts, maildir, db, &NoProgress)
}

/// [`sync_with_remote`], telling `progress` what happens as it happens.
pub fn sync_with_remote_progress(
    remote: &mut dyn Remote,
    account: &AccountSpec,
    opts: &SyncOptions,
    maildir: &Maildir,
    db: &mut StateDb,
    progress: &dyn Progress,
) -> Result<SyncReport, SyncError> {
    sync_prelisted(remote, account, opts, maildir, db, progress, None)
}

/// [`sync_with_remote_progress`] from a local listing read ahead (see [`open_and_connect`]),
/// used unless an adoption changes the Maildir before the gather.
fn sync_prelisted(
    remote: &mut dyn Remote,
    account: &AccountSpec,
    opts: &SyncOptions,
    maildir: &Maildir,
    db: &mut StateDb,
    progress: &dyn Progress,
    local: Option<gather::LocalPrefetch>,
) -> Result<SyncReport, SyncError> {
    let mut report = SyncReport {
        account: account.name.clone(),
        dry_run: opts.dry_run,
        ..SyncReport::default()
    };
    let adopting = adopt::begin(remote, account, opts, maildir, db, &mut report)?;
    // A dry run plans every folder at once, so that it can show the whole plan.
    let options = gather::GatherOptions {
        defer_fresh: !opts.dry_run,
        defer_flags_only: !opts.dry_run,
    };
    // An adoption renames files into the mirror's own names: the listing read ahead is then
    // out of date, and the gather reads its own.
    let local = if adopting { None } else { local };
    let mut g =
        gather::gather_prelisted(remote, account, maildir, db, &mut report, options, local)?;
    adopt::hide_local_only(&mut g.input, db)?;
    let config = plan_config(account, opts, adopting);
    let plan = plan::plan(&g.input, &config);
    // Renames and their sides; for a dry run, the per-folder counts and operations.
    report.note_plan(&plan);
    if adopting {
        adopt::finish(&plan, opts, db, &mut report)?;
    }
    if opts.dry_run {
        // Nothing is applied, so no applier announces the plan: say what it would do.
        progress.event(parallel::planned_event(&plan));
    }
    note_warnings_and_pending(&plan, &g.input, &mut report);
    if !opts.dry_run {
        parallel::apply_plan(
            remote,
            account,
            &config,
            maildir,
            db,
            &mut g,
            &mut report,
            &plan,
            progress,
        )?;
        if report.is_complete() && db.is_fresh()? {
            db.mark_synced()?;
        }
        // Last, after every write of every connection: the folder contexts of the parallel
        // workers are merged back into `g` by now, so each folder's stamp is judged once.
        gather::record_stamps(db, maildir, &g, &report)?;
    }
    report.alerts.extend(remote.take_alerts());
    report.warnings.extend(remote.take_warnings());
    report.folders.sort_by(|a, b| a.folder.cmp(&b.folder));
    Ok(report)
}

/// The planner's settings for a run of `account`: its safety valve (forced with `--force`),
/// download policy and direction; `adopting` keeps the local files of a Maildir another tool
/// made.
fn plan_config(account: &AccountSpec, opts: &SyncOptions, adopting: bool) -> PlanConfig {
    PlanConfig {
        valve: SafetyValve {
            max_percent: account.max_delete_percent,
            ..SafetyValve::default()
        },
        force: opts.force,
        download: account.download,
        pull: account.direction == account::Direction::Pull,
        keep_new_local: adopting,
    }
}

/// The plan's warnings and refusals in the report, and each folder's pending local changes
/// after the run: those already marked, plus new marks, less the ones this plan clears
/// (V0039).
fn note_warnings_and_pending(plan: &plan::Plan, input: &plan::SyncInput, report: &mut SyncReport) {
    for w in &plan.warnings {
        report.warnings.push(w.to_string());
    }
    for r in &plan.refused {
        report.refused.push(r.to_string());
    }
    for f in &input.state {
        if !f.pending.is_empty() {
            report.folder_mut(&f.path.to_string()).pending += f.pending.len();
        }
    }
    for op in &plan.ops {
        match op {
            plan::Op::MarkPending { folder, .. } => {
                report.folder_mut(&folder.to_string()).pending += 1;
            }
            plan::Op::ClearPending { folder, .. } => {
                let p = &mut report.folder_mut(&folder.to_string()).pending;
                *p = p.saturating_sub(1);
            }
            _ => {}
        }
    }
}
