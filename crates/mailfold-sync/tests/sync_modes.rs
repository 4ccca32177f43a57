//! Account modes against a private Dovecot: pull-only (V0040), namespaces and a root
//! folder (V0022), LIST-STATUS (V0044), batched flag stores (V0060) and partial download
//! (V0010, V0070). Each test checks the end state and the absence of needless work, counted
//! from `mailfold-net`'s traffic counters.

#[path = "sync_common.rs"]
mod common;

use common::{message, Env};
use mailfold_sync::{AccountSpec, Direction, NetRemote, SyncOptions, SyncReport, Traffic};

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

/// Commands that change the server.
const WRITES: [&str; 11] = [
    "STORE",
    "UID STORE",
    "APPEND",
    "EXPUNGE",
    "UID EXPUNGE",
    "CREATE",
    "DELETE",
    "RENAME",
    "UID MOVE",
    "UID COPY",
    "SUBSCRIBE",
];

fn server_writes(t: &Traffic) -> u64 {
    WRITES.iter().map(|c| t.count(c)).sum()
}

/// Seed V0040: a pull-only account opens folders with EXAMINE and never writes to the server:
/// new mail and server flag changes come down; a new local file, a local flag change, a deleted
/// local file and a new local folder stay local, are reported pending, and send nothing.
#[test]
fn v0040_pull_mode_examines_and_never_writes_to_the_server() {
    let env = Env::new();
    for i in 0..3 {
        env.deliver("INBOX", &crlf(&message("INBOX", i)));
    }
    env.dovecot.create_mailbox(&env.user, "Work");
    env.deliver("Work", &crlf(&message("Work", 0)));
    let mut a = env.account();
    a.direction = Direction::Pull;
    let first = env.sync_with(&a);
    assert!(first.is_complete(), "{first:#?}");
    assert_eq!(total(&first, |f| f.downloaded), 4, "{first:#?}");
    let t = traffic(&first);
    assert!(t.count("EXAMINE") >= 2, "{t:#?}");
    assert_eq!(t.count("SELECT"), 0, "{t:#?}");
    assert_eq!(server_writes(t), 0, "{t:#?}");
    assert_eq!(env.local_folder("INBOX"), env.server_folder("INBOX"));

    // Local changes of every kind, and one new message on the server.
    env.drop_local("INBOX", "local-new.host", &message("Local", 9));
    let files = env.local_files("Work");
    let seen = files[0].with_file_name(format!(
        "{}S",
        files[0].file_name().unwrap().to_string_lossy()
    ));
    std::fs::rename(&files[0], &seen).unwrap();
    let inbox = env.local_files("INBOX");
    let gone = inbox
        .iter()
        .find(|p| !p.to_string_lossy().contains("local-new"))
        .unwrap();
    std::fs::remove_file(gone).unwrap();
    env.drop_local("OnlyHere", "x.host", &message("OnlyHere", 1));
    env.deliver("INBOX", &crlf(&message("INBOX", 7)));
    let server_before = (env.server_folder("INBOX"), env.server_folder("Work"));

    let r = env.sync_with(&a);
    let t = traffic(&r);
    assert_eq!(server_writes(t), 0, "pull mode wrote to the server: {t:#?}");
    assert_eq!(t.count("SELECT"), 0, "{t:#?}");
    assert_eq!(total(&r, |f| f.downloaded), 1, "{r:#?}");
    assert_eq!(
        (env.server_folder("INBOX"), env.server_folder("Work")),
        server_before,
        "the server is unchanged"
    );
    assert!(
        total(&r, |f| f.pending) >= 2,
        "local changes are reported: {r:#?}"
    );
    assert!(
        env.local_files("OnlyHere").len() == 1,
        "the local folder stays"
    );
    assert!(env
        .local_files("INBOX")
        .iter()
        .any(|p| p.to_string_lossy().contains("local-new")));
    // A second pull changes nothing and still writes nothing.
    let again = env.sync_with(&a);
    assert_eq!(server_writes(traffic(&again)), 0, "{:#?}", traffic(&again));
    assert_eq!(total(&again, |f| f.downloaded), 0, "{again:#?}");
}

/// A run over a NetRemote whose capabilities are trimmed first.
fn sync_hiding(env: &Env, a: &AccountSpec, hide: &[&str]) -> SyncReport {
    let (maildir, mut db) = mailfold_sync::open_store(a).unwrap();
    let mut remote = NetRemote::connect(a).unwrap();
    for h in hide {
        remote.hide_capability(h);
    }
    let r =
        mailfold_sync::sync_with_remote(&mut remote, a, &SyncOptions::default(), &maildir, &mut db)
            .unwrap_or_else(|e| panic!("sync failed: {e}\n{}", env.dovecot.log()));
    let stats = remote.stats();
    mailfold_sync::Remote::logout(&mut remote);
    SyncReport {
        traffic: Some(Traffic::of(&stats)),
        ..r
    }
}

/// Seed V0044: Dovecot offers LIST-STATUS, so a no-change sync learns every folder's counts
/// from the one LIST and sends no STATUS and no SELECT; a changed folder is still found and
/// is the only one opened. Without LIST-STATUS the same run needs one STATUS per folder.
#[test]
fn v0044_list_status_replaces_the_status_round() {
    let env = Env::new();
    env.deliver("INBOX", &crlf(&message("INBOX", 0)));
    for i in 0..8 {
        let f = format!("F{i}");
        env.dovecot.create_mailbox(&env.user, &f);
        env.deliver(&f, &crlf(&message(&f, 1)));
    }
    assert!(env.sync().is_complete());
    let again = env.sync();
    assert!(!again.changed_anything(), "{again:#?}");
    let t = traffic(&again);
    assert_eq!(t.count("LIST"), 1, "{t:#?}");
    assert_eq!(t.count("STATUS"), 0, "LIST-STATUS said it all: {t:#?}");
    assert_eq!(t.count("SELECT") + t.count("EXAMINE"), 0, "{t:#?}");
    assert!(again.unchanged_folders >= 9, "{again:#?}");

    env.deliver("F3", &crlf(&message("F3", 2)));
    let third = env.sync();
    assert_eq!(total(&third, |f| f.downloaded), 1, "{third:#?}");
    let t = traffic(&third);
    assert_eq!(t.count("STATUS"), 0, "{t:#?}");
    assert_eq!(t.count("SELECT"), 1, "{t:#?}");
    assert_eq!(env.local_folder("F3"), env.server_folder("F3"));

    // The same check without LIST-STATUS: one pipelined STATUS per folder instead.
    let hidden = sync_hiding(&env, &env.account(), &["LIST-STATUS"]);
    assert!(!hidden.changed_anything(), "{hidden:#?}");
    let t = traffic(&hidden);
    assert_eq!(t.count("STATUS"), hidden.unchanged_folders as u64, "{t:#?}");
    assert_eq!(t.count("SELECT"), 0, "{t:#?}");
}

/// Renames a local file to carry exactly `letters`, into `cur/`, as a mail reader does.
fn set_local_letters(p: &std::path::Path, letters: &str) {
    let name = p.file_name().unwrap().to_string_lossy().into_owned();
    let base = name.split_once(":2,").map_or(name.as_str(), |(b, _)| b);
    let cur = p.parent().unwrap().parent().unwrap().join("cur");
    std::fs::rename(p, cur.join(format!("{base}:2,{letters}"))).unwrap();
}

/// Seed V0060: flag changes go up as one `UID STORE` per distinct change over a compact UID
/// set, not one per message: 20 messages marked seen and 5 of them unflagged locally cost two
/// STOREs. A message that gains one flag and loses another is not taken for a concurrent
/// change (our own `+FLAGS` raised its MODSEQ before the `-FLAGS`).
#[test]
fn v0060_flag_changes_are_batched_into_one_store_per_change() {
    let env = Env::new();
    let msgs: Vec<(Vec<u8>, &str)> = (0..30)
        .map(|i| (message("INBOX", i), if i < 5 { "F" } else { "" }))
        .collect();
    env.seed_server("INBOX", &msgs);
    assert!(env.sync().is_complete());
    let mut marked = 0;
    for p in env.local_files("INBOX") {
        let l = common::letters_of(&p);
        // Every flagged one (it loses \Flagged), and unflagged ones up to 20 in all.
        if l == "F" || marked < 20 {
            set_local_letters(&p, "S");
            marked += 1;
        }
    }
    // Files are visited in name order, so the flagged ones may come late: count them all.
    let seen_local = env
        .local_files("INBOX")
        .iter()
        .filter(|p| common::letters_of(p).contains('S'))
        .count();
    let r = env.sync();
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(total(&r, |f| f.remote_flag_changes), seen_local, "{r:#?}");
    let t = traffic(&r);
    assert_eq!(
        t.count("UID STORE"),
        2,
        "one +FLAGS (\\Seen) and one -FLAGS (\\Flagged): {t:#?}"
    );
    assert_eq!(env.local_folder("INBOX"), env.server_folder("INBOX"));
    let again = env.sync();
    assert!(!again.changed_anything(), "{again:#?}");
}

/// Seeds V0010 and V0070: with `MaxSize`, small messages come whole and larger ones as their
/// header followed by a placeholder that says the body is on the server; nothing partial is
/// ever uploaded. A later full sync replaces each placeholder with the whole message in place
/// (no second copy, nothing sent up, only the missing bodies fetched), and then rests.
#[test]
fn v0010_max_size_leaves_placeholders_and_a_full_sync_completes_them() {
    let env = Env::new();
    let mut sizes = Vec::new();
    for i in 0..5 {
        let mut m = message("INBOX", i);
        if i >= 3 {
            for _ in 0..400 {
                m.extend_from_slice(b"A body line of a large message, kept on the server.\n");
            }
        }
        sizes.push(m.len());
        env.deliver("INBOX", &crlf(&m));
    }
    let mut a = env.account();
    a.download = mailfold_sync::DownloadMode::MaxSize(5_000);
    let r = env.sync_with(&a);
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(total(&r, |f| f.downloaded), 5, "{r:#?}");
    assert!(
        traffic(&r).bytes_received < 15_000,
        "the large bodies stay on the server: {:#?}",
        traffic(&r)
    );
    let local = env.local_folder("INBOX");
    let placeholders: Vec<String> = local
        .iter()
        .map(|(b, _)| String::from_utf8_lossy(b).into_owned())
        .filter(|t| t.contains("only the header of this message was downloaded"))
        .collect();
    assert_eq!(placeholders.len(), 2, "{local:#?}");
    for t in &placeholders {
        assert!(t.contains("Subject: INBOX message"), "{t}");
        assert!(!t.contains("A body line"), "{t}");
        assert!(t.contains("still on the server"), "{t}");
    }
    let quiet = env.sync_with(&a);
    assert!(!quiet.changed_anything(), "{quiet:#?}");
    assert_eq!(server_writes(traffic(&quiet)), 0, "{:#?}", traffic(&quiet));
    assert_eq!(
        env.server_folder("INBOX").len(),
        5,
        "no placeholder uploaded"
    );

    // Full mode: the two placeholders become whole messages under new names, in place.
    let full = env.sync();
    assert!(full.is_complete(), "{full:#?}");
    assert_eq!(total(&full, |f| f.downloaded), 2, "{full:#?}");
    assert_eq!(total(&full, |f| f.completed), 2, "{full:#?}");
    let t = traffic(&full);
    assert_eq!(server_writes(t), 0, "{t:#?}");
    assert_eq!(env.local_files("INBOX").len(), 5, "replaced, not added");
    assert_eq!(env.local_folder("INBOX"), env.server_folder("INBOX"));
    let again = env.sync();
    assert!(!again.changed_anything(), "{again:#?}");
    assert_eq!(env.local_folder("INBOX"), env.server_folder("INBOX"));
}

/// Seed V0022: NAMESPACE is asked once when the server offers it, and `root_folder` mirrors
/// only the folders under that server folder, as local top-level folders (INBOX stays
/// INBOX); a folder outside the root is never opened, and a new local folder is created on
/// the server under the root.
#[test]
fn v0022_namespace_and_root_folder() {
    let env = Env::new();
    let d = env.dovecot.delimiter();
    let under = |name: &str| format!("Archive{d}{name}");
    env.deliver("INBOX", &crlf(&message("INBOX", 0)));
    env.dovecot.create_mailbox(&env.user, "Work");
    env.deliver("Work", &crlf(&message("Work", 0)));
    for (i, f) in ["2024", "2025"].iter().enumerate() {
        env.dovecot.create_mailbox(&env.user, &under(f));
        env.deliver(&under(f), &crlf(&message(f, i)));
    }
    let mut a = env.account();
    // The form the CLI documents: the server's name with a trailing delimiter.
    a.root_folder = Some(format!("Archive{d}"));
    let r = env.sync_with(&a);
    assert!(r.is_complete(), "{r:#?}");
    let t = traffic(&r);
    assert_eq!(t.count("NAMESPACE"), 1, "asked once: {t:#?}");
    // INBOX, 2024 and 2025, each opened once (a first sync reads, plans and downloads one
    // folder at a time on one selection); not Work, not Archive itself, nor Dovecot's own
    // Sent, Trash…
    assert_eq!(t.count("SELECT"), 3, "{t:#?}");
    assert_eq!(total(&r, |f| f.downloaded), 3, "{r:#?}");
    let mut folders: Vec<&str> = r.folders.iter().map(|f| f.folder.as_str()).collect();
    folders.sort();
    assert_eq!(folders, ["2024", "2025", "INBOX"], "{r:#?}");
    assert_eq!(env.local_folder("2024"), env.server_folder("Archive/2024"));
    assert_eq!(env.local_folder("INBOX"), env.server_folder("INBOX"));
    assert!(!env.local_dir("Work").exists());
    assert!(!env.local_dir("Archive").exists());

    // A new local folder goes up under the root.
    env.drop_local("2026", "n.host", &message("2026", 1));
    let r = env.sync_with(&a);
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(total(&r, |f| f.uploaded), 1, "{r:#?}");
    assert_eq!(env.server_folder("Archive/2026").len(), 1);
    assert!(env.status("Work", "messages").contains("messages=1"));
    let again = env.sync_with(&a);
    assert!(!again.changed_anything(), "{again:#?}");
    // The folder this run created is read once to learn its state; after that, nothing.
    let quiet = env.sync_with(&a);
    assert_eq!(traffic(&quiet).count("SELECT"), 0, "{:#?}", traffic(&quiet));
}

/// Folder rename: a local folder renamed as a whole (`mv Projects Old`) becomes one
/// `RENAME` on the server: no message moved, copied, fetched or appended, no CREATE or
/// DELETE; the state follows, so the next run finds nothing to do without opening it.
#[test]
fn local_folder_rename_is_one_server_rename() {
    let env = Env::new();
    env.dovecot.create_mailbox(&env.user, "Projects");
    for i in 0..3 {
        env.deliver("Projects", &crlf(&message("Projects", i)));
    }
    assert!(env.sync().is_complete());
    let before = env.server_folder("Projects");
    std::fs::rename(env.local_dir("Projects"), env.local_dir("Old")).unwrap();
    let r = env.sync();
    assert!(r.is_complete(), "{r:#?}");
    let t = traffic(&r);
    assert_eq!(t.count("RENAME"), 1, "{t:#?}");
    for c in [
        "UID MOVE",
        "UID COPY",
        "APPEND",
        "CREATE",
        "DELETE",
        "UID FETCH",
        "UID STORE",
    ] {
        assert_eq!(t.count(c), 0, "{c}: {t:#?}");
    }
    let old = r
        .folders
        .iter()
        .find(|f| f.folder == "Old")
        .expect("reported");
    assert_eq!(old.renamed_from.as_deref(), Some("Projects"), "{r:#?}");
    assert_eq!(env.server_folder("Old"), before);
    assert!(!env.status("Old", "messages").is_empty());
    assert_eq!(env.local_folder("Old"), env.server_folder("Old"));
    let again = env.sync();
    assert!(!again.changed_anything(), "{again:#?}");
    assert_eq!(traffic(&again).count("SELECT"), 0, "{:#?}", traffic(&again));
    assert!(!env.local_dir("Projects").exists());
}
