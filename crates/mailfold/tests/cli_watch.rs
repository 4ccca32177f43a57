//! `mailfold watch` on the real binary against a private Dovecot: mail delivered while it
//! runs appears in the Maildir within seconds (seed V0028: IDLE where offered), other commands
//! run beside it (it holds the account's lock only during a sync run), and SIGTERM stops it
//! cleanly with status 0.

mod util;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::{plain, Env};

fn count_messages(root: &Path) -> usize {
    ["new", "cur"]
        .iter()
        .filter_map(|d| std::fs::read_dir(root.join("INBOX").join(d)).ok())
        .map(|rd| rd.count())
        .sum()
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn v0028_watch_brings_new_mail_in_within_seconds_and_stops_on_sigterm() {
    let env = Env::new();
    env.deliver("INBOX", &plain("a@example.org", "before", "one"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailfold"))
        .arg("--config")
        .arg(env.home.config())
        .args(["watch", "--full-check-every", "60"])
        .env("HOME", env.home.path())
        .env("XDG_STATE_HOME", env.home.path().join("xdg-state"))
        .env_remove("MAILFOLD_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mailfold watch");
    let maildir = env.home.maildir();
    wait_for("the initial sync", Duration::from_secs(30), || {
        count_messages(&maildir) == 1
    });

    // While it waits for changes the account is free: a changing command runs (retried while
    // a sync run holds the lock, which the command reports as busy, exit 4).
    let start = Instant::now();
    loop {
        let r = env.run(&["--offline", "create-folder", "X"]);
        if r.code == 0 {
            break;
        }
        assert_eq!(r.code, 4, "{}", r.stderr);
        assert!(
            r.stderr.contains("`mailfold watch` is running"),
            "{}",
            r.stderr
        );
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still busy after 10 s: {}",
            r.stderr
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    env.deliver("INBOX", &plain("b@example.org", "while watching", "two"));
    wait_for("the delivered message", Duration::from_secs(20), || {
        count_messages(&maildir) == 2
    });

    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "watch did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    assert!(
        status.success(),
        "exit {status:?}; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The lock is free after it stopped, and the folder made beside it is there.
    env.run(&["--offline", "create-folder", "Y"]).ok();
    assert!(env.home.maildir().join("X").join("cur").is_dir());
}
