//! Folder renames against a private Dovecot: a folder renamed on the server by
//! another client is one rename of the Maildir directory — the same files (same names, same
//! inodes) under the new name, no body fetched, nothing moved, uploaded or deleted — and a
//! rename made on either side and then undone on the other round-trips the same way.

#[path = "sync_common.rs"]
mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{message, Env};
use mailfold_sync::{SyncReport, Traffic};

fn crlf(b: &[u8]) -> Vec<u8> {
    String::from_utf8(b.to_vec())
        .unwrap()
        .replace('\n', "\r\n")
        .into_bytes()
}

fn traffic(r: &SyncReport) -> &Traffic {
    r.traffic.as_ref().expect("sync_account reports traffic")
}

fn total(r: &SyncReport, f: impl Fn(&mailfold_sync::FolderReport) -> usize) -> usize {
    r.folders.iter().map(f).sum()
}

/// A message of about 20 KB: fetching even one body would show in the bytes received.
fn big_message(folder: &str, i: usize) -> Vec<u8> {
    let mut m = message(folder, i);
    for _ in 0..400 {
        m.extend_from_slice(b"Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n");
    }
    crlf(&m)
}

/// File name (below `cur/` or `new/`) → inode, for every file of a local folder.
fn inodes(env: &Env, folder: &str) -> BTreeMap<String, u64> {
    env.local_files(folder)
        .into_iter()
        .map(|p| {
            let sub = p.parent().and_then(Path::file_name).unwrap();
            let key = format!(
                "{}/{}",
                sub.to_string_lossy(),
                p.file_name().unwrap().to_string_lossy()
            );
            (key, std::fs::metadata(&p).unwrap().ino())
        })
        .collect()
}

/// Asserts that a run renamed the Maildir folder `from` to `to` and did nothing else: no
/// transfer, no move, no flag change, no deletion, no server write, no body fetched.
fn assert_only_local_rename(r: &SyncReport, from: &str, to: &str) {
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(total(r, |f| f.downloaded), 0, "{r:#?}");
    assert_eq!(total(r, |f| f.uploaded), 0, "{r:#?}");
    assert_eq!(total(r, |f| f.local_moves + f.remote_moves), 0, "{r:#?}");
    assert_eq!(
        total(r, |f| f.local_flag_changes + f.remote_flag_changes),
        0,
        "{r:#?}"
    );
    assert_eq!(
        total(r, |f| f.local_deletions + f.remote_deletions),
        0,
        "{r:#?}"
    );
    assert!(r
        .folders
        .iter()
        .all(|f| !f.deleted && !f.created_local && !f.created_remote));
    let renamed = r.folders.iter().find(|f| f.folder == to).expect("reported");
    assert_eq!(renamed.renamed_from.as_deref(), Some(from), "{r:#?}");
    let t = traffic(r);
    for c in [
        "RENAME",
        "UID MOVE",
        "UID COPY",
        "APPEND",
        "CREATE",
        "DELETE",
        "UID STORE",
        "UID EXPUNGE",
    ] {
        assert_eq!(t.count(c), 0, "{c}: {t:#?}");
    }
    // Learning the new folder reads each message's size, date and Message-ID (a few hundred
    // bytes each), never a body (each over 20 KB).
    assert!(t.bytes_received < 15_000, "{t:#?}");
}

/// Another client renames a server folder (`doveadm mailbox rename`, which keeps UIDVALIDITY
/// and UIDs): the next run renames the Maildir directory and downloads nothing; the files
/// are the same files; a third run does nothing.
#[test]
fn server_folder_rename_is_one_local_rename() {
    let env = Env::new();
    env.dovecot.create_mailbox(&env.user, "Lists.rust");
    for i in 0..4 {
        env.deliver("Lists/rust", &big_message("rust", i));
    }
    env.deliver("INBOX", &big_message("inbox", 0));
    env.dovecot.doveadm(&[
        "flags",
        "add",
        "-u",
        &env.user,
        "\\Seen",
        "mailbox",
        "Lists.rust",
        "uid",
        "2",
    ]);
    let first = env.sync();
    assert!(first.is_complete(), "{first:#?}");
    assert_eq!(total(&first, |f| f.downloaded), 5, "{first:#?}");
    let before = inodes(&env, "Lists/rust");
    assert_eq!(before.len(), 4);
    let server_before = env.server_folder("Lists/rust");

    env.dovecot.doveadm(&[
        "mailbox",
        "rename",
        "-u",
        &env.user,
        "Lists.rust",
        "Lists.go",
    ]);
    let r = env.sync();
    assert_only_local_rename(&r, "Lists/rust", "Lists/go");
    assert_eq!(
        inodes(&env, "Lists/go"),
        before,
        "the same files, moved as a directory"
    );
    assert!(!env.local_dir("Lists/rust").exists());
    assert_eq!(env.server_folder("Lists/go"), server_before);
    assert_eq!(env.local_folder("Lists/go"), env.server_folder("Lists/go"));
    assert_eq!(env.local_folder("INBOX"), env.server_folder("INBOX"));

    let again = env.sync();
    assert!(again.is_complete(), "{again:#?}");
    assert!(!again.changed_anything(), "{again:#?}");
    assert_eq!(inodes(&env, "Lists/go"), before);
}

/// Both ways: a folder renamed locally (`mv Projects Old`) becomes one server RENAME; then
/// another client renames it back on the server, and the Maildir follows with one directory
/// rename. The same files come back under the first name, nothing is transferred either
/// way, and a last run does nothing.
#[test]
fn folder_rename_round_trips_both_ways() {
    let env = Env::new();
    env.dovecot.create_mailbox(&env.user, "Projects");
    for i in 0..3 {
        env.deliver("Projects", &big_message("projects", i));
    }
    assert!(env.sync().is_complete());
    let before = inodes(&env, "Projects");
    let server_before = env.server_folder("Projects");

    std::fs::rename(env.local_dir("Projects"), env.local_dir("Old")).unwrap();
    let r = env.sync();
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(traffic(&r).count("RENAME"), 1, "{:#?}", traffic(&r));
    assert_eq!(total(&r, |f| f.downloaded + f.uploaded), 0, "{r:#?}");
    let old = r
        .folders
        .iter()
        .find(|f| f.folder == "Old")
        .expect("reported");
    assert_eq!(old.renamed_from.as_deref(), Some("Projects"));
    assert_eq!(env.server_folder("Old"), server_before);

    env.dovecot
        .doveadm(&["mailbox", "rename", "-u", &env.user, "Old", "Projects"]);
    let r = env.sync();
    assert_only_local_rename(&r, "Old", "Projects");
    assert_eq!(inodes(&env, "Projects"), before);
    assert!(!env.local_dir("Old").exists());
    assert_eq!(env.server_folder("Projects"), server_before);
    assert_eq!(env.local_folder("Projects"), env.server_folder("Projects"));

    let again = env.sync();
    assert!(!again.changed_anything(), "{again:#?}");
}

/// Seed V0003 with a rename: the server gives the renamed folder a new UIDVALIDITY. The run
/// that sees the rename still renames the Maildir directory (the content of every message
/// matches a state row: size, INTERNALDATE, Message-ID) and keeps the old UIDVALIDITY; the
/// next run re-binds every message to its new UID by content, fetching no body.
#[test]
fn v0003_server_folder_rename_with_a_new_uidvalidity_rebinds_without_download() {
    let env = Env::new();
    env.dovecot.create_mailbox(&env.user, "Lists.rust");
    for i in 0..3 {
        env.deliver("Lists/rust", &big_message("rust", i));
    }
    assert!(env.sync().is_complete());
    let before = inodes(&env, "Lists/rust");

    env.dovecot.doveadm(&[
        "mailbox",
        "rename",
        "-u",
        &env.user,
        "Lists.rust",
        "Lists.go",
    ]);
    env.dovecot.set_uidvalidity(&env.user, "Lists.go", 777_777);
    let r = env.sync();
    assert_only_local_rename(&r, "Lists/rust", "Lists/go");
    assert_eq!(inodes(&env, "Lists/go"), before);

    let r = env.sync();
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(total(&r, |f| f.downloaded + f.uploaded), 0, "{r:#?}");
    assert_eq!(total(&r, |f| f.bound), 3, "{r:#?}");
    assert!(!r.changed_anything(), "{r:#?}");
    assert!(traffic(&r).bytes_received < 15_000, "{:#?}", traffic(&r));
    assert_eq!(inodes(&env, "Lists/go"), before);
    assert_eq!(env.local_folder("Lists/go"), env.server_folder("Lists/go"));
    assert!(!env.sync().changed_anything());
}
