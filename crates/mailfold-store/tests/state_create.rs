//! Creating a state database is atomic: a process killed while creating one (the first run of an
//! account) leaves nothing at the database's path that a later run would refuse as corrupt.

use std::process::Command;

use mailfold_store::{Error, IntegrityCheck, StateDb};

#[test]
fn a_leftover_half_made_database_is_replaced_not_taken_for_the_state() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("acct.sqlite");
    // What a kill in the middle of an earlier create leaves: the side file, empty or partial,
    // with a journal beside it.
    std::fs::write(
        tmp.path().join("acct.sqlite.new"),
        b"SQLite format 3\0partial",
    )
    .unwrap();
    std::fs::write(tmp.path().join("acct.sqlite.new-wal"), b"junk").unwrap();
    std::fs::write(tmp.path().join("acct.sqlite.new-journal"), b"junk").unwrap();
    assert!(matches!(
        StateDb::open(&path),
        Err(Error::StateMissing { .. })
    ));
    let db = StateDb::create(&path).unwrap();
    assert!(db.is_fresh().unwrap());
    drop(db);
    assert!(!tmp.path().join("acct.sqlite.new").exists());
    assert!(!tmp.path().join("acct.sqlite.new-journal").exists());
    let db = StateDb::open_with(&path, IntegrityCheck::Full).unwrap();
    assert!(db.is_fresh().unwrap());
}

/// A created database is in WAL mode on disk (recorded in its header: bytes 18 and 19 are 2),
/// and creating it leaves no journal, log or side file behind.
#[test]
fn a_new_database_is_in_wal_mode_before_its_first_open() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("acct.sqlite");
    let side = tmp.path().join("acct.sqlite.new");
    drop(StateDb::create(&path).unwrap());
    let header = std::fs::read(&path).unwrap();
    assert_eq!(&header[..16], b"SQLite format 3\0");
    assert_eq!((header[18], header[19]), (2, 2), "not in WAL mode on disk");
    assert!(!side.exists());
    for leftover in [
        "acct.sqlite-journal",
        "acct.sqlite-wal",
        "acct.sqlite.new-wal",
    ] {
        assert!(!tmp.path().join(leftover).exists(), "{leftover} left");
    }
    let db = StateDb::open_with(&path, IntegrityCheck::Full).unwrap();
    assert!(db.is_fresh().unwrap());
}

#[test]
fn a_process_killed_while_creating_never_leaves_a_corrupt_database() {
    // Kill a child process at many moments during StateDb::create; after each kill the path
    // holds either nothing (the next create works) or a complete database.
    let exe = std::env::current_exe().unwrap();
    for i in 0..40u64 {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("acct.sqlite");
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "child_creates",
                "--nocapture",
                "--include-ignored",
            ])
            .env("MAILFOLD_CREATE_AT", &path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_micros(i * 500));
        let _ = child.kill();
        let _ = child.wait();
        match StateDb::open(&path) {
            Ok(db) => assert!(db.is_fresh().unwrap(), "kill {i}"),
            Err(Error::StateMissing { .. }) => {
                StateDb::create(&path).unwrap_or_else(|e| panic!("kill {i}: {e}"));
            }
            Err(e) => panic!("kill {i}: the database was left unusable: {e}"),
        }
    }
}

/// The child of the test above (ignored when run alone: it needs the path).
#[test]
#[ignore = "run as a child process by a_process_killed_while_creating_never_leaves_a_corrupt_database"]
fn child_creates() {
    if let Some(p) = std::env::var_os("MAILFOLD_CREATE_AT") {
        let _ = StateDb::create(std::path::Path::new(&p));
    }
}
