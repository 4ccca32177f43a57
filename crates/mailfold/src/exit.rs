//! Exit statuses and the error kinds that choose them (README "Exit status", docs/cli.md).
//!
//! Commands return `anyhow::Error`; the few errors whose status is not the generic 1 carry a
//! marker type in their chain, which [`status_of`] looks for. This keeps the policy in one
//! place, as ripgrep does in its `main.rs`.

use std::fmt;

/// Everything worked (including changes queued for the next sync while offline).
pub const OK: u8 = 0;
/// The command ran but some of its work failed: a folder did not sync, the server refused a
/// change (its text is shown), a message was not found, a response did not parse.
pub const FAILED: u8 = 1;
/// Usage or configuration error (clap's own errors also exit 2).
pub const USAGE: u8 = 2;
/// The server could not be used at all: connection, TLS or authentication failed, or the
/// server ended the session (its BYE text is shown).
pub const SERVER: u8 = 3;
/// The account is busy: another mailfold process (a sync or a change) holds its
/// lock, and `--wait` was not given. Nothing was done; retrying later is safe.
pub const BUSY: u8 = 4;

/// Every exit status with its meaning: the one table the man page's EXIT STATUS section and
/// the README's exit-status table are made from (a test checks the README).
pub const TABLE: [(u8, &str); 5] = [
    (
        OK,
        "success (a change queued while the server was not reachable counts as success; so does a reader closing stdout early, as `head` does)",
    ),
    (
        FAILED,
        "the command ran but some of its work failed (a folder did not sync, the server refused a change — its text is shown —, a message was not found, a response did not parse)",
    ),
    (
        USAGE,
        "usage or configuration error, in every command: an unknown option, flag name or folder, a bad configuration (clap's own errors also exit 2); nothing was changed",
    ),
    (
        SERVER,
        "the server could not be used: connection, TLS or authentication failed (the server refused the credentials, or `password_command` / `oauth_token_command` failed, timed out or printed nothing), or the server ended the session (its BYE text is shown); `mailfold probe` says why",
    ),
    (
        BUSY,
        "the account is busy: another mailfold process (a sync or a change) holds its lock; nothing was done (`--wait` waits instead)",
    ),
];

/// A usage or configuration mistake: exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The server could not be reached or used: exit status 3.
#[derive(Debug)]
pub struct ServerError(pub String);

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServerError {}

/// Standard output was closed by its reader (`mailfold list | head`): not a failure of the
/// command, so `main` exits quietly with status 0, as `cat` or ripgrep do.
#[derive(Debug)]
pub struct StdoutClosed;

impl fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// An error writing standard output: a closed pipe becomes [`StdoutClosed`], anything else
/// (a full disk under a redirection) stays an error.
pub fn stdout_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        anyhow::Error::new(StdoutClosed)
    } else {
        anyhow::Error::new(e).context("writing standard output")
    }
}

/// `"{subject}: {msg}"`, or `msg` alone when it already names `subject` (as `subject:` or
/// `subject ` inside it): an error that says `connecting to 127.0.0.1:993` needs no
/// `127.0.0.1:993:` in front of it, and `account t: …` no second `account t:`.
pub fn with_subject(subject: &str, msg: &str) -> String {
    let named = msg.starts_with(subject)
        && msg[subject.len()..]
            .chars()
            .next()
            .is_none_or(|c| c == ':' || c == ' ');
    if named || msg.contains(&format!("{subject}:")) || msg.contains(&format!("{subject} ")) {
        msg.to_string()
    } else {
        format!("{subject}: {msg}")
    }
}

/// The kind of an error for the `--json` error object: the exit status in words.
pub fn kind_of(status: u8) -> &'static str {
    match status {
        USAGE => "usage",
        SERVER => "server",
        BUSY => "busy",
        _ => "failed",
    }
}

/// Shorthand: a usage error as `anyhow::Error`.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// The status of a run made of several parts (accounts): configuration errors outrank
/// server errors, which outrank a busy account, which outranks partial failures.
pub fn worst(a: u8, b: u8) -> u8 {
    fn rank(s: u8) -> u8 {
        match s {
            OK => 0,
            FAILED => 1,
            BUSY => 2,
            SERVER => 3,
            _ => 4,
        }
    }
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// The exit status for an error, by the markers in its chain.
pub fn status_of(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.is::<UsageError>() || cause.is::<crate::config::ConfigError>() {
            return USAGE;
        }
        if cause.is::<ServerError>() {
            return SERVER;
        }
        if cause.is::<crate::lock::BusyError>() {
            return BUSY;
        }
    }
    FAILED
}

/// Writes `args` and a line feed to standard output; a closed pipe becomes [`StdoutClosed`]
/// (where `println!` would panic), so `mailfold … | head` ends quietly.
pub fn write_line(args: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

/// Writes bytes to standard output as [`write_line`] does (no line feed added).
pub fn write_bytes(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

/// Standard output for code that reports write errors only as `io::Error`s mixed with others
/// (a reader of stdin, a JSON encoder): it remembers whether stdout was closed, so the caller
/// can tell that end from a real failure.
pub struct WatchedStdout {
    inner: std::io::StdoutLock<'static>,
    /// Whether a write found the reader gone.
    pub closed: bool,
}

impl WatchedStdout {
    /// Locks standard output.
    pub fn new() -> WatchedStdout {
        WatchedStdout {
            inner: std::io::stdout().lock(),
            closed: false,
        }
    }

    fn watch<T>(&mut self, r: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &r {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                self.closed = true;
            }
        }
        r
    }
}

impl Default for WatchedStdout {
    fn default() -> Self {
        Self::new()
    }
}

impl std::io::Write for WatchedStdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let r = self.inner.write(buf);
        self.watch(r)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let r = self.inner.flush();
        self.watch(r)
    }
}

/// `println!` for the commands' output: `outln!(…)?` turns a closed standard output into
/// [`StdoutClosed`] instead of a panic.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::exit::write_line(format_args!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_is_named_once() {
        assert_eq!(
            with_subject("127.0.0.1:993", "connecting to 127.0.0.1:993: refused"),
            "connecting to 127.0.0.1:993: refused"
        );
        assert_eq!(
            with_subject("account t", "account t: no password_command"),
            "account t: no password_command"
        );
        // `account t` is not named by `account tom`.
        assert_eq!(
            with_subject("account t", "account tom: busy"),
            "account t: account tom: busy"
        );
        assert_eq!(with_subject("host", "timed out"), "host: timed out");
    }

    #[test]
    fn every_status_has_one_meaning() {
        let statuses: Vec<u8> = TABLE.iter().map(|(s, _)| *s).collect();
        assert_eq!(statuses, [OK, FAILED, USAGE, SERVER, BUSY]);
        assert_eq!(kind_of(USAGE), "usage");
        assert_eq!(kind_of(FAILED), "failed");
    }
}
