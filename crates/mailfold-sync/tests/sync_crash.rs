//! Crash safety end to end: a sync is killed after step N, for every N, and re-run; the result
//! must equal an uninterrupted run, with nothing lost or duplicated on either side, and a
//! further run must change nothing. The scenarios ([`Scenario`]): changes on both sides
//! (folders read whole), changes on the server only (folders read partially), flag changes
//! alone, a reader's copy and move, and initial syncs into an empty mirror (one folder at a
//! time, window by window, one of many downloads, killed around its batches, and one whose
//! windows are shared out over several connections, killed with them running).
//!
//! The sync runs in a child process (this test binary, re-executed to run `child_sync` only)
//! with `MAILFOLD_TEST_ABORT_AFTER_STEP=N`, which exits like a kill: no destructor, no cleanup.
//! Each N gets its own Dovecot user and Maildir, prepared identically.

#[path = "sync_common.rs"]
mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{diff, message, read_maildir, seed_maildir, Env, Msg};
use mailfold_sync::apply::{ABORT_ENV, ABORT_EXIT_CODE, ABORT_IN_PARALLEL_ENV};
use mailfold_sync::{AccountSpec, Secret, SyncOptions, TlsMode};
use mailfold_testsupport::Dovecot;

const FOLDERS: [&str; 2] = ["INBOX", "Work"];

/// Not a test of its own: the body of the child process (does nothing unless the parent set
/// `MAILFOLD_CHILD_SYNC`).
#[test]
fn child_sync() {
    let Ok(spec) = std::env::var("MAILFOLD_CHILD_SYNC") else {
        return;
    };
    let f: Vec<&str> = spec.split('\t').collect();
    let mut a = AccountSpec::new(
        "child",
        f[0],
        f[2],
        Secret::new(f[3].to_owned()),
        PathBuf::from(f[4]),
        PathBuf::from(f[5]),
    );
    a.port = f[1].parse().unwrap();
    a.tls = TlsMode::Implicit;
    a.ca_file = Some(PathBuf::from(f[6]));
    a.fresh_window = f[7].parse().unwrap();
    a.connections = f[8].parse().unwrap();
    let r = mailfold_sync::sync_account(&a, &SyncOptions::default()).unwrap();
    assert!(r.is_complete(), "{r:#?}");
    if std::env::var_os(ABORT_IN_PARALLEL_ENV).is_some() {
        // Not cut (the step was past the end): the cuts of the other runs fell among
        // connections working at once.
        let t = r.traffic.as_ref().expect("traffic");
        assert!(t.logins() >= 2, "{t:#?}");
    }
}

struct Side {
    user: String,
    password: String,
    local: tempfile::TempDir,
    /// The account's `fresh_window`.
    window: usize,
    /// The account's `connections`.
    connections: u8,
}

impl Side {
    fn account(&self, d: &Dovecot) -> AccountSpec {
        let addr = d.imaps_addr();
        let mut a = AccountSpec::new(
            "crash",
            addr.ip().to_string(),
            self.user.clone(),
            Secret::new(self.password.clone()),
            self.local.path().join("mail"),
            self.local.path().join("state.db"),
        );
        a.port = addr.port();
        a.ca_file = Some(d.ca_file());
        a.fresh_window = self.window;
        a.connections = self.connections;
        a
    }

    fn server(&self, d: &Dovecot, folder: &str) -> Vec<Msg> {
        let root = d.mail_root(&self.user);
        read_maildir(&if folder == "INBOX" {
            root
        } else {
            root.join(format!(".{folder}"))
        })
    }

    fn local(&self, folder: &str) -> Vec<Msg> {
        read_maildir(&self.local.path().join("mail").join(folder))
    }

    fn state(&self, d: &Dovecot) -> Vec<Vec<Msg>> {
        let mut v = Vec::new();
        for f in FOLDERS {
            v.push(self.server(d, f));
            v.push(self.local(f));
        }
        v
    }
}

fn sync(d: &Dovecot, s: &Side) -> mailfold_sync::SyncReport {
    let r = mailfold_sync::sync_account(&s.account(d), &SyncOptions::default())
        .unwrap_or_else(|e| panic!("sync: {e}"));
    assert!(r.is_complete(), "{r:#?}");
    r
}

/// What was changed between the first sync and the one that is killed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// Changes on both sides: every folder is read whole.
    BothSides,
    /// Changes on the server only: every folder is read partially (the delta and the rows
    /// and files it names, with the local view from the state).
    ServerOnly,
    /// No first sync at all: an initial sync into an empty mirror, one folder at a time.
    Initial,
    /// As `Initial`, each folder read, planned and applied in windows of two messages.
    InitialWindows,
    /// As `Initial` with an INBOX of [`MANY`] messages: its downloads are fsynced batch by
    /// batch on threads while later bodies arrive, several batches at once, each put in place
    /// when its fsyncs are done.
    InitialMany,
    /// As `InitialMany` with windows of [`SHARED_WINDOW`] messages, killed with the run's
    /// connections kept: INBOX's windows after the first are shared out over them, and its
    /// state is recorded by whichever connection finishes the last window.
    InitialShared,
    /// Flag changes alone on the server, in both folders: each folder is read, planned and
    /// applied on its own after the gather.
    FlagsOnly,
    /// A mail reader's "save to folder": one INBOX message saved to Work (a new file with the
    /// same bytes, the original kept) and one saved and deleted (a move): a UID COPY and a
    /// UID MOVE.
    ReaderCopy,
}

/// Seeds a user and prepares `scenario`.
fn prepare_for(env: &Env, i: usize, scenario: Scenario) -> Side {
    let u = env.dovecot.user(i).clone();
    let side = Side {
        user: u.name.clone(),
        password: u.password.clone(),
        local: tempfile::tempdir().unwrap(),
        window: match scenario {
            Scenario::InitialWindows => 2,
            Scenario::InitialShared => SHARED_WINDOW,
            _ => mailfold_sync::gather::FRESH_WINDOW,
        },
        connections: if scenario == Scenario::InitialShared {
            3
        } else {
            1
        },
    };
    let d = &env.dovecot;
    d.doveadm(&["mailbox", "create", "-u", &u.name, "Work"]);
    for n in 0..5 {
        d.deliver(&u.name, "INBOX", &crlf(&message("INBOX", n)));
    }
    for n in 0..4 {
        d.deliver(&u.name, "Work", &crlf(&message("Work", n)));
    }
    if matches!(scenario, Scenario::InitialMany | Scenario::InitialShared) {
        let more: Vec<(Vec<u8>, &str)> = (5..MANY).map(|n| (message("INBOX", n), "")).collect();
        seed_maildir(d, &u.name, "INBOX", &more);
    }
    if matches!(
        scenario,
        Scenario::Initial
            | Scenario::InitialWindows
            | Scenario::InitialMany
            | Scenario::InitialShared
    ) {
        return side;
    }
    sync(d, &side);
    if scenario == Scenario::FlagsOnly {
        for (change, flag, folder, uid) in [
            ("add", "\\Flagged", "INBOX", "2"),
            ("add", "\\Seen", "INBOX", "4"),
            ("add", "\\Seen", "Work", "1"),
            ("add", "\\Answered", "Work", "3"),
        ] {
            d.doveadm(&[
                "flags", change, "-u", &u.name, flag, "mailbox", folder, "uid", uid,
            ]);
        }
        return side;
    }
    // Server side: two new messages, one expunged, one flagged.
    d.deliver(&u.name, "INBOX", &crlf(&message("INBOX", 100)));
    d.deliver(&u.name, "INBOX", &crlf(&message("INBOX", 101)));
    d.doveadm(&["expunge", "-u", &u.name, "mailbox", "Work", "uid", "1"]);
    d.doveadm(&[
        "flags",
        "add",
        "-u",
        &u.name,
        "\\Flagged",
        "mailbox",
        "INBOX",
        "uid",
        "2",
    ]);
    if scenario == Scenario::ServerOnly {
        return side;
    }
    if scenario == Scenario::ReaderCopy {
        let mail = side.local.path().join("mail");
        let find = |n: usize| -> PathBuf {
            let inbox = mail.join("INBOX");
            std::fs::read_dir(inbox.join("cur"))
                .unwrap()
                .chain(std::fs::read_dir(inbox.join("new")).unwrap())
                .map(|e| e.unwrap().path())
                .find(|p| {
                    std::fs::read_to_string(p)
                        .is_ok_and(|t| t.contains(&format!("Subject: INBOX message {n}\n")))
                })
                .unwrap()
        };
        let work = mail.join("Work").join("cur");
        std::fs::copy(find(3), work.join("saved-1.reader:2,FS")).unwrap();
        let moved = find(4);
        std::fs::copy(&moved, work.join("saved-2.reader:2,S")).unwrap();
        std::fs::remove_file(moved).unwrap();
        return side;
    }
    // Local side: a new message, a headerless draft, a deletion and a flag change.
    let inbox = side.local.path().join("mail").join("INBOX");
    std::fs::write(inbox.join("new").join("local-1.host"), message("Local", 1)).unwrap();
    let work = side.local.path().join("mail").join("Work");
    std::fs::write(
        work.join("cur").join("draft-1.host:2,D"),
        b"just a draft line\n",
    )
    .unwrap();
    // Chosen by content: file names differ from user to user.
    // Unflagged downloads lie in new/, flagged ones in cur/.
    let by_subject = |n: usize| -> PathBuf {
        std::fs::read_dir(inbox.join("cur"))
            .unwrap()
            .chain(std::fs::read_dir(inbox.join("new")).unwrap())
            .map(|e| e.unwrap().path())
            .find(|p| {
                std::fs::read_to_string(p)
                    .is_ok_and(|t| t.contains(&format!("Subject: INBOX message {n}\n")))
            })
            .unwrap()
    };
    std::fs::remove_file(by_subject(0)).unwrap();
    let p = by_subject(3);
    // Marked seen as a mail reader does: into cur/ with `:2,S`.
    let name = p.file_name().unwrap().to_string_lossy().into_owned();
    let base = name.split_once(":2,").map_or(name.as_str(), |(b, _)| b);
    std::fs::rename(&p, inbox.join("cur").join(format!("{base}:2,S"))).unwrap();
    side
}

fn crlf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + 16);
    for &c in b {
        if c == b'\n' {
            out.push(b'\r');
        }
        out.push(c);
    }
    out
}

/// Runs `s`'s sync in a child cut after step `n`, on the main connection alone unless
/// `parallel`.
fn run_child(d: &Dovecot, s: &Side, n: u64, parallel: bool) -> Option<i32> {
    let a = s.account(d);
    let spec = [
        a.host.clone(),
        a.port.to_string(),
        a.user.clone(),
        s.password.clone(),
        a.maildir.display().to_string(),
        a.state_db.display().to_string(),
        d.ca_file().display().to_string(),
        s.window.to_string(),
        s.connections.to_string(),
    ]
    .join("\t");
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args(["--exact", "child_sync", "--nocapture", "--test-threads=1"])
        .env("MAILFOLD_CHILD_SYNC", spec)
        .env(ABORT_ENV, n.to_string());
    if parallel {
        child.env(ABORT_IN_PARALLEL_ENV, "1");
    } else {
        child.env_remove(ABORT_IN_PARALLEL_ENV);
    }
    let out = child.output().expect("spawn child");
    if !out.status.success() && out.status.code() != Some(ABORT_EXIT_CODE) {
        panic!(
            "child failed: {:?}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.status.code()
}

/// Kill after every step N = 1, 2, … of a sync with changes on both sides; re-run; compare
/// with an uninterrupted run (covers the journaled APPEND of V0048, headerless drafts V0046,
/// downloads V0006/V0007, flag merges and deletions both ways).
#[test]
fn kill_after_every_step_then_resume_equals_an_uninterrupted_run() {
    let steps = kill_every_step(Scenario::BothSides, 24, |want| {
        // The reference holds what both sides added.
        assert_eq!(
            want[0].len(),
            5 + 2 + 1 - 1,
            "INBOX: 5 seeded, 2 delivered, 1 local, 1 deleted"
        );
        assert_eq!(
            want[2].len(),
            4 - 1 + 1,
            "Work: 4 seeded, 1 expunged, 1 draft"
        );
    });
    eprintln!("killed after each of {steps} steps; every resume converged");
    assert!(
        steps > 8,
        "the scenario should have many steps, had {steps}"
    );
}

/// Kills `scenario`'s sync after every step, resumes, and compares with an uninterrupted
/// run (whose final state `check` looks at first); returns how many steps the run had.
fn kill_every_step(scenario: Scenario, max_steps: usize, check: impl Fn(&[Vec<Msg>])) -> usize {
    let steps: Vec<usize> = (1..=max_steps).collect();
    match kill_at_steps(scenario, &steps, check) {
        Some(n) => n,
        None => panic!("the sync has more than {max_steps} steps; raise the maximum"),
    }
}

/// [`kill_every_step`] for the given steps only, in increasing order: `Some` with the number
/// of steps the run had once a step is past its end, `None` when every step killed it.
fn kill_at_steps(
    scenario: Scenario,
    steps: &[usize],
    check: impl Fn(&[Vec<Msg>]),
) -> Option<usize> {
    let env = Env::with_users(steps.len() + 1);
    let d = &env.dovecot;
    let reference = prepare_for(&env, 0, scenario);
    let r = sync(d, &reference);
    assert!(r.changed_anything());
    assert!(!sync(d, &reference).changed_anything());
    if scenario == Scenario::InitialShared {
        let t = r.traffic.as_ref().expect("traffic");
        assert!(
            t.logins() >= 2,
            "INBOX's windows should be shared over connections: {t:#?}"
        );
    }
    let want = reference.state(d);
    for (i, f) in FOLDERS.iter().enumerate() {
        assert!(
            want[2 * i] == want[2 * i + 1],
            "{f}: {}",
            diff(&want[2 * i], &want[2 * i + 1])
        );
    }
    check(&want);
    for (i, &n) in steps.iter().enumerate() {
        let side = prepare_for(&env, i + 1, scenario);
        let code = run_child(d, &side, n as u64, scenario == Scenario::InitialShared);
        if code == Some(0) {
            assert_eq!(side.state(d), want, "uninterrupted child run differs");
            return Some(n - 1);
        }
        assert_eq!(code, Some(ABORT_EXIT_CODE));
        sync(d, &side);
        let got = side.state(d);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                g == w,
                "after a kill at step {n}, {} {} differs from the uninterrupted run:\n{}",
                FOLDERS[i / 2],
                if i % 2 == 0 { "server" } else { "local" },
                diff(g, w)
            );
        }
        let again = sync(d, &side);
        assert!(
            !again.changed_anything(),
            "step {n}: a further run changed: {again:#?}"
        );
    }
    None
}

/// INBOX's messages in [`Scenario::InitialMany`]: more than three download batches of 32
/// (`apply::download`'s PLACE_BATCH), so that several are in flight at once.
const MANY: usize = 100;

/// The download batches' commit points: an initial sync of an INBOX of [`MANY`] messages with
/// fsync on, killed at steps on both sides of each batch's end (and beyond the run's end),
/// converges to the uninterrupted result: whatever the batches in flight had written stays in
/// `tmp/` or is bound by content, never shown twice nor lost.
#[test]
fn an_initial_sync_of_many_downloads_survives_kills_between_its_batches() {
    let steps = [1, 3, 30, 33, 36, 64, 67, 70, 96, 99, 104, 200];
    let ran = kill_at_steps(Scenario::InitialMany, &steps, |want| {
        assert_eq!((want[1].len(), want[3].len()), (MANY, 4));
    });
    let ran = ran.expect("the run ends before step 200");
    assert!(ran > MANY, "every download is a step, had {ran}");
}

/// The window of [`Scenario::InitialShared`]: INBOX's [`MANY`] messages in five windows.
const SHARED_WINDOW: usize = 20;

/// The commit points of a large fresh folder whose windows are shared out over the run's
/// connections: killed at steps around each window's end and around the last download,
/// where whichever connection finishes the last window records the folder's state, the
/// sync converges to the uninterrupted result. The cut falls at the N-th step of whichever
/// connection takes it, so each run cuts the work at a different place.
#[test]
fn an_initial_sync_shared_over_connections_survives_kills_between_its_windows() {
    let steps = [1, 19, 21, 40, 42, 61, 80, 99, 101, 102, 103, 105, 110, 200];
    let ran = kill_at_steps(Scenario::InitialShared, &steps, |want| {
        assert_eq!((want[1].len(), want[3].len()), (MANY, 4));
    });
    let ran = ran.expect("the run ends before step 200");
    assert!(ran > MANY, "every download is a step, had {ran}");
}

/// The partial read's commit points: a sync of server-only changes (two deliveries, an
/// expunge, a flag), each folder read from its delta with its local view from the state,
/// killed after every step, converges to the uninterrupted result.
#[test]
fn server_only_changes_read_partially_survive_a_kill_after_every_step() {
    let steps = kill_every_step(Scenario::ServerOnly, 16, |_| {});
    assert!(
        steps >= 4,
        "the scenario should have several steps, had {steps}"
    );
}

/// The commit points of folders changed by flag changes alone, each read, planned and
/// applied on its own after the gather: killed after every step, the sync converges to the
/// uninterrupted result.
#[test]
fn flag_changes_read_folder_by_folder_survive_a_kill_after_every_step() {
    let steps = kill_every_step(Scenario::FlagsOnly, 16, |want| {
        let flagged =
            |msgs: &[Msg], letter: char| msgs.iter().filter(|(_, l)| l.contains(letter)).count();
        assert_eq!(flagged(&want[1], 'F'), 1, "INBOX: one message flagged");
        assert_eq!(flagged(&want[3], 'R'), 1, "Work: one message answered");
    });
    assert!(
        steps >= 2,
        "the scenario should have several steps, had {steps}"
    );
}

/// The commit points of a fresh folder read window by window: an initial sync with windows
/// of two messages (INBOX in three, Work in two), killed after every step, converges to the
/// uninterrupted result; the resumed run finds a mirror that is no longer empty and reads
/// it whole.
#[test]
fn an_initial_sync_window_by_window_survives_a_kill_after_every_step() {
    let steps = kill_every_step(Scenario::InitialWindows, 48, |want| {
        assert_eq!((want[1].len(), want[3].len()), (5, 4));
    });
    assert!(
        steps >= 6,
        "the scenario should have many steps, had {steps}"
    );
}

/// A reader's saved copy (a UID COPY, journaled) and a reader's move (a UID MOVE), with the
/// server changes of the other scenarios, killed after every step, converge to the
/// uninterrupted result (no second copy on either side), and a further run changes nothing.
#[test]
fn a_readers_copy_and_move_survive_a_kill_after_every_step() {
    let steps = kill_every_step(Scenario::ReaderCopy, 20, |want| {
        // The saved message in both folders, the moved one in Work only: nothing twice.
        assert_eq!(
            want[0].len(),
            5 + 2 - 1,
            "INBOX: 5, 2 delivered, 1 moved away"
        );
        assert_eq!(
            want[2].len(),
            4 - 1 + 2,
            "Work: 4, 1 expunged, 1 copy, 1 moved"
        );
        let subject = |n: usize| format!("Subject: INBOX message {n}\n");
        let count = |msgs: &[Msg], n: usize| {
            msgs.iter()
                .filter(|(b, _)| String::from_utf8_lossy(b).contains(&subject(n)))
                .count()
        };
        assert_eq!((count(&want[0], 3), count(&want[2], 3)), (1, 1));
        assert_eq!((count(&want[0], 4), count(&want[2], 4)), (0, 1));
    });
    assert!(
        steps >= 6,
        "the scenario should have several steps, had {steps}"
    );
}

/// The per-folder pipeline's commit points: an initial sync of two folders into an empty
/// mirror (each folder read, planned and applied alone), killed after every step; the
/// resumed run finds a mirror that is no longer empty, reads it whole and binds what was
/// downloaded instead of downloading it again.
#[test]
fn an_initial_sync_one_folder_at_a_time_survives_a_kill_after_every_step() {
    let steps = kill_every_step(Scenario::Initial, 40, |_| {});
    assert!(
        steps >= 6,
        "the scenario should have many steps, had {steps}"
    );
}
