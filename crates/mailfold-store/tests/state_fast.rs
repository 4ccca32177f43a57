//! The state database's cheap paths: the commit counter, the fsync switch,
//! the clean-close marker that spares `quick_check` on open, and the
//! per-folder directory stamps of the no-change re-sync.

use mailfold_store::{FolderId, NewFolder, RelPath, StateDb, StateRead};

fn add_folder(db: &mut StateDb, name: &str) -> FolderId {
    db.write(|tx| {
        tx.add_folder(&NewFolder {
            wire_name: name.into(),
            delimiter: Some('/'),
            local_path: RelPath::parse(name).unwrap(),
            special_use: None,
            subscribed: true,
        })
    })
    .unwrap()
}

#[test]
fn commits_counts_write_transactions_since_open() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.sqlite");
    let mut db = StateDb::create(&path).unwrap();
    let start = db.commits();
    let id = add_folder(&mut db, "INBOX");
    assert_eq!(db.commits(), start + 1);
    // A rolled-back transaction is not a commit.
    {
        let tx = db.begin().unwrap();
        tx.set_last_sync(id, 5).unwrap();
        tx.rollback().unwrap();
    }
    assert_eq!(db.commits(), start + 1);
    db.mark_synced().unwrap();
    assert_eq!(db.commits(), start + 2);
    // Reads commit nothing.
    db.folders().unwrap();
    db.messages(id).unwrap();
    assert_eq!(db.commits(), start + 2);
    drop(db);
    let db = StateDb::open(&path).unwrap();
    assert_eq!(db.commits(), 0);
}

#[test]
fn set_fsync_switches_between_full_and_normal() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.sqlite");
    let mut db = StateDb::create(&path).unwrap();
    db.set_fsync(false).unwrap();
    let id = add_folder(&mut db, "INBOX");
    db.set_fsync(true).unwrap();
    db.write(|tx| tx.set_last_sync(id, 7)).unwrap();
    drop(db);
    let db = StateDb::open(&path).unwrap();
    assert_eq!(db.folder(id).unwrap().unwrap().last_sync, Some(7));
}
