//! Runs `password_command` / `oauth_token_command` to obtain a secret.
//!
//! The secret travels only through the child's stdout pipe: it is never in an argv, an
//! environment variable or a log line, and it is wrapped in [`Secret`] the moment it is read.
//! The child gets no stdin (so a prompt cannot hang a sync) and its stderr goes to ours, so a
//! password manager's own error shows up.
//!
//! The command runs in a process group of its own, and the whole group is ended when mailfold
//! is done with it: a shell's background job, or a helper that prints the password and then
//! lingers (an agent, `echo pw; sleep 1000`), neither delays the run nor stays behind. The first
//! line is used as soon as it arrives; the program then has [`GRACE`] to exit by itself (so
//! that its exit status can still report a failure) before the group is ended.
//!
//! Every failure (cannot start, non-zero exit, no line in time, an empty or overlong first
//! line, output that is not UTF-8) is one [`CredentialError`] line that names the setting and
//! the program but never shows the output. It carries the exit-status marker of a failed
//! authentication ([`crate::exit::ServerError`], status 3): no login could be attempted.

use std::fmt;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mailfold_sync::Secret;

use crate::config::CommandSpec;
use crate::exit::ServerError;

/// Longest accepted first line; a password manager printing megabytes is a misconfiguration.
const MAX_LINE: usize = 64 * 1024;

/// How long the command may take to print its line (an unlocked password store answers at
/// once; a GUI prompt may take a while).
const TIMEOUT: Duration = Duration::from_secs(120);

/// How long the program may run on after its first line (or after it exited while something
/// it started still holds the pipe) before its process group is ended.
const GRACE: Duration = Duration::from_millis(500);

/// After SIGTERM, how long the group has to go before SIGKILL.
const TERM_WAIT: Duration = Duration::from_millis(200);

/// Why no secret came out of the command. `Display` is one line, without the output.
#[derive(Debug)]
pub struct CredentialError {
    /// `password_command` or `oauth_token_command`.
    pub what: String,
    /// The program run (for a shell string, its first word).
    pub program: String,
    /// What went wrong.
    pub problem: String,
}

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}) {}", self.what, self.program, self.problem)
    }
}

impl std::error::Error for CredentialError {}

/// What the stdout reader saw.
enum Out {
    /// The first line, without its line ending.
    Line(Vec<u8>),
    /// Output ended before any line ending: whatever came (possibly nothing).
    Eof(Vec<u8>),
    /// The first line passed [`MAX_LINE`].
    TooLong,
    /// Reading failed.
    Failed(std::io::Error),
}

/// Runs the command and returns the first line of its output.
pub fn run_secret_command(spec: &CommandSpec, what: &str) -> anyhow::Result<Secret<String>> {
    run_with_timeout(spec, what, TIMEOUT)
}

/// [`run_secret_command`] with another limit for the first line (tests).
fn run_with_timeout(
    spec: &CommandSpec,
    what: &str,
    timeout: Duration,
) -> anyhow::Result<Secret<String>> {
    let program = match spec {
        CommandSpec::Shell(s) => s.split_whitespace().next().unwrap_or("sh").to_string(),
        CommandSpec::Argv(v) => v.first().cloned().unwrap_or_default(),
    };
    let fail = |problem: String| {
        // The marker gives the exit status; its text is the one line the user reads.
        let e = CredentialError {
            what: what.to_string(),
            program: program.clone(),
            problem,
        };
        anyhow::Error::new(ServerError(e.to_string()))
    };
    let mut cmd = match spec {
        CommandSpec::Shell(s) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(s);
            c
        }
        CommandSpec::Argv(v) => {
            let Some((prog, args)) = v.split_first() else {
                return Err(fail("is empty".into()));
            };
            let mut c = Command::new(prog);
            c.args(args);
            c
        }
    };
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // Its own group (pgid = its pid), so that ending the group ends whatever it started.
        .process_group(0)
        .spawn()
        .map_err(|e| fail(format!("cannot be run: {e}")))?;
    let group = Group(child.id());
    let events = watch(child);
    let result = wait_for_line(&events, timeout);
    // Whatever happened, nothing the command started outlives this call.
    group.end();
    let status = match result.status {
        Some(s) => Some(s),
        // The group is ended, so the program's exit is at hand: its status tells a failure
        // apart from a program that printed nothing.
        None if result.line.is_none() && !result.exited => exit_status(&events),
        None => None,
    };
    let line = match result.line {
        None if result.timed_out => {
            return Err(fail(format!(
                "printed no line within {} s and was stopped",
                timeout.as_secs()
            )))
        }
        Some(Out::Failed(e)) => return Err(fail(format!("could not be read: {e}"))),
        Some(Out::TooLong) => {
            return Err(fail(format!(
                "printed a first line of more than {MAX_LINE} bytes"
            )))
        }
        Some(Out::Line(l)) | Some(Out::Eof(l)) => Some(l),
        None => None,
    };
    if let Some(s) = status.filter(|s| !s.success()) {
        return Err(fail(format!("failed ({})", describe(s))));
    }
    let Some(line) = line.filter(|l| !l.is_empty()) else {
        return Err(fail("printed nothing (an empty first line)".into()));
    };
    let text =
        String::from_utf8(line).map_err(|_| fail("printed a line that is not UTF-8".into()))?;
    let first = text.strip_suffix('\r').unwrap_or(&text);
    if first.is_empty() {
        return Err(fail("printed nothing (an empty first line)".into()));
    }
    // Whatever a dependency might log or a server echo, the output scrubs this value
    // (crate::redact).
    crate::redact::register(first);
    Ok(Secret::new(first.to_string()))
}

/// What the command's watchers report, in the order it happens.
enum Ev {
    /// What the stdout reader saw.
    Out(Out),
    /// The program exited (`None`: waiting for it failed).
    Exited(Option<ExitStatus>),
}

/// Starts two threads: one reads the first line, so that a command that never closes its
/// stdout cannot block past the deadline (ending the group closes the pipe and ends it);
/// one waits for the program's exit. Both report on the one channel, so the caller blocks
/// on it until whichever comes first, without polling.
fn watch(mut child: Child) -> Receiver<Ev> {
    let (tx, rx) = mpsc::channel();
    match child.stdout.take() {
        None => {
            let _ = tx.send(Ev::Out(Out::Eof(Vec::new())));
        }
        Some(stdout) => {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = tx.send(Ev::Out(read_first_line(stdout)));
                // The rest is not wanted; dropping the pipe lets a writer fail instead of
                // block.
            });
        }
    }
    std::thread::spawn(move || {
        let _ = tx.send(Ev::Exited(child.wait().ok()));
    });
    rx
}

/// The first line of `stdout`, bounded by [`MAX_LINE`].
fn read_first_line(mut stdout: std::process::ChildStdout) -> Out {
    let mut line = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stdout.read(&mut buf) {
            Ok(0) => return Out::Eof(line),
            Ok(n) => {
                let chunk = &buf[..n];
                if let Some(i) = chunk.iter().position(|&b| b == b'\n') {
                    line.extend_from_slice(&chunk[..i]);
                    return if line.len() > MAX_LINE {
                        Out::TooLong
                    } else {
                        Out::Line(line)
                    };
                }
                line.extend_from_slice(chunk);
                if line.len() > MAX_LINE {
                    return Out::TooLong;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Out::Failed(e),
        }
    }
}

/// The program's exit status once it has exited (after its group was ended); a line still
/// in the channel is skipped.
fn exit_status(events: &Receiver<Ev>) -> Option<ExitStatus> {
    loop {
        match events.recv() {
            Ok(Ev::Exited(s)) => return s,
            Ok(Ev::Out(_)) => {}
            Err(_) => return None,
        }
    }
}

/// How the wait ended.
struct Waited {
    /// What the reader reported, if it did.
    line: Option<Out>,
    /// The exit status, if the program exited in time.
    status: Option<ExitStatus>,
    /// The exit was reported (with a status, or without one when waiting failed).
    exited: bool,
    /// No line (and no end of output) within the time limit.
    timed_out: bool,
}

/// Waits for the first line (or the end of the output) and, after it, up to [`GRACE`] for the
/// program to exit; gives up at `timeout`. Blocks on the watchers' channel: the line or the
/// exit wakes it at once.
fn wait_for_line(events: &Receiver<Ev>, timeout: Duration) -> Waited {
    let deadline = Instant::now() + timeout;
    let mut line: Option<Out> = None;
    let mut status: Option<ExitStatus> = None;
    let mut exited = false;
    // When the line (or the program's exit) arrived: from then on, only GRACE more.
    let mut settled: Option<Instant> = None;
    while line.is_none() || !exited {
        let until = match (settled, &line) {
            (Some(t), Some(_)) => t + GRACE,
            (Some(t), None) => (t + GRACE).min(deadline),
            (None, _) => deadline,
        };
        let now = Instant::now();
        if now >= until {
            if line.is_none() && now >= deadline {
                return Waited {
                    line: None,
                    status,
                    exited,
                    timed_out: true,
                };
            }
            break;
        }
        match events.recv_timeout(until - now) {
            Ok(Ev::Out(o)) => {
                line = Some(o);
                settled.get_or_insert_with(Instant::now);
            }
            Ok(Ev::Exited(s)) => {
                status = s;
                exited = true;
                settled.get_or_insert_with(Instant::now);
            }
            // The loop's head decides: the grace is over, or the time limit.
            Err(RecvTimeoutError::Timeout) => {}
            // Both watchers are done: whatever did not come will not.
            Err(RecvTimeoutError::Disconnected) => {
                line.get_or_insert(Out::Eof(Vec::new()));
                break;
            }
        }
    }
    Waited {
        line,
        status,
        exited,
        timed_out: false,
    }
}

fn describe(s: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => s.to_string(),
    }
}

/// The command's process group.
struct Group(u32);

impl Group {
    /// Ends every process left in the group: SIGTERM, then SIGKILL to whatever is still
    /// there shortly after. A group already gone is fine.
    fn end(&self) {
        use nix::sys::signal::{killpg, Signal};
        use nix::unistd::Pid;
        let Ok(pgid) = i32::try_from(self.0) else {
            return;
        };
        let pgid = Pid::from_raw(pgid);
        if killpg(pgid, Signal::SIGTERM).is_err() {
            return;
        }
        let until = Instant::now() + TERM_WAIT;
        while Instant::now() < until {
            // Signal 0 only asks whether any member is left.
            if killpg(pgid, None::<Signal>).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = killpg(pgid, Signal::SIGKILL);
    }
}

/// The first line of the file `path` (`password_file`): a secret mounted by a scheduler
/// (a Kubernetes Secret volume, a systemd credential). Bounded like a command's output.
pub fn read_secret_file(path: &std::path::Path) -> anyhow::Result<Secret<String>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read password_file {}", path.display()))?;
    let mut out = Vec::new();
    file.take(MAX_LINE as u64 + 1)
        .read_to_end(&mut out)
        .with_context(|| format!("cannot read password_file {}", path.display()))?;
    if out.len() as u64 > MAX_LINE as u64 {
        bail!(
            "password_file {} holds more than {MAX_LINE} bytes",
            path.display()
        );
    }
    first_line(out, &format!("password_file {}", path.display()))
}

/// The value of the environment variable `name` (`password_env`); its first line, as for a
/// command, so a trailing newline from a secret store does not become part of the password.
pub fn read_secret_env(name: &str) -> anyhow::Result<Secret<String>> {
    let value = std::env::var_os(name)
        .with_context(|| format!("password_env: the variable {name} is not set"))?;
    let bytes = value.into_encoded_bytes();
    if bytes.len() as u64 > MAX_LINE as u64 {
        bail!("password_env: the variable {name} holds more than {MAX_LINE} bytes");
    }
    first_line(bytes, &format!("password_env {name}"))
}

/// The shared tail of every secret source: UTF-8, first line, not empty, registered for
/// scrubbing. `what` names the source, never the value.
fn first_line(out: Vec<u8>, what: &str) -> anyhow::Result<Secret<String>> {
    let text = String::from_utf8(out).map_err(|_| anyhow::anyhow!("{what} is not UTF-8"))?;
    let first = text.lines().next().unwrap_or("");
    let first = first.strip_suffix('\r').unwrap_or(first);
    if first.is_empty() {
        bail!("{what} has an empty first line");
    }
    crate::redact::register(first);
    Ok(Secret::new(first.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_is_the_secret() {
        let s = run_secret_command(
            &CommandSpec::Shell("printf 'pw1\\nsecond\\n'".into()),
            "password_command",
        )
        .unwrap();
        assert_eq!(s.expose(), "pw1");
        let s = run_secret_command(
            &CommandSpec::Argv(vec!["printf".into(), "tok\\r\\n".into()]),
            "oauth_token_command",
        )
        .unwrap();
        assert_eq!(s.expose(), "tok");
        // No line ending at all: the whole output is the line.
        let s = run_secret_command(
            &CommandSpec::Argv(vec!["printf".into(), "bare".into()]),
            "password_command",
        )
        .unwrap();
        assert_eq!(s.expose(), "bare");
    }

    #[test]
    fn files_and_variables_give_their_first_line_and_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cret\r\nignored\n").unwrap();
        assert_eq!(read_secret_file(&f).unwrap().expose(), "s3cret");
        std::fs::write(&f, "\n").unwrap();
        let e = read_secret_file(&f).unwrap_err().to_string();
        assert!(e.contains("empty first line"), "{e}");
        let e = read_secret_file(&dir.path().join("none"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read password_file"), "{e}");
        let e = read_secret_env("MAILFOLD_TEST_SURELY_UNSET_VARIABLE")
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not set"), "{e}");
        // PATH is set in every test environment; only its first line is taken.
        assert!(!read_secret_env("PATH").unwrap().expose().is_empty());
    }

    #[test]
    fn failures_are_clear_and_do_not_show_output() {
        let e = run_secret_command(
            &CommandSpec::Shell("echo hunter2; exit 3".into()),
            "password_command",
        )
        .unwrap_err();
        assert_eq!(crate::exit::status_of(&e), crate::exit::SERVER);
        let e = e.to_string();
        assert_eq!(e, "password_command (echo) failed (exit status 3)");
        let e = run_secret_command(
            &CommandSpec::Argv(vec!["/nonexistent/prog".into()]),
            "password_command",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("password_command (/nonexistent/prog) cannot be run"),
            "{e}"
        );
        for empty in ["true", "echo", "printf '\\r\\n'"] {
            let e = run_secret_command(&CommandSpec::Shell(empty.into()), "password_command")
                .unwrap_err()
                .to_string();
            assert!(e.contains("printed nothing"), "{empty}: {e}");
        }
        let e = run_secret_command(&CommandSpec::Argv(vec![]), "password_command")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "password_command () is empty");
    }

    /// Whether process `pid` runs (a zombie does not count).
    fn alive(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
        })
    }

    #[test]
    fn a_command_that_prints_nothing_in_time_is_ended_with_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let script = format!(
            "echo $$ > '{0}'; sleep 1000 & echo $! >> '{0}'; wait",
            pids.display()
        );
        let e = run_with_timeout(
            &CommandSpec::Shell(script),
            "password_command",
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert_eq!(crate::exit::status_of(&e), crate::exit::SERVER);
        assert_eq!(
            e.to_string(),
            "password_command (echo) printed no line within 1 s and was stopped"
        );
        let pids = std::fs::read_to_string(&pids).unwrap();
        for pid in pids.split_whitespace() {
            assert!(!alive(pid), "process {pid} of the command outlived it");
        }
    }
}
