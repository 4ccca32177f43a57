//! The no-change re-sync (seed V0045) against a private Dovecot: a re-sync with no change
//! anywhere decides "unchanged" per folder from the STATUS round and the local directory stamp,
//! before touching the Maildir or the state rows; every mutt-like change is still noticed.
//!
//! Each run here is the engine's own sequence (gather, plan, apply, `record_stamps`) so the
//! test can read the gather's counters.

#[path = "sync_common.rs"]
mod common;

use std::time::Duration;

use common::{message, Env};
use mailfold_store::{DirStamp, Folder};
use mailfold_sync::apply::Applier;
use mailfold_sync::gather::{self, Gathered, StampCheck};
use mailfold_sync::plan::{self, PlanConfig, SafetyValve};
use mailfold_sync::{NetRemote, Remote, SyncReport, Traffic};

/// What one run did.
struct Run {
    g: Gathered,
    report: SyncReport,
    /// Write transactions the run committed.
    commits: u64,
    /// Local stamps recorded at its end.
    stamped: usize,
    /// How `record_stamps` checked each folder it checked (a folder whose followed listing
    /// did not prove it is then listed: two entries).
    checks: Vec<(String, StampCheck)>,
}

impl Run {
    fn traffic(&self) -> &Traffic {
        self.report.traffic.as_ref().expect("traffic")
    }

    /// Folders `record_stamps` listed.
    fn listed(&self) -> Vec<&str> {
        self.checked(StampCheck::Listing)
    }

    /// The folders checked `how`, each once: a folder whose stamp fell in the file system's
    /// current clock tick is checked once more after the tick (`STAMP_RETRY_WAIT`), which
    /// depends on how fast the run was, not on what it read.
    fn checked(&self, how: StampCheck) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .checks
            .iter()
            .filter(|(_, h)| *h == how)
            .map(|(f, _)| f.as_str())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    fn scanned(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .g
            .folders
            .iter()
            .filter(|(_, c)| c.scanned)
            .map(|(p, _)| p.to_string())
            .collect();
        v.sort();
        v
    }
}

fn run(env: &Env) -> Run {
    run_with(env, || {}, &mut |_, _| {})
}

/// [`run`], calling `before_stamps` after the run's last write and before `record_stamps`,
/// and `during_listing` inside its check of each folder it wrote to.
fn run_with(
    env: &Env,
    before_stamps: impl FnOnce(),
    during_listing: &mut dyn FnMut(&Folder, StampCheck),
) -> Run {
    run_hiding(env, &[], before_stamps, during_listing)
}

/// [`run_with`] against a server that seems to lack the capabilities in `hide`.
fn run_hiding(
    env: &Env,
    hide: &[&str],
    before_stamps: impl FnOnce(),
    during_listing: &mut dyn FnMut(&Folder, StampCheck),
) -> Run {
    let a = env.account();
    let (maildir, mut db) = mailfold_sync::open_store(&a).unwrap();
    let mut remote = NetRemote::connect(&a).unwrap();
    for h in hide {
        remote.hide_capability(h);
    }
    let mut report = SyncReport::default();
    let before = db.commits();
    let mut g = gather::gather(&mut remote, &a, &maildir, &db, &mut report)
        .unwrap_or_else(|e| panic!("gather failed: {e}\n{}", env.dovecot.log()));
    let config = PlanConfig {
        valve: SafetyValve::default(),
        force: false,
        download: a.download,
        pull: false,
        keep_new_local: false,
    };
    let plan = plan::plan(&g.input, &config);
    for r in &plan.refused {
        report.refused.push(r.to_string());
    }
    {
        let mut applier = Applier::new(&mut remote, &a, &maildir, &mut db, &mut g, &mut report);
        applier.apply(&plan).unwrap();
    }
    if report.is_complete() && db.is_fresh().unwrap() {
        db.mark_synced().unwrap();
    }
    before_stamps();
    let mut checks = Vec::new();
    let stamped = gather::record_stamps_with(&mut db, &maildir, &g, &report, &mut |f, how| {
        let name = f.path().file_name().unwrap().to_string_lossy();
        checks.push((name.trim_start_matches('.').to_owned(), how));
        during_listing(f, how)
    })
    .unwrap();
    let commits = db.commits() - before;
    report.traffic = Some(Traffic::of(&remote.stats()));
    remote.logout();
    Run {
        g,
        report,
        commits,
        stamped,
        checks,
    }
}

fn folders() -> Vec<String> {
    (0..20).map(|i| format!("F{i:02}")).collect()
}

/// 20 folders with two messages each, plus INBOX with one.
fn twenty_folders(env: &Env) {
    env.deliver("INBOX", &message("INBOX", 0));
    for f in folders() {
        env.dovecot.create_mailbox(&env.user, &f);
        env.deliver(&f, &message(&f, 1));
        env.deliver(&f, &message(&f, 2));
    }
}

/// Long enough for every directory time of the last run to be settled.
fn settle() {
    std::thread::sleep(DirStamp::SETTLE + Duration::from_millis(150));
}

/// The first sync, which (having written into every folder) checks and records every
/// folder's stamp at its end. Returns how many folders the account has (the 20, INBOX, and
/// the special-use folders the test Dovecot creates).
fn steady(env: &Env) -> usize {
    twenty_folders(env);
    let first = run(env);
    assert!(first.report.is_complete(), "{:#?}", first.report);
    let n = first.g.folders.len();
    assert!(n >= 21);
    assert_eq!(first.stamped, n, "{:#?}", first.g.folders);
    n
}

fn server_flag(env: &Env, folder: &str, uid: u32, op: &str, flag: &str) {
    env.dovecot.doveadm(&[
        "flags",
        op,
        "-u",
        &env.user,
        flag,
        "mailbox",
        &common::mailbox_arg(folder),
        "uid",
        &uid.to_string(),
    ]);
}

/// Marks the first message of `folder` still in `new/` with `flag` as a mail reader does:
/// renamed into `cur/` with the flag in its info part.
fn mark(env: &Env, folder: &str, flag: char) {
    let file = env
        .local_files(folder)
        .into_iter()
        .find(|p| p.parent().is_some_and(|d| d.ends_with("new")))
        .unwrap_or_else(|| panic!("no file in new/: {:?}", env.local_files(folder)));
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let to = env
        .local_dir(folder)
        .join("cur")
        .join(format!("{name}:2,{flag}"));
    std::fs::rename(&file, &to).unwrap();
}

/// Seed V0045: with nothing changed on either side, the second run sends no
/// SELECT (as before) and now also scans no folder, reads no message row and commits nothing.
#[test]
fn v0045_no_change_resync_scans_nothing_and_reads_no_rows() {
    let env = Env::new();
    let n = steady(&env);
    let r = run(&env);
    assert!(r.report.is_complete(), "{:#?}", r.report);
    assert!(!r.report.changed_anything(), "{:#?}", r.report);
    assert_eq!(r.traffic().count("SELECT"), 0, "{:#?}", r.traffic());
    assert_eq!(r.traffic().count("EXAMINE"), 0, "{:#?}", r.traffic());
    assert_eq!(r.traffic().count("UID FETCH"), 0, "{:#?}", r.traffic());
    assert_eq!(r.g.scanned_folders(), 0, "{:?}", r.scanned());
    assert_eq!(r.g.loaded_folders(), 0);
    assert_eq!(r.g.skipped_folders(), n);
    assert_eq!(r.report.unchanged_folders, n);
    assert_eq!(r.commits, 0, "a run that changes nothing writes nothing");
    assert_eq!(r.stamped, 0);
    // Nothing was lost on the way: both sides still hold everything.
    for f in folders() {
        assert_eq!(env.local_folder(&f).len(), 2, "{f}");
    }
}

/// mutt renames a file to add `S`, moves a file from one folder to another, and a new message
/// lands in `new/`: each change moves the stamps of the directories it touched, those folders
/// (and only those) are scanned, and the next run brings the server along.
#[test]
fn mutt_like_changes_are_all_noticed() {
    let env = Env::new();
    let n = steady(&env);
    // F00: mark a message seen, as mutt does: out of new/, into cur/ with the S flag.
    mark(&env, "F00", 'S');
    // F01 → F02: move a message.
    let moved = env.local_files("F01").remove(0);
    std::fs::rename(
        &moved,
        env.local_dir("F02")
            .join("cur")
            .join(moved.file_name().unwrap()),
    )
    .unwrap();
    // F03: a new message delivered by a local program.
    env.drop_local("F03", "1700000999.M1P1.mutt", &message("F03", 9));

    let r = run(&env);
    assert!(r.report.is_complete(), "{:#?}", r.report);
    assert_eq!(r.scanned(), ["F00", "F01", "F02", "F03"]);
    assert_eq!(r.g.skipped_folders(), n - 4);
    assert_eq!(
        env.server_folder("F00")
            .iter()
            .filter(|(_, l)| l.contains('S'))
            .count(),
        1
    );
    assert_eq!(env.server_folder("F01").len(), 1);
    assert_eq!(env.server_folder("F02").len(), 3);
    assert_eq!(env.server_folder("F03").len(), 3);
    for f in ["F00", "F01", "F02", "F03"] {
        assert_eq!(env.server_folder(f), env.local_folder(f), "{f}");
    }
}

/// Local changes to each part a stamp covers are noticed in nested folders too, whose stamps
/// the listing reads through the handle it lists them with, at any depth: a flag added by a
/// rename inside `cur/` of a folder two levels down, a new file in `new/` of a folder one
/// level down. Their parent, unchanged, is still skipped. A file in `tmp/` alone (a delivery
/// still being written) is no message and moves no stamp: that folder is skipped as well,
/// and the file is left where it is.
#[test]
fn cur_and_new_changes_in_nested_folders_are_noticed_and_tmp_alone_moves_nothing() {
    let env = Env::new();
    twenty_folders(&env);
    env.dovecot
        .create_mailbox(&env.user, &common::mailbox_arg("F00/Sub"));
    env.deliver("F00/Sub", &message("F00/Sub", 1));
    let deep = "F00/Sub/Deep";
    env.seed_server(deep, &[(message(deep, 1), "S"), (message(deep, 2), "S")]);
    let first = run(&env);
    assert!(first.report.is_complete(), "{:#?}", first.report);
    let n = first.g.folders.len();
    assert_eq!(first.stamped, n, "{:#?}", first.g.folders);
    let r = run(&env);
    assert_eq!(r.g.skipped_folders(), n, "{:?}", r.scanned());

    // cur/ only: `F` added to a seen message, renamed in place as mutt does.
    let file = env
        .local_files(deep)
        .into_iter()
        .find(|p| p.parent().is_some_and(|d| d.ends_with("cur")))
        .unwrap_or_else(|| panic!("no file in cur/: {:?}", env.local_files(deep)));
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let flagged = name.strip_suffix(":2,S").expect("seen message").to_owned() + ":2,FS";
    std::fs::rename(&file, file.with_file_name(flagged)).unwrap();
    // new/ only: a message delivered by a local program.
    env.drop_local("F00/Sub", "1700000999.M1P1.mutt", &message("F00/Sub", 9));
    // tmp/ only: a delivery still being written.
    let half = env
        .local_dir("F01")
        .join("tmp")
        .join("1700000998.M1P1.half");
    std::fs::write(&half, b"Subject: half\r\n").unwrap();

    let r = run(&env);
    assert!(r.report.is_complete(), "{:#?}", r.report);
    assert_eq!(r.scanned(), ["F00/Sub", "F00/Sub/Deep"]);
    assert_eq!(r.g.skipped_folders(), n - 2);
    let flagged_on_server = env
        .server_folder(deep)
        .iter()
        .filter(|(_, l)| l.contains('F'))
        .count();
    assert_eq!(flagged_on_server, 1);
    assert_eq!(env.server_folder("F00/Sub").len(), 2);
    for f in ["F00", "F00/Sub", deep, "F01"] {
        assert_eq!(env.server_folder(f), env.local_folder(f), "{f}");
    }
    assert!(half.exists(), "a file in tmp/ is left alone");
    let r = run(&env);
    assert_eq!(r.g.scanned_folders(), 0, "{:?}", r.scanned());
}

/// A mail reader's change just before a run leaves a stamp too recent for the two-second
/// rule; the run scans the folder, and its end-of-run check (listing against the state)
/// records the stamp. The run after it sees its own STORE echoed (the server's
/// HIGHESTMODSEQ moved past the one recorded) and reads only what the echo names: the
/// folder is not scanned and its rows are not loaded; the third run skips it.
#[test]
fn a_change_just_before_a_run_is_checked_and_stamped_at_its_end() {
    let env = Env::new();
    let n = steady(&env);
    mark(&env, "F05", 'F');
    let r = run(&env);
    assert_eq!(r.scanned(), ["F05"]);
    assert_eq!(r.stamped, 1);
    assert_eq!(
        env.server_folder("F05")
            .iter()
            .filter(|(_, l)| l.contains('F'))
            .count(),
        1
    );
    let r = run(&env);
    assert!(!r.report.changed_anything(), "{:#?}", r.report);
    assert_eq!(r.g.scanned_folders(), 0, "{:?}", r.scanned());
    assert_eq!(r.g.loaded_folders(), 0);
    assert_eq!(r.g.partial_folders(), 1);
    assert_eq!(r.g.skipped_folders(), n - 1);
    let r = run(&env);
    assert_eq!(r.g.scanned_folders(), 0, "{:?}", r.scanned());
    assert_eq!(r.g.loaded_folders(), 0);
    assert_eq!(r.g.skipped_folders(), n);
}

/// A run that wrote to folders changed on the server only (downloads into three, flag
/// renames in two others) reads them partially, records their stamps after checking them,
/// so the next run with no change scans and loads nothing at all.
#[test]
fn after_a_writing_run_the_next_run_scans_and_loads_nothing() {
    let env = Env::new();
    let n = steady(&env);
    for f in ["F00", "F01", "F02"] {
        env.deliver(f, &message(f, 7));
    }
    for f in ["F03", "F04"] {
        server_flag(&env, f, 1, "add", "\\Flagged");
    }
    let r = run(&env);
    assert!(r.report.is_complete(), "{:#?}", r.report);
    assert!(r.report.changed_anything());
    assert_eq!(r.g.scanned_folders(), 0, "{:?}", r.scanned());
    assert_eq!(r.g.loaded_folders(), 0);
    assert_eq!(r.g.partial_folders(), 5);
    assert_eq!(r.stamped, 5, "{:#?}", r.g.folders);
    for f in ["F00", "F01", "F02"] {
        assert_eq!(env.local_folder(f).len(), 3, "{f}");
    }
    for f in ["F03", "F04"] {
        assert_eq!(
            env.local_folder(f)
                .iter()
                .filter(|(_, l)| l.contains('F'))
                .count(),
            1,
            "{f}"
        );
    }
    let r = run(&env);
    assert!(r.report.is_complete(), "{:#?}", r.report);
    assert!(!r.report.changed_anything(), "{:#?}", r.report);
    assert_eq!(r.g.scanned_folders(), 0, "{:?}", r.scanned());
    assert_eq!(r.g.loaded_folders(), 0);
    assert_eq!(r.g.skipped_folders(), n);
    assert_eq!(r.commits, 0);
}

fn server_expunge(env: &Env, folder: &str, uid: u32) {
    env.dovecot.doveadm(&[
        "expunge",
        "-u",
        &env.user,
        "mailbox",
        &common::mailbox_arg(folder),
        "uid",
        &uid.to_string(),
    ]);
}

/// Changes made on the server only — a flag set and one cleared, a delivery, an expunge, a
/// message moved between two folders — are each read from the CONDSTORE/QRESYNC delta and
/// the rows and files it names: no folder is listed, no folder's rows are read whole, and
/// the mirror ends equal to the server (the move a local move, nothing downloaded twice).
#[test]
fn server_only_changes_read_only_what_the_delta_names() {
    let env = Env::new();
    let n = steady(&env);
    server_flag(&env, "F00", 1, "add", "\\Flagged");
    server_flag(&env, "F01", 2, "add", "\\Seen");
    env.deliver("F02", &message("F02", 8));
    server_expunge(&env, "F03", 1);
    env.dovecot.doveadm(&[
        "move",
        "-u",
        &env.user,
        &common::mailbox_arg("F05"),
        "mailbox",
        &common::mailbox_arg("F04"),
        "uid",
        "2",
    ]);
    let r = run(&env);
    assert!(r.report.is_complete(), "{:#?}", r.report);
    assert_eq!(r.g.scanned_folders(), 0, "{:?}", r.scanned());
    assert_eq!(r.g.loaded_folders(), 0);
    assert_eq!(r.g.partial_folders(), 6, "{:#?}", r.g.folders);
    assert_eq!(r.g.skipped_folders(), n - 6);
    // The moved message was moved locally, not downloaded: only F02's delivery was fetched.
    let downloaded: usize = r.report.folders.iter().map(|f| f.downloaded).sum();
    let moved: usize = r.report.folders.iter().map(|f| f.local_moves).sum();
    assert_eq!((downloaded, moved), (1, 1), "{:#?}", r.report.folders);
    for f in ["F00", "F01", "F02", "F03", "F04", "F05"] {
        assert_eq!(env.server_folder(f), env.local_folder(f), "{f}");
    }
    assert_eq!(env.local_folder("F03").len(), 1);
    assert_eq!(env.local_folder("F04").len(), 1);
    assert_eq!(env.local_folder("F05").len(), 3);
    assert_eq!(r.stamped, 6, "{:#?}", r.g.folders);
    // Their stamps were proved from the listings followed since the start of the run (the
    // run's own renames, deletions and deliveries as the kernel reported them): none of
    // the six was listed.
    assert_eq!(r.listed(), Vec::<&str>::new(), "{:?}", r.checks);
    assert_eq!(
        r.checked(StampCheck::Followed),
        ["F00", "F01", "F02", "F03", "F04", "F05"],
        "{:?}",
        r.checks
    );
    // The echo of nothing: the next run has nothing to read.
    let r = run(&env);
    assert!(!r.report.changed_anything(), "{:#?}", r.report);
    assert_eq!(r.g.skipped_folders(), n);
    assert_eq!(r.commits, 0);
}

/// A server without CONDSTORE cannot say "unchanged" in a STATUS, so every folder is opened
/// every run; but with the local side unchanged, the complete `UID FETCH 1:* (UID FLAGS)`
/// listing is merged against the state's rows one at a time and only the rows and files of
/// what differs are read: no folder is listed or loaded whole, and every change lands.
#[test]
fn without_condstore_the_server_listing_is_merged_and_no_folder_is_listed() {
    let env = Env::new();
    let hide = ["CONDSTORE", "QRESYNC"];
    twenty_folders(&env);
    let first = run_hiding(&env, &hide, || {}, &mut |_, _| {});
    assert!(first.report.is_complete(), "{:#?}", first.report);
    let n = first.g.folders.len();
    assert_eq!(first.stamped, n, "{:#?}", first.g.folders);
    server_flag(&env, "F00", 1, "add", "\\Flagged");
    server_flag(&env, "F01", 1, "add", "\\Seen");
    server_expunge(&env, "F02", 2);
    env.deliver("F03", &message("F03", 8));
    let r = run_hiding(&env, &hide, || {}, &mut |_, _| {});
    assert!(r.report.is_complete(), "{:#?}", r.report);
    assert_eq!(r.g.scanned_folders(), 0, "{:?}", r.scanned());
    assert_eq!(r.g.loaded_folders(), 0);
    assert_eq!(r.g.partial_folders(), n, "{:#?}", r.g.folders);
    // Every folder is opened (no STATUS can skip one), once to be read.
    assert!(
        r.traffic().count("SELECT") >= n as u64,
        "{:#?}",
        r.traffic()
    );
    for f in ["F00", "F01", "F02", "F03"] {
        assert_eq!(env.server_folder(f), env.local_folder(f), "{f}");
    }
    assert_eq!(env.local_folder("F02").len(), 1);
    assert_eq!(env.local_folder("F03").len(), 3);
    let r = run_hiding(&env, &hide, || {}, &mut |_, _| {});
    assert!(!r.report.changed_anything(), "{:#?}", r.report);
    assert_eq!(r.g.scanned_folders(), 0, "{:?}", r.scanned());
    assert_eq!(r.g.loaded_folders(), 0);
}

/// A row whose file carries letters the listing digest leaves aside (Dovecot's keyword
/// letters `a`–`z`) cannot be found by name: the partial read falls back to listing the
/// folder, and the change still lands.
#[test]
fn a_file_the_state_cannot_name_falls_back_to_a_scan() {
    let env = Env::new();
    let n = steady(&env);
    // A mail reader adds a non-standard letter to F06's first message (read and renamed).
    let file = env.local_files("F06").remove(0);
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let base = name.split(':').next().unwrap().to_owned();
    std::fs::rename(
        &file,
        env.local_dir("F06").join("cur").join(format!("{base}:2,a")),
    )
    .unwrap();
    let r = run(&env);
    assert!(r.report.is_complete(), "{:#?}", r.report);
    assert_eq!(r.scanned(), ["F06"]);
    settle();
    for u in [1, 2] {
        server_flag(&env, "F06", u, "add", "\\Flagged");
    }
    let r = run(&env);
    assert!(r.report.is_complete(), "{:#?}", r.report);
    assert_eq!(r.scanned(), ["F06"]);
    assert_eq!(r.g.skipped_folders(), n - 1);
    assert_eq!(env.server_folder("F06"), env.local_folder("F06"));
    assert!(env
        .local_files("F06")
        .iter()
        .any(|p| p.to_string_lossy().ends_with(":2,Fa")));
}

/// A mail reader's changes within milliseconds of the end of a run that wrote to the same
/// folders (a rename adding `S`, a delivery into `new/`) are still noticed by the next run:
/// the stamps recorded were strictly older than the file system's time at the check.
#[test]
fn a_mail_reader_change_right_after_a_writing_run_is_noticed() {
    let env = Env::new();
    steady(&env);
    for f in ["F00", "F01"] {
        env.deliver(f, &message(f, 7));
    }
    let r = run(&env);
    assert_eq!(r.stamped, 2, "{:#?}", r.g.folders);
    // At once: mutt marks a message seen in F00, a local program delivers into F01.
    mark(&env, "F00", 'S');
    env.drop_local("F01", "1700000999.M1P1.mutt", &message("F01", 9));
    let r = run(&env);
    assert!(r.report.is_complete(), "{:#?}", r.report);
    assert_eq!(r.scanned(), ["F00", "F01"]);
    assert_eq!(
        env.server_folder("F00")
            .iter()
            .filter(|(_, l)| l.contains('S'))
            .count(),
        1
    );
    assert_eq!(env.server_folder("F01").len(), 4);
    for f in ["F00", "F01"] {
        assert_eq!(env.server_folder(f), env.local_folder(f), "{f}");
    }
}

/// A file that lands in a folder after the run's last write to it, before `record_stamps`
/// (the listing disagrees with the state), or while `record_stamps` lists it (the stamp
/// moves across the listing), keeps the folder unstamped; the next run scans it and uploads
/// the file.
#[test]
fn a_file_added_after_the_runs_writes_prevents_the_stamp() {
    let env = Env::new();
    steady(&env);
    for f in ["F08", "F09"] {
        env.deliver(f, &message(f, 7));
    }
    let mut fired = 0;
    let f09 = env.local_dir("F09");
    let r = run_with(
        &env,
        || {
            env.drop_local("F08", "1700000998.M1P1.mutt", &message("F08", 8));
        },
        &mut |folder, _| {
            if folder.path() == f09 && fired == 0 {
                fired += 1;
                env.drop_local("F09", "1700000999.M1P1.mutt", &message("F09", 9));
            }
        },
    );
    assert!(r.report.is_complete(), "{:#?}", r.report);
    assert_eq!(fired, 1, "the listing hook ran for F09");
    assert_eq!(r.stamped, 0, "{:#?}", r.g.folders);
    // Both were read partially, so first checked from their followed listings, which the
    // new files contradict; the listings then taken contradict the state as well.
    assert_eq!(
        r.checked(StampCheck::Followed),
        ["F08", "F09"],
        "{:?}",
        r.checks
    );
    assert_eq!(r.listed(), ["F08", "F09"], "{:?}", r.checks);
    let r = run(&env);
    assert!(r.report.is_complete(), "{:#?}", r.report);
    assert_eq!(r.scanned(), ["F08", "F09"]);
    for f in ["F08", "F09"] {
        assert_eq!(env.server_folder(f).len(), 4, "{f}");
        assert_eq!(env.server_folder(f), env.local_folder(f), "{f}");
    }
    // Checked and stamped now (the uploads moved the server's HIGHESTMODSEQ, so the run
    // after reads both once more from the server side, then nothing).
    assert_eq!(r.stamped, 2, "{:#?}", r.g.folders);
    let r = run(&env);
    assert!(!r.report.changed_anything(), "{:#?}", r.report);
    let r = run(&env);
    assert_eq!(r.g.scanned_folders(), 0, "{:?}", r.scanned());
}

/// A folder read partially is checked at the end of its run from the changes the kernel
/// reported since its stamp was proved, not by a listing. A mail reader's rename in it at
/// the last moment (after the stamp is read, before the reports are; the message count
/// stays the same) is among those reports: the folder is listed instead, left unstamped,
/// and the next run scans it and sends the change.
#[test]
fn a_mail_reader_rename_while_a_followed_folder_is_checked_prevents_the_stamp() {
    let env = Env::new();
    steady(&env);
    server_flag(&env, "F10", 1, "add", "\\Flagged");
    let f10 = env.local_dir("F10");
    let mut fired = false;
    let r = run_with(&env, || {}, &mut |folder, how| {
        if folder.path() == f10 && how == StampCheck::Followed && !fired {
            fired = true;
            mark(&env, "F10", 'S');
        }
    });
    assert!(r.report.is_complete(), "{:#?}", r.report);
    assert!(
        fired,
        "the hook ran for F10's followed check: {:?}",
        r.checks
    );
    assert_eq!(r.listed(), ["F10"], "{:?}", r.checks);
    assert_eq!(r.stamped, 0, "{:#?}", r.g.folders);
    let r = run(&env);
    assert!(r.report.is_complete(), "{:#?}", r.report);
    assert_eq!(r.scanned(), ["F10"]);
    let server = env.server_folder("F10");
    assert_eq!(server.iter().filter(|(_, l)| l.contains('S')).count(), 1);
    assert_eq!(server.iter().filter(|(_, l)| l.contains('F')).count(), 1);
    assert_eq!(server, env.local_folder("F10"));
}

/// A timing of the no-change re-sync at scale (not a test; run it with
/// `cargo test --release -p mailfold-sync --test sync_nochange -- --ignored --nocapture`):
/// a no-change re-sync of 20,000 messages in 20 folders, median of 7 runs, each run the whole
/// sequence (open the store, connect, gather, plan, apply, record stamps, log out). It prints
/// its figures; the ones the documentation quotes come from `bench/compare`.
#[test]
#[ignore]
fn measure_no_change_resync_of_20k_messages_in_20_folders() {
    use std::time::Instant;
    let env = Env::new();
    for f in folders() {
        let msgs: Vec<(Vec<u8>, &str)> = (0..1000)
            .map(|n| (message(&f, n), if n % 3 == 0 { "" } else { "S" }))
            .collect();
        env.seed_server(&f, &msgs);
    }
    let t = Instant::now();
    let first = run(&env);
    assert!(first.report.is_complete());
    eprintln!("initial sync: {:?}", t.elapsed());
    settle();
    let second = run(&env);
    assert!(second.stamped >= 20, "{}", second.stamped);
    let mut times = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        let r = run(&env);
        times.push(t.elapsed());
        assert!(!r.report.changed_anything());
        assert_eq!(r.g.scanned_folders(), 0);
    }
    eprintln!("no-change runs: {times:?}");
    times.sort();
    eprintln!("MEDIAN no-change re-sync: {:?}", times[times.len() / 2]);
}

/// A timing of the no-change re-sync right after a writing run (not a test; run it with
/// `cargo test --release -p mailfold-sync --test sync_nochange -- --ignored --nocapture`):
/// 20,000 messages in 20 folders; a server-side flag change in every folder, the run that
/// brings it down (renaming a file in each folder), then the timed no-change re-sync right
/// after it. Median of 5.
#[test]
#[ignore]
fn measure_no_change_resync_right_after_a_writing_run() {
    use std::time::Instant;
    let env = Env::new();
    for f in folders() {
        let msgs: Vec<(Vec<u8>, &str)> = (0..1000)
            .map(|n| (message(&f, n), if n % 3 == 0 { "" } else { "S" }))
            .collect();
        env.seed_server(&f, &msgs);
    }
    let first = run(&env);
    assert!(first.report.is_complete());
    settle();
    let _ = run(&env);
    let mut times = Vec::new();
    for i in 0..5u32 {
        for f in folders() {
            env.dovecot.doveadm(&[
                "flags",
                if i % 2 == 0 { "add" } else { "remove" },
                "-u",
                &env.user,
                "\\Flagged",
                "mailbox",
                &f,
                "uid",
                "7",
            ]);
        }
        let t = Instant::now();
        let w = run(&env);
        eprintln!("writing run: {:?}, stamped {}", t.elapsed(), w.stamped);
        assert!(w.report.changed_anything());
        let t = Instant::now();
        let r = run(&env);
        times.push(t.elapsed());
        assert!(!r.report.changed_anything());
        eprintln!(
            "after the writing run: {:?}, scanned {} loaded {}",
            times.last(),
            r.g.scanned_folders(),
            r.g.loaded_folders()
        );
    }
    times.sort();
    eprintln!(
        "MEDIAN no-change re-sync after a writing run: {:?}",
        times[times.len() / 2]
    );
}
