//! A mail reader's "save to folder" against a private Dovecot: the reader writes a new file
//! with the same content into another folder (and, for a move, deletes the original). The
//! server already holds the message, so the sync copies it there with `UID COPY` (or moves it
//! with `UID MOVE`) instead of sending the bytes back with APPEND, binds the file to the copy
//! from COPYUID (RFC 4315), and the next run has nothing to do.

#[path = "sync_common.rs"]
mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{message, Env};
use mailfold_sync::{SyncReport, Traffic};

fn traffic(r: &SyncReport) -> &Traffic {
    r.traffic.as_ref().expect("sync_account reports traffic")
}

fn total(r: &SyncReport, f: impl Fn(&mailfold_sync::FolderReport) -> usize) -> usize {
    r.folders.iter().map(f).sum()
}

/// A message with a 200 KB attachment (base64 lines), LF line ends.
fn attachment_message() -> Vec<u8> {
    let mut m = b"From: alice@example.org\nTo: bob@example.org\nSubject: the report\n\
Message-ID: <report-200k@example.org>\nDate: Mon, 7 Dec 2026 06:00:00 +0000\n\
MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n--b1\n\
Content-Type: text/plain\n\nSee attached.\n--b1\nContent-Type: application/octet-stream\n\
Content-Transfer-Encoding: base64\n\n"
        .to_vec();
    let line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\n";
    while m.len() < 200 * 1024 {
        m.extend_from_slice(line);
    }
    m.extend_from_slice(b"--b1--\n");
    m
}

/// The local file holding `needle` in `folder`.
fn file_with(env: &Env, folder: &str, needle: &[u8]) -> PathBuf {
    env.local_files(folder)
        .into_iter()
        .find(|p| {
            fs::read(p)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
        })
        .unwrap_or_else(|| {
            panic!(
                "no file with {:?} in {folder}",
                String::from_utf8_lossy(needle)
            )
        })
}

/// What a mail reader's "save to folder" writes: the same bytes under a new unique name in
/// the other folder's `cur/`, with the reader's flags.
fn save_copy(env: &Env, original: &Path, folder: &str, name: &str, flags: &str) -> PathBuf {
    let dir = env.local_dir(folder);
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let p = dir.join("cur").join(format!("{name}:2,{flags}"));
    fs::copy(original, &p).unwrap();
    p
}

fn assert_equal(env: &Env, folder: &str) {
    let (server, local) = (env.server_folder(folder), env.local_folder(folder));
    assert_eq!(server, local, "{folder}: {}", common::diff(&server, &local));
}

fn assert_nothing_to_do(env: &Env) {
    let r = env.sync();
    assert!(r.is_complete(), "{r:#?}");
    assert!(!r.changed_anything(), "{r:#?}");
    let t = traffic(&r);
    for c in ["APPEND", "UID COPY", "UID MOVE", "UID STORE", "UID EXPUNGE"] {
        assert_eq!(t.count(c), 0, "{c}: {t:#?}");
    }
}

/// A message saved to another folder (the original kept) is one `UID COPY` on the server: no
/// APPEND, none of its 200 KB sent, the copy carries the saved file's flags, both folders
/// equal the server, and the next run does nothing.
#[test]
fn a_readers_copy_is_one_uid_copy() {
    let env = Env::new();
    env.dovecot.create_mailbox(&env.user, "Archive");
    let big = attachment_message();
    env.deliver("INBOX", &big);
    env.deliver("INBOX", &message("inbox", 1));
    env.deliver("Archive", &message("archive", 1));
    let first = env.sync();
    assert!(first.is_complete(), "{first:#?}");

    let original = file_with(&env, "INBOX", b"<report-200k@example.org>");
    save_copy(&env, &original, "Archive", "1765090000.R1.reader", "FS");
    let r = env.sync();
    assert!(r.is_complete(), "{r:#?}");
    let t = traffic(&r);
    assert_eq!(t.count("UID COPY"), 1, "{t:#?}");
    assert_eq!(t.count("APPEND"), 0, "{t:#?}");
    assert_eq!(t.count("UID MOVE"), 0, "{t:#?}");
    // The attachment alone is 200 KB; the commands of a run are a few KB.
    assert!(t.bytes_sent < 20_000, "{t:#?}");
    assert_eq!(total(&r, |f| f.copied), 1, "{r:#?}");
    assert_eq!(total(&r, |f| f.uploaded + f.downloaded), 0, "{r:#?}");
    assert_equal(&env, "INBOX");
    assert_equal(&env, "Archive");
    let archive = env.server_folder("Archive");
    assert!(
        archive
            .iter()
            .any(|(body, flags)| *body == big && flags == "FS"),
        "{archive:?}"
    );
    // The original keeps its own flags.
    assert!(env
        .server_folder("INBOX")
        .iter()
        .any(|(body, flags)| *body == big && flags.is_empty()));
    assert_nothing_to_do(&env);
}

/// Saved and then deleted in the original folder (the reader's move): the planner's
/// local-move pass makes it one `UID MOVE`, neither a copy nor an upload; the next run does
/// nothing.
#[test]
fn a_readers_move_stays_one_uid_move() {
    let env = Env::new();
    env.dovecot.create_mailbox(&env.user, "Archive");
    let big = attachment_message();
    env.deliver("INBOX", &big);
    env.deliver("INBOX", &message("inbox", 1));
    let first = env.sync();
    assert!(first.is_complete(), "{first:#?}");

    let original = file_with(&env, "INBOX", b"<report-200k@example.org>");
    save_copy(&env, &original, "Archive", "1765090001.R2.reader", "S");
    fs::remove_file(&original).unwrap();
    let r = env.sync();
    assert!(r.is_complete(), "{r:#?}");
    let t = traffic(&r);
    assert_eq!(t.count("UID MOVE"), 1, "{t:#?}");
    assert_eq!(t.count("UID COPY"), 0, "{t:#?}");
    assert_eq!(t.count("APPEND"), 0, "{t:#?}");
    assert!(t.bytes_sent < 20_000, "{t:#?}");
    assert_eq!(total(&r, |f| f.remote_moves), 1, "{r:#?}");
    assert_eq!(total(&r, |f| f.copied + f.uploaded), 0, "{r:#?}");
    assert_equal(&env, "INBOX");
    assert_equal(&env, "Archive");
    assert!(env
        .server_folder("Archive")
        .iter()
        .any(|(body, flags)| *body == big && flags == "S"));
    assert!(env
        .server_folder("INBOX")
        .iter()
        .all(|(body, _)| *body != big));
    assert_nothing_to_do(&env);
}

/// The same message saved to two folders at once, the original kept: two copies, no upload.
#[test]
fn a_message_saved_to_two_folders_is_two_copies() {
    let env = Env::new();
    env.dovecot.create_mailbox(&env.user, "Archive");
    env.dovecot.create_mailbox(&env.user, "Work");
    env.deliver("INBOX", &message("inbox", 7));
    let first = env.sync();
    assert!(first.is_complete(), "{first:#?}");
    let original = file_with(&env, "INBOX", b"inbox");
    save_copy(&env, &original, "Archive", "1765090002.R3.reader", "S");
    save_copy(&env, &original, "Work", "1765090003.R4.reader", "");
    let r = env.sync();
    assert!(r.is_complete(), "{r:#?}");
    let t = traffic(&r);
    assert_eq!(t.count("UID COPY"), 2, "{t:#?}");
    assert_eq!(t.count("APPEND"), 0, "{t:#?}");
    for f in ["INBOX", "Archive", "Work"] {
        assert_equal(&env, f);
    }
    assert_nothing_to_do(&env);
}
