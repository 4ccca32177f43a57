//! `mailfold fleet run`: the accounts of one shard, synced here by `jobs` threads, each
//! account through the same library call and the same account lock as `mailfold sync`.
//!
//! Per account, an attempt is: the state directory must be on a local file system (the
//! state database is SQLite in WAL mode, whose shared memory does not work across hosts),
//! the account lock ([`crate::lock`], which refuses a lock another host's process left),
//! the secret, then the connections it may open to its server taken from the
//! [`ServerBudget`], then [`mailfold_sync::sync_account`]. A failure is retried, after an
//! exponentially growing pause, only when it is transient: the connection could not be made
//! or broke, a timeout, the server's BYE, or `[UNAVAILABLE]` (RFC 5530). A refused
//! login, a refused certificate, a safety refusal, a configuration or local-store error is
//! never retried: repeating it changes nothing (and repeated bad logins can lock an
//! account). Every attempt resumes where the previous one stopped, because every step of
//! a sync is journaled (crates/mailfold-sync, `apply`).
//!
//! Output: one JSON object per account on stdout as each ends, then one summary object
//! (schema in docs/fleet.md); on a terminal, a progress line on stderr.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mailfold_sync::remote::RemoteError;
use mailfold_sync::{SyncError, SyncOptions, SyncReport};
use serde_json::{json, Value};

use super::manifest::Manifest;
use super::shard::{mix, ServerBudget, Shard};
use crate::account;
use crate::config::Account;
use crate::exit;
use crate::lock::{AccountLock, BusyError};
use crate::term;

/// The longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// The options of `fleet run`.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Accounts synced at once.
    pub jobs: usize,
    /// The part of the fleet to run.
    pub shard: Shard,
    /// Draw the progress line on stderr.
    pub progress: bool,
}

impl RunOptions {
    /// Whether a progress line is wanted: stderr is a terminal and `-q` was not given.
    pub fn progress_wanted(quiet: bool) -> bool {
        !quiet && std::io::stderr().is_terminal()
    }
}

/// How one account ended.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The account.
    pub account: String,
    /// `ok`, `incomplete` (some folder failed), `failed` or `busy`.
    pub status: &'static str,
    /// The exit status `mailfold sync` would have given for this account alone.
    pub exit_status: u8,
    /// Attempts made (1 when the first worked).
    pub attempts: u32,
    /// Connections the account was allowed.
    pub connections: u32,
    /// Messages downloaded.
    pub downloaded: usize,
    /// Messages uploaded.
    pub uploaded: usize,
    /// Messages deleted here and on the server.
    pub deleted: usize,
    /// Flag changes here and on the server.
    pub flag_changes: usize,
    /// Bytes read from the server.
    pub bytes_received: u64,
    /// Bytes sent to it.
    pub bytes_sent: u64,
    /// Wall time, all attempts and pauses included.
    pub duration: Duration,
    /// Why it failed (the last attempt's error), or the report's first error.
    pub error: Option<String>,
}

impl Outcome {
    /// The JSON line.
    pub fn to_json(&self) -> Value {
        json!({
            "account": self.account,
            "status": self.status,
            "exit_status": self.exit_status,
            "attempts": self.attempts,
            "connections": self.connections,
            "downloaded": self.downloaded,
            "uploaded": self.uploaded,
            "deleted": self.deleted,
            "flag_changes": self.flag_changes,
            "bytes_received": self.bytes_received,
            "bytes_sent": self.bytes_sent,
            "duration_ms": self.duration.as_millis() as u64,
            "error": self.error,
        })
    }
}

/// Why an attempt failed, and whether another attempt may do better.
struct Failure {
    error: anyhow::Error,
    transient: bool,
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure {
            error,
            transient: false,
        }
    }
}

/// Runs the shard's accounts; writes the JSON lines to `out`; returns the exit status (the
/// worst account's, as `mailfold sync` ranks them).
pub fn run(manifest: &Manifest, opts: &RunOptions, out: &mut dyn Write) -> anyhow::Result<u8> {
    let accounts: Vec<(&String, &Account)> = manifest
        .accounts
        .iter()
        .filter(|(n, _)| opts.shard.owns(n))
        .collect();
    let s = &manifest.settings;
    let budget = ServerBudget::new(
        s.max_connections_per_server
            .map(|total| opts.shard.share(total)),
    );
    if s.max_connections_per_server
        .is_some_and(|t| opts.shard.share(t) == 0)
    {
        return Err(exit::usage(format!(
            "max_connections_per_server = {} leaves shard {} of {} no connection; use at most \
             that many shards",
            s.max_connections_per_server.unwrap_or(0),
            opts.shard.index,
            opts.shard.count
        )));
    }
    // Read once for the whole run, not once per account: every account's state is
    // checked against the same table (`check_local`).
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok();
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<Event>();
    let jobs = opts.jobs.clamp(1, accounts.len().max(1));
    let mut status = exit::OK;
    let mut totals = Totals::default();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        for _ in 0..jobs {
            let tx = tx.clone();
            let (accounts, next, budget, mounts) = (&accounts, &next, &budget, &mounts);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((name, acct)) = accounts.get(i) else {
                    break;
                };
                let _ = tx.send(Event::Started);
                let o = run_account(
                    name,
                    acct,
                    s.retries,
                    s.retry_delay,
                    budget,
                    mounts.as_deref(),
                );
                if tx.send(Event::Done(Box::new(o))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut line = Progress::new(opts.progress, accounts.len());
        for ev in rx {
            match ev {
                Event::Started => line.running += 1,
                Event::Done(o) => {
                    line.running -= 1;
                    line.done += 1;
                    if o.exit_status != exit::OK {
                        line.failed += 1;
                    }
                    status = exit::worst(status, o.exit_status);
                    totals.add(&o);
                    line.clear();
                    write_line(out, &o.to_json())?;
                }
            }
            line.draw();
        }
        line.clear();
        Ok(())
    })?;
    let summary = json!({ "summary": {
        "shard": format!("{}/{}", opts.shard.index, opts.shard.count),
        "accounts": accounts.len(),
        "ok": totals.ok,
        "incomplete": totals.incomplete,
        "failed": totals.failed,
        "busy": totals.busy,
        "retried": totals.retried,
        "downloaded": totals.downloaded,
        "uploaded": totals.uploaded,
        "bytes_received": totals.bytes_received,
        "bytes_sent": totals.bytes_sent,
        "duration_ms": started.elapsed().as_millis() as u64,
        "exit_status": status,
    }});
    write_line(out, &summary)?;
    Ok(status)
}

fn write_line(out: &mut dyn Write, v: &Value) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, v)
        .map_err(std::io::Error::from)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(exit::stdout_error)
}

enum Event {
    Started,
    Done(Box<Outcome>),
}

#[derive(Default)]
struct Totals {
    ok: usize,
    incomplete: usize,
    failed: usize,
    busy: usize,
    retried: usize,
    downloaded: usize,
    uploaded: usize,
    bytes_received: u64,
    bytes_sent: u64,
}

impl Totals {
    fn add(&mut self, o: &Outcome) {
        match o.status {
            "ok" => self.ok += 1,
            "incomplete" => self.incomplete += 1,
            "busy" => self.busy += 1,
            _ => self.failed += 1,
        }
        self.retried += usize::from(o.attempts > 1);
        self.downloaded += o.downloaded;
        self.uploaded += o.uploaded;
        self.bytes_received += o.bytes_received;
        self.bytes_sent += o.bytes_sent;
    }
}

/// The progress line: one line on stderr, redrawn in place.
struct Progress {
    on: bool,
    total: usize,
    done: usize,
    running: usize,
    failed: usize,
}

impl Progress {
    fn new(on: bool, total: usize) -> Progress {
        Progress {
            on,
            total,
            done: 0,
            running: 0,
            failed: 0,
        }
    }

    fn draw(&self) {
        if self.on {
            eprint!(
                "\r\x1b[Kmailfold fleet: {}/{} done, {} running, {} failed",
                self.done, self.total, self.running, self.failed
            );
        }
    }

    fn clear(&self) {
        if self.on {
            eprint!("\r\x1b[K");
        }
    }
}

/// One account, with its retries; `mounts` is the text of /proc/self/mounts (`None`: not
/// Linux, or no /proc, so nothing to check the state's file system against).
pub fn run_account(
    name: &str,
    acct: &Account,
    retries: u32,
    retry_delay: u64,
    budget: &ServerBudget,
    mounts: Option<&str>,
) -> Outcome {
    let started = Instant::now();
    let mut o = Outcome {
        account: name.to_string(),
        ..Outcome::default()
    };
    loop {
        o.attempts += 1;
        match attempt(name, acct, budget, mounts, &mut o) {
            Ok(report) => {
                fill(&mut o, &report);
                break;
            }
            Err(f) if f.transient && o.attempts <= retries => {
                tracing::info!(
                    "account {name}: attempt {} failed ({}); retrying",
                    o.attempts,
                    f.error
                );
                std::thread::sleep(backoff(name, o.attempts, retry_delay));
            }
            Err(f) => {
                let busy = f.error.chain().any(|c| c.is::<BusyError>());
                o.status = if busy { "busy" } else { "failed" };
                o.exit_status = exit::status_of(&f.error);
                let text = format!("{:#}", f.error);
                eprintln!("mailfold: account {name}: {}", term::line(&text));
                o.error = Some(text);
                break;
            }
        }
    }
    o.duration = started.elapsed();
    o
}

fn attempt(
    name: &str,
    acct: &Account,
    budget: &ServerBudget,
    mounts: Option<&str>,
    o: &mut Outcome,
) -> Result<SyncReport, Failure> {
    let state = account::state_path(name, acct)?;
    if let Some(mounts) = mounts {
        check_local(mounts, &state)?;
    }
    let lock = AccountLock::acquire(name, &state, "fleet", false)?;
    let mut spec = account::sync_spec(name, acct)?;
    let n = budget.cap(u32::from(spec.connections));
    // `cap` keeps n within the account's own u8 wish.
    spec.connections = u8::try_from(n).unwrap_or(spec.connections);
    o.connections = n;
    let permit = budget.take(&format!("{}:{}", spec.host, spec.port), n);
    let result = mailfold_sync::sync_account(
        &spec,
        &SyncOptions {
            force: false,
            dry_run: false,
            // Adoption of another tool's tree keeps unmatched files local unless asked; a
            // fleet run never asks (a manifest has no such per-run choice).
            upload_unmatched: false,
        },
    );
    // The run has logged out of every session it opened: the connections are free again.
    drop(permit);
    drop(lock);
    result.map_err(|e| {
        let transient = is_transient(&e);
        Failure {
            error: match e {
                SyncError::Remote(r) => {
                    anyhow::Error::new(exit::ServerError(format!("server: {r}")))
                }
                SyncError::Config(s) => exit::usage(s),
                // The password command's own line, as when it ran before the sync.
                SyncError::Secret(e) => anyhow::Error::new(exit::ServerError(e.0)),
                other => anyhow::Error::new(other),
            },
            transient,
        }
    })
}

/// Whether another attempt may succeed (module docs). The network driver's fatal errors
/// reach here as text; the permanent kinds are recognised by the prefixes its `Display`
/// gives them (crates/mailfold-net, `Error`), everything else fatal is a lost or failed
/// connection.
pub fn is_transient(e: &SyncError) -> bool {
    let SyncError::Remote(RemoteError::Fatal(text)) = e else {
        return false;
    };
    if text.contains("[UNAVAILABLE]") {
        return true;
    }
    const PERMANENT: [&str; 5] = [
        "authentication failed",
        "TLS: certificate refused",
        "TLS: the server did not answer with TLS",
        "refused for safety",
        "configuration:",
    ];
    !PERMANENT.iter().any(|p| text.starts_with(p))
}

/// The pause before attempt `attempt + 1`: `delay` doubled per attempt, at most
/// [`MAX_BACKOFF`], with a spread of ±25% fixed per account and attempt, so accounts that
/// failed together (a server restart) do not all come back in the same second.
pub fn backoff(name: &str, attempt: u32, delay: u64) -> Duration {
    let base = Duration::from_secs(delay)
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    let seed = name
        .bytes()
        .fold(u64::from(attempt), |h, b| mix(h ^ u64::from(b)));
    let spread = 75 + seed % 51; // 75..=125 percent
    base * spread as u32 / 100
}

fn fill(o: &mut Outcome, r: &SyncReport) {
    for f in &r.folders {
        o.downloaded += f.downloaded;
        o.uploaded += f.uploaded;
        o.deleted += f.local_deletions + f.remote_deletions;
        o.flag_changes += f.local_flag_changes + f.remote_flag_changes;
    }
    if let Some(t) = &r.traffic {
        o.bytes_received = t.bytes_received;
        o.bytes_sent = t.bytes_sent;
    }
    if r.is_complete() {
        o.status = "ok";
        o.exit_status = exit::OK;
    } else {
        o.status = "incomplete";
        o.exit_status = exit::FAILED;
        o.error = r
            .errors
            .iter()
            .chain(r.folders.iter().flat_map(|f| f.errors.iter()))
            .map(ToString::to_string)
            .chain(r.refused.iter().cloned())
            .next();
    }
}

/// File systems on which SQLite's WAL mode is not safe: its index lives in a memory-mapped
/// `-shm` file that must be shared memory of one machine (sqlite.org/wal.html, "WAL does not
/// work over a network filesystem").
const NETWORK_FS: [&str; 9] = [
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "ceph",
    "glusterfs",
    "fuse.sshfs",
    "9p",
];

/// Refuses a state database on a network file system (module docs), by the mount table
/// `mounts` (/proc/self/mounts).
fn check_local(mounts: &str, state: &Path) -> anyhow::Result<()> {
    if let Some(fs) = fs_type(mounts, state) {
        if NETWORK_FS.contains(&fs.as_str()) {
            return Err(exit::usage(format!(
                "the state database {} is on a network file system ({fs}); SQLite's WAL mode \
                 needs a local disk: point `state` at local storage (docs/fleet.md, Storage)",
                state.display()
            )));
        }
    }
    Ok(())
}

/// The type of the file system holding `path` (its nearest existing ancestor), from the
/// text of /proc/self/mounts: the longest mount point that contains it.
fn fs_type(mounts: &str, path: &Path) -> Option<String> {
    let abs = path
        .ancestors()
        .find_map(|p| std::fs::canonicalize(p).ok())?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut w = l.split(' ');
            let (_dev, dir, fs) = (w.next()?, w.next()?, w.next()?);
            Some((unescape_mount(dir), fs.to_string()))
        })
        .filter(|(dir, _)| abs.starts_with(dir))
        .max_by_key(|(dir, _)| dir.len())
        .map(|(_, fs)| fs)
}

/// /proc/mounts writes space, tab, newline and backslash in paths as `\ooo` octal.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let digits = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connection_failures_are_transient() {
        let fatal = |t: &str| SyncError::Remote(RemoteError::Fatal(t.into()));
        for t in [
            "connecting to 127.0.0.1:993: Connection refused (os error 111)",
            "timed out: no greeting",
            "server closed the connection: BYE shutting down",
            "authentication failed (PLAIN): [UNAVAILABLE] try later",
        ] {
            assert!(is_transient(&fatal(t)), "{t}");
        }
        for t in [
            "authentication failed (PLAIN): [AUTHENTICATIONFAILED] nope",
            "TLS: certificate refused: not trusted",
            "refused for safety: STARTTLS missing",
        ] {
            assert!(!is_transient(&fatal(t)), "{t}");
        }
        assert!(!is_transient(&SyncError::Config("x".into())));
        assert!(!is_transient(&SyncError::Remote(RemoteError::No {
            text: "x".into(),
            trycreate: false
        })));
    }

    #[test]
    fn backoff_doubles_with_a_bounded_spread() {
        for attempt in 1..=5 {
            let d = backoff("alice", attempt, 5);
            let base = 5u64 << (attempt - 1);
            assert!(d >= Duration::from_millis(base * 750), "{attempt}: {d:?}");
            assert!(d <= Duration::from_millis(base * 1250), "{attempt}: {d:?}");
        }
        assert!(backoff("alice", 30, 3600) <= MAX_BACKOFF * 5 / 4);
    }

    #[test]
    fn network_file_systems_are_found_by_longest_mount_point() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let mounts = format!(
            "/dev/sda1 / ext4 rw 0 0\nserver:/x {} nfs4 rw 0 0\n",
            root.display().to_string().replace(' ', "\\040")
        );
        let state = root.join("not/yet/there.sqlite");
        assert_eq!(fs_type(&mounts, &state).as_deref(), Some("nfs4"));
        assert_eq!(fs_type(&mounts, Path::new("/")).as_deref(), Some("ext4"));
        assert_eq!(unescape_mount("/a\\040b"), "/a b");
    }
}
