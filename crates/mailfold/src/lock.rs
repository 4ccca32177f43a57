//! The per-account lock: one process at a time may change an account's mirror.
//!
//! `sync` and every command that changes the mirror (flag, move, delete, append and the
//! folder commands) write the Maildir and the state database and talk to the server in
//! between. Two of them at once could each record a state the other has just invalidated
//! (a flag change recorded as synced while a sync was planning from the old row), so each
//! takes an exclusive lock on `<state database>.lock` first. Reading commands (`list`,
//! `show`, `search`, `folders`) take no lock: the store's writes are atomic renames and
//! SQLite transactions, so a reader sees either the old or the new state.
//!
//! The lock is an OS file lock (`flock` on Unix, `LockFileEx` on Windows, through
//! `std::fs::File::try_lock`): the kernel drops it when the holder exits, however it exits,
//! so a crashed sync never leaves a stale lock behind and the file is never deleted (deleting
//! a lock file while another process waits on it would let two holders in). The holder writes
//! its process ID, command and host name into the file, for the "busy" message of the next
//! one, and empties it when it releases the lock.
//!
//! One writer per account across machines (`mailfold fleet`): a kernel lock is only as good
//! as the file system's locking, and some shared file systems lock per client only. So a
//! process that gets the kernel lock still reads the note: a note left by *another host*
//! means that host may be writing the account right now (its lock invisible here) or died
//! holding it; this host cannot tell which, so it reports the holder ([`BusyError`], exit
//! status 4) and never breaks the lock. A note left by this host is stale by construction
//! (the kernel lock was free, so its writer is gone) and is replaced. An operator who knows
//! the other host is down empties or deletes the lock file (docs/fleet.md).

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The most bytes of the holder's note read back; the note is one short line.
const NOTE_LIMIT: u64 = 256;

/// What a waiting or refused process learns about the holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The holder's process ID, when it had written it.
    pub pid: Option<u32>,
    /// The holder's command (`sync`, `flag`, …), when known.
    pub command: Option<String>,
    /// The holder's host name, when it wrote one and it is not this host.
    pub host: Option<String>,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (Some(h), Some(p)) = (&self.host, self.pid) {
            let c = self.command.as_deref().unwrap_or("?");
            return write!(
                f,
                "`mailfold {c}` on host {h} (pid {p}) holds it, or died holding it; \
                 if that host is down, empty the lock file"
            );
        }
        match (&self.command, self.pid) {
            (Some(c), Some(p)) => write!(f, "`mailfold {c}` is running (pid {p})"),
            (None, Some(p)) => write!(f, "another mailfold is running (pid {p})"),
            // The holder has the lock but has not written its note yet.
            _ => f.write_str("another mailfold is running (pid not known yet)"),
        }
    }
}

/// The account is locked by another process and the caller did not want to wait: exit
/// status 4 ([`crate::exit::BUSY`]).
#[derive(Debug)]
pub struct BusyError {
    /// The account.
    pub account: String,
    /// Who holds it.
    pub holder: Holder,
}

impl fmt::Display for BusyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.holder.host.is_some() {
            // Waiting cannot help: this host's kernel lock is not what holds it.
            return write!(f, "account {} is busy: {}", self.account, self.holder);
        }
        write!(
            f,
            "account {} is busy: {}; try again when it ends, or pass --wait",
            self.account, self.holder
        )
    }
}

impl std::error::Error for BusyError {}

/// A held account lock; dropping it releases the lock (the file stays).
#[derive(Debug)]
pub struct AccountLock {
    file: File,
    path: PathBuf,
}

/// The lock file of the account whose state database is `state`.
pub fn lock_path(state: &Path) -> PathBuf {
    let mut name = state.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl AccountLock {
    /// Takes the lock of account `account`, whose state database is `state`, for `command`.
    /// With `wait`, blocks until the holder ends (saying once on stderr whom it waits for);
    /// without, fails at once with a [`BusyError`].
    pub fn acquire(
        account: &str,
        state: &Path,
        command: &str,
        wait: bool,
    ) -> anyhow::Result<AccountLock> {
        let path = lock_path(state);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        // No truncation on open: the file may hold the current holder's note.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = read_holder(&mut file);
                if !wait {
                    return Err(anyhow::Error::new(BusyError {
                        account: account.to_string(),
                        holder,
                    }));
                }
                eprintln!("mailfold: account {account} is busy: {holder}; waiting for it to end");
                file.lock()
                    .with_context(|| format!("waiting for the lock {}", path.display()))?;
            }
            Err(TryLockError::Error(e)) => {
                return Err(
                    anyhow::Error::new(e).context(format!("cannot lock {}", path.display()))
                );
            }
        }
        // See the module docs: another host's note is reported, never overwritten.
        let left = read_holder(&mut file);
        if left.pid.is_some() && left.host.is_some() {
            let _ = file.unlock();
            return Err(anyhow::Error::new(BusyError {
                account: account.to_string(),
                holder: left,
            }));
        }
        write_note(&mut file, command)
            .with_context(|| format!("writing the lock file {}", path.display()))?;
        Ok(AccountLock { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AccountLock {
    fn drop(&mut self) {
        // An empty note says "free" to a host whose kernel lock cannot see ours (module
        // docs). Closing the file releases the lock anyway; unlocking first makes the release
        // immediate even if a copy of the descriptor were inherited by a child process.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

fn write_note(file: &mut File, command: &str) -> std::io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    // One line: "<pid> <command> <host>". Control characters cannot occur: `command` is one
    // of our subcommand names and the host name is filtered by `host_name`.
    writeln!(file, "{} {command} {}", std::process::id(), host_name())?;
    file.flush()
}

/// This machine's host name as the lock note records it: the kernel's name, reduced to the
/// characters a host name may hold (so a note stays one safe line), `unknown` if unreadable.
pub fn host_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .take(64)
        .collect();
    if name.is_empty() {
        "unknown".into()
    } else {
        name
    }
}

/// Reads the holder's note; whatever it holds, it is only shown (and compared with this
/// host's name), never trusted further.
fn read_holder(file: &mut File) -> Holder {
    let mut text = String::new();
    let read = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| file.take(NOTE_LIMIT).read_to_string(&mut text));
    if read.is_err() {
        return Holder {
            pid: None,
            command: None,
            host: None,
        };
    }
    let mut words = text.split_whitespace();
    let pid = words.next().and_then(|w| w.parse().ok());
    // A note without a PID is not ours: show nothing of it.
    let command = words
        .next()
        .filter(|_| pid.is_some())
        .filter(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
        .map(str::to_string);
    // Notes of older versions have no host; this host's own name means "here".
    let host = words
        .next()
        .filter(|_| command.is_some())
        .filter(|h| {
            h.len() <= 64
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        })
        .filter(|h| *h != host_name())
        .map(str::to_string);
    Holder { pid, command, host }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_first_ones_pid_and_command() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("deep/er/t.sqlite");
        let first = AccountLock::acquire("t", &state, "sync", false).unwrap();
        assert_eq!(first.path(), dir.path().join("deep/er/t.sqlite.lock"));
        let err = AccountLock::acquire("t", &state, "flag", false).unwrap_err();
        let busy = err.downcast_ref::<BusyError>().unwrap();
        assert_eq!(busy.holder.pid, Some(std::process::id()));
        assert_eq!(busy.holder.command.as_deref(), Some("sync"));
        assert!(
            err.to_string()
                .contains("account t is busy: `mailfold sync` is running (pid "),
            "{err}"
        );
        drop(first);
        let again = AccountLock::acquire("t", &state, "flag", false).unwrap();
        drop(again);
    }

    #[test]
    fn waiting_holder_gets_the_lock_when_the_first_ends() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("t.sqlite");
        let first = AccountLock::acquire("t", &state, "sync", false).unwrap();
        let s2 = state.clone();
        let waiter = std::thread::spawn(move || {
            AccountLock::acquire("t", &s2, "watch", true).map(|_| std::time::Instant::now())
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        let released = std::time::Instant::now();
        drop(first);
        let got = waiter.join().unwrap().unwrap();
        assert!(got >= released);
    }

    #[test]
    fn garbage_in_the_lock_file_is_shown_as_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = tempfile::tempfile_in(dir.path()).unwrap();
        f.write_all(b"\x1b[31mnot a pid\n").unwrap();
        let h = read_holder(&mut f);
        assert_eq!(
            h,
            Holder {
                pid: None,
                command: None,
                host: None
            }
        );
    }

    #[test]
    fn a_note_of_another_host_is_reported_and_kept_and_this_hosts_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("t.sqlite");
        let lock = lock_path(&state);
        std::fs::write(&lock, "4242 sync node-17.example\n").unwrap();
        let err = AccountLock::acquire("t", &state, "sync", false).unwrap_err();
        let busy = err.downcast_ref::<BusyError>().unwrap();
        assert_eq!(busy.holder.host.as_deref(), Some("node-17.example"));
        assert_eq!(busy.holder.pid, Some(4242));
        assert!(err.to_string().contains("host node-17.example"), "{err}");
        // Reported, not broken: the note is untouched.
        assert_eq!(
            std::fs::read_to_string(&lock).unwrap(),
            "4242 sync node-17.example\n"
        );
        // A note of this host (a killed holder) and an old note without a host are stale.
        for note in [format!("4242 sync {}\n", host_name()), "4242 sync\n".into()] {
            std::fs::write(&lock, note).unwrap();
            let held = AccountLock::acquire("t", &state, "flag", false).unwrap();
            let text = std::fs::read_to_string(&lock).unwrap();
            assert_eq!(
                text,
                format!("{} flag {}\n", std::process::id(), host_name())
            );
            drop(held);
            // Released: the note is emptied.
            assert_eq!(std::fs::read_to_string(&lock).unwrap(), "");
        }
    }
}
