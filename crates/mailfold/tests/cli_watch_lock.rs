//! `mailfold watch` takes the account's lock only around each sync run: while it
//! waits for changes, the user's one-off commands (`flag`, `append`) run on the same account,
//! and the watch goes on pulling and pushing afterwards.

mod util;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use util::{plain, Env};

fn count_local(root: &Path) -> usize {
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

/// Kills the watch if the test fails before stopping it, so no process outlives the test.
struct Watch(Option<Child>);

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs a changing command until it is not refused as busy (exit 4: it met a sync run of the
/// watch, which holds the lock for its few hundred milliseconds); fails if it stays refused
/// for 5 s, as it would if the watch held the lock while idle.
fn run_beside_watch(env: &Env, args: &[&str]) -> util::Run {
    let start = Instant::now();
    loop {
        let r = env.run(args);
        if r.code != 4 {
            return r.ok();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "still busy after 5 s: {}",
            r.stderr
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn flag_and_append_run_beside_a_watch_which_then_pulls_and_pushes() {
    let env = Env::new();
    env.deliver("INBOX", &plain("a@example.org", "before", "one"));
    let child = Command::new(env!("CARGO_BIN_EXE_mailfold"))
        .arg("--config")
        .arg(env.home.config())
        .args(["watch", "--full-check-every", "60"])
        .env("HOME", env.home.path())
        .env("XDG_STATE_HOME", env.home.path().join("xdg-state"))
        .env_remove("MAILFOLD_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mailfold watch");
    let mut watch = Watch(Some(child));
    let maildir = env.home.maildir();
    wait_for("the initial sync", Duration::from_secs(30), || {
        count_local(&maildir) == 1
    });

    // A changing command on the watched account: it may meet a run in progress, never the
    // watch's idle time.
    run_beside_watch(&env, &["flag", "INBOX", "1", "--set", "flagged"]);
    assert!(
        env.server("INBOX", "flags").contains("\\Flagged"),
        "{}",
        env.server("INBOX", "flags")
    );

    let file = env.home.path().join("note.eml");
    std::fs::write(&file, plain("Me <user1@example.org>", "appended", "a")).unwrap();
    run_beside_watch(
        &env,
        &["append", file.to_str().unwrap(), "--folder", "INBOX"],
    );
    assert_eq!(env.count("INBOX"), 2);

    // The watch still pulls what the server gets …
    env.deliver("INBOX", &plain("b@example.org", "while watching", "two"));
    wait_for("the delivered message", Duration::from_secs(20), || {
        count_local(&maildir) == 3
    });
    // … and pushes what a mail reader adds.
    let new = maildir.join("INBOX").join("new");
    std::fs::write(
        new.join("1700000000.reader.host"),
        plain("Me <user1@example.org>", "written locally", "three"),
    )
    .unwrap();
    wait_for(
        "the local message on the server",
        Duration::from_secs(20),
        || env.count("INBOX") == 4,
    );

    // SIGTERM ends it cleanly.
    let child = watch.0.take().expect("the watch is running");
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "exit {:?}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
