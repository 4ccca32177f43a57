//! `mailfold watch [ACCOUNT…]`: keeps accounts in sync continuously through
//! `mailfold_sync::watch_account`: every folder watched, with NOTIFY (RFC 5465) where the
//! server offers it, else IDLE on the chosen folders (NOOP polling where IDLE is absent, seed
//! V0028) and a LIST-STATUS/STATUS poll of the others every `watch_poll_interval`; a sync
//! whenever the server or the Maildir changes, a full check at a fixed interval, reconnects
//! with backoff. One line per account on stderr says what is watched and how (not with
//! `-q`); `post_sync_command` runs after each round that changed something.
//!
//! Each account runs on its own thread. It takes the account's lock ([`crate::lock`]) only
//! around each sync run, not while it waits for changes, so `mailfold flag`, `append`,
//! `sync`, … run beside a watch; a run that finds the lock busy waits for the other command to
//! end (see `mailfold_sync::watch`). SIGINT or SIGTERM stops every watcher cleanly
//! (each finishes its current run and logs out); a second signal exits at once with status
//! 130, which is safe because every sync step is journaled.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailfold_sync::{RoundGuard, RoundLock, StopSignal, SyncReport, WatchOptions};
use serde_json::json;
use signal_hook::consts::{SIGINT, SIGTERM};

use super::Ctx;
use crate::account;
use crate::config::Account;
use crate::exit;
use crate::lock::{AccountLock, BusyError};
use crate::post_sync;
use crate::redact;
use crate::term;

/// Options of `mailfold watch`.
#[derive(Debug, Clone)]
pub struct WatchArgs {
    /// Accounts (all when empty).
    pub accounts: Vec<String>,
    /// Folders to IDLE on (default INBOX).
    pub idle: Vec<String>,
    /// Minutes between full checks.
    pub full_check_minutes: u64,
    /// Seconds between NOOP polls when the server lacks IDLE.
    pub poll_seconds: u64,
}

/// Runs the command until a signal stops it; returns the exit status.
pub fn run(ctx: &Ctx, args: &WatchArgs) -> anyhow::Result<u8> {
    let loaded = ctx.load()?;
    let selected = super::online_accounts(ctx, &loaded, &args.accounts, "watch")?;
    if args.full_check_minutes == 0 || args.poll_seconds == 0 {
        return Err(exit::usage("intervals must be at least 1"));
    }

    let stop = StopSignal::new();
    // The first signal sets the flag the watchers poll; with the flag already set, a second
    // one exits at once. Registration order matters: the conditional shutdown must see the
    // flag before the first handler sets it.
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.flag())?;
        signal_hook::flag::register(sig, stop.flag())?;
    }

    let jobs = prepare(&selected)?;
    let status = Arc::new(Mutex::new(exit::OK));
    let mut threads = Vec::new();
    for (name, acct, spec, lock) in jobs {
        let opts = watch_options(ctx, args, &name, &acct, lock);
        let st = Arc::clone(&status);
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            let r = mailfold_sync::watch_account(&spec, &opts, &stop);
            if let Err(e) = r {
                eprintln!("mailfold: account {name}: {}", term::line(&e.to_string()));
                if let Ok(mut s) = st.lock() {
                    *s = exit::worst(*s, exit::FAILED);
                }
                // One account failing to start stops the others too: a half-running watch
                // would hide the failure.
                stop.stop();
            }
        }));
    }
    for t in threads {
        let _ = t.join();
    }
    let s = *status
        .lock()
        .map_err(|_| anyhow::anyhow!("a watcher panicked"))?;
    Ok(s)
}

/// One account to watch: its name, configuration, resolved sync spec and run lock.
type Job = (String, Account, mailfold_sync::AccountSpec, RunLock);

/// Specs and lock files first, so a bad password command or an unusable lock file fails
/// before any watcher starts. A busy account is no failure: its runs wait for the lock.
fn prepare(selected: &[(&str, &Account)]) -> anyhow::Result<Vec<Job>> {
    let mut jobs = Vec::new();
    for (name, acct) in selected {
        super::warn_unsupported_sync_keys(name, acct);
        let state = account::state_path(name, acct)?;
        let lock = RunLock {
            account: name.to_string(),
            state,
        };
        drop(lock.try_lock().map_err(anyhow::Error::msg)?);
        let spec = anyhow::Context::with_context(account::sync_spec_resolved(name, acct), || {
            format!("account {name}")
        })?;
        jobs.push((name.to_string(), (*acct).clone(), spec, lock));
    }
    Ok(jobs)
}

/// The watch's options for one account, with the callbacks that print its reports and
/// notices and run its `post_sync_command`.
fn watch_options(
    ctx: &Ctx,
    args: &WatchArgs,
    name: &str,
    acct: &Account,
    lock: RunLock,
) -> WatchOptions {
    let json = ctx.json;
    let quiet = ctx.quiet;
    let host = acct.host.clone();
    let hook = acct.post_sync_command.clone();
    let maildir = acct.local.clone();
    WatchOptions {
        full_check_every: Duration::from_secs(args.full_check_minutes * 60),
        idle_folders: if args.idle.is_empty() {
            vec!["INBOX".to_string()]
        } else {
            args.idle.clone()
        },
        poll_every: Duration::from_secs(args.poll_seconds),
        folder_poll_every: acct.watch_poll_interval(),
        on_report: Arc::new({
            let name = name.to_string();
            move |r: &SyncReport| {
                print_report(r, &host, json);
                // Runs on the watch's own thread: the next round waits for it, so two
                // `notmuch new` never overlap.
                if let Some(w) = post_sync::after_run(hook.as_ref(), &name, &maildir, r) {
                    eprintln!("mailfold: warning: {}", term::line(&w));
                }
            }
        }),
        on_start: Arc::new({
            let name = name.to_string();
            move |line: &str| {
                if quiet {
                    return;
                }
                if json {
                    println!("{}", json!({ "account": name, "notice": line }));
                } else {
                    eprintln!("mailfold: {}", term::line(line));
                }
            }
        }),
        on_notice: Arc::new({
            let name = name.to_string();
            move |n: &str| {
                if json {
                    println!(
                        "{}",
                        redact::scrub_json(json!({ "account": name, "notice": n }))
                    );
                } else {
                    eprintln!("mailfold: {name}: {}", term::line(n));
                }
            }
        }),
        round_lock: Some(Arc::new(lock)),
        ..WatchOptions::default()
    }
}

/// The account lock, taken by the watch for each sync run only.
#[derive(Debug)]
struct RunLock {
    account: String,
    state: PathBuf,
}

impl RoundLock for RunLock {
    fn try_lock(&self) -> Result<Option<RoundGuard>, String> {
        match AccountLock::acquire(&self.account, &self.state, "watch", false) {
            Ok(held) => Ok(Some(Box::new(held))),
            Err(e) if e.downcast_ref::<BusyError>().is_some() => Ok(None),
            Err(e) => Err(format!("{e:#}")),
        }
    }
}

/// One line per run (or one JSON object per line with `--json`, schema in docs/cli.md).
fn print_report(r: &SyncReport, host: &str, json: bool) {
    // Seed V0063: ALERT text always reaches the user, marked as the server's.
    for a in &r.alerts {
        eprintln!("mailfold: ALERT from server {host}: {}", term::line(a));
    }
    if json {
        println!(
            "{}",
            redact::scrub_json(super::sync::report_json(r, None))
                .to_string()
                .replace('\n', " ")
        );
        return;
    }
    let (mut down, mut up, mut flags, mut del) = (0usize, 0usize, 0usize, 0usize);
    for f in &r.folders {
        down += f.downloaded;
        up += f.uploaded;
        flags += f.local_flag_changes + f.remote_flag_changes;
        del += f.local_deletions + f.remote_deletions;
    }
    let verdict = if r.is_complete() {
        "synced"
    } else {
        "incomplete"
    };
    let now = humantime_now();
    if down + up + flags + del > 0 || !r.is_complete() {
        println!(
            "{now} {}: {verdict}: {down} downloaded, {up} uploaded, {flags} flag changes, {del} deletions",
            r.account
        );
    }
    for e in r
        .errors
        .iter()
        .chain(r.folders.iter().flat_map(|f| f.errors.iter()))
        .map(ToString::to_string)
    {
        println!("{now} {}:   error: {}", r.account, term::line(&e));
        if let Some(h) = super::sync::connection_hint(&e, &r.account, None) {
            eprintln!("mailfold: hint: {h}");
        }
    }
}

/// `HH:MM:SS` in UTC, for the log lines.
fn humantime_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let day = secs % 86_400;
    format!("{:02}:{:02}:{:02}Z", day / 3600, day % 3600 / 60, day % 60)
}
