//! The state database's cheap paths: the commit counter, the fsync switch and unsynced writes,
//! the clean-close marker that spares `quick_check` on open, and the
//! per-folder directory stamps of the no-change re-sync.

use mailfold_store::{FolderId, NewFolder, RelPath, StateDb, StateRead};

fn new_folder(name: &str) -> NewFolder {
    NewFolder {
        wire_name: name.into(),
        delimiter: Some('/'),
        local_path: RelPath::parse(name).unwrap(),
        special_use: None,
        subscribed: true,
    }
}

fn add_folder(db: &mut StateDb, name: &str) -> FolderId {
    db.write(|tx| tx.add_folder(&new_folder(name))).unwrap()
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

#[test]
fn an_unsynced_write_commits_and_leaves_the_fsync_choice_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.sqlite");
    let mut db = StateDb::create(&path).unwrap();
    assert!(db.syncs_commits().unwrap());
    let id = add_folder(&mut db, "INBOX");
    db.write_unsynced(|tx| tx.set_last_sync(id, 7)).unwrap();
    assert!(db.syncs_commits().unwrap(), "fsync on stays on");
    // A failed unsynced write rolls back and still restores the choice.
    let failed = db.write_unsynced(|tx| {
        tx.set_last_sync(id, 8)?;
        tx.add_folder(&new_folder("INBOX"))
    });
    assert!(failed.is_err(), "a second INBOX is refused");
    assert!(db.syncs_commits().unwrap());
    db.set_fsync(false).unwrap();
    db.write_unsynced(|tx| tx.set_last_sync(id, 9)).unwrap();
    assert!(!db.syncs_commits().unwrap(), "fsync off stays off");
    drop(db);
    let db = StateDb::open(&path).unwrap();
    assert_eq!(db.folder(id).unwrap().unwrap().last_sync, Some(9));
}

fn filled_db(path: &std::path::Path) -> FolderId {
    use mailfold_store::{ContentHash, MessageBase, MessageRecord, Uid};
    let mut db = StateDb::create(path).unwrap();
    let id = add_folder(&mut db, "INBOX");
    let rows: Vec<MessageRecord> = (1..=3_000u32)
        .map(|n| MessageRecord {
            uid: Uid::new(n).unwrap(),
            base: MessageBase::new(&format!("{n}.M1P1.host,S=10,W=11")).unwrap(),
            flags: vec![],
            keywords: vec![],
            size: Some(11),
            internaldate: None,
            hash: Some(ContentHash([n as u8; 32])),
            message_id: Some(format!("<{n}@example.org>")),
            partial: false,
        })
        .collect();
    db.write(|tx| tx.upsert_messages(id, &rows)).unwrap();
    drop(db);
    id
}

fn is_corrupt<T>(r: mailfold_store::Result<T>) -> bool {
    matches!(r, Err(mailfold_store::Error::StateCorrupt { .. }))
}

#[test]
fn a_cleanly_closed_database_truncated_by_one_page_is_caught_without_quick_check() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.sqlite");
    filled_db(&path);
    assert!(!tmp.path().join("s.sqlite-wal").exists(), "clean close");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 4096]).unwrap();
    assert!(is_corrupt(StateDb::open(&path)));
    // A file longer than its header says is damaged too.
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&path, &longer).unwrap();
    assert!(is_corrupt(StateDb::open(&path)));
    std::fs::write(&path, &bytes).unwrap();
    assert!(StateDb::open(&path).is_ok());
}

#[test]
fn quick_check_runs_when_a_log_was_left_behind_or_when_asked() {
    use mailfold_store::IntegrityCheck;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.sqlite");
    let id = filled_db(&path);
    // Damage a page in the middle of the message table, keeping the size.
    let mut bytes = std::fs::read(&path).unwrap();
    let page = 4096;
    let mid = (bytes.len() / page / 2) * page;
    for b in &mut bytes[mid + 8..mid + page] {
        *b = 0xa5;
    }
    std::fs::write(&path, &bytes).unwrap();
    // Closed cleanly: only the cheap checks run, and they cannot see this.
    let db = StateDb::open(&path).unwrap();
    drop(db);
    std::fs::write(&path, &bytes).unwrap();
    let _ = std::fs::remove_file(tmp.path().join("s.sqlite-wal"));
    // Asked explicitly: caught.
    assert!(is_corrupt(StateDb::open_with(&path, IntegrityCheck::Quick)));
    // A log left by an unclean end (here one SQLite finds invalid and
    // ignores, so the file alone is the database): the default checks too.
    let _ = std::fs::remove_file(tmp.path().join("s.sqlite-shm"));
    std::fs::write(tmp.path().join("s.sqlite-wal"), [0x17u8; 100]).unwrap();
    assert!(is_corrupt(StateDb::open(&path)));
    let _ = id;
}

#[test]
fn reopening_after_a_kill_with_a_live_log_checks_and_opens() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.sqlite");
    let id = filled_db(&path);
    let mut db = StateDb::open(&path).unwrap();
    db.write(|tx| tx.set_last_sync(id, 42)).unwrap();
    // Copy the database and its log while the connection is open: what a
    // kill leaves behind.
    let copy = tmp.path().join("c.sqlite");
    std::fs::copy(&path, &copy).unwrap();
    std::fs::copy(
        tmp.path().join("s.sqlite-wal"),
        tmp.path().join("c.sqlite-wal"),
    )
    .unwrap();
    drop(db);
    let db = StateDb::open(&copy).unwrap();
    assert_eq!(db.folder(id).unwrap().unwrap().last_sync, Some(42));
    assert_eq!(db.messages(id).unwrap().len(), 3_000);
}

/// Schema v2 → v3: a database written before local stamps existed opens,
/// upgrades in place, keeps its rows, and has no stamp (every folder is
/// scanned once).
#[test]
fn a_version_two_database_upgrades_to_local_stamps() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("old.sqlite");
    let id = filled_db(&path);
    // Take the file back to version 2: without the local stamp columns (v3) and the listing
    // keys and digest (v4).
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "BEGIN;
         DROP INDEX messages_by_hash_prefix;
         CREATE INDEX messages_by_hash ON messages(hash) WHERE hash IS NOT NULL;
         CREATE INDEX messages_by_message_id ON messages(message_id)
             WHERE message_id IS NOT NULL;
         ALTER TABLE messages DROP COLUMN listing_key;
         ALTER TABLE folders DROP COLUMN listing_digest;
         ALTER TABLE folders DROP COLUMN listing_count;
         ALTER TABLE folders DROP COLUMN stamp_messages;
         ALTER TABLE folders DROP COLUMN local_stamp;
         PRAGMA user_version = 2;
         COMMIT;",
    )
    .unwrap();
    drop(conn);
    let mut db = StateDb::open(&path).unwrap();
    // Upgraded through every later version too.
    assert_eq!(
        db.schema_version().unwrap(),
        mailfold_store::schema::VERSION
    );
    assert_eq!(db.messages(id).unwrap().len(), 3_000);
    assert!(db.local_stamps().unwrap().is_empty());
    // The new columns work.
    let dir = tmp.path().join("mail");
    let md = mailfold_store::Maildir::open(&dir, Default::default()).unwrap();
    let f = md
        .create_folder_at(&RelPath::parse("INBOX").unwrap())
        .unwrap();
    let stamp = f.stamp().unwrap().unwrap();
    assert!(db.write(|tx| tx.set_local_stamp(id, &stamp)).unwrap());
    drop(db);
    let db = StateDb::open(&path).unwrap();
    let got = db.local_stamps().unwrap();
    assert_eq!(got[&id].stamp, stamp);
    assert_eq!(got[&id].messages, 3_000);
}

#[test]
fn any_write_to_a_folder_forgets_its_stamp() {
    use mailfold_store::{FlagUpdate, FolderStatus, Uid};
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.sqlite");
    let id = filled_db(&path);
    let mut db = StateDb::open(&path).unwrap();
    let md = mailfold_store::Maildir::open(&tmp.path().join("mail"), Default::default()).unwrap();
    let stamp = md
        .create_folder_at(&RelPath::parse("INBOX").unwrap())
        .unwrap()
        .stamp()
        .unwrap()
        .unwrap();
    let uid = Uid::new(7).unwrap();
    type Write = fn(&mailfold_store::Txn<'_>, FolderId, Uid) -> mailfold_store::Result<()>;
    let writes: [Write; 4] = [
        |tx, id, uid| {
            tx.update_flags(
                id,
                &[FlagUpdate {
                    uid,
                    flags: vec!["\\Seen".into()],
                    keywords: vec![],
                }],
            )
        },
        |tx, id, uid| tx.delete_messages(id, &[uid]),
        |tx, id, _| tx.set_folder_status(id, &FolderStatus::default()),
        |tx, id, _| tx.clear_messages(id).map(|_| ()),
    ];
    for w in writes {
        db.write(|tx| tx.set_local_stamp(id, &stamp)).unwrap();
        assert!(db.local_stamps().unwrap().contains_key(&id));
        let before = db.commits();
        db.write(|tx| w(tx, id, uid)).unwrap();
        assert_eq!(db.commits(), before + 1);
        assert!(!db.local_stamps().unwrap().contains_key(&id));
    }
    // A folder with unbound rows gets no stamp.
    let other = add_folder(&mut db, "Other");
    let rows = vec![mailfold_store::MessageRecord {
        uid,
        base: mailfold_store::MessageBase::new("1.M1P1.h,S=3").unwrap(),
        flags: vec![],
        keywords: vec![],
        size: Some(3),
        internaldate: None,
        hash: None,
        message_id: None,
        partial: false,
    }];
    db.write(|tx| tx.upsert_messages(other, &rows)).unwrap();
    db.write(|tx| tx.unbind_messages(other)).unwrap();
    assert!(!db.write(|tx| tx.set_local_stamp(other, &stamp)).unwrap());
    assert!(!db.local_stamps().unwrap().contains_key(&other));
}

#[test]
fn a_second_connection_opens_cheaply_beside_a_live_one() {
    use mailfold_store::IntegrityCheck;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.sqlite");
    let id = filled_db(&path);
    let mut first = StateDb::open(&path).unwrap();
    first.write(|tx| tx.set_last_sync(id, 9)).unwrap();
    assert!(
        std::fs::metadata(tmp.path().join("s.sqlite-wal"))
            .unwrap()
            .len()
            > 0
    );
    let second = StateDb::open_with(&path, IntegrityCheck::Cheap).unwrap();
    assert_eq!(second.folder(id).unwrap().unwrap().last_sync, Some(9));
    assert_eq!(second.messages(id).unwrap().len(), 3_000);
    // The cheap checks still refuse what is not a mailfold database.
    drop((first, second));
    let other = tmp.path().join("other.sqlite");
    std::fs::write(&other, vec![0x5a; 8192]).unwrap();
    assert!(is_corrupt(StateDb::open_with(
        &other,
        IntegrityCheck::Cheap
    )));
}
