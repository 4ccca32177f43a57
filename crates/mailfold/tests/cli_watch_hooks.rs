//! What a user of `mailfold watch` and `sync` sees around the sync itself, on the real binary
//! against a private Dovecot: the start line saying what is watched and how (and not with
//! `-q`), log lines without colour codes when stderr is a file, and `post_sync_command` run
//! after each round that changed something, with the counts in its environment and never a
//! secret, and not after a round that changed nothing; on a server without NOTIFY, the poll
//! of the other folders at `watch_poll_interval`.

mod util;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use util::{plain, Env};

/// Upper bound for a hung test, not a speed requirement.
const LIMIT: Duration = Duration::from_secs(60);

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < LIMIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A hook that appends its MAILFOLD_* environment, then the whole environment's size in
/// variables, to `hook.log`, one run per paragraph; the config's extra lines name it.
fn hook(env: &Env) -> (PathBuf, String) {
    let log = env.home.path().join("hook.log");
    let all = env.home.path().join("hook-env.log");
    let script = env.home.path().join("hook.sh");
    std::fs::write(
        &script,
        format!(
            // The run's own variables; the test suite's MAILFOLD_REQUIRE_* ones are inherited
            // from the environment that started the test, not set by mailfold.
            "env | grep '^MAILFOLD_' | grep -v '^MAILFOLD_REQUIRE_' | sort >> '{}'\necho >> '{}'\nenv >> '{}'\n",
            log.display(),
            log.display(),
            all.display()
        ),
    )
    .unwrap();
    (
        log,
        format!(
            "post_sync_command = [\"sh\", {:?}]\n",
            script.display().to_string()
        ),
    )
}

/// Rewrites the account's config with `extra` lines.
fn configure(env: &Env, extra: &str) {
    let addr = env.dovecot.imaps_addr();
    env.home.write_config(
        &addr.ip().to_string(),
        addr.port(),
        "implicit",
        &env.dovecot.user(0).password,
        Some(&env.dovecot.ca_file()),
        extra,
    );
}

/// The hook's runs so far, each as its `MAILFOLD_*` lines.
fn runs(log: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| p.lines().map(str::to_owned).collect())
        .collect()
}

fn watch(env: &Env, args: &[&str], stderr: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mailfold"))
        .arg("--config")
        .arg(env.home.config())
        .args(args)
        .args(["watch", "--full-check-every", "60"])
        .env("HOME", env.home.path())
        .env("XDG_STATE_HOME", env.home.path().join("xdg-state"))
        .env_remove("MAILFOLD_CONFIG")
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .expect("start mailfold watch")
}

fn stop(mut child: Child) {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            assert!(s.success(), "exit {s:?}");
            return;
        }
        assert!(start.elapsed() < LIMIT, "watch did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn post_sync_command_gets_the_counts_and_runs_only_after_a_change() {
    let env = Env::new();
    let (log, extra) = hook(&env);
    configure(&env, &extra);
    env.deliver("INBOX", &plain("a@example.org", "one", "1"));
    env.deliver("INBOX", &plain("b@example.org", "two", "2"));
    env.run(&["sync"]).ok();
    let r = runs(&log);
    assert_eq!(r.len(), 1, "{r:?}");
    let home = env.home.maildir().display().to_string();
    // The first run also made the local folders: INBOX and the five special-use ones.
    assert_eq!(
        r[0],
        [
            "MAILFOLD_ACCOUNT=t".to_owned(),
            "MAILFOLD_DELETED=0".into(),
            "MAILFOLD_DOWNLOADED=2".into(),
            "MAILFOLD_FLAGGED=0".into(),
            "MAILFOLD_FOLDERS_CHANGED=6".into(),
            format!("MAILFOLD_MAILDIR={home}"),
            "MAILFOLD_MOVED=0".into(),
            "MAILFOLD_UPLOADED=0".into(),
        ]
    );
    // Nothing changed: nothing runs.
    env.run(&["sync"]).ok();
    assert_eq!(runs(&log).len(), 1);
    // A dry run changes nothing either.
    env.deliver("INBOX", &plain("c@example.org", "three", "3"));
    env.run(&["sync", "--dry-run"]).ok();
    assert_eq!(runs(&log).len(), 1);
    // The hook never sees the password, which reaches mailfold only through its command.
    let all = std::fs::read_to_string(env.home.path().join("hook-env.log")).unwrap();
    assert!(!all.contains(&env.dovecot.user(0).password));

    // A failing hook is a warning; the sync still succeeded.
    configure(&env, "post_sync_command = \"exit 3\"\n");
    let r = env.run(&["sync"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("warning: account t: post_sync_command (sh) failed"),
        "{}",
        r.stderr
    );
}

#[test]
fn watch_says_what_it_watches_logs_without_colour_to_a_file_and_runs_the_hook() {
    let env = Env::new();
    let (log, extra) = hook(&env);
    configure(&env, &extra);
    env.deliver("INBOX", &plain("a@example.org", "before", "1"));
    let err = env.home.path().join("watch.err");
    let child = watch(&env, &["-vv"], &err);
    wait_for("the first run's hook", || runs(&log).len() == 1);
    env.deliver("INBOX", &plain("b@example.org", "while watching", "2"));
    wait_for("the second run's hook", || {
        runs(&log)
            .iter()
            .filter(|r| r.iter().any(|l| l == "MAILFOLD_DOWNLOADED=1"))
            .count()
            == 2
    });
    stop(child);
    // Follow-up rounds that changed nothing ran no hook.
    for r in runs(&log) {
        assert!(
            r.iter().any(|l| l == "MAILFOLD_DOWNLOADED=1"),
            "a hook run without a change: {r:?}"
        );
    }
    let text = std::fs::read(&err).unwrap();
    let text = String::from_utf8_lossy(&text);
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a log file: {text}"
    );
    assert!(text.contains("DEBUG"), "-vv logs nothing: {text}");
    let starts: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("mailfold: watching "))
        .collect();
    assert_eq!(starts.len(), 1, "{text}");
    // INBOX and the five special-use folders of the test server.
    assert_eq!(
        starts[0],
        "mailfold: watching 6 folders of account t: NOTIFY"
    );

    // -q: no start line.
    let err = env.home.path().join("watch-quiet.err");
    let child = watch(&env, &["-q"], &err);
    env.deliver("INBOX", &plain("c@example.org", "quiet", "3"));
    wait_for("the quiet watch's hook", || runs(&log).len() >= 3);
    stop(child);
    let text = std::fs::read_to_string(&err).unwrap();
    assert!(!text.contains("watching"), "{text}");
}

/// The capabilities Dovecot 2.3 announces after login, without NOTIFY (`imap_capability`
/// replaces the list, so this is a Dovecot that does not offer it).
const CAPS_WITHOUT_NOTIFY: &str = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT \
     SORT=DISPLAY THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL \
     CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC \
     ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SPECIAL-USE LITERAL+";

/// Without NOTIFY, `watch_poll_interval` sets how often the folders other than INBOX are
/// polled; another client's flag change in one of them reaches the mirror through the poll
/// (the full check is an hour away).
#[test]
fn without_notify_watch_polls_other_folders_every_watch_poll_interval() {
    let env = Env::with(
        mailfold_testsupport::Dovecot::builder()
            .users(1)
            .extra_config(&format!("imap_capability = {CAPS_WITHOUT_NOTIFY}")),
    );
    configure(&env, "watch_poll_interval = 1\n");
    env.dovecot.create_mailbox(&env.user, "Work");
    env.deliver("Work", &plain("a@example.org", "work item", "1"));
    env.run(&["sync"]).ok();
    let err = env.home.path().join("watch.err");
    let child = watch(&env, &[], &err);
    let work = env.home.maildir().join("Work").join("cur");
    let flagged = || {
        std::fs::read_dir(&work).unwrap().flatten().any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.split_once(":2,").is_some_and(|(_, f)| f.contains('F'))
        })
    };
    assert!(!flagged());
    wait_for("the start line", || {
        std::fs::read_to_string(&err).is_ok_and(|t| t.contains("watching"))
    });
    env.dovecot.doveadm(&[
        "flags",
        "add",
        "-u",
        &env.user,
        "\\Flagged",
        "mailbox",
        "Work",
        "uid",
        "1",
    ]);
    wait_for("the flag change in Work", flagged);
    stop(child);
    let text = std::fs::read_to_string(&err).unwrap();
    // The state records INBOX, Work and the five special-use folders.
    assert!(
        text.contains(
            "mailfold: watching 7 folders of account t: IDLE on INBOX, polling 6 folders \
             every 1 s (LIST-STATUS)"
        ),
        "{text}"
    );
}
