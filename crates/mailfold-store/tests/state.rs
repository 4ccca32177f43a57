//! The state database: records, batches, the journal, pending changes,
//! crash recovery and corruption detection.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use mailfold_store::crlf::ContentHash;
use mailfold_store::{
    fold_listing_keys, listing_key_of_row, Error, FlagUpdate, FolderId, FolderStatus,
    IntegrityCheck, IntentId, IntentKind, InternalDate, MaildirFlags, MessageBase, MessageRecord,
    NewFolder, NewIntent, NewPending, PendingKind, RelPath, StateDb, StateRead, Uid, UidValidity,
};

fn uid(n: u32) -> Uid {
    Uid::new(n).unwrap()
}

fn record(n: u32) -> MessageRecord {
    MessageRecord {
        uid: uid(n),
        base: MessageBase::new(&format!("{n}.M1P1.host,S=10,W=11")).unwrap(),
        flags: vec!["\\Seen".into()],
        keywords: vec![],
        size: Some(11),
        internaldate: Some(InternalDate {
            unix: 1_700_000_000 + i64::from(n),
            offset_minutes: 60,
        }),
        hash: Some(ContentHash([n as u8; 32])),
        message_id: Some(format!("<{n}@example.org>")),
        partial: false,
    }
}

fn add_inbox(db: &mut StateDb) -> FolderId {
    db.write(|tx| {
        tx.add_folder(&NewFolder {
            wire_name: "INBOX".into(),
            delimiter: Some('/'),
            local_path: RelPath::parse("INBOX").unwrap(),
            special_use: None,
            subscribed: true,
        })
    })
    .unwrap()
}

#[test]
fn create_open_and_the_fresh_marker() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("state/acct.sqlite");
    assert!(matches!(
        StateDb::open(&path),
        Err(Error::StateMissing { .. })
    ));
    let mut db = StateDb::create(&path).unwrap();
    assert!(db.is_fresh().unwrap());
    assert_eq!(
        db.schema_version().unwrap(),
        mailfold_store::schema::VERSION
    );
    db.mark_synced().unwrap();
    drop(db);
    assert!(matches!(
        StateDb::create(&path),
        Err(Error::StateExists { .. })
    ));
    let db = StateDb::open_with(&path, IntegrityCheck::Full).unwrap();
    assert!(!db.is_fresh().unwrap());
}

#[test]
fn v0007_size_and_all_message_fields_are_stored() {
    // Also covers seed V0006: INTERNALDATE and its zone are kept.
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.sqlite");
    let mut db = StateDb::create(&path).unwrap();
    let inbox = add_inbox(&mut db);
    let mut r = record(7);
    r.size = Some(123_456_789_012);
    db.write(|tx| tx.upsert_messages(inbox, std::slice::from_ref(&r)))
        .unwrap();
    drop(db);
    let db = StateDb::open(&path).unwrap();
    assert_eq!(db.message(inbox, uid(7)).unwrap(), Some(r.clone()));
    assert_eq!(db.message_by_base(inbox, &r.base).unwrap(), Some(r.clone()));
    assert_eq!(
        db.messages_by_hash(&r.hash.unwrap()).unwrap(),
        vec![(inbox, r)]
    );
}

/// The hash index holds the first 8 bytes of each hash (schema v6): a lookup still answers
/// only the rows whose whole hash matches, in any folder.
#[test]
fn a_hash_lookup_matches_the_whole_hash_not_its_indexed_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let mut db = StateDb::create(&tmp.path().join("s.sqlite")).unwrap();
    let inbox = add_inbox(&mut db);
    let mut twin = record(2);
    let mut hash = [1u8; 32];
    hash[31] = 2;
    twin.hash = Some(ContentHash(hash));
    let mut copy = record(3);
    copy.hash = record(1).hash;
    db.write(|tx| tx.upsert_messages(inbox, &[record(1), twin.clone(), copy.clone()]))
        .unwrap();
    assert_eq!(
        db.messages_by_hash(&record(1).hash.unwrap()).unwrap(),
        vec![(inbox, record(1)), (inbox, copy)]
    );
    assert_eq!(
        db.messages_by_hash(&ContentHash(hash)).unwrap(),
        vec![(inbox, twin)]
    );
    assert!(db
        .messages_by_hash(&ContentHash([9; 32]))
        .unwrap()
        .is_empty());
}

#[test]
fn v0005_keywords_live_in_the_database_not_the_file_name() {
    let tmp = tempfile::tempdir().unwrap();
    let mut db = StateDb::create(&tmp.path().join("s.sqlite")).unwrap();
    let inbox = add_inbox(&mut db);
    let server_flags = ["\\Seen", "$Junk", "Project-X", "\\Flagged", "$Forwarded"];
    // The file name carries only the letters the Maildir spec defines.
    let letters = MaildirFlags::from_imap(server_flags, &MaildirFlags::empty());
    assert_eq!(letters.to_string(), "FPS");
    let mut r = record(1);
    r.flags = vec!["\\Seen".into(), "\\Flagged".into()];
    r.keywords = vec![
        "Project-X".into(),
        "$Junk".into(),
        "$Forwarded".into(),
        "$Junk".into(),
    ];
    db.write(|tx| tx.upsert_messages(inbox, &[r])).unwrap();
    let back = db.message(inbox, uid(1)).unwrap().unwrap();
    assert_eq!(back.keywords, ["$Forwarded", "$Junk", "Project-X"]);
    assert_eq!(back.flags, ["\\Flagged", "\\Seen"]);
    // Flag updates in a batch; invalid flags are refused.
    db.write(|tx| {
        tx.update_flags(
            inbox,
            &[FlagUpdate {
                uid: uid(1),
                flags: vec![],
                keywords: vec!["$Label1".into()],
            }],
        )
    })
    .unwrap();
    assert_eq!(
        db.message(inbox, uid(1)).unwrap().unwrap().keywords,
        ["$Label1"]
    );
    let bad = db.write(|tx| {
        tx.update_flags(
            inbox,
            &[FlagUpdate {
                uid: uid(1),
                flags: vec!["two words".into()],
                keywords: vec![],
            }],
        )
    });
    assert!(bad.is_err());
}

#[test]
fn v0070_partial_record_never_replaces_a_full_one() {
    let tmp = tempfile::tempdir().unwrap();
    let mut db = StateDb::create(&tmp.path().join("s.sqlite")).unwrap();
    let inbox = add_inbox(&mut db);
    let full = record(3);
    db.write(|tx| tx.upsert_messages(inbox, std::slice::from_ref(&full)))
        .unwrap();
    let mut partial = record(3);
    partial.partial = true;
    partial.base = MessageBase::new("other-base").unwrap();
    partial.hash = None;
    partial.flags = vec!["\\Answered".into()];
    db.write(|tx| tx.upsert_messages(inbox, &[partial]))
        .unwrap();
    let back = db.message(inbox, uid(3)).unwrap().unwrap();
    assert_eq!(
        (back.partial, &back.base, back.hash),
        (false, &full.base, full.hash)
    );
    assert_eq!(back.flags, ["\\Answered"]);
    // The other way round is an upgrade and is taken.
    let mut p2 = record(4);
    p2.partial = true;
    db.write(|tx| tx.upsert_messages(inbox, &[p2])).unwrap();
    db.write(|tx| tx.upsert_messages(inbox, &[record(4)]))
        .unwrap();
    assert!(!db.message(inbox, uid(4)).unwrap().unwrap().partial);
}

#[test]
fn folder_status_and_attributes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut db = StateDb::create(&tmp.path().join("s.sqlite")).unwrap();
    let inbox = add_inbox(&mut db);
    let status = FolderStatus {
        uidvalidity: UidValidity::new(42),
        uidnext: std::num::NonZeroU32::new(100),
        highestmodseq: Some(u64::from(u32::MAX) * 4),
    };
    db.write(|tx| {
        tx.set_folder_status(inbox, &status)?;
        tx.set_folder_attributes(inbox, true, true, Some("\\Inbox"))?;
        tx.set_last_sync(inbox, 1_700_000_000)
    })
    .unwrap();
    let f = db.folder_by_wire_name("INBOX").unwrap().unwrap();
    assert_eq!(f.uidvalidity, status.uidvalidity);
    assert_eq!(f.uidnext, status.uidnext);
    assert_eq!(f.highestmodseq, status.highestmodseq);
    assert!(f.read_only);
    assert_eq!(f.last_sync, Some(1_700_000_000));
    assert_eq!(
        db.folder_by_path(&RelPath::parse("INBOX").unwrap())
            .unwrap(),
        Some(f.clone())
    );
    db.write(|tx| {
        tx.rename_folder(
            inbox,
            "Inbox2",
            Some('.'),
            &RelPath::parse("Inbox2").unwrap(),
        )
    })
    .unwrap();
    assert_eq!(db.folder(inbox).unwrap().unwrap().wire_name, "Inbox2");
}

#[test]
fn batches_of_many_rows_in_one_transaction() {
    let tmp = tempfile::tempdir().unwrap();
    let mut db = StateDb::create(&tmp.path().join("s.sqlite")).unwrap();
    let inbox = add_inbox(&mut db);
    let rows: Vec<MessageRecord> = (1..=20_000).map(record).collect();
    let t = std::time::Instant::now();
    db.write(|tx| tx.upsert_messages(inbox, &rows)).unwrap();
    assert!(
        t.elapsed().as_secs() < 30,
        "batch insert took {:?}",
        t.elapsed()
    );
    assert_eq!(db.messages(inbox).unwrap().len(), 20_000);
    let gone: Vec<Uid> = (1..=10_000).map(uid).collect();
    db.write(|tx| tx.delete_messages(inbox, &gone)).unwrap();
    assert_eq!(db.messages(inbox).unwrap().len(), 10_000);
    // Moving a row keeps it whole.
    let other = db
        .write(|tx| {
            tx.add_folder(&NewFolder {
                wire_name: "Archive".into(),
                delimiter: Some('/'),
                local_path: RelPath::parse("Archive").unwrap(),
                special_use: Some("\\Archive".into()),
                subscribed: false,
            })
        })
        .unwrap();
    assert!(db
        .write(|tx| tx.move_message(inbox, uid(15_000), other, uid(1)))
        .unwrap());
    let moved = db.message(other, uid(1)).unwrap().unwrap();
    assert_eq!(moved.base, record(15_000).base);
    assert_eq!(db.write(|tx| tx.clear_messages(inbox)).unwrap(), 9_999);
}

#[test]
fn dropping_a_transaction_rolls_it_back() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.sqlite");
    let mut db = StateDb::create(&path).unwrap();
    let inbox = add_inbox(&mut db);
    {
        let tx = db.begin().unwrap();
        tx.upsert_messages(inbox, &[record(1)]).unwrap();
        tx.insert_intent(&NewIntent::new(IntentKind::Download))
            .unwrap();
    }
    let failed: Result<(), Error> = db.write(|tx| {
        tx.upsert_messages(inbox, &[record(2)])?;
        Err(Error::NotFound { path: "x".into() })
    });
    assert!(failed.is_err());
    drop(db);
    let db = StateDb::open(&path).unwrap();
    assert!(db.messages(inbox).unwrap().is_empty());
    assert!(db.open_intents().unwrap().is_empty());
}

#[test]
fn journal_intent_is_durable_before_and_resolved_with_the_result() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.sqlite");
    let mut db = StateDb::create(&path).unwrap();
    let inbox = add_inbox(&mut db);
    let base = MessageBase::new("1.M1P1.host,S=3,W=4").unwrap();
    let hash = ContentHash([9; 32]);
    let id = db
        .begin_intent(&NewIntent {
            folder: Some(inbox),
            base: Some(base.clone()),
            hash: Some(hash),
            detail: "<m@x>".into(),
            ..NewIntent::new(IntentKind::Append)
        })
        .unwrap();
    // "Crash" here: reopen and find the open intent with what is needed to
    // look for the APPENDed copy on the server.
    drop(db);
    let mut db = StateDb::open(&path).unwrap();
    let open = db.open_intents().unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, id);
    assert_eq!(open[0].intent.kind, IntentKind::Append);
    assert_eq!(open[0].intent.hash, Some(hash));
    assert_eq!(open[0].intent.base.as_ref(), Some(&base));
    // The result and the resolution commit together.
    db.write(|tx| {
        let mut r = record(5);
        r.base = base.clone();
        tx.upsert_messages(inbox, &[r])?;
        tx.resolve_intent(id)
    })
    .unwrap();
    assert!(db.open_intents().unwrap().is_empty());
    assert!(db.message_by_base(inbox, &base).unwrap().is_some());
}

#[test]
fn an_intent_id_beyond_the_row_id_range_names_no_intent() {
    let tmp = tempfile::tempdir().unwrap();
    let mut db = StateDb::create(&tmp.path().join("s.sqlite")).unwrap();
    let err = db
        .write(|tx| tx.resolve_intent(IntentId(u64::MAX)))
        .unwrap_err();
    assert!(
        matches!(err, Error::IntentOutOfRange { id: u64::MAX }),
        "{err}"
    );
}

#[test]
fn v0039_pending_changes_are_kept_reported_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let mut db = StateDb::create(&tmp.path().join("s.sqlite")).unwrap();
    let inbox = add_inbox(&mut db);
    let change = NewPending {
        folder: inbox,
        kind: PendingKind::Flags,
        uid: Some(uid(8)),
        base: None,
        detail: "\\Seen".into(),
        reason: "folder is READ-ONLY".into(),
    };
    let id = db.write(|tx| tx.queue_pending(&change)).unwrap();
    // A later change to the same message replaces the detail, not the row.
    let later = NewPending {
        detail: "\\Seen \\Flagged".into(),
        ..change.clone()
    };
    assert_eq!(db.write(|tx| tx.queue_pending(&later)).unwrap(), id);
    db.write(|tx| tx.note_pending_attempt(id, "still READ-ONLY"))
        .unwrap();
    let p = db.pending(Some(inbox)).unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].change.detail, "\\Seen \\Flagged");
    assert_eq!(p[0].change.reason, "still READ-ONLY");
    assert_eq!(p[0].attempts, 1);
    assert!(p[0].last_attempt.is_some());
    // The folder cannot be deleted while a change is pending.
    assert!(db.write(|tx| tx.delete_folder(inbox)).is_err());
    db.write(|tx| tx.remove_pending(id)).unwrap();
    db.write(|tx| tx.delete_folder(inbox)).unwrap();
    assert!(db.pending(None).unwrap().is_empty());
}

#[test]
fn corruption_is_detected_never_recreated() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.sqlite");
    let mut db = StateDb::create(&path).unwrap();
    let inbox = add_inbox(&mut db);
    let rows: Vec<MessageRecord> = (1..=5_000).map(record).collect();
    db.write(|tx| tx.upsert_messages(inbox, &rows)).unwrap();
    drop(db); // closing checkpoints the WAL into the main file
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 100_000);
    let pristine = std::fs::read(&path).unwrap();

    // Truncated to half.
    std::fs::write(&path, &pristine[..pristine.len() / 2]).unwrap();
    let err = StateDb::open(&path).unwrap_err();
    assert!(matches!(err, Error::StateCorrupt { .. }), "{err}");
    // Truncated to nothing: SQLite would call this a valid empty database.
    std::fs::write(&path, b"").unwrap();
    assert!(matches!(
        StateDb::open(&path),
        Err(Error::StateCorrupt { .. })
    ));
    // Garbage.
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    assert!(matches!(
        StateDb::open(&path),
        Err(Error::StateCorrupt { .. })
    ));
    // Some other program's SQLite database.
    std::fs::remove_file(&path).unwrap();
    rusqlite_like_foreign_db(&path);
    assert!(matches!(
        StateDb::open(&path),
        Err(Error::StateCorrupt { .. })
    ));
    // create() never overwrites any of these.
    assert!(matches!(
        StateDb::create(&path),
        Err(Error::StateExists { .. })
    ));
    // The intact file opens again.
    std::fs::write(&path, &pristine).unwrap();
    let _ = std::fs::remove_file(tmp.path().join("s.sqlite-wal"));
    let _ = std::fs::remove_file(tmp.path().join("s.sqlite-shm"));
    let db = StateDb::open(&path).unwrap();
    assert_eq!(db.messages(inbox).unwrap().len(), 5_000);
}

/// A valid SQLite file that is not ours: a StateDb with its application id
/// cleared stands in, so no second SQLite binding is needed.
fn rusqlite_like_foreign_db(path: &Path) {
    let db = StateDb::create(path).unwrap();
    drop(db);
    // Byte offset 68 of the SQLite header holds the application id.
    let mut bytes = std::fs::read(path).unwrap();
    bytes[68..72].copy_from_slice(&[0, 0, 0, 0]);
    std::fs::write(path, bytes).unwrap();
}

const CHILD_ENV: &str = "MAILFOLD_STORE_CRASH_CHILD";

/// Runs in the child process: commits one row, then holds a transaction
/// with more rows open until it is killed.
#[test]
fn crash_child_helper() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return; // only meaningful when started by the crash test
    };
    let path = Path::new(&path);
    let mut db = StateDb::open(path).unwrap();
    let inbox = db.folders().unwrap()[0].id;
    db.write(|tx| tx.upsert_messages(inbox, &[record(1)]))
        .unwrap();
    let tx = db.begin().unwrap();
    let rows: Vec<MessageRecord> = (2..=3_000).map(record).collect();
    tx.upsert_messages(inbox, &rows).unwrap();
    println!("READY");
    std::io::stdout().flush().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(60));
    tx.commit().unwrap();
}

#[test]
fn reopen_after_the_process_is_killed_mid_transaction() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.sqlite");
    let mut db = StateDb::create(&path).unwrap();
    add_inbox(&mut db);
    drop(db);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut ready = false;
    for line in BufReader::new(out).lines() {
        if line.unwrap().contains("READY") {
            ready = true;
            break;
        }
    }
    assert!(ready, "child did not reach the open transaction");
    child.kill().unwrap(); // SIGKILL: no destructor, no rollback
    child.wait().unwrap();
    let db = StateDb::open_with(&path, IntegrityCheck::Full).unwrap();
    let inbox = db.folders().unwrap()[0].id;
    let msgs = db.messages(inbox).unwrap();
    assert_eq!(msgs.len(), 1, "only the committed step survives");
    assert_eq!(msgs[0], record(1));
}

/// Seed V0003: a UIDVALIDITY change unbinds the rows instead of deleting them; everything but
/// the UID is kept, a bound row for the same base replaces the unbound one, and an unbound row
/// can be forgotten by base.
#[test]
fn v0003_rows_survive_a_uidvalidity_change_unbound() {
    let tmp = tempfile::tempdir().unwrap();
    let mut db = StateDb::create(&tmp.path().join("s.db")).unwrap();
    let inbox = add_inbox(&mut db);
    let (r1, r2) = (record(1), record(2));
    db.write(|tx| tx.upsert_messages(inbox, &[r1.clone(), r2.clone()]))
        .unwrap();
    let n = db.write(|tx| tx.unbind_messages(inbox)).unwrap();
    assert_eq!(n, 2);
    assert!(db.messages(inbox).unwrap().is_empty(), "no bound row left");
    assert!(db.message(inbox, uid(1)).unwrap().is_none());
    assert!(db.message_by_base(inbox, &r1.base).unwrap().is_none());
    let unbound = db.unbound_messages(inbox).unwrap();
    assert_eq!(unbound.len(), 2);
    let kept = unbound.iter().find(|r| r.base == r1.base).unwrap();
    assert_eq!(kept.flags, r1.flags);
    assert_eq!(kept.hash, r1.hash);
    assert_eq!(kept.message_id, r1.message_id);
    assert_eq!(kept.size, r1.size);
    assert_eq!(kept.internaldate, r1.internaldate);
    // Re-binding r1 under a new UID; forgetting r2.
    let rebound = MessageRecord {
        uid: uid(40),
        ..r1.clone()
    };
    db.write(|tx| {
        assert!(tx.delete_unbound(inbox, &r1.base)?);
        tx.upsert_messages(inbox, std::slice::from_ref(&rebound))?;
        assert!(tx.delete_unbound(inbox, &r2.base)?);
        assert!(!tx.delete_unbound(inbox, &r2.base)?);
        Ok(())
    })
    .unwrap();
    assert_eq!(db.messages(inbox).unwrap(), vec![rebound]);
    assert!(db.unbound_messages(inbox).unwrap().is_empty());
    // Unbound rows of the same folder do not collide with each other.
    db.write(|tx| {
        tx.insert_unbound(inbox, &record(5))?;
        tx.insert_unbound(inbox, &record(6))?;
        tx.insert_unbound(inbox, &record(6))
    })
    .unwrap();
    assert_eq!(db.unbound_messages(inbox).unwrap().len(), 2);
}

/// A version-1 database (rows keyed by UID) is migrated to version 2 with its rows intact.
#[test]
fn schema_one_migrates_to_unbound_capable_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("old.db");
    let mut db = StateDb::create(&path).unwrap();
    let inbox = add_inbox(&mut db);
    db.write(|tx| tx.upsert_messages(inbox, &[record(1), record(2)]))
        .unwrap();
    drop(db);
    // Take the file back to version 1: the old table shape and version number.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "BEGIN;
         CREATE TABLE m1 (
            folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
            uid INTEGER NOT NULL CHECK (uid BETWEEN 1 AND 4294967295),
            base TEXT NOT NULL, flags TEXT NOT NULL, keywords TEXT NOT NULL,
            size INTEGER, internaldate INTEGER, internaldate_tz INTEGER, hash BLOB,
            message_id TEXT, partial INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (folder_id, uid)) WITHOUT ROWID;
         INSERT INTO m1 SELECT folder_id, uid, base, flags, keywords, size, internaldate,
             internaldate_tz, hash, message_id, partial FROM messages;
         DROP TABLE messages;
         ALTER TABLE m1 RENAME TO messages;
         CREATE INDEX messages_by_base ON messages(folder_id, base);
         CREATE INDEX messages_by_hash ON messages(hash) WHERE hash IS NOT NULL;
         CREATE INDEX messages_by_message_id ON messages(message_id) WHERE message_id IS NOT NULL;
         ALTER TABLE folders DROP COLUMN stamp_messages;
         ALTER TABLE folders DROP COLUMN local_stamp;
         ALTER TABLE folders DROP COLUMN listing_digest;
         ALTER TABLE folders DROP COLUMN listing_count;
         PRAGMA user_version = 1;
         COMMIT;",
    )
    .unwrap();
    drop(conn);
    let mut db = StateDb::open(&path).unwrap();
    assert_eq!(
        db.schema_version().unwrap(),
        mailfold_store::schema::VERSION
    );
    assert_eq!(db.messages(inbox).unwrap(), vec![record(1), record(2)]);
    // Rows from before version 4 carry no listing key: the digest is unknown until rebuilt.
    assert_eq!(db.listing_digest(inbox).unwrap(), None);
    db.write(|tx| tx.rebuild_listing_keys(inbox)).unwrap();
    let keys = [record(1), record(2)].map(|r| listing_key_of_row(&r));
    assert_eq!(
        db.listing_digest(inbox).unwrap(),
        Some((fold_listing_keys(keys), 2))
    );
    assert_eq!(db.write(|tx| tx.unbind_messages(inbox)).unwrap(), 2);
    drop(db);
    // Version 5 keeps the digest without triggers: none is left on the upgraded file.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let triggers: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(triggers, 0);
    // Version 6: one index of content, on the hash's first 8 bytes.
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages' AND sql IS NOT NULL ORDER BY name")
        .unwrap();
    let indexes: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(indexes, ["messages_by_base", "messages_by_hash_prefix"]);
}

/// The folder's listing digest follows every kind of row write (insert, replacement, flag
/// update, new base, move, deletion, unbound rows), kept by the row writers themselves
/// (schema v5), so it always equals the digest of the rows' keys computed from scratch.
#[test]
fn the_listing_digest_follows_every_row_write() {
    let tmp = tempfile::tempdir().unwrap();
    let mut db = StateDb::create(&tmp.path().join("s.db")).unwrap();
    let inbox = add_inbox(&mut db);
    let other = db
        .write(|tx| {
            tx.add_folder(&NewFolder {
                wire_name: "Other".into(),
                delimiter: Some('/'),
                local_path: RelPath::parse("Other").unwrap(),
                special_use: None,
                subscribed: true,
            })
        })
        .unwrap();
    let fresh = |db: &StateDb, f| {
        let mut rows = db.messages(f).unwrap();
        rows.extend(db.unbound_messages(f).unwrap());
        Some((
            fold_listing_keys(rows.iter().map(listing_key_of_row)),
            rows.len() as u64,
        ))
    };
    assert_eq!(db.listing_digest(inbox).unwrap(), Some((0, 0)));
    db.write(|tx| tx.upsert_messages(inbox, &[record(1), record(2), record(3)]))
        .unwrap();
    assert_eq!(db.listing_digest(inbox).unwrap(), fresh(&db, inbox));
    // The same UIDs again, one with other flags: replaced rows, no new ones.
    let mut again = record(2);
    again.flags = vec!["\\Seen".into(), "\\Answered".into()];
    db.write(|tx| tx.upsert_messages(inbox, &[record(1), again]))
        .unwrap();
    assert_eq!(db.listing_digest(inbox).unwrap(), fresh(&db, inbox));
    db.write(|tx| {
        tx.update_flags(
            inbox,
            &[FlagUpdate {
                uid: Uid::new(2).unwrap(),
                flags: vec!["\\Flagged".into()],
                keywords: vec!["$Forwarded".into()],
            }],
        )
    })
    .unwrap();
    assert_eq!(db.listing_digest(inbox).unwrap(), fresh(&db, inbox));
    db.write(|tx| {
        tx.set_message_base(
            inbox,
            Uid::new(3).unwrap(),
            &MessageBase::new("renamed.base").unwrap(),
        )
    })
    .unwrap();
    assert_eq!(db.listing_digest(inbox).unwrap(), fresh(&db, inbox));
    db.write(|tx| {
        tx.move_message(inbox, Uid::new(1).unwrap(), other, Uid::new(7).unwrap())
            .map(|_| ())
    })
    .unwrap();
    assert_eq!(db.listing_digest(inbox).unwrap(), fresh(&db, inbox));
    assert_eq!(db.listing_digest(other).unwrap(), fresh(&db, other));
    db.write(|tx| tx.delete_messages(inbox, &[Uid::new(2).unwrap()]))
        .unwrap();
    assert_eq!(db.listing_digest(inbox).unwrap(), fresh(&db, inbox));
    db.write(|tx| tx.insert_unbound(inbox, &record(9))).unwrap();
    db.write(|tx| tx.unbind_messages(other)).unwrap();
    assert_eq!(db.listing_digest(inbox).unwrap(), fresh(&db, inbox));
    assert_eq!(db.listing_digest(other).unwrap(), fresh(&db, other));
    db.write(|tx| tx.clear_messages(inbox).map(|_| ())).unwrap();
    assert_eq!(db.listing_digest(inbox).unwrap(), Some((0, 0)));
    // A header-only record over a full row keeps the row's file (V0070) and leaves its key,
    // and so the folder's digest, unknown until rebuilt.
    db.write(|tx| tx.upsert_messages(inbox, &[record(1)]))
        .unwrap();
    let mut partial = record(1);
    partial.partial = true;
    db.write(|tx| tx.upsert_messages(inbox, &[partial]))
        .unwrap();
    assert_eq!(db.listing_digest(inbox).unwrap(), None);
    db.write(|tx| tx.rebuild_listing_keys(inbox)).unwrap();
    assert_eq!(db.listing_digest(inbox).unwrap(), fresh(&db, inbox));
}

/// Lookups by UID and by VANISHED ranges read only the rows they name.
#[test]
fn rows_by_uids_and_by_ranges() {
    let tmp = tempfile::tempdir().unwrap();
    let mut db = StateDb::create(&tmp.path().join("s.db")).unwrap();
    let inbox = add_inbox(&mut db);
    db.write(|tx| tx.upsert_messages(inbox, &(1..=10).map(record).collect::<Vec<_>>()))
        .unwrap();
    let u = |n| Uid::new(n).unwrap();
    let uids = |rows: Vec<MessageRecord>| rows.iter().map(|r| r.uid.get()).collect::<Vec<_>>();
    assert_eq!(
        uids(
            db.messages_by_uids(inbox, &[u(9), u(2), u(42), u(2)])
                .unwrap()
        ),
        vec![2, 9]
    );
    assert_eq!(
        uids(
            db.messages_in_uid_ranges(inbox, &[(3, 4), (8, 20), (4, 3)])
                .unwrap()
        ),
        vec![3, 4, 8, 9, 10]
    );
}

/// A replaced record leaves the folder with one row of its base and one of its UID: a row of
/// the same base under another UID, the unbound row of that base (V0003) and another file's
/// row under the same UID all give way, and the listing digest follows.
#[test]
fn replacing_rows_keeps_one_row_per_base_and_per_uid() {
    let tmp = tempfile::tempdir().unwrap();
    let mut db = StateDb::create(&tmp.path().join("s.db")).unwrap();
    let inbox = add_inbox(&mut db);
    let digest = |db: &StateDb| {
        let mut rows = db.messages(inbox).unwrap();
        rows.extend(db.unbound_messages(inbox).unwrap());
        Some((
            fold_listing_keys(rows.iter().map(listing_key_of_row)),
            rows.len() as u64,
        ))
    };
    db.write(|tx| tx.upsert_messages(inbox, &[record(1), record(2), record(3)]))
        .unwrap();
    db.write(|tx| tx.insert_unbound(inbox, &record(4))).unwrap();
    // Record 1's file now under UID 7; UID 2 now names record 5's file; record 4's unbound
    // row bound again as UID 4; record 6 new.
    let mut moved = record(1);
    moved.uid = uid(7);
    let mut other = record(5);
    other.uid = uid(2);
    db.write(|tx| {
        tx.replace_messages(inbox, &[moved.clone(), other.clone(), record(4), record(6)])
    })
    .unwrap();
    let mut rows = db.messages(inbox).unwrap();
    rows.sort_by_key(|r| r.uid);
    assert_eq!(rows, vec![other, record(3), record(4), record(6), moved]);
    assert!(db.unbound_messages(inbox).unwrap().is_empty());
    assert_eq!(db.listing_digest(inbox).unwrap(), digest(&db));
    assert_eq!(db.listing_digest(inbox).unwrap().map(|(_, n)| n), Some(5));
}
