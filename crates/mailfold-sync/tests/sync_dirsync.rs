//! With fsync on, a batch of downloads fsyncs each directory it linked files into once, before
//! the batch's rows are committed, instead of once per message. The result
//! must be the mirror and the state an fsync per message (or no fsync at all) gives: every
//! message in its right subdirectory with its flags, and every row naming a file that exists.

#[path = "sync_common.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{letters_of, message, Env};
use mailfold_store::{StateDb, StateRead};
use mailfold_sync::AccountSpec;

const N: usize = 200;

/// `n` messages of `folder`: every third seen, every fifth flagged, the rest unflagged (the
/// unflagged ones go to `new/`, so one batch links into both directories).
fn corpus(folder: &str, n: usize) -> Vec<(Vec<u8>, &'static str)> {
    (0..n)
        .map(|i| {
            let flags = match (i % 3 == 0, i % 5 == 0) {
                (true, true) => "FS",
                (true, false) => "S",
                (false, true) => "F",
                (false, false) => "",
            };
            (message(folder, i), flags)
        })
        .collect()
}

/// Message-ID → (subdirectory, flag letters, bytes) of every file of a local folder.
fn mirror_of(dir: &Path) -> BTreeMap<String, (String, String, Vec<u8>)> {
    common::files_of(dir)
        .into_iter()
        .map(|p| {
            let body = std::fs::read(&p).unwrap();
            let text = String::from_utf8_lossy(&body).into_owned();
            let mid = text
                .lines()
                .find_map(|l| l.strip_prefix("Message-ID: "))
                .unwrap()
                .to_owned();
            let sub = p
                .parent()
                .and_then(Path::file_name)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (mid, (sub, letters_of(&p), body))
        })
        .collect()
}

/// Message-ID → (UID, flags, hash present, size) of the state's rows of a folder; asserts
/// that every row names a file present in the local folder.
fn rows_of(
    a: &AccountSpec,
    local: &Path,
    folder: &str,
) -> BTreeMap<String, (u32, Vec<String>, bool, Option<u64>)> {
    let db = StateDb::open(&a.state_db).unwrap();
    let f = db.folder_by_wire_name(folder).unwrap().unwrap();
    let bases: Vec<String> = common::files_of(local)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    db.messages(f.id)
        .unwrap()
        .into_iter()
        .map(|r| {
            let base = r.base.as_str().to_owned();
            assert!(
                bases
                    .iter()
                    .any(|b| b == &base || b.starts_with(&format!("{base}:"))),
                "row {base} names no file"
            );
            let mut flags = r.flags.clone();
            flags.sort();
            (
                r.message_id.clone().unwrap(),
                (r.uid.get(), flags, r.hash.is_some(), r.size),
            )
        })
        .collect()
}

#[test]
fn batch_dir_fsync_gives_the_same_mirror_and_state_as_no_fsync() {
    let env = Env::new();
    env.seed_server("INBOX", &corpus("INBOX", N));
    env.seed_server("Archive", &corpus("Archive", 30));

    let synced = env.account();
    assert!(synced.fsync, "fsync is on by default");
    let mut plain = env.account();
    plain.fsync = false;
    plain.maildir = env.dir.path().join("mail-nofsync");
    plain.state_db = env.dir.path().join("state-nofsync").join("account.db");

    for a in [&synced, &plain] {
        let r = env.sync_with(a);
        assert!(r.is_complete(), "{r:?}");
        let downloaded: usize = r.folders.iter().map(|f| f.downloaded).sum();
        assert_eq!(downloaded, N + 30);
    }

    for folder in ["INBOX", "Archive"] {
        let with = env.local_dir(folder);
        let without = plain.maildir.join(folder);
        let m_with = mirror_of(&with);
        assert_eq!(m_with.len(), if folder == "INBOX" { N } else { 30 });
        assert_eq!(m_with, mirror_of(&without), "{folder}");
        // Both directories of the batch were used: unflagged messages in `new/`.
        assert!(m_with.values().any(|(s, ..)| s == "new"));
        assert!(m_with.values().any(|(s, ..)| s == "cur"));
        // Every message is recorded, with the same row as without fsync.
        let rows = rows_of(&synced, &with, folder);
        assert_eq!(rows.len(), m_with.len());
        assert_eq!(rows, rows_of(&plain, &without, folder), "{folder}");
        assert!(rows.values().all(|(_, _, hashed, _)| *hashed));
        // Nothing left in tmp/.
        assert_eq!(std::fs::read_dir(with.join("tmp")).unwrap().count(), 0);
    }
    assert_eq!(
        common::read_maildir(&env.local_dir("INBOX")),
        env.server_folder("INBOX")
    );

    // The rows were committed: a second run finds nothing to do.
    let again = env.sync_with(&synced);
    assert!(again.is_complete(), "{again:?}");
    assert!(!again.changed_anything(), "{again:?}");
}

// ----- the measuring harness (ignored; run by hand)

/// Not a test of its own: the body of the measured child process (does nothing unless the
/// parent set `MAILFOLD_DIRSYNC_CHILD`). Prints the wall time of the sync itself.
#[test]
fn child_sync() {
    let Ok(spec) = std::env::var("MAILFOLD_DIRSYNC_CHILD") else {
        return;
    };
    let f: Vec<&str> = spec.split('\t').collect();
    let mut a = AccountSpec::new(
        "child",
        f[0],
        f[2],
        mailfold_sync::Secret::new(f[3].to_owned()),
        std::path::PathBuf::from(f[4]),
        std::path::PathBuf::from(f[5]),
    );
    a.port = f[1].parse().unwrap();
    a.tls = mailfold_sync::TlsMode::Implicit;
    a.ca_file = Some(std::path::PathBuf::from(f[6]));
    a.fsync = f[7] == "1";
    let t = std::time::Instant::now();
    let r = mailfold_sync::sync_account(&a, &mailfold_sync::SyncOptions::default()).unwrap();
    let ms = t.elapsed().as_millis();
    assert!(r.is_complete(), "{r:#?}");
    eprintln!(
        "child: fsync {} downloaded {} in {ms} ms",
        a.fsync,
        r.folders.iter().map(|f| f.downloaded).sum::<usize>()
    );
}

/// An initial sync of `MAILFOLD_MEASURE_N` messages (default 3,000) into one folder, in a
/// child process under `MAILFOLD_MEASURE_WRAP` (default `strace -f -c -e trace=fsync,fdatasync`;
/// `none` runs it bare, for timing); `MAILFOLD_MEASURE_FSYNC=0` for `fsync = false`.
#[test]
#[ignore = "measurement harness: needs strace, run by hand"]
fn measure_initial_sync_fsyncs() {
    let n = std::env::var("MAILFOLD_MEASURE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let env = Env::new();
    env.seed_server("INBOX", &corpus("INBOX", n));
    let mut a = env.account();
    a.fsync = !std::env::var("MAILFOLD_MEASURE_FSYNC").is_ok_and(|v| v == "0");
    let wrap = std::env::var("MAILFOLD_MEASURE_WRAP")
        .unwrap_or_else(|_| "strace -f -c -e trace=fsync,fdatasync".to_owned());
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
    let words: Vec<&str> = wrap.split_whitespace().collect();
    let mut cmd = match words.split_first() {
        Some((w, rest)) if *w != "none" => {
            let mut c = std::process::Command::new(w);
            c.args(rest).arg(&exe);
            c
        }
        _ => std::process::Command::new(&exe),
    };
    let out = cmd
        .args(["--exact", "child_sync", "--nocapture", "--test-threads=1"])
        .env("MAILFOLD_DIRSYNC_CHILD", spec)
        .output()
        .expect("spawn the measured child");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{:?}", out.status);
}
