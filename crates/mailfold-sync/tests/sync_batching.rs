//! The applier groups the state commits of one folder's steps: a re-sync that
//! pulls flag changes for a few messages ends with the exact flags on every file and in the
//! state, in a handful of state transactions rather than one per message.
//!
//! The ignored `measure_*` tests are the measuring harness behind the figures in the commit
//! messages: they run the sync in a child process (this test binary, re-executed) under
//! `strace -c` or `perf stat`, so only mailfold's own system calls are counted, not Dovecot's.

#[path = "sync_common.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use common::{letters_of, message, Env};
use mailfold_store::{StateDb, StateRead};
use mailfold_sync::{AccountSpec, NetRemote, Remote, Secret, SyncOptions, SyncReport, TlsMode};

/// One sync through the library with the state database kept open, so its commit counter
/// ([`StateDb::commits`]) can be read afterwards.
fn counted_sync(a: &AccountSpec) -> (SyncReport, u64) {
    let (maildir, mut db) = mailfold_sync::open_store(a).expect("store");
    let mut remote = NetRemote::connect(a).expect("connect");
    let before = db.commits();
    let r =
        mailfold_sync::sync_with_remote(&mut remote, a, &SyncOptions::default(), &maildir, &mut db)
            .expect("sync");
    remote.logout();
    (r, db.commits() - before)
}

/// The seeded corpus: `n` small messages, every third one seen, every seventh flagged.
fn corpus(n: usize) -> Vec<(Vec<u8>, &'static str)> {
    corpus_of("INBOX", 0..n)
}

fn corpus_of(folder: &str, range: std::ops::Range<usize>) -> Vec<(Vec<u8>, &'static str)> {
    range
        .map(|i| {
            let flags = match (i % 3 == 0, i % 7 == 0) {
                (true, true) => "FS",
                (true, false) => "S",
                (false, true) => "F",
                (false, false) => "",
            };
            (message(folder, i), flags)
        })
        .collect()
}

/// Changes the flags of 1% of the messages on the server (UIDs 1, 101, 201, …): adds
/// `\Flagged` and `\Answered`, removes `\Seen`.
fn change_one_percent(env: &Env, n: usize) -> Vec<u32> {
    change_one_percent_in(env, "INBOX", n)
}

fn change_one_percent_in(env: &Env, folder: &str, n: usize) -> Vec<u32> {
    let uids: Vec<u32> = (0..n).step_by(100).map(|i| i as u32 + 1).collect();
    let set = uids
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    for (op, flags) in [("add", "\\Flagged \\Answered"), ("remove", "\\Seen")] {
        env.dovecot.doveadm(&[
            "flags", op, "-u", &env.user, flags, "mailbox", folder, "uid", &set,
        ]);
    }
    uids
}

/// The server's flag letters per message, by Message-ID.
fn flags_by_message_id(dir: &std::path::Path) -> BTreeMap<String, String> {
    common::files_of(dir)
        .into_iter()
        .map(|p| {
            let body = std::fs::read_to_string(&p).unwrap();
            let mid = body
                .lines()
                .find_map(|l| l.strip_prefix("Message-ID: "))
                .unwrap()
                .to_owned();
            (mid, letters_of(&p))
        })
        .collect()
}

#[test]
fn one_percent_flag_changes_commit_in_a_few_transactions() {
    const N: usize = 500;
    let env = Env::new();
    env.seed_server("INBOX", &corpus(N));
    let a = env.account();
    let (r, _) = counted_sync(&a);
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(env.local_files("INBOX").len(), N);

    let changed = change_one_percent(&env, N);
    let (r, commits) = counted_sync(&a);
    assert!(r.is_complete(), "{r:#?}");
    let f = &r.folders[0];
    assert_eq!(f.local_flag_changes, changed.len(), "{r:#?}");
    assert_eq!(f.remote_flag_changes, 0, "{r:#?}");
    // The flag rows and the folder's new HIGHESTMODSEQ/UIDNEXT go in one transaction; a
    // couple more are allowed for bookkeeping outside the applier, never one per message.
    assert!(commits <= 3, "{commits} state transactions for {r:#?}");

    // Every file carries exactly the server's flags.
    let server = flags_by_message_id(&env.server_dir("INBOX"));
    let local = flags_by_message_id(&env.local_dir("INBOX"));
    assert_eq!(server.len(), N);
    assert_eq!(local, server);
    for uid in &changed {
        let mid = format!("<INBOX.{}@mailfold.test>", uid - 1);
        assert!(local[&mid].contains('F') && local[&mid].contains('R'));
        assert!(!local[&mid].contains('S'));
    }

    // The state holds the same flags for every row.
    let db = StateDb::open(&env.state_db()).unwrap();
    let folder = db.folder_by_wire_name("INBOX").unwrap().unwrap();
    let rows = db.messages(folder.id).unwrap();
    assert_eq!(rows.len(), N);
    for row in rows {
        let mid = row.message_id.clone().unwrap();
        let mut want: Vec<String> = server[&mid]
            .chars()
            .map(|c| match c {
                'F' => "\\Flagged",
                'R' => "\\Answered",
                'S' => "\\Seen",
                'T' => "\\Deleted",
                'D' => "\\Draft",
                _ => "?",
            })
            .map(str::to_owned)
            .collect();
        want.sort();
        let mut got = row.flags.clone();
        got.sort();
        assert_eq!(got, want, "{mid}");
    }
    drop(db);

    // Nothing left to do, and nothing committed for it.
    let (again, commits) = counted_sync(&a);
    assert!(!again.changed_anything(), "{again:#?}");
    assert!(commits <= 1, "{commits} transactions for a no-change run");
}

// ----- the measuring harness (ignored; run by hand)

/// Not a test of its own: the body of the measured child process (does nothing unless the
/// parent set `MAILFOLD_BATCHING_CHILD`).
#[test]
fn child_sync() {
    let Ok(spec) = std::env::var("MAILFOLD_BATCHING_CHILD") else {
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
    a.fsync = f[7] == "1";
    let (r, commits) = counted_sync(&a);
    assert!(r.is_complete(), "{r:#?}");
    eprintln!(
        "child: downloaded {} local flag changes {} state commits {commits}",
        r.folders.iter().map(|f| f.downloaded).sum::<usize>(),
        r.folders
            .iter()
            .map(|f| f.local_flag_changes)
            .sum::<usize>()
    );
}

/// Runs one sync of `a` in a child process under `wrapper` (e.g. `strace -f -c …`) and
/// prints what the wrapper wrote to stderr.
fn measured_child(env: &Env, a: &AccountSpec, wrapper: &[&str]) {
    let spec = [
        a.host.clone(),
        a.port.to_string(),
        a.user.clone(),
        env.password.clone(),
        a.maildir.display().to_string(),
        a.state_db.display().to_string(),
        env.dovecot.ca_file().display().to_string(),
        if a.fsync { "1" } else { "0" }.to_owned(),
    ]
    .join("\t");
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(wrapper[0])
        .args(&wrapper[1..])
        .arg(exe)
        .args(["--exact", "child_sync", "--nocapture", "--test-threads=1"])
        .env("MAILFOLD_BATCHING_CHILD", spec)
        .output()
        .expect("spawn the measured child");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{:?}", out.status);
}

fn measure_n(default: usize) -> usize {
    measure_n_of("MAILFOLD_MEASURE_N", default)
}

fn measure_fsync() -> bool {
    std::env::var("MAILFOLD_MEASURE_FSYNC").map_or(true, |v| v != "0")
}

/// Seeds `n` messages spread over `MAILFOLD_MEASURE_FOLDERS` folders (default 1: INBOX);
/// returns the folders and their sizes.
fn seed_measured(env: &Env, n: usize) -> Vec<(String, usize)> {
    let k = measure_n_of("MAILFOLD_MEASURE_FOLDERS", 1).max(1);
    let mut out = Vec::new();
    for f in 0..k {
        let name = if f == 0 {
            "INBOX".to_owned()
        } else {
            format!("F{f:02}")
        };
        let (lo, hi) = (n * f / k, n * (f + 1) / k);
        env.seed_server(&name, &corpus_of(&name, lo..hi));
        out.push((name, hi - lo));
    }
    out
}

fn measure_n_of(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `fsync`/`fdatasync` calls of a re-sync that pulls 1% flag changes (2,000 messages unless
/// `MAILFOLD_MEASURE_N` says otherwise; `MAILFOLD_MEASURE_FSYNC=0` for `fsync = false`).
#[test]
#[ignore = "measurement harness: needs strace, run by hand"]
fn measure_fsyncs_of_a_one_percent_flag_resync() {
    let n = measure_n(2000);
    let env = Env::new();
    let folders = seed_measured(&env, n);
    let mut a = env.account();
    a.fsync = measure_fsync();
    let (r, _) = counted_sync(&a);
    assert!(r.is_complete());
    for (f, size) in &folders {
        change_one_percent_in(&env, f, *size);
    }
    measured_child(
        &env,
        &a,
        &["strace", "-f", "-c", "-e", "trace=fsync,fdatasync"],
    );
}

/// CPU and system calls of an initial sync (3,000 messages unless `MAILFOLD_MEASURE_N` says
/// otherwise): `perf stat` when `MAILFOLD_MEASURE_PERF=1`, `strace -c` otherwise.
#[test]
#[ignore = "measurement harness: needs strace or perf, run by hand"]
fn measure_an_initial_sync() {
    let n = measure_n(3000);
    let env = Env::new();
    seed_measured(&env, n);
    let mut a = env.account();
    a.fsync = measure_fsync();
    if std::env::var("MAILFOLD_MEASURE_PERF").is_ok_and(|v| v == "1") {
        measured_child(
            &env,
            &a,
            &["perf", "stat", "-e", "task-clock,instructions,cycles"],
        );
    } else {
        measured_child(&env, &a, &["strace", "-f", "-c"]);
    }
}
