//! Watch mode against a private Dovecot: a delivery reaches the Maildir and a mutt-style
//! flag rename reaches the server within seconds, with IDLE where offered and NOOP polling where
//! it is hidden (seed V0028); the watch settles instead of reacting to its own changes; a dropped
//! connection is reconnected; stop returns promptly. Every folder is watched: through NOTIFY
//! (RFC 5465) where the server offers it, else by polling the folders IDLE does not cover.

#[path = "sync_common.rs"]
mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{letters_of, message, Env};
use mailfold_sync::{watch_account, AccountSpec, StopSignal, SyncError, SyncReport, WatchOptions};
use mailfold_testsupport::{Dovecot, Fault, FaultPlan, FaultProxy};

/// A watch running on its own thread, with what it reported.
struct Running {
    stop: StopSignal,
    handle: JoinHandle<Result<(), SyncError>>,
    reports: Arc<Mutex<Vec<SyncReport>>>,
    notices: Arc<Mutex<Vec<String>>>,
    starts: Arc<Mutex<Vec<String>>>,
}

impl Running {
    fn start(account: AccountSpec, mut opts: WatchOptions) -> Running {
        let reports = Arc::new(Mutex::new(Vec::new()));
        let notices = Arc::new(Mutex::new(Vec::new()));
        let r = Arc::clone(&reports);
        opts.on_report = Arc::new(move |rep: &SyncReport| r.lock().unwrap().push(rep.clone()));
        let n = Arc::clone(&notices);
        opts.on_notice = Arc::new(move |s: &str| n.lock().unwrap().push(s.to_owned()));
        let starts = Arc::new(Mutex::new(Vec::new()));
        let st = Arc::clone(&starts);
        opts.on_start = Arc::new(move |s: &str| st.lock().unwrap().push(s.to_owned()));
        let stop = StopSignal::new();
        let s = stop.clone();
        let handle = std::thread::spawn(move || watch_account(&account, &opts, &s));
        let me = Running {
            stop,
            handle,
            reports,
            notices,
            starts,
        };
        assert!(
            wait_until(Duration::from_secs(15), || me.runs() >= 1),
            "no first run; notices: {:?}",
            me.notices()
        );
        me
    }

    fn runs(&self) -> usize {
        self.reports.lock().unwrap().len()
    }

    fn notices(&self) -> Vec<String> {
        self.notices.lock().unwrap().clone()
    }

    fn starts(&self) -> Vec<String> {
        self.starts.lock().unwrap().clone()
    }

    /// Stops the watch and returns how long that took.
    fn stop(self) -> Duration {
        let t = Instant::now();
        self.stop.stop();
        let r = self.handle.join().expect("watch thread panicked");
        let took = t.elapsed();
        assert!(r.is_ok(), "watch failed: {r:?}");
        took
    }
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn env_with_rawlog() -> Env {
    let dovecot = Dovecot::builder().users(1).rawlog(true).start();
    let u = dovecot.user(0).clone();
    Env {
        dovecot,
        dir: tempfile::tempdir().expect("tempdir"),
        user: u.name,
        password: u.password,
    }
}

fn fast_opts() -> WatchOptions {
    WatchOptions {
        debounce: Duration::from_millis(300),
        full_check_every: Duration::from_secs(600),
        ..WatchOptions::default()
    }
}

/// The local INBOX file holding message `i`, if any.
fn local_file(env: &Env, i: usize) -> Option<PathBuf> {
    let needle = format!("Message-ID: <INBOX.{i}@mailfold.test>");
    env.local_files("INBOX")
        .into_iter()
        .find(|p| std::fs::read(p).is_ok_and(|b| String::from_utf8_lossy(&b).contains(&needle)))
}

/// The server's flag letters of message `i`, if it has it.
fn server_letters(env: &Env, i: usize) -> Option<String> {
    let needle = format!("Message-ID: <INBOX.{i}@mailfold.test>");
    common::files_of(&env.server_dir("INBOX"))
        .into_iter()
        .find(|p| std::fs::read(p).is_ok_and(|b| String::from_utf8_lossy(&b).contains(&needle)))
        .map(|p| letters_of(&p))
}

/// The commands the client sent over every connection (Dovecot's raw log, client side).
fn client_commands(env: &Env) -> Vec<String> {
    env.dovecot
        .rawlog(&env.user)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            // "<time> <direction?>" formats vary; find "tag COMMAND" by the second word being
            // upper case.
            let words: Vec<&str> = w.by_ref().collect();
            words
                .windows(2)
                .find(|p| p[1].chars().all(|c| c.is_ascii_uppercase()) && p[1].len() >= 4)
                .map(|p| p[1].to_owned())
        })
        .collect()
}

/// Mutt changes flags by renaming the file within `cur/` (a file in `new/` moves to `cur/`).
fn mutt_mark_seen(p: &std::path::Path) -> PathBuf {
    let name = p.file_name().unwrap().to_string_lossy().into_owned();
    let base = name
        .split_once(":2,")
        .map(|(b, _)| b.to_owned())
        .unwrap_or(name);
    let cur = p.parent().unwrap().parent().unwrap().join("cur");
    let to = cur.join(format!("{base}:2,S"));
    std::fs::rename(p, &to).unwrap();
    to
}

/// Delivery while watching arrives locally; a local flag rename arrives on the server; the watch
/// then goes quiet (no loop on its own changes); stop is prompt. With IDLE, as Dovecot offers it.
#[test]
fn v0028_idle_where_offered_changes_flow_both_ways_within_seconds() {
    let env = env_with_rawlog();
    env.deliver("INBOX", &message("INBOX", 0));
    let w = Running::start(env.account(), fast_opts());
    assert!(local_file(&env, 0).is_some(), "first run downloads");

    let t = Instant::now();
    env.deliver("INBOX", &message("INBOX", 1));
    assert!(
        wait_until(Duration::from_secs(5), || local_file(&env, 1).is_some()),
        "delivery not downloaded within 5 s; notices {:?}",
        w.notices()
    );
    let pulled = t.elapsed();

    let f = local_file(&env, 1).unwrap();
    let t = Instant::now();
    mutt_mark_seen(&f);
    assert!(
        wait_until(Duration::from_secs(5), || server_letters(&env, 1)
            .is_some_and(|l| l.contains('S'))),
        "local \\Seen not pushed within 5 s; notices {:?}",
        w.notices()
    );
    let pushed = t.elapsed();

    // Settled: its own downloads and STOREs may cause a follow-up run each, not an endless
    // chain.
    std::thread::sleep(Duration::from_secs(2));
    let settled = w.runs();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(w.runs(), settled, "the watch keeps reacting to itself");
    assert!(settled <= 8, "{settled} runs for two changes");

    let took = w.stop();
    assert!(took < Duration::from_secs(3), "stop took {took:?}");
    let cmds = client_commands(&env);
    assert!(cmds.iter().any(|c| c == "IDLE"), "no IDLE sent: {cmds:?}");
    assert!(
        cmds.iter().filter(|c| *c == "LOGOUT").count() >= 2,
        "the watcher logs out too: {cmds:?}"
    );
    eprintln!("pulled in {pulled:?}, pushed in {pushed:?}, {settled} runs");
}

/// Seed V0028 where IDLE is absent (hidden here): NOOP polling finds the delivery.
#[test]
fn v0028_noop_polling_when_idle_is_hidden() {
    let env = env_with_rawlog();
    let opts = WatchOptions {
        hide_capabilities: vec!["IDLE".into()],
        poll_every: Duration::from_millis(500),
        ..fast_opts()
    };
    let w = Running::start(env.account(), opts);
    // Delivered once the watch is set up and its catch-up run is over, so that only a poll can
    // find it: delivered earlier, the first run or the catch-up would, with no NOOP needed.
    assert!(
        wait_until(Duration::from_secs(10), || !w.starts().is_empty()),
        "the watch did not start; notices {:?}",
        w.notices()
    );
    std::thread::sleep(Duration::from_secs(1));
    env.deliver("INBOX", &message("INBOX", 7));
    assert!(
        wait_until(Duration::from_secs(5), || local_file(&env, 7).is_some()),
        "delivery not found by polling; notices {:?}",
        w.notices()
    );
    let took = w.stop();
    assert!(took < Duration::from_secs(3), "stop took {took:?}");
    let cmds = client_commands(&env);
    assert!(!cmds.iter().any(|c| c == "IDLE"), "IDLE sent: {cmds:?}");
    assert!(cmds.iter().any(|c| c == "NOOP"), "no NOOP sent: {cmds:?}");
}

/// The server drops the watcher's connection (an administrator kick, as on a server restart):
/// the watcher reconnects, and mail delivered afterwards still arrives.
#[test]
fn a_dropped_connection_is_reconnected() {
    let env = Env::with_users(1);
    // Through a proxy that forwards untouched, to count connections.
    let proxy = FaultProxy::start(env.dovecot.imaps_addr(), FaultPlan::Always(Fault::None));
    let mut account = env.account();
    account.port = proxy.addr().port();
    let w = Running::start(account, fast_opts());
    let before = proxy.connection_count();
    env.dovecot.doveadm(&["kick", &env.user]);
    assert!(
        wait_until(Duration::from_secs(8), || w
            .notices()
            .iter()
            .any(|n| n.contains("connected again"))),
        "no reconnection; notices {:?}",
        w.notices()
    );
    assert!(proxy.connection_count() > before);
    env.deliver("INBOX", &message("INBOX", 3));
    assert!(
        wait_until(Duration::from_secs(5), || local_file(&env, 3).is_some()),
        "delivery after reconnection not downloaded; notices {:?}",
        w.notices()
    );
    let took = w.stop();
    assert!(took < Duration::from_secs(3), "stop took {took:?}");
}

/// Nothing to connect to: the watch keeps retrying with backoff, reports the failed runs, and
/// still stops at once.
#[test]
fn an_unreachable_server_is_retried_and_stop_is_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let port = mailfold_testsupport::free_port(std::net::Ipv4Addr::LOCALHOST.into());
    let mut a = AccountSpec::new(
        "down",
        "127.0.0.1",
        "nobody",
        mailfold_sync::Secret::new("x".to_owned()),
        dir.path().join("mail"),
        dir.path().join("state.db"),
    );
    a.port = port;
    let w = Running::start(a, fast_opts());
    assert!(
        wait_until(Duration::from_secs(5), || w.runs() >= 2),
        "the failed first run is retried after about a second"
    );
    {
        let reports = w.reports.lock().unwrap();
        assert!(reports.iter().all(|r| !r.errors.is_empty()));
    }
    assert!(w
        .notices()
        .iter()
        .any(|n| n.contains("reconnecting in") || n.contains("retrying in")));
    let took = w.stop();
    assert!(took < Duration::from_secs(2), "stop took {took:?}");
}

/// The server's flag letters of the message of `folder` numbered `i`, if it has it.
fn server_letters_in(env: &Env, folder: &str, i: usize) -> Option<String> {
    let needle = format!("Message-ID: <{folder}.{i}@mailfold.test>");
    common::files_of(&env.server_dir(folder))
        .into_iter()
        .find(|p| std::fs::read(p).is_ok_and(|b| String::from_utf8_lossy(&b).contains(&needle)))
        .map(|p| letters_of(&p))
}

/// The local flag letters of the message of `folder` numbered `i`, if the mirror has it.
fn local_letters_in(env: &Env, folder: &str, i: usize) -> Option<String> {
    let needle = format!("Message-ID: <{folder}.{i}@mailfold.test>");
    env.local_files(folder)
        .into_iter()
        .find(|p| std::fs::read(p).is_ok_and(|b| String::from_utf8_lossy(&b).contains(&needle)))
        .map(|p| letters_of(&p))
}

/// `Work` with two messages on the server, before the watch starts.
fn with_work_folder(env: &Env) {
    env.dovecot.create_mailbox(&env.user, "Work");
    env.deliver("Work", &message("Work", 0));
    env.deliver("Work", &message("Work", 1));
}

/// Another client flags, delivers and expunges in `Work`; each reaches the mirror. The
/// full check is ten minutes away, so only the server watch can explain it.
fn changes_in_work_reach_the_mirror(env: &Env, w: &Running) {
    assert_eq!(local_letters_in(env, "Work", 0).as_deref(), Some(""));
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
    assert_eq!(server_letters_in(env, "Work", 0).as_deref(), Some("F"));
    assert!(
        wait_until(Duration::from_secs(20), || local_letters_in(env, "Work", 0)
            .is_some_and(|l| l.contains('F'))),
        "a flag change in Work did not reach the mirror; notices {:?}",
        w.notices()
    );
    env.deliver("Work", &message("Work", 2));
    assert!(
        wait_until(Duration::from_secs(20), || local_letters_in(env, "Work", 2)
            .is_some()),
        "a delivery to Work did not reach the mirror; notices {:?}",
        w.notices()
    );
    env.dovecot
        .doveadm(&["expunge", "-u", &env.user, "mailbox", "Work", "uid", "2"]);
    assert!(
        wait_until(Duration::from_secs(20), || local_letters_in(env, "Work", 1)
            .is_none()),
        "an expunge in Work did not reach the mirror; notices {:?}",
        w.notices()
    );
}

/// A folder another client creates, with a message in it, reaches the mirror.
fn a_new_folder_reaches_the_mirror(env: &Env, w: &Running) {
    env.dovecot.create_mailbox(&env.user, "Later");
    env.deliver("Later", &message("Later", 0));
    assert!(
        wait_until(Duration::from_secs(20), || local_letters_in(
            env, "Later", 0
        )
        .is_some()),
        "a new folder did not reach the mirror; notices {:?}",
        w.notices()
    );
}

/// RFC 5465: with NOTIFY, one connection hears of changes in every folder, so a flag change
/// made by another client in a folder other than INBOX is synced at once, not at the next
/// full check.
#[test]
fn notify_brings_changes_in_every_folder_long_before_the_full_check() {
    let env = env_with_rawlog();
    with_work_folder(&env);
    let w = Running::start(env.account(), fast_opts());
    // INBOX, Work and the five special-use folders of the test server.
    assert_eq!(w.starts(), ["watching 7 folders of account test: NOTIFY"]);
    changes_in_work_reach_the_mirror(&env, &w);
    a_new_folder_reaches_the_mirror(&env, &w);
    let took = w.stop();
    assert!(took < Duration::from_secs(3), "stop took {took:?}");
    let cmds = client_commands(&env);
    assert!(
        cmds.iter().any(|c| c == "NOTIFY"),
        "no NOTIFY sent: {cmds:?}"
    );
    // NOTIFY replaces the INBOX watcher's connection and any polling.
    assert!(
        !cmds.iter().any(|c| c == "EXAMINE"),
        "an IDLE watcher was started: {cmds:?}"
    );
}

/// The capabilities Dovecot 2.3 announces after login, without NOTIFY (`imap_capability`
/// replaces the list, so this is a Dovecot that does not offer it).
const CAPS_WITHOUT_NOTIFY: &str = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT \
     SORT=DISPLAY THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL \
     CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC \
     ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SPECIAL-USE LITERAL+";

fn env_without_notify() -> Env {
    let dovecot = Dovecot::builder()
        .users(1)
        .rawlog(true)
        .extra_config(&format!("imap_capability = {CAPS_WITHOUT_NOTIFY}"))
        .start();
    let u = dovecot.user(0).clone();
    Env {
        dovecot,
        dir: tempfile::tempdir().expect("tempdir"),
        user: u.name,
        password: u.password,
    }
}

/// Without NOTIFY: IDLE on INBOX, and the other folders polled with LIST-STATUS; a poll
/// that finds nothing new triggers no run.
#[test]
fn without_notify_other_folders_are_polled_with_list_status() {
    let env = env_without_notify();
    with_work_folder(&env);
    let opts = WatchOptions {
        folder_poll_every: Duration::from_millis(500),
        ..fast_opts()
    };
    let w = Running::start(env.account(), opts);
    assert_eq!(
        w.starts(),
        [
            "watching 7 folders of account test: IDLE on INBOX, polling 6 folders every 0.5 s \
          (LIST-STATUS)"
        ]
    );
    // Quiet: polls that find nothing new start no run.
    std::thread::sleep(Duration::from_secs(2));
    let settled = w.runs();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(w.runs(), settled, "polls without changes started runs");
    changes_in_work_reach_the_mirror(&env, &w);
    a_new_folder_reaches_the_mirror(&env, &w);
    w.stop();
    let cmds = client_commands(&env);
    assert!(!cmds.iter().any(|c| c == "NOTIFY"), "NOTIFY sent: {cmds:?}");
    assert!(
        cmds.iter().any(|c| c == "IDLE"),
        "no IDLE on INBOX: {cmds:?}"
    );
}

/// Without NOTIFY or LIST-STATUS: one round of pipelined STATUS per poll.
#[test]
fn without_notify_or_list_status_other_folders_are_polled_with_status() {
    let env = env_without_notify();
    with_work_folder(&env);
    let opts = WatchOptions {
        folder_poll_every: Duration::from_millis(500),
        hide_capabilities: vec!["LIST-STATUS".into()],
        ..fast_opts()
    };
    let w = Running::start(env.account(), opts);
    assert!(w.starts()[0].ends_with("(STATUS)"), "{:?}", w.starts());
    changes_in_work_reach_the_mirror(&env, &w);
    w.stop();
}

/// RFC 5465 5.8: after `NOTIFICATIONOVERFLOW` the server has stopped notifying and changes
/// may have been lost; the watch says so, asks for NOTIFY again and goes on waiting.
#[test]
fn a_notification_overflow_is_reported_and_notify_asked_for_again() {
    use mailfold_testsupport::{Script, ScriptedServer};
    let server = ScriptedServer::start(
        Script::new()
            .step_timeout(Duration::from_secs(20))
            .send_line("* OK [CAPABILITY IMAP4rev1] scripted server ready")
            .expect("LOGIN *")
            .send_tagged("OK [CAPABILITY IMAP4rev1 IDLE CONDSTORE NOTIFY] logged in")
            .expect("ENABLE CONDSTORE")
            .send_line("* ENABLED CONDSTORE")
            .send_tagged("OK enabled")
            .expect("NOTIFY SET *")
            .send_tagged("OK notifying")
            .expect("LIST *")
            .send_line("* LIST () \".\" INBOX")
            .send_tagged("OK listed")
            .expect("IDLE")
            .send_line("+ idling")
            .send_line("* OK [NOTIFICATIONOVERFLOW] too many changes")
            .expect_line("DONE")
            .send_tagged("OK idle done")
            .expect("NOTIFY SET (selected *) (personal *)")
            .send_tagged("OK notifying again")
            .expect("IDLE")
            .send_line("+ idling")
            .stall(),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut a = AccountSpec::new(
        "scripted",
        "127.0.0.1",
        "user",
        mailfold_sync::Secret::new("pw".to_owned()),
        dir.path().join("mail"),
        dir.path().join("state.db"),
    );
    a.port = server.port();
    a.tls = mailfold_sync::TlsMode::None;
    a.allow_plaintext_password = true;
    // The sync runs meet the same script and fail; only the watcher's connection matters.
    let w = Running::start(a, fast_opts());
    assert!(
        wait_until(Duration::from_secs(20), || w
            .notices()
            .iter()
            .any(|n| n.contains("NOTIFICATIONOVERFLOW"))),
        "no overflow notice; notices {:?}",
        w.notices()
    );
    assert!(
        wait_until(Duration::from_secs(20), || server.reports().iter().any(
            |r| {
                String::from_utf8_lossy(&r.received)
                    .matches("NOTIFY SET")
                    .count()
                    == 2
            }
        )),
        "NOTIFY was not asked for again"
    );
    assert_eq!(
        w.starts(),
        ["watching 1 folder of account scripted: NOTIFY"]
    );
    // The server no longer answers (it stalls after the second IDLE): a stop is still
    // prompt, not held up until the command timeout.
    let took = w.stop();
    assert!(took < Duration::from_secs(10), "stop took {took:?}");
}
