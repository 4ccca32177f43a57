//! End-to-end mirroring against a private Dovecot: a large mailbox, idempotence, and what a
//! mail indexer sees in the store.

#[path = "sync_common.rs"]
mod common;

use std::time::Instant;

use common::{diff, message, Env};

const FOLDERS: [&str; 5] = ["INBOX", "Archive", "Lists/rust", "Sent", "Work"];

/// Seed V0041 (folders discovered with LIST "" "*", nested ones included), with V0006
/// (INTERNALDATE becomes the file's mtime) and V0054 (downloads never set \Seen): 2,000
/// messages in 5 folders arrive byte for byte with their flags, and a second run does nothing.
#[test]
fn v0041_two_thousand_messages_in_five_folders_mirror_exactly() {
    let env = Env::new();
    let flags = ["", "S", "FS", "RS", "D", "", "S", "T"];
    for folder in FOLDERS {
        let msgs: Vec<(Vec<u8>, &str)> = (0..400)
            .map(|i| (message(folder, i), flags[i % flags.len()]))
            .collect();
        env.seed_server(folder, &msgs);
    }
    let unseen_before: Vec<String> = FOLDERS.iter().map(|f| env.status(f, "unseen")).collect();

    // fsync is about power loss, not what this test measures; without it the run is bound by
    // the protocol, not by 4,000 disk flushes.
    let mut account = env.account();
    account.fsync = false;
    let t = Instant::now();
    let r = env.sync_with(&account);
    let took = t.elapsed();
    assert!(r.is_complete(), "{r:#?}");
    let downloaded: usize = r.folders.iter().map(|f| f.downloaded).sum();
    assert_eq!(downloaded, 2000, "{r:#?}");
    for folder in FOLDERS {
        let (s, l) = (env.server_folder(folder), env.local_folder(folder));
        assert_eq!(s.len(), 400, "{folder}");
        assert!(s == l, "{folder} differs:\n{}", diff(&s, &l));
    }
    // V0054: BODY.PEEK never marks anything read.
    let unseen_after: Vec<String> = FOLDERS.iter().map(|f| env.status(f, "unseen")).collect();
    assert_eq!(unseen_before, unseen_after);
    // V0006: mtime = INTERNALDATE (the seeded server files carry it as their mtime).
    let some = env.local_files("Work");
    let mut mtimes: Vec<u64> = some
        .iter()
        .map(|p| {
            std::fs::metadata(p)
                .unwrap()
                .modified()
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        })
        .collect();
    mtimes.sort();
    assert_eq!(mtimes[0], 1_600_000_000);
    assert_eq!(mtimes[399], 1_600_000_000 + 399 * 60);
    eprintln!("first sync of 2,000 messages took {took:?}");

    let t = Instant::now();
    let again = env.sync_with(&account);
    eprintln!("second sync took {:?}", t.elapsed());
    assert!(again.is_complete(), "{again:#?}");
    assert!(
        !again.changed_anything(),
        "second run changed something: {again:#?}"
    );
    for folder in FOLDERS {
        assert_eq!(env.server_folder(folder), env.local_folder(folder));
    }
}

/// `notmuch new` on the store indexes every message and finds no non-mail file: the state
/// database lives outside the Maildir and the store writes nothing else into it.
#[test]
fn notmuch_indexes_every_message_and_no_other_file() {
    mailfold_testsupport::require_or_skip!(mailfold_testsupport::Tool::Notmuch);
    let out = std::process::Command::new("notmuch")
        .arg("--version")
        .output()
        .expect("run notmuch --version");
    assert!(out.status.success());
    let env = Env::new();
    for folder in ["INBOX", "Lists/rust"] {
        let msgs: Vec<(Vec<u8>, &str)> = (0..25).map(|i| (message(folder, i), "S")).collect();
        env.seed_server(folder, &msgs);
    }
    env.drop_local(
        "INBOX",
        "local-draft",
        b"Subject: draft without much\n\nhello\n",
    );
    let r = env.sync();
    assert!(r.is_complete(), "{r:#?}");
    let home = env.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let cfg = home.join("notmuch-config");
    std::fs::write(
        &cfg,
        format!(
            "[database]\npath={}\n[user]\nname=T\nprimary_email=t@example.org\n[new]\ntags=unread;\n",
            env.maildir().display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new("notmuch")
        .env("NOTMUCH_CONFIG", &cfg)
        .env("HOME", &home)
        .arg("new")
        .output()
        .expect("run notmuch");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        !text.contains("non-mail"),
        "notmuch found non-mail files: {text}"
    );
    let count = std::process::Command::new("notmuch")
        .env("NOTMUCH_CONFIG", &cfg)
        .env("HOME", &home)
        .args(["count", "--output=files", "*"])
        .output()
        .expect("run notmuch count");
    let n: usize = String::from_utf8_lossy(&count.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    assert_eq!(n, 51, "notmuch output: {text}");
}
