//! `post_sync_command`: a program run after a `sync` or a `watch` round that changed
//! something, the way mbsync users run `notmuch new` after each mbsync.
//!
//! The command is given the run's counts in its environment ([`environment`]) and nothing
//! else of mailfold's: no secret is ever placed in an environment variable or argv, and the
//! child inherits only what mailfold itself was started with. Its stdin is empty (a prompt
//! cannot hang a watch); its stdout goes to mailfold's stderr, so the `--json` output on
//! stdout stays one document (or one object per line); a run that changed nothing, and a dry
//! run, runs nothing. Its failure, or its running past [`TIMEOUT`], is reported as a warning:
//! the sync itself has already succeeded and is not undone or failed by it.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use mailfold_sync::SyncReport;

use crate::config::CommandSpec;

/// How long the command may run before it is killed (`notmuch new` over a large new batch
/// takes minutes; a command that never ends must not stall a watch forever).
pub const TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// What a run changed, summed over its folders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Messages downloaded.
    pub downloaded: usize,
    /// Messages uploaded.
    pub uploaded: usize,
    /// Flag changes, both ways.
    pub flagged: usize,
    /// Deletions, both ways.
    pub deleted: usize,
    /// Moves between folders, both ways.
    pub moved: usize,
    /// Folders created, deleted or renamed.
    pub folders: usize,
}

impl Counts {
    /// The counts of a run's report.
    pub fn of(r: &SyncReport) -> Counts {
        let mut c = Counts::default();
        for f in &r.folders {
            c.downloaded += f.downloaded;
            c.uploaded += f.uploaded;
            c.flagged += f.local_flag_changes + f.remote_flag_changes;
            c.deleted += f.local_deletions + f.remote_deletions;
            c.moved += f.local_moves + f.remote_moves;
            c.folders += usize::from(
                f.created_local || f.created_remote || f.deleted || f.renamed_from.is_some(),
            );
        }
        c
    }

    /// Whether the run changed anything at all.
    pub fn changed(&self) -> bool {
        *self != Counts::default()
    }
}

/// The variables the command gets, besides mailfold's own environment.
pub fn environment(account: &str, maildir: &Path, c: &Counts) -> Vec<(&'static str, String)> {
    vec![
        ("MAILFOLD_ACCOUNT", account.to_owned()),
        ("MAILFOLD_MAILDIR", maildir.display().to_string()),
        ("MAILFOLD_DOWNLOADED", c.downloaded.to_string()),
        ("MAILFOLD_UPLOADED", c.uploaded.to_string()),
        ("MAILFOLD_FLAGGED", c.flagged.to_string()),
        ("MAILFOLD_DELETED", c.deleted.to_string()),
        ("MAILFOLD_MOVED", c.moved.to_string()),
        ("MAILFOLD_FOLDERS_CHANGED", c.folders.to_string()),
    ]
}

/// Runs `spec` after a run of `account` that produced `report`, if it changed something.
/// Returns the warning to print when the command could not run, failed or timed out.
pub fn after_run(
    spec: Option<&CommandSpec>,
    account: &str,
    maildir: &Path,
    report: &SyncReport,
) -> Option<String> {
    let spec = spec?;
    let counts = Counts::of(report);
    if !counts.changed() {
        return None;
    }
    let program = match spec {
        CommandSpec::Shell(_) => "sh".to_owned(),
        CommandSpec::Argv(v) => v.first().cloned().unwrap_or_default(),
    };
    match run(spec, &environment(account, maildir, &counts)) {
        Ok(status) if status.success() => None,
        Ok(status) => Some(format!(
            "account {account}: post_sync_command ({program}) failed with {status}"
        )),
        Err(e) => Some(format!(
            "account {account}: post_sync_command ({program}): {e}"
        )),
    }
}

fn run(spec: &CommandSpec, env: &[(&'static str, String)]) -> Result<ExitStatus, String> {
    let mut cmd = match spec {
        CommandSpec::Shell(s) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(s);
            c
        }
        CommandSpec::Argv(v) => {
            let (prog, args) = v.split_first().ok_or("empty command")?;
            let mut c = Command::new(prog);
            c.args(args);
            c
        }
    };
    let mut child = cmd
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run it: {e}"))?;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {}
            Err(e) => return Err(format!("waiting for it: {e}")),
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "did not finish within {} minutes and was stopped",
                TIMEOUT.as_secs() / 60
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailfold_sync::FolderReport;

    fn report(f: FolderReport) -> SyncReport {
        SyncReport {
            account: "a".into(),
            folders: vec![f],
            ..SyncReport::default()
        }
    }

    #[test]
    fn counts_sum_both_directions_and_nothing_means_no_run() {
        let r = report(FolderReport {
            folder: "INBOX".into(),
            downloaded: 2,
            local_flag_changes: 1,
            remote_flag_changes: 3,
            remote_deletions: 1,
            local_moves: 1,
            ..FolderReport::default()
        });
        let c = Counts::of(&r);
        assert_eq!(
            (
                c.downloaded,
                c.uploaded,
                c.flagged,
                c.deleted,
                c.moved,
                c.folders
            ),
            (2, 0, 4, 1, 1, 0)
        );
        assert!(c.changed());
        let quiet = report(FolderReport {
            folder: "INBOX".into(),
            ..FolderReport::default()
        });
        assert!(!Counts::of(&quiet).changed());
        let spec = CommandSpec::Shell("exit 3".into());
        assert_eq!(after_run(Some(&spec), "a", Path::new("/m"), &quiet), None);
        let w = after_run(Some(&spec), "a", Path::new("/m"), &r).unwrap();
        assert!(w.contains("post_sync_command (sh) failed"), "{w}");
        let missing = CommandSpec::Argv(vec!["/nonexistent/mailfold-hook".into()]);
        let w = after_run(Some(&missing), "a", Path::new("/m"), &r).unwrap();
        assert!(w.contains("cannot run it"), "{w}");
    }
}
