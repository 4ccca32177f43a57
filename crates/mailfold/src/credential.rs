//! Runs `password_command` / `oauth_token_command` to obtain a secret.
//!
//! The secret travels only through the child's stdout pipe: it is never in an argv, an
//! environment variable or a log line, and it is wrapped in [`Secret`] the moment it is read.
//! The child gets no stdin (so a prompt cannot hang a sync) and its stderr goes to ours, so a
//! password manager's own error shows up.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mailfold_sasl::Secret;

use crate::config::CommandSpec;

/// Longest accepted output; a password manager printing megabytes is a misconfiguration.
const MAX_OUTPUT: u64 = 64 * 1024;

/// How long the command may take (an unlocked password store answers at once; a GUI prompt
/// may take a while).
const TIMEOUT: Duration = Duration::from_secs(120);

/// Runs the command and returns the first line of its output.
pub fn run_secret_command(spec: &CommandSpec, what: &str) -> anyhow::Result<Secret<String>> {
    let mut cmd = match spec {
        CommandSpec::Shell(s) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(s);
            c
        }
        CommandSpec::Argv(v) => {
            let (prog, args) = v.split_first().context("empty command")?;
            let mut c = Command::new(prog);
            c.args(args);
            c
        }
    };
    let program = match spec {
        CommandSpec::Shell(_) => "sh".to_string(),
        CommandSpec::Argv(v) => v.first().cloned().unwrap_or_default(),
    };
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot run {what} ({program})"))?;
    // Read on a thread so a command that never closes its stdout cannot block past the
    // deadline: killing the child closes the pipe and ends the reader.
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let r = stdout
                .take(MAX_OUTPUT + 1)
                .read_to_end(&mut out)
                .map(|_| out);
            let _ = tx.send(r);
        });
    } else {
        let _ = tx.send(Ok(Vec::new()));
    }
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{what} ({program}) did not finish within {} s",
                TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // A background process the command left behind may still hold the pipe open: the
    // output is whatever arrived by then, bounded by a short grace period.
    let out = rx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|_| anyhow::anyhow!("{what} ({program}) exited but left its output open"))?
        .with_context(|| format!("reading the output of {what}"))?;
    if !status.success() {
        bail!("{what} ({program}) failed with {status}");
    }
    if out.len() as u64 > MAX_OUTPUT {
        bail!("{what} ({program}) printed more than {MAX_OUTPUT} bytes");
    }
    let text = String::from_utf8(out)
        .map_err(|_| anyhow::anyhow!("{what} ({program}) printed non-UTF-8 output"))?;
    let first = text.lines().next().unwrap_or("");
    let first = first.strip_suffix('\r').unwrap_or(first);
    if first.is_empty() {
        bail!("{what} ({program}) printed an empty first line");
    }
    // Whatever a dependency might log, the logger scrubs this value (crate::redact).
    crate::redact::register(first);
    Ok(Secret::new(first.to_string()))
}

/// The first line of the file `path` (`password_file`): a secret mounted by a scheduler
/// (a Kubernetes Secret volume, a systemd credential). Bounded like a command's output.
pub fn read_secret_file(path: &std::path::Path) -> anyhow::Result<Secret<String>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read password_file {}", path.display()))?;
    let mut out = Vec::new();
    file.take(MAX_OUTPUT + 1)
        .read_to_end(&mut out)
        .with_context(|| format!("cannot read password_file {}", path.display()))?;
    if out.len() as u64 > MAX_OUTPUT {
        bail!(
            "password_file {} holds more than {MAX_OUTPUT} bytes",
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
    if bytes.len() as u64 > MAX_OUTPUT {
        bail!("password_env: the variable {name} holds more than {MAX_OUTPUT} bytes");
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
        .unwrap_err()
        .to_string();
        assert!(e.contains("failed"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = run_secret_command(
            &CommandSpec::Argv(vec!["/nonexistent/prog".into()]),
            "password_command",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cannot run"), "{e}");
        let e = run_secret_command(&CommandSpec::Shell("true".into()), "password_command")
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty"), "{e}");
    }
}
