//! Issue 5 account modes against a private Dovecot: pull-only (V0040), namespaces and a root
//! folder (V0022), LIST-STATUS (V0044), batched flag stores (V0060) and partial download
//! (V0010, V0070). Each test checks the end state and the absence of needless work, counted
//! from `mailfold-net`'s traffic counters.

#[path = "sync_common.rs"]
mod common;

use common::{message, Env};
use mailfold_sync::{Direction, SyncReport, Traffic};

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
