//! Watch mode (`mailfold watch`): keeps one account in sync until told to stop.
//!
//! [`watch_account`] runs [`crate::sync_account`] once, then again whenever something may
//! have changed:
//!
//! * **The server said so.** Every folder is watched. One *account watcher* thread holds a
//!   connection with no mailbox selected; what its first connection finds decides how:
//!   * **NOTIFY** (RFC 5465) where offered: `ENABLE CONDSTORE` (without it a flag change in
//!     a folder that is not selected is not reported, section 5.3), then
//!     [`Notify::every_personal_change`], then IDLE (or NOOP polling, seed V0028) on that one
//!     connection. Any report ([`Notice`]: a STATUS or LIST about another folder, a change
//!     of the selected one) wakes the main loop; a `NOTIFICATIONOVERFLOW` (5.8) also asks
//!     for NOTIFY again. No other connection is needed.
//!   * **Otherwise** one *watcher* thread per folder of [`WatchOptions::idle_folders`],
//!     each with its own connection (IDLE holds a connection to one mailbox, RFC 2177),
//!     opens its folder with EXAMINE (read-only: watching must not clear `\Recent`) and
//!     waits with [`Session::idle_or_poll`]: IDLE where the server offers it, NOOP polling
//!     every [`WatchOptions::poll_every`] otherwise (seed V0028). An EXISTS, EXPUNGE,
//!     VANISHED or unsolicited FETCH wakes the main loop. The account watcher polls the
//!     other folders every [`WatchOptions::folder_poll_every`]: one LIST-STATUS (RFC 5819)
//!     where offered, else one round of pipelined STATUS for the folders the state records,
//!     compared item by item with what the state recorded at the last sync (UIDVALIDITY,
//!     UIDNEXT, MESSAGES against the message rows, HIGHESTMODSEQ; the items of the sync's own
//!     unchanged-folder check, seed V0045). A poll that finds nothing new costs that one
//!     round trip and triggers nothing; a status that already triggered a run does not
//!     trigger another (a folder the run could not bring level would otherwise cause a run
//!     every poll). Without CONDSTORE a flag change shows in no STATUS item and waits for
//!     the full check.
//!
//!   The first connection also tells [`WatchOptions::on_start`] what is watched and how.
//! * **The Maildir changed.** A recursive `notify` watch on the Maildir root (inotify on Linux)
//!   reports what mail readers do (mutt renames a file to change its flags). `tmp/` (files being
//!   written, Maildir's delivery protocol), reads, and the state database are ignored, and
//!   events are debounced ([`WatchOptions::debounce`], trailing, with a cap so a steady stream
//!   cannot postpone the sync forever).
//! * **Time passed.** Every [`WatchOptions::full_check_every`] (measured from the last
//!   successful run), for anything a watcher missed (and, without CONDSTORE or NOTIFY, for
//!   flag changes outside the IDLE folders).
//!
//! Each run is a normal [`crate::sync_account`] on a connection of its own, so watch mode gets
//! exactly the guarantees of a one-off sync (journal, safety valve, STATUS skip of unchanged
//! folders, V0045); a change-triggered run costs one STATUS round for the folders that did not
//! change.
//!
//! # Not reacting to ourselves
//!
//! A run writes into the Maildir (downloads, flag renames) and into the server (STORE, APPEND);
//! both come back as events. Neither may loop:
//!
//! * Local events that arrive *while a run is in progress* may be the run's own or the user's;
//!   they cannot be told apart, so they cause one follow-up run. That run finds nothing to do
//!   and writes nothing, so the chain ends there.
//! * Local events that arrive *between* runs are checked against a fingerprint of the
//!   Maildir's message file names (`cur/` and `new/` of every folder), taken at the end of the
//!   last run while it still counted as in progress. The run's own late-delivered events leave
//!   the fingerprint unchanged and are dropped; a file the user added, removed or renamed
//!   changes it.
//! * The server's echo of our own changes (the watcher sees the FETCH of our STORE) causes one
//!   follow-up run, which finds the server as the previous run left it and changes nothing.
//!
//! # Failures
//!
//! A watcher whose connection fails (connect, TLS, login, EXAMINE, or the connection dropping
//! mid-IDLE) reconnects after an exponential backoff: 1 s doubling to 5 min, plus up to a
//! quarter of random jitter so that many clients cut off together do not come back in step.
//! Each reconnection triggers a run, because changes made while it was away were not seen. A run
//! that fails on the network is reported ([`WatchOptions::on_report`], an account-level error)
//! and retried after the same backoff; one that fails otherwise (the store) is reported and
//! retried at the next trigger. [`watch_account`] returns `Err` only when the store cannot be
//! opened at the start.
//!
//! # Sharing the account with other commands
//!
//! The watch does not hold the account's lock (the CLI's per-account lock, which `sync`,
//! `flag`, `append`, … take) for its life, only around each run ([`WatchOptions::round_lock`]):
//! the IDLE waits, NOOP polls and debounce pauses, which are nearly all of a watch's time, hold
//! no lock, so the user's one-off commands run beside it. When a run is due and another command
//! holds the lock, the run waits for it, asking again every [`STOP_POLL`] so that a stop is
//! still noticed at once, and starts as soon as the command ends; what the command changed is
//! then in the run's view. Its file changes also arrive as Maildir events, so they cause a run
//! in any case.
//!
//! # Stopping
//!
//! [`StopSignal::stop`] ends the IDLEs at once (DONE), wakes every wait, and the watchers log
//! out (LOGOUT, bounded by the session's logout timeout, seed N2); a watcher connection whose
//! server does not answer within [`STOP_GRACE`] of the stop is dropped instead. A run in
//! progress is not interrupted: it finishes first (it is journaled, so a hard kill is safe
//! too, but a clean end is faster to resume from). [`StopSignal::flag`] is the async-signal-safe way to stop: a
//! signal handler may set it, and the watch notices within [`STOP_POLL`].

use std::any::Any;
use std::collections::hash_map::{DefaultHasher, RandomState};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mailfold_net::{IdleStop, Session};
use mailfold_proto::command::StatusItem;
use mailfold_proto::core::Mailbox;
use mailfold_proto::engine::Event;
use mailfold_proto::notify::{Notice, Notify};
use mailfold_proto::response::ListAttribute;
use mailfold_store::{IntegrityCheck, StateDb, StateRead};

use crate::account::AccountSpec;
use crate::error::SyncError;
use crate::plan::FolderPath;
use crate::report::SyncReport;
use crate::step_error::StepError;
use crate::{gather, remote_imap, SyncOptions};

/// How often a flag set without [`StopSignal::stop`] (from a signal handler) is looked at.
pub const STOP_POLL: Duration = Duration::from_millis(200);
/// How long a watcher's connection may take to end cleanly (DONE, LOGOUT) after a stop.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// First reconnection delay.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// Longest reconnection delay (before jitter).
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// An IDLE is ended and re-issued after this long: well inside the 30-minute autologout, and
/// under seed V0025's 10 minutes, so a connection that died silently is found out in time.
const IDLE_RENEW: Duration = Duration::from_secs(9 * 60);
/// A server change is synced after this pause, so the rest of a burst (EXISTS, RECENT, FETCH of
/// one delivery) is covered by the same run.
const REMOTE_SETTLE: Duration = Duration::from_millis(200);
/// A steady stream of local events postpones the run by at most this many debounce periods.
const LOCAL_MAX_FACTOR: u32 = 10;
/// How long the first run waits for the watchers' first connection attempt: changes made after
/// a watcher is in place are seen by it, those before by the first run.
const READY_WAIT: Duration = Duration::from_secs(10);
/// Directory levels the fingerprint descends (a guard against pathological trees; symbolic
/// links are never followed).
const MAX_DEPTH: usize = 64;

/// Names the store gives its own scratch entries in the Maildir (the case-sensitivity probe).
const SCRATCH_PREFIX: &str = ".mailfold-";

/// Called with each run's report.
pub type ReportHook = Arc<dyn Fn(&SyncReport) + Send + Sync>;
/// Called with each notice of the watch itself (connection lost, reconnecting, server alert).
pub type NoticeHook = Arc<dyn Fn(&str) + Send + Sync>;

/// Whatever keeps the lock of [`RoundLock::try_lock`] held; dropping it releases the lock.
pub type RoundGuard = Box<dyn Any + Send>;

/// A lock the watch holds for each run and for nothing else (the CLI's account lock; see the
/// module docs, "Sharing the account with other commands").
pub trait RoundLock: Send + Sync {
    /// Takes the lock without waiting: `Ok(Some(guard))` when taken (held until the guard
    /// drops), `Ok(None)` when another holder has it (the watch asks again shortly), `Err` with
    /// a message when it cannot be taken at all (reported like a failed run, retried after the
    /// backoff).
    fn try_lock(&self) -> Result<Option<RoundGuard>, String>;
}

/// Settings of [`watch_account`].
#[derive(Clone)]
pub struct WatchOptions {
    /// A full sync this long after the last successful one, whatever happened (default 15 min).
    pub full_check_every: Duration,
    /// Folders watched with IDLE (or NOOP polling), one connection each, named as in reports
    /// (UTF-8, levels joined with `/`; default `INBOX`). Empty: no server watching, only full
    /// checks and local changes.
    pub idle_folders: Vec<String>,
    /// Quiet time after the last Maildir event before syncing (default 2 s).
    pub debounce: Duration,
    /// The NOOP interval where the server has no IDLE (seed V0028; default 60 s, well under
    /// V0025's 10 minutes).
    pub poll_every: Duration,
    /// Without NOTIFY: how often the folders IDLE does not watch are polled (one LIST-STATUS,
    /// or one round of pipelined STATUS, compared with the state; default 60 s).
    pub folder_poll_every: Duration,
    /// Capabilities the watchers treat as absent: `IDLE` for a server whose IDLE is broken,
    /// which then gets NOOP polling; `NOTIFY` or `LIST-STATUS` likewise.
    pub hide_capabilities: Vec<String>,
    /// Receives each run's report; a run that could not proceed is reported with the error in
    /// [`SyncReport::errors`].
    pub on_report: ReportHook,
    /// Receives the watch's own notices, one line each.
    pub on_notice: NoticeHook,
    /// Receives, once, the line saying what is watched and how (`watching 12 folders of
    /// account work: NOTIFY`), when the first connection has told.
    pub on_start: NoticeHook,
    /// Held around each run, and only then (default: none).
    pub round_lock: Option<Arc<dyn RoundLock>>,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            full_check_every: Duration::from_secs(15 * 60),
            idle_folders: vec!["INBOX".to_owned()],
            debounce: Duration::from_secs(2),
            poll_every: Duration::from_secs(60),
            folder_poll_every: Duration::from_secs(60),
            hide_capabilities: Vec::new(),
            on_report: Arc::new(|_| {}),
            on_notice: Arc::new(|_| {}),
            on_start: Arc::new(|_| {}),
            round_lock: None,
        }
    }
}

impl fmt::Debug for WatchOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchOptions")
            .field("full_check_every", &self.full_check_every)
            .field("idle_folders", &self.idle_folders)
            .field("debounce", &self.debounce)
            .field("poll_every", &self.poll_every)
            .field("folder_poll_every", &self.folder_poll_every)
            .field("hide_capabilities", &self.hide_capabilities)
            .field("round_lock", &self.round_lock.is_some())
            .finish_non_exhaustive()
    }
}

type Waker = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct StopInner {
    flag: Arc<AtomicBool>,
    wakers: Mutex<Vec<(u64, Waker)>>,
    next_id: AtomicU64,
}

/// Tells a running [`watch_account`] to end. Clones share the signal; [`StopSignal::stop`] may
/// be called from any thread.
#[derive(Clone, Default)]
pub struct StopSignal {
    inner: Arc<StopInner>,
}

impl fmt::Debug for StopSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopSignal")
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

impl StopSignal {
    /// A signal not yet given.
    pub fn new() -> StopSignal {
        StopSignal::default()
    }

    /// Stops the watch: wakes every wait at once. Takes a lock, so not for use inside a raw
    /// signal handler; set [`StopSignal::flag`] there instead.
    pub fn stop(&self) {
        self.inner.flag.store(true, Ordering::SeqCst);
        for (_, wake) in lock(&self.inner.wakers).iter() {
            wake();
        }
    }

    /// Whether the signal was given (by [`StopSignal::stop`] or through the flag).
    pub fn is_stopped(&self) -> bool {
        self.inner.flag.load(Ordering::SeqCst)
    }

    /// The flag behind the signal. Setting it is async-signal-safe (e.g.
    /// `signal_hook::flag::register(SIGTERM, stop.flag())`); the watch notices within
    /// [`STOP_POLL`].
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.inner.flag)
    }

    /// Calls `wake` on [`StopSignal::stop`] (at once if already stopped) until the guard drops.
    fn on_stop(&self, wake: Waker) -> WakerGuard {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        if self.is_stopped() {
            wake();
        }
        lock(&self.inner.wakers).push((id, wake));
        WakerGuard {
            signal: self.clone(),
            id,
        }
    }
}

/// Unregisters a waker, so that wakers do not pile up on a signal reused across watches.
struct WakerGuard {
    signal: StopSignal,
    id: u64,
}

impl Drop for WakerGuard {
    fn drop(&mut self) {
        lock(&self.signal.inner.wakers).retain(|(id, _)| *id != self.id);
    }
}

/// A poisoned lock only means another thread panicked while holding it; the data (flags and
/// timestamps) is still meaningful, so it is used rather than spreading the panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Triggers collected for the main loop, shared with the watcher threads and the file-system
/// callback. Flags and timestamps only, so memory stays constant however many events arrive.
#[derive(Default)]
struct Pending {
    /// First and last local event not yet acted on.
    local_first: Option<Instant>,
    local_last: Option<Instant>,
    /// A local event of the current batch arrived while a run was in progress.
    local_during_run: bool,
    /// A run is in progress.
    running: bool,
    /// The first server change not yet synced.
    remote_at: Option<Instant>,
    /// Watchers that finished their first connection attempt.
    settled: usize,
    /// Watchers the first run waits for (the account watcher, and the IDLE watchers it
    /// starts when the server has no NOTIFY).
    expected: usize,
    /// Bumped on every change, so the main loop never sleeps through one.
    seq: u64,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    cv: Condvar,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut Pending)) {
        let mut p = lock(&self.pending);
        f(&mut p);
        p.seq = p.seq.wrapping_add(1);
        drop(p);
        self.cv.notify_all();
    }

    fn local(&self) {
        let now = Instant::now();
        self.update(|p| {
            p.local_first.get_or_insert(now);
            p.local_last = Some(now);
            p.local_during_run |= p.running;
        });
    }

    fn remote(&self) {
        let now = Instant::now();
        self.update(|p| {
            p.remote_at.get_or_insert(now);
        });
    }

    fn settle(&self) {
        self.update(|p| p.settled += 1);
    }
}

/// Keeps `account` in sync until `stop` fires. See the module docs.
///
/// Blocks the calling thread; returns `Ok(())` once stopped and every connection is logged
/// out. `Err` only when the Maildir or state database cannot be opened at the start.
pub fn watch_account(
    account: &AccountSpec,
    opts: &WatchOptions,
    stop: &StopSignal,
) -> Result<(), SyncError> {
    // A store that cannot be opened would fail every run the same way: say so once.
    drop(crate::open_store(account)?);
    let shared = Arc::new(Shared::default());
    let _wake_main = stop.on_stop({
        let shared = Arc::clone(&shared);
        Box::new(move || shared.update(|_| {}))
    });
    let fs_watch = start_fs_watch(account, &shared, &opts.on_notice);
    let threads: Threads = Arc::new(Mutex::new(Vec::new()));
    if !opts.idle_folders.is_empty() {
        shared.update(|p| p.expected = 1);
        let w = AccountWatcher {
            account: account.clone(),
            opts: opts.clone(),
            shared: Arc::clone(&shared),
            stop: stop.clone(),
            threads: Arc::clone(&threads),
        };
        match std::thread::Builder::new()
            .name("mailfold-watch".into())
            .spawn(move || w.run())
        {
            Ok(h) => lock(&threads).push(h),
            Err(e) => {
                (opts.on_notice)(&format!("cannot watch the server: starting a thread: {e}"));
                shared.settle();
            }
        }
    }
    wait_ready(&shared, stop);

    let mut main = MainLoop {
        account,
        opts,
        stop,
        shared: &shared,
        fingerprint: None,
        backoff: Backoff::new(),
        next_full: Instant::now(),
        not_before: Instant::now(),
    };
    main.run();

    // The loop ends only on stop; this wakes whichever watcher has not noticed yet.
    stop.stop();
    // The account watcher may still be starting IDLE watchers: join until none is left.
    loop {
        let batch: Vec<JoinHandle<()>> = lock(&threads).drain(..).collect();
        if batch.is_empty() {
            break;
        }
        for h in batch {
            let _ = h.join();
        }
    }
    drop(fs_watch);
    Ok(())
}

/// Waits until every watcher made its first connection attempt, [`READY_WAIT`] passed, or stop.
fn wait_ready(shared: &Shared, stop: &StopSignal) {
    let until = Instant::now() + READY_WAIT;
    let mut p = lock(&shared.pending);
    while p.settled < p.expected && !stop.is_stopped() {
        let now = Instant::now();
        if now >= until {
            break;
        }
        p = shared
            .cv
            .wait_timeout(p, (until - now).min(STOP_POLL))
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

struct MainLoop<'a> {
    account: &'a AccountSpec,
    opts: &'a WatchOptions,
    stop: &'a StopSignal,
    shared: &'a Shared,
    /// The Maildir as the last run left it.
    fingerprint: Option<Fingerprint>,
    /// Retry delays for runs that failed on the network.
    backoff: Backoff,
    next_full: Instant,
    /// A failed run is not retried before this.
    not_before: Instant,
}

/// Whether a due run may start.
enum Turn {
    /// Yes, holding this guard (if the watch has a round lock).
    Go(Option<RoundGuard>),
    /// The watch was stopped while waiting for the lock.
    Stopped,
    /// The lock cannot be taken (not merely busy).
    Failed(String),
}

/// What the main loop should do next.
enum Step {
    Run,
    CheckLocal,
    Wait,
}

impl MainLoop<'_> {
    /// Runs due syncs until the watch is stopped.
    fn run(&mut self) {
        // The first run is due at once (next_full is now).
        let mut due = false;
        loop {
            if self.stop.is_stopped() {
                return;
            }
            match self.next_step(&mut due) {
                Step::Run => due = !self.run_once(),
                Step::CheckLocal => {
                    let now = fingerprint(&self.account.maildir);
                    if self.fingerprint != Some(now) {
                        due = true;
                    }
                }
                Step::Wait => {}
            }
        }
    }

    /// Takes the triggers that have matured (a settled server change, a debounced burst of
    /// local events, the full check's time) into `due`, and says what to do about them;
    /// [`Step::Wait`] after waiting for the next trigger (or [`STOP_POLL`]).
    fn next_step(&self, due: &mut bool) -> Step {
        let mut p = lock(&self.shared.pending);
        let now = Instant::now();
        let mut local_fired = None;
        if p.remote_at.is_some_and(|t| now >= t + REMOTE_SETTLE) {
            p.remote_at = None;
            *due = true;
        }
        if let (Some(first), Some(last)) = (p.local_first, p.local_last) {
            let debounce = self.opts.debounce;
            if now >= last + debounce || now >= first + debounce * LOCAL_MAX_FACTOR {
                p.local_first = None;
                p.local_last = None;
                local_fired = Some(std::mem::take(&mut p.local_during_run));
            }
        }
        if now >= self.next_full {
            *due = true;
        }
        // Events during a run may be the user's: they cannot be cleared by the
        // fingerprint, which already includes them.
        if local_fired == Some(true) {
            *due = true;
        }
        if *due && now >= self.not_before {
            Step::Run
        } else if local_fired == Some(false) && !*due {
            Step::CheckLocal
        } else {
            self.wait_for_trigger(p, now, *due);
            Step::Wait
        }
    }

    /// Sleeps until the earliest moment a trigger can mature (or [`STOP_POLL`]), waking early
    /// when anything is recorded in `p`.
    fn wait_for_trigger(&self, p: MutexGuard<'_, Pending>, now: Instant, due: bool) {
        let mut wake = self.next_full.min(now + STOP_POLL);
        if due {
            wake = wake.min(self.not_before);
        }
        if let Some(t) = p.remote_at {
            wake = wake.min(t + REMOTE_SETTLE);
        }
        if let (Some(first), Some(last)) = (p.local_first, p.local_last) {
            let d = self.opts.debounce;
            wake = wake.min((last + d).min(first + d * LOCAL_MAX_FACTOR));
        }
        let seq = p.seq;
        let timeout = wake.saturating_duration_since(now);
        if !timeout.is_zero() {
            let (guard, _) = self
                .shared
                .cv
                .wait_timeout_while(p, timeout, |p| p.seq == seq)
                .unwrap_or_else(PoisonError::into_inner);
            drop(guard);
        }
    }

    /// Takes the round lock for a run, waiting while another command holds it.
    fn take_turn(&self) -> Turn {
        let Some(round_lock) = &self.opts.round_lock else {
            return Turn::Go(None);
        };
        let mut said = false;
        loop {
            match round_lock.try_lock() {
                Ok(Some(guard)) => return Turn::Go(Some(guard)),
                Ok(None) => {}
                Err(e) => return Turn::Failed(e),
            }
            if !said {
                (self.opts.on_notice)("another command is using the account; syncing when it ends");
                said = true;
            }
            // Polled rather than blocked on, so that a stop is noticed while waiting.
            let p = lock(&self.shared.pending);
            let seq = p.seq;
            drop(
                self.shared
                    .cv
                    .wait_timeout_while(p, STOP_POLL, |p| p.seq == seq)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0,
            );
            if self.stop.is_stopped() {
                return Turn::Stopped;
            }
        }
    }

    /// One sync run; `false` when it failed in a way worth retrying after the backoff.
    fn run_once(&mut self) -> bool {
        let guard = match self.take_turn() {
            Turn::Go(guard) => guard,
            Turn::Stopped => return true,
            Turn::Failed(e) => {
                let report = SyncReport {
                    account: self.account.name.clone(),
                    errors: vec![StepError::Run(format!("cannot lock the account: {e}"))],
                    ..SyncReport::default()
                };
                (self.opts.on_report)(&report);
                self.not_before = Instant::now() + self.backoff.next_delay();
                return false;
            }
        };
        self.shared.update(|p| p.running = true);
        let result = crate::sync_account(self.account, &SyncOptions::default());
        // Taken while the run still counts as in progress: an event the user causes during
        // the scan is then treated as one during the run (a follow-up run), not hidden by a
        // fingerprint that already includes it. Taken under the lock, too: a command that
        // changes the Maildir after it is released changes the fingerprint.
        let fp = fingerprint(&self.account.maildir);
        self.shared.update(|p| p.running = false);
        drop(guard);
        let now = Instant::now();
        match result {
            Ok(report) => {
                self.backoff.reset();
                self.fingerprint = Some(fp);
                self.next_full = now + self.opts.full_check_every;
                (self.opts.on_report)(&report);
                true
            }
            Err(e) => {
                let report = SyncReport {
                    account: self.account.name.clone(),
                    errors: vec![StepError::from(&e)],
                    ..SyncReport::default()
                };
                (self.opts.on_report)(&report);
                if matches!(e, SyncError::Remote(_)) {
                    let delay = self.backoff.next_delay();
                    (self.opts.on_notice)(&format!(
                        "sync failed ({e}); retrying in {:.1} s",
                        delay.as_secs_f64()
                    ));
                    self.not_before = now + delay;
                    false
                } else {
                    // Not a network problem: retrying at once would fail the same way.
                    self.fingerprint = Some(fp);
                    self.next_full = now + self.opts.full_check_every;
                    true
                }
            }
        }
    }
}

/// Exponential backoff with jitter: 1 s, 2 s, 4 s … capped at 5 min, each plus up to a quarter.
#[derive(Debug, Clone)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            next: BACKOFF_FIRST,
        }
    }

    fn reset(&mut self) {
        self.next = BACKOFF_FIRST;
    }

    fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (base * 2).min(BACKOFF_MAX);
        base + jitter(base / 4)
    }
}

/// A random duration in `0..=max`. `RandomState` is seeded from the OS and changes keys on
/// every construction, which is random enough to spread reconnections without a dependency.
fn jitter(max: Duration) -> Duration {
    let r = RandomState::new().build_hasher().finish();
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(r % nanos.saturating_add(1))
}

/// What the two kinds of watcher connection do differently; [`keep_watching`] runs the
/// connect, wait and reconnect cycle they share.
trait Link {
    /// What the watch's notices name as watched: a folder, or `the server`.
    fn subject(&self) -> String;
    /// Where the watch's notices go.
    fn notice(&self) -> NoticeHook;
    /// Connects and makes the connection ready to wait on.
    async fn open(&mut self) -> Result<Session, String>;
    /// Says what a fresh connection can do, once it counts as connected.
    fn connected(&self, _s: &Session) {}
    /// Waits for one round of news on the connection; a change wakes the main loop.
    async fn round(
        &mut self,
        s: &mut Session,
        idle_stop: &IdleStop,
    ) -> Result<(), mailfold_net::Error>;
}

/// The life of a watcher thread, of either kind: connects (a stop cuts the attempt short),
/// counts its first attempt as settled for the first run, then waits round after round. A
/// failed or lost connection is tried again after the [`Backoff`], and coming back triggers a
/// run (what changed meanwhile went unseen); a stop logs out, bounded by the session (seed N2).
fn keep_watching(link: &mut impl Link, shared: &Shared, stop: &StopSignal) {
    let subject = link.subject();
    let notice = link.notice();
    let Some(rt) = io_runtime(&subject, &notice, shared) else {
        return;
    };
    let idle_stop = IdleStop::new();
    let _wake = stop.on_stop({
        let s = idle_stop.clone();
        Box::new(move || s.stop())
    });
    let mut backoff = Backoff::new();
    let mut attempts = 0u64;
    while !stop.is_stopped() {
        attempts += 1;
        let opened = rt.block_on(async {
            tokio::select! {
                r = link.open() => Some(r),
                () = until_stopped(stop) => None,
            }
        });
        let mut session = match opened {
            None => break,
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                if attempts == 1 {
                    shared.settle();
                }
                let delay = backoff.next_delay();
                notice(&format!(
                    "watching {subject}: {e}; reconnecting in {:.1} s",
                    delay.as_secs_f64()
                ));
                rt.block_on(sleep_or_stop(delay, stop));
                continue;
            }
        };
        if attempts == 1 {
            shared.settle();
        } else {
            // Whatever changed while the connection was down went unseen.
            notice(&format!("watching {subject}: connected again"));
            shared.remote();
        }
        backoff.reset();
        link.connected(&session);
        match wait_rounds(link, &mut session, &idle_stop, &rt, stop) {
            None => {
                // Errors are irrelevant now; the session bounds the wait (seed N2).
                let _ = rt.block_on(within_stop_grace(session.logout(), stop));
                break;
            }
            Some(e) => {
                drop(session);
                let delay = backoff.next_delay();
                notice(&format!(
                    "watching {subject}: connection lost ({e}); reconnecting in {:.1} s",
                    delay.as_secs_f64()
                ));
                rt.block_on(sleep_or_stop(delay, stop));
            }
        }
    }
}

/// A watcher thread's own single-threaded I/O runtime; `None` when it cannot be started,
/// which is said and counts as the watcher's first attempt (the first run does not wait for
/// it).
fn io_runtime(
    subject: &str,
    notice: &NoticeHook,
    shared: &Shared,
) -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            notice(&format!(
                "cannot watch {subject}: starting the I/O runtime: {e}"
            ));
            shared.settle();
            None
        }
    }
}

/// Waits round after round on one connection; the error that ended it, `None` on a stop.
fn wait_rounds(
    link: &mut impl Link,
    session: &mut Session,
    idle_stop: &IdleStop,
    rt: &tokio::runtime::Runtime,
    stop: &StopSignal,
) -> Option<mailfold_net::Error> {
    loop {
        if stop.is_stopped() {
            return None;
        }
        match rt.block_on(within_stop_grace(link.round(session, idle_stop), stop)) {
            Some(Ok(())) => {}
            Some(Err(e)) => return Some(e),
            None => return None,
        }
    }
}

/// One IDLE (or polling) connection on one folder.
struct Watcher {
    account: AccountSpec,
    folder: String,
    hide_idle: bool,
    poll_every: Duration,
    shared: Arc<Shared>,
    stop: StopSignal,
    notice: NoticeHook,
}

impl Watcher {
    fn run(mut self) {
        let shared = Arc::clone(&self.shared);
        let stop = self.stop.clone();
        keep_watching(&mut self, &shared, &stop);
    }

    /// Waits for one change report; `Ok(true)` when the folder changed.
    async fn wait_for_change(
        &self,
        s: &mut Session,
        idle_stop: &IdleStop,
    ) -> Result<bool, mailfold_net::Error> {
        let notes = wait_notes(s, idle_stop, self.hide_idle, self.poll_every, &self.stop).await?;
        let mut changed = false;
        for n in notes {
            match n {
                Event::Mailbox(_) | Event::Fetch { handle: None, .. } => changed = true,
                // Seed V0063: the user must see an ALERT even while only watching.
                Event::Alert { text, .. } => (self.notice)(&format!("server alert: {text}")),
                _ => {}
            }
        }
        Ok(changed)
    }
}

impl Link for Watcher {
    fn subject(&self) -> String {
        self.folder.clone()
    }

    fn notice(&self) -> NoticeHook {
        Arc::clone(&self.notice)
    }

    async fn open(&mut self) -> Result<Session, String> {
        open_watch(&self.account, &self.folder).await
    }

    fn connected(&self, s: &Session) {
        let idle = !self.hide_idle && s.capabilities().is_some_and(|c| c.has("IDLE"));
        if !idle {
            (self.notice)(&format!(
                "watching {}: no IDLE, polling with NOOP every {} s",
                self.folder,
                self.poll_every.as_secs_f64()
            ));
        }
    }

    async fn round(
        &mut self,
        s: &mut Session,
        idle_stop: &IdleStop,
    ) -> Result<(), mailfold_net::Error> {
        if self.wait_for_change(s, idle_stop).await? {
            self.shared.remote();
        }
        Ok(())
    }
}

/// The watch's threads, joined when it ends.
type Threads = Arc<Mutex<Vec<JoinHandle<()>>>>;

/// How the server side of an account is watched, decided by the first connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One connection hears of every change in every folder (RFC 5465).
    Notify,
    /// IDLE (or NOOP polling) on [`WatchOptions::idle_folders`], one connection each, and
    /// a poll of the other folders every [`WatchOptions::folder_poll_every`] on this one.
    IdleAndPoll,
}

/// The account-wide watcher: one connection with no mailbox selected, which either listens
/// to NOTIFY's reports or polls the folders IDLE does not cover. See the module docs.
struct AccountWatcher {
    account: AccountSpec,
    opts: WatchOptions,
    shared: Arc<Shared>,
    stop: StopSignal,
    threads: Threads,
}

impl AccountWatcher {
    fn hidden(&self, cap: &str) -> bool {
        self.opts
            .hide_capabilities
            .iter()
            .any(|c| c.eq_ignore_ascii_case(cap))
    }

    fn has(&self, s: &Session, cap: &str) -> bool {
        !self.hidden(cap) && s.capabilities().is_some_and(|c| c.has(cap))
    }

    fn run(self) {
        let mut link = ServerLink {
            watcher: &self,
            mode: None,
            poll: FolderPoll::default(),
        };
        keep_watching(&mut link, &self.shared, &self.stop);
    }

    /// Connects; on the first success decides the mode (starting the IDLE watchers when it
    /// is [`Mode::IdleAndPoll`]) and returns the start line with the session.
    async fn open(
        &self,
        mode: &mut Option<Mode>,
        poll: &mut FolderPoll,
    ) -> Result<(Session, Option<String>), String> {
        let (cfg, creds) = remote_imap::connect_config(&self.account).map_err(|e| e.to_string())?;
        let mut s = Session::connect(&cfg, Some(&creds))
            .await
            .map_err(|e| e.to_string())?;
        let condstore = self.has(&s, "CONDSTORE") || self.has(&s, "QRESYNC");
        // The mode is fixed by the first connection that gets through all of this one; one
        // that fails part way (LIST, say) leaves it undecided for the next attempt.
        let first = mode.is_none();
        let notify = match *mode {
            None | Some(Mode::Notify) => self.ask_notify(&mut s, condstore, first).await?,
            Some(Mode::IdleAndPoll) => false,
        };
        if !first {
            return Ok((s, None));
        }
        let selectable = self.selectable_under_root(&mut s).await?;
        // The folders the state records are those the sync mirrors (the account's folder
        // patterns and root applied); before the first sync, the server's count stands in.
        let recorded = recorded_folders(&self.account.state_db).filter(|r| !r.is_empty());
        if notify {
            *mode = Some(Mode::Notify);
            let n = recorded.map_or(selectable, |r| r.len());
            let line = format!(
                "watching {n} folder{} of account {}: NOTIFY",
                plural(n),
                self.account.name
            );
            return Ok((s, Some(line)));
        }
        let line = self
            .start_idle_and_poll(&mut s, poll, condstore, recorded, selectable)
            .await;
        *mode = Some(Mode::IdleAndPoll);
        Ok((s, Some(line)))
    }

    /// Turns NOTIFY on where the server offers it; whether it is on. A first connection
    /// whose NOTIFY the server refuses falls back to polling; a later one fails instead.
    async fn ask_notify(
        &self,
        s: &mut Session,
        condstore: bool,
        first: bool,
    ) -> Result<bool, String> {
        if !self.has(s, "NOTIFY") {
            return Ok(false);
        }
        // RFC 5465 5.3: a flag change in a mailbox that is not selected shows only as a new
        // HIGHESTMODSEQ, which the server reports once CONDSTORE is on.
        if condstore {
            s.enable(&["CONDSTORE"])
                .await
                .map_err(|e| format!("ENABLE CONDSTORE: {e}"))?;
        }
        match s.notify(&Notify::every_personal_change()).await {
            Ok(()) => Ok(true),
            Err(e) if !e.is_fatal() && first => {
                (self.opts.on_notice)(&format!("the server refused NOTIFY ({e}); polling instead"));
                Ok(false)
            }
            Err(e) => Err(format!("NOTIFY: {e}")),
        }
    }

    /// How many selectable folders the server lists under the account's root folder.
    async fn selectable_under_root(&self, s: &mut Session) -> Result<usize, String> {
        let folders = s.list("", "*").await.map_err(|e| format!("LIST: {e}"))?;
        let delimiter = folders.iter().find_map(|m| m.delimiter);
        let root = self.account.root_folder.as_ref().map(|r| {
            let wire = gather::wire_of_path(&FolderPath::parse(r), delimiter)
                .map(|w| w.as_wire().to_vec())
                .unwrap_or_default();
            (wire, delimiter)
        });
        Ok(folders
            .iter()
            .filter(|m| !m.has(&ListAttribute::NoSelect) && !m.has(&ListAttribute::NonExistent))
            .filter(|m| match &root {
                Some((r, d)) => under_root(m.mailbox.as_wire(), r, *d),
                None => true,
            })
            .count())
    }

    /// Without NOTIFY: IDLE on the chosen folders, each on its own connection (started
    /// here), and a poll of the rest on this one. Returns the start line that says so.
    async fn start_idle_and_poll(
        &self,
        s: &mut Session,
        poll: &mut FolderPoll,
        condstore: bool,
        recorded: Option<HashMap<Vec<u8>, Observed>>,
        selectable: usize,
    ) -> String {
        for folder in &self.opts.idle_folders {
            if let Ok(w) = wire_of_folder(s, &self.account, folder).await {
                poll.skip.insert(w.as_wire().to_vec());
            }
        }
        poll.list_status = self.has(s, "LIST-STATUS");
        poll.condstore = condstore;
        self.start_idle_watchers();
        let polled = match recorded {
            Some(r) => r.keys().filter(|n| !poll.skip.contains(*n)).count(),
            None => selectable.saturating_sub(poll.skip.len()),
        };
        let selectable = polled + self.opts.idle_folders.len();
        let idle = if self.has(s, "IDLE") {
            "IDLE"
        } else {
            "NOOP polling"
        };
        format!(
            "watching {} folder{} of account {}: {idle} on {}, polling {polled} \
             folder{} every {} s ({})",
            selectable,
            plural(selectable),
            self.account.name,
            self.opts.idle_folders.join(", "),
            plural(polled),
            self.opts.folder_poll_every.as_secs_f64(),
            if poll.list_status {
                "LIST-STATUS"
            } else {
                "STATUS"
            },
        )
    }

    /// Starts one IDLE watcher per [`WatchOptions::idle_folders`]; the first run waits for
    /// their first connection too.
    fn start_idle_watchers(&self) {
        let hide_idle = self.hidden("IDLE");
        let n = self.opts.idle_folders.len();
        self.shared.update(|p| p.expected += n);
        for folder in &self.opts.idle_folders {
            let w = Watcher {
                account: self.account.clone(),
                folder: folder.clone(),
                hide_idle,
                poll_every: self.opts.poll_every,
                shared: Arc::clone(&self.shared),
                stop: self.stop.clone(),
                notice: Arc::clone(&self.opts.on_notice),
            };
            match std::thread::Builder::new()
                .name(format!("mailfold-watch-{folder}"))
                .spawn(move || w.run())
            {
                Ok(h) => lock(&self.threads).push(h),
                Err(e) => {
                    (self.opts.on_notice)(&format!(
                        "cannot watch {folder}: starting a thread: {e}"
                    ));
                    self.shared.settle();
                }
            }
        }
    }

    /// Waits for NOTIFY's next reports; any report is a change to sync.
    async fn notify_round(
        &self,
        s: &mut Session,
        idle_stop: &IdleStop,
    ) -> Result<(), mailfold_net::Error> {
        let notes = wait_notes(
            s,
            idle_stop,
            self.hidden("IDLE"),
            self.opts.poll_every,
            &self.stop,
        )
        .await?;
        let mut changed = false;
        let mut overflow = false;
        for n in &notes {
            if let Event::Alert { text, .. } = n {
                // Seed V0063: the user must see an ALERT even while only watching.
                (self.opts.on_notice)(&format!("server alert: {text}"));
            }
            match Notice::of(n) {
                Some(Notice::Overflow) => overflow = true,
                Some(_) => changed = true,
                None => {}
            }
        }
        if overflow {
            // RFC 5465 5.8: notifications are off now and some were lost; a run catches up
            // and NOTIFY is asked for again.
            (self.opts.on_notice)(
                "the server dropped notifications (NOTIFICATIONOVERFLOW); syncing and asking again",
            );
            s.notify(&Notify::every_personal_change()).await?;
            changed = true;
        }
        if changed {
            self.shared.remote();
        }
        Ok(())
    }

    /// Waits [`WatchOptions::folder_poll_every`], then polls the folders once (not while a
    /// run is in progress: it changes both sides and the state, and ends with all of them
    /// equal anyway).
    async fn poll_round(
        &self,
        s: &mut Session,
        poll: &mut FolderPoll,
    ) -> Result<(), mailfold_net::Error> {
        tokio::select! {
            () = tokio::time::sleep(self.opts.folder_poll_every) => {}
            () = until_stopped(&self.stop) => return Ok(()),
        }
        if lock(&self.shared.pending).running {
            return Ok(());
        }
        let Some(recorded) = recorded_folders(&self.account.state_db) else {
            // No state yet: the first run has not finished; nothing to compare with.
            return Ok(());
        };
        let changed = poll.poll(s, &recorded).await?;
        for n in s.take_notifications() {
            if let Event::Alert { text, .. } = n {
                (self.opts.on_notice)(&format!("server alert: {text}"));
            }
        }
        if !changed.is_empty() {
            self.shared.remote();
        }
        Ok(())
    }
}

/// The account watcher's connection with the mode its first connection decided and the
/// state of its folder polls, which outlive a reconnection.
struct ServerLink<'a> {
    watcher: &'a AccountWatcher,
    mode: Option<Mode>,
    poll: FolderPoll,
}

impl Link for ServerLink<'_> {
    fn subject(&self) -> String {
        "the server".to_string()
    }

    fn notice(&self) -> NoticeHook {
        Arc::clone(&self.watcher.opts.on_notice)
    }

    async fn open(&mut self) -> Result<Session, String> {
        let (s, start_line) = self.watcher.open(&mut self.mode, &mut self.poll).await?;
        if let Some(line) = start_line {
            (self.watcher.opts.on_start)(&line);
        }
        Ok(s)
    }

    async fn round(
        &mut self,
        s: &mut Session,
        idle_stop: &IdleStop,
    ) -> Result<(), mailfold_net::Error> {
        match self.mode {
            Some(Mode::Notify) => self.watcher.notify_round(s, idle_stop).await,
            _ => self.watcher.poll_round(s, &mut self.poll).await,
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Whether wire name `name` is `root` or below it.
fn under_root(name: &[u8], root: &[u8], delimiter: Option<char>) -> bool {
    if name == root {
        return true;
    }
    let Some(d) = delimiter else { return false };
    let mut prefix = root.to_vec();
    let mut buf = [0u8; 4];
    prefix.extend_from_slice(d.encode_utf8(&mut buf).as_bytes());
    name.starts_with(&prefix)
}

/// What a folder's status says, as the poll compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Observed {
    uidvalidity: Option<u32>,
    uidnext: Option<u32>,
    messages: Option<u32>,
    highestmodseq: Option<u64>,
}

impl Observed {
    fn of(st: &mailfold_proto::response::MailboxStatus) -> Observed {
        Observed {
            uidvalidity: st.uid_validity().map(|v| v.get()),
            uidnext: st.uid_next(),
            messages: st.messages(),
            highestmodseq: st.highest_modseq(),
        }
    }

    /// Whether the server's status `self` differs from what the state recorded: the items
    /// the sync's own unchanged-folder check compares (seed V0045), each only where both
    /// sides have it (HIGHESTMODSEQ needs CONDSTORE).
    fn differs_from(&self, recorded: &Observed) -> bool {
        fn differ<T: PartialEq>(a: Option<T>, b: Option<T>) -> bool {
            matches!((a, b), (Some(a), Some(b)) if a != b)
        }
        differ(self.uidvalidity, recorded.uidvalidity)
            || differ(self.uidnext, recorded.uidnext)
            || differ(self.messages, recorded.messages)
            || differ(self.highestmodseq, recorded.highestmodseq)
    }
}

/// The folders the state records, by wire name, with the status of their last sync and
/// their message count; `None` when there is no state yet or it cannot be read now.
fn recorded_folders(state_db: &Path) -> Option<HashMap<Vec<u8>, Observed>> {
    // A second reader beside the runs: the cheap open, so a poll never reads the whole file.
    let db = StateDb::open_with(state_db, IntegrityCheck::Cheap).ok()?;
    let mut out = HashMap::new();
    for f in db.folders().ok()? {
        let Some(uv) = f.uidvalidity else { continue };
        let (bound, _) = db.message_counts(f.id).ok()?;
        out.insert(
            f.wire_name.into_bytes(),
            Observed {
                uidvalidity: Some(uv.get()),
                uidnext: f.uidnext.map(|u| u.get()),
                messages: u32::try_from(bound).ok(),
                highestmodseq: f.highestmodseq,
            },
        );
    }
    Some(out)
}

/// The poll of the folders IDLE does not watch, on a server without NOTIFY: one LIST-STATUS
/// (RFC 5819) where offered, else one round of pipelined STATUS, compared with the state.
/// A poll that finds nothing new costs that one round trip and triggers nothing.
#[derive(Debug, Default)]
struct FolderPoll {
    /// Wire names IDLE watches.
    skip: HashSet<Vec<u8>>,
    list_status: bool,
    condstore: bool,
    /// The status that last triggered a run, per folder. A run that leaves the state
    /// different from the server (a folder it cannot sync, say) must not be repeated every
    /// poll: the same status seen again triggers nothing; a new one does.
    triggered: HashMap<Vec<u8>, Observed>,
    /// The names the last LIST-STATUS showed: a name neither there nor in the state is a
    /// new folder, and triggers one run. Only the last listing is kept, so memory stays that
    /// of one listing (bounded by the engine) however many names a server invents.
    listed: Option<HashSet<Vec<u8>>>,
}

impl FolderPoll {
    fn items(&self) -> Vec<StatusItem> {
        let mut items = vec![
            StatusItem::Messages,
            StatusItem::UidNext,
            StatusItem::UidValidity,
        ];
        if self.condstore {
            items.push(StatusItem::HighestModSeq);
        }
        items
    }

    /// One poll; returns the wire names of the folders whose change should be synced.
    async fn poll(
        &mut self,
        s: &mut Session,
        recorded: &HashMap<Vec<u8>, Observed>,
    ) -> Result<Vec<String>, mailfold_net::Error> {
        let items = self.items();
        // What the server says now, per recorded folder (None: gone or refused).
        let mut now: HashMap<Vec<u8>, Option<Observed>> = HashMap::new();
        let mut fresh = Vec::new();
        if self.list_status {
            let (list, statuses) = s.list_status("*", &items).await?;
            let by_name: HashMap<&[u8], &mailfold_proto::response::MailboxStatus> = statuses
                .iter()
                .map(|st| (st.mailbox.as_wire(), st))
                .collect();
            let names: HashSet<Vec<u8>> = list
                .iter()
                .filter(|m| !m.has(&ListAttribute::NoSelect) && !m.has(&ListAttribute::NonExistent))
                .map(|m| m.mailbox.as_wire().to_vec())
                .collect();
            for name in recorded.keys().filter(|n| !self.skip.contains(*n)) {
                let st = by_name.get(name.as_slice()).map(|st| Observed::of(st));
                now.insert(name.clone(), st.filter(|_| names.contains(name)));
            }
            if let Some(before) = &self.listed {
                fresh.extend(
                    names
                        .iter()
                        .filter(|n| {
                            !before.contains(*n)
                                && !recorded.contains_key(*n)
                                && !self.skip.contains(*n)
                        })
                        .cloned(),
                );
            }
            self.listed = Some(names);
        } else {
            let names: Vec<&Vec<u8>> = recorded
                .keys()
                .filter(|n| !self.skip.contains(*n))
                .collect();
            let boxes: Vec<Mailbox> = names
                .iter()
                .map(|n| Mailbox::from_wire((*n).clone()))
                .collect();
            let answers = s.status_many(&boxes, &items).await?;
            for (name, a) in names.into_iter().zip(answers) {
                now.insert(name.clone(), a.ok().map(|st| Observed::of(&st)));
            }
        }
        let mut changed: Vec<String> = fresh
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect();
        for (name, seen) in now {
            let Some(rec) = recorded.get(&name) else {
                continue;
            };
            // A folder gone from the server is recorded as the default status.
            let seen_or_gone = seen.unwrap_or_default();
            let differs = seen.is_none_or(|st| st.differs_from(rec));
            if !differs {
                self.triggered.remove(&name);
                continue;
            }
            if self.triggered.get(&name) != Some(&seen_or_gone) {
                self.triggered.insert(name.clone(), seen_or_gone);
                changed.push(String::from_utf8_lossy(&name).into_owned());
            }
        }
        // Bounded by the folders the state records and the server lists.
        self.triggered.retain(|n, _| recorded.contains_key(n));
        Ok(changed)
    }
}

/// Waits for the server's next reports on a watching session: IDLE (renewed every
/// [`IDLE_RENEW`]) where offered and not hidden, else a NOOP every `poll_every` (seed V0028).
/// Returns what arrived; an empty list when `stop` fired or the wait simply ended.
async fn wait_notes(
    s: &mut Session,
    idle_stop: &IdleStop,
    hide_idle: bool,
    poll_every: Duration,
    stop: &StopSignal,
) -> Result<Vec<Event>, mailfold_net::Error> {
    if hide_idle {
        // Seed V0028 without IDLE (hidden because the server's is broken): the session's
        // own poller would IDLE since the server advertises it, so poll here.
        tokio::select! {
            () = tokio::time::sleep(poll_every) => {}
            () = until_stopped(stop) => return Ok(Vec::new()),
        }
        s.noop().await?;
        Ok(s.take_notifications())
    } else {
        s.idle_or_poll(idle_stop, IDLE_RENEW, poll_every).await
    }
}

/// Connects and opens `folder` read-only for watching.
async fn open_watch(account: &AccountSpec, folder: &str) -> Result<Session, String> {
    let (cfg, creds) = remote_imap::connect_config(account).map_err(|e| e.to_string())?;
    let mut s = Session::connect(&cfg, Some(&creds))
        .await
        .map_err(|e| e.to_string())?;
    let wire = wire_of_folder(&mut s, account, folder).await?;
    if let Err(e) = s.examine(&wire).await {
        let _ = s.logout().await;
        return Err(format!("EXAMINE {folder}: {e}"));
    }
    Ok(s)
}

/// The server's wire name of a folder named as in reports (local names).
async fn wire_of_folder(
    s: &mut Session,
    account: &AccountSpec,
    folder: &str,
) -> Result<Mailbox, String> {
    Ok(if folder.eq_ignore_ascii_case("INBOX") {
        Mailbox::inbox()
    } else {
        // `LIST "" ""` names the hierarchy delimiter (RFC 3501 6.3.8).
        let delimiter = match s.list("", "").await {
            Ok(l) => l.first().and_then(|m| m.delimiter),
            Err(e) => return Err(format!("LIST: {e}")),
        };
        // Watched folders are named as in reports (local names): under a configured root
        // folder (seed V0022) the server name has the root in front.
        let local = FolderPath::parse(folder);
        let server = match &account.root_folder {
            Some(root) => {
                crate::folder_root::FolderRoot::from_name(root, delimiter).server_of(&local)
            }
            None => local,
        };
        gather::wire_of_path(&server, delimiter)?
    })
}

/// Runs `f` to its end, or, once `stop` has fired, for at most [`STOP_GRACE`] more; `None`
/// when cut short. A real server answers DONE and LOGOUT at once; one that stops answering
/// must not hold up a stop until the command timeout.
async fn within_stop_grace<T>(
    f: impl std::future::Future<Output = T>,
    stop: &StopSignal,
) -> Option<T> {
    tokio::select! {
        r = f => Some(r),
        () = async {
            until_stopped(stop).await;
            tokio::time::sleep(STOP_GRACE).await;
        } => None,
    }
}

/// Completes when `stop` fires (polled: the flag may be set from a signal handler).
async fn until_stopped(stop: &StopSignal) {
    while !stop.is_stopped() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sleep_or_stop(d: Duration, stop: &StopSignal) {
    tokio::select! {
        () = tokio::time::sleep(d) => {}
        () = until_stopped(stop) => {}
    }
}

/// Starts the recursive watch of the Maildir root; `None` (with a notice) when the platform
/// refuses (e.g. the inotify watch limit): full checks still run.
fn start_fs_watch(
    account: &AccountSpec,
    shared: &Arc<Shared>,
    notice: &NoticeHook,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let state_db = account.state_db.clone();
    let sh = Arc::clone(shared);
    let handler = move |res: notify::Result<notify::Event>| match res {
        Ok(ev) => {
            if is_relevant(&ev, &state_db) {
                sh.local();
            }
        }
        // An error (such as a queue overflow) may mean lost events; a run settles it.
        Err(_) => sh.local(),
    };
    let mut w = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            notice(&format!(
                "local changes are synced only at full checks: {e}"
            ));
            return None;
        }
    };
    if let Err(e) = w.watch(&account.maildir, notify::RecursiveMode::Recursive) {
        notice(&format!(
            "local changes are synced only at full checks: watching {}: {e}",
            account.maildir.display()
        ));
        return None;
    }
    Some(w)
}

/// Whether a file-system event may mean a change to sync: not a read, not in a `tmp/`
/// directory (a file there is still being written, Maildir's delivery protocol), not the state
/// database or its journal, not the store's own scratch entries (`.mailfold-…`, such as the
/// case-sensitivity probe every run creates and removes in the root).
fn is_relevant(ev: &notify::Event, state_db: &Path) -> bool {
    if matches!(ev.kind, notify::EventKind::Access(_)) {
        return false;
    }
    // No path: the backend asks for a rescan.
    ev.paths.is_empty()
        || ev
            .paths
            .iter()
            .any(|p| !in_tmp(p) && !is_state_file(p, state_db) && !is_scratch(p))
}

fn is_scratch(p: &Path) -> bool {
    p.components().any(|c| {
        c.as_os_str()
            .as_encoded_bytes()
            .starts_with(SCRATCH_PREFIX.as_bytes())
    })
}

fn in_tmp(p: &Path) -> bool {
    let mut rev = p.components().rev();
    let last = rev.next().map(|c| c.as_os_str());
    let parent = rev.next().map(|c| c.as_os_str());
    parent.is_some_and(|c| c == "tmp") || last.is_some_and(|c| c == "tmp")
}

/// The database file itself, or `-journal`, `-wal`, `-shm` next to it.
fn is_state_file(p: &Path, state_db: &Path) -> bool {
    p.as_os_str()
        .as_encoded_bytes()
        .starts_with(state_db.as_os_str().as_encoded_bytes())
}

/// The set of message file names of a Maildir tree (`cur/` and `new/` of every folder), as
/// an order-independent digest: a count, a sum and a xor of per-name hashes. Constant memory
/// besides the directory stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    files: u64,
    sum: u64,
    xor: u64,
}

fn fingerprint(root: &Path) -> Fingerprint {
    let mut fp = Fingerprint {
        files: 0,
        sum: 0,
        xor: 0,
    };
    let mut stack: Vec<(PathBuf, usize)> = vec![(root.to_path_buf(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let holds_messages = depth > 0 && dir.file_name().is_some_and(|n| n == "cur" || n == "new");
        for e in entries.flatten() {
            // The entry's own type: symbolic links are not followed.
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                let name = e.file_name();
                let maildir_tmp = name == "tmp" && dir.join("cur").is_dir();
                if !holds_messages && !maildir_tmp && depth < MAX_DEPTH {
                    stack.push((e.path(), depth + 1));
                }
            } else if holds_messages {
                let mut h = DefaultHasher::new();
                e.path().hash(&mut h);
                let v = h.finish();
                fp.files += 1;
                fp.sum = fp.sum.wrapping_add(v);
                fp.xor ^= v.rotate_left(29);
            }
        }
    }
    fp
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A round lock busy for its first `busy` asks, counting them.
    struct Busy {
        busy: u32,
        asked: AtomicU64,
    }

    impl RoundLock for Busy {
        fn try_lock(&self) -> Result<Option<RoundGuard>, String> {
            let n = self.asked.fetch_add(1, Ordering::SeqCst);
            Ok((n >= u64::from(self.busy)).then(|| Box::new(()) as RoundGuard))
        }
    }

    fn main_loop_with<'a>(
        account: &'a AccountSpec,
        opts: &'a WatchOptions,
        stop: &'a StopSignal,
        shared: &'a Shared,
    ) -> MainLoop<'a> {
        MainLoop {
            account,
            opts,
            stop,
            shared,
            fingerprint: None,
            backoff: Backoff::new(),
            next_full: Instant::now(),
            not_before: Instant::now(),
        }
    }

    #[test]
    fn a_busy_round_lock_is_waited_for_with_one_notice_and_a_stop_ends_the_wait() {
        let account = AccountSpec::new(
            "t",
            "127.0.0.1",
            "u",
            crate::Secret::new(String::new()),
            PathBuf::from("/nonexistent/mail"),
            PathBuf::from("/nonexistent/state.db"),
        );
        let notices = Arc::new(Mutex::new(Vec::<String>::new()));
        let lock_of = |busy| {
            Arc::new(Busy {
                busy,
                asked: AtomicU64::new(0),
            })
        };
        let busy = lock_of(2);
        let opts = WatchOptions {
            round_lock: Some(busy.clone()),
            on_notice: Arc::new({
                let notices = Arc::clone(&notices);
                move |n: &str| lock(&notices).push(n.to_owned())
            }),
            ..WatchOptions::default()
        };
        let (stop, shared) = (StopSignal::new(), Shared::default());
        let main = main_loop_with(&account, &opts, &stop, &shared);
        assert!(matches!(main.take_turn(), Turn::Go(Some(_))));
        assert_eq!(busy.asked.load(Ordering::SeqCst), 3);
        assert_eq!(lock(&notices).len(), 1, "{:?}", lock(&notices));

        // Busy for good: only a stop ends the wait, within a poll.
        let opts = WatchOptions {
            round_lock: Some(lock_of(u32::MAX)),
            ..WatchOptions::default()
        };
        let main = main_loop_with(&account, &opts, &stop, &shared);
        let stopper = std::thread::spawn({
            let stop = stop.clone();
            move || {
                std::thread::sleep(Duration::from_millis(300));
                stop.stop();
            }
        });
        let t = Instant::now();
        assert!(matches!(main.take_turn(), Turn::Stopped));
        assert!(t.elapsed() < Duration::from_millis(300) + STOP_POLL * 3);
        stopper.join().unwrap();

        // No round lock: a run goes at once.
        let (opts, fresh) = (WatchOptions::default(), StopSignal::new());
        let main = main_loop_with(&account, &opts, &fresh, &shared);
        assert!(matches!(main.take_turn(), Turn::Go(None)));
    }

    #[test]
    fn a_poll_compares_only_the_items_both_sides_have() {
        let rec = Observed {
            uidvalidity: Some(7),
            uidnext: Some(10),
            messages: Some(9),
            highestmodseq: Some(100),
        };
        assert!(!rec.differs_from(&rec));
        let no_modseq = Observed {
            highestmodseq: None,
            ..rec
        };
        assert!(!no_modseq.differs_from(&rec), "no CONDSTORE: not compared");
        for changed in [
            Observed {
                highestmodseq: Some(101),
                ..rec
            },
            Observed {
                messages: Some(8),
                ..rec
            },
            Observed {
                uidnext: Some(11),
                ..rec
            },
            Observed {
                uidvalidity: Some(8),
                ..rec
            },
        ] {
            assert!(changed.differs_from(&rec), "{changed:?}");
        }
    }

    #[test]
    fn folders_under_the_root_are_counted() {
        assert!(under_root(b"INBOX", b"INBOX", Some('.')));
        assert!(under_root(b"INBOX.Work", b"INBOX", Some('.')));
        assert!(!under_root(b"INBOXES", b"INBOX", Some('.')));
        assert!(!under_root(b"INBOX.Work", b"INBOX", None));
    }

    #[test]
    fn backoff_doubles_to_five_minutes_with_bounded_jitter() {
        let mut b = Backoff::new();
        let mut bases = Vec::new();
        for _ in 0..12 {
            let base = b.next;
            let d = b.next_delay();
            assert!(d >= base && d <= base + base / 4, "{d:?} for base {base:?}");
            bases.push(base.as_secs());
        }
        assert_eq!(bases, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        b.reset();
        assert_eq!(b.next, BACKOFF_FIRST);
    }

    #[test]
    fn jitter_varies() {
        let max = Duration::from_secs(1);
        let draws: std::collections::HashSet<Duration> = (0..20).map(|_| jitter(max)).collect();
        assert!(draws.len() > 1, "jitter should not be constant");
        assert!(draws.iter().all(|d| *d <= max));
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn tmp_reads_and_the_state_database_are_not_changes() {
        let db = Path::new("/m/state.db");
        let ev = |kind, p: &str| notify::Event::new(kind).add_path(PathBuf::from(p));
        let create = notify::EventKind::Create(notify::event::CreateKind::File);
        assert!(!is_relevant(&ev(create, "/m/INBOX/tmp/123.x"), db));
        assert!(!is_relevant(&ev(create, "/m/state.db-journal"), db));
        assert!(!is_relevant(&ev(create, "/m/.mailfold-case-probe.1.2"), db));
        assert!(!is_relevant(
            &ev(
                notify::EventKind::Access(notify::event::AccessKind::Any),
                "/m/INBOX/cur/1:2,S"
            ),
            db
        ));
        assert!(is_relevant(&ev(create, "/m/INBOX/cur/1:2,S"), db));
        // A folder named tmp holds messages like any other.
        assert!(is_relevant(&ev(create, "/m/tmp/new/1"), db));
        assert!(is_relevant(&notify::Event::new(create), db), "rescan");
    }

    #[test]
    fn fingerprint_sees_renames_and_ignores_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("INBOX");
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(inbox.join(sub)).unwrap();
        }
        std::fs::write(inbox.join("cur/1.a:2,"), b"x").unwrap();
        let a = fingerprint(dir.path());
        assert_eq!(a.files, 1);
        std::fs::write(inbox.join("tmp/2.b"), b"y").unwrap();
        assert_eq!(fingerprint(dir.path()), a, "tmp/ is not looked at");
        std::fs::rename(inbox.join("cur/1.a:2,"), inbox.join("cur/1.a:2,S")).unwrap();
        let b = fingerprint(dir.path());
        assert_ne!(a, b, "a flag rename changes the fingerprint");
        std::fs::rename(inbox.join("cur/1.a:2,S"), inbox.join("cur/1.a:2,")).unwrap();
        assert_eq!(fingerprint(dir.path()), a);
    }

    #[test]
    fn stop_wakes_registered_wakers_once_and_unregisters() {
        let s = StopSignal::new();
        let hits = Arc::new(AtomicU64::new(0));
        let g = s.on_stop({
            let h = Arc::clone(&hits);
            Box::new(move || {
                h.fetch_add(1, Ordering::SeqCst);
            })
        });
        let clone = s.clone();
        std::thread::spawn(move || clone.stop()).join().unwrap();
        assert!(s.is_stopped());
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        drop(g);
        assert!(lock(&s.inner.wakers).is_empty());
        // Registering after the fact wakes at once.
        let _g = s.on_stop({
            let h = Arc::clone(&hits);
            Box::new(move || {
                h.fetch_add(1, Ordering::SeqCst);
            })
        });
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }
}
