//! The commands that change mail, where the server says no or answers with a response code
//! the sync engine's applier acts on: the refused folder change is taken back locally (seed
//! V0019), and `[TRYCREATE]` creates the folder and tries once more (seeds V0047, V0058).

mod util;

use util::{plain, Env};

/// Seed V0019: a CREATE the server refuses (the name exists there already) leaves no local
/// folder behind that every sync would retry, and the server's text reaches the user.
#[test]
fn v0019_a_refused_create_is_taken_back_locally() {
    let env = Env::new();
    env.run(&["sync"]).ok();
    env.dovecot.create_mailbox(&env.user, "Taken");
    let r = env.run(&["create-folder", "Taken"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("refused to create Taken") && r.stderr.contains("NO"),
        "{}",
        r.stderr
    );
    assert!(!env.home.maildir().join("Taken").exists());
    // The server's folder is mirrored by the next sync as any other.
    env.run(&["sync"]).ok();
    assert!(env.home.maildir().join("Taken").join("cur").is_dir());
}

/// Seed V0019: a RENAME the server refuses (the new name exists there) renames the local
/// directory back, with its messages.
#[test]
fn v0019_a_refused_rename_is_taken_back_locally() {
    let env = Env::new();
    env.dovecot.create_mailbox(&env.user, "Work");
    env.deliver("Work", &plain("A <a@example.org>", "kept", "x"));
    env.run(&["sync"]).ok();
    env.dovecot.create_mailbox(&env.user, "Busy");
    let r = env.run(&["rename-folder", "Work", "Busy"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("refused to rename Work"), "{}", r.stderr);
    let work = env.home.maildir().join("Work");
    assert!(work.join("cur").is_dir() || work.join("new").is_dir());
    assert!(!env.home.maildir().join("Busy").exists());
    let j = env.run(&["--json", "sync"]).ok().json();
    assert_eq!(j["accounts"][0]["complete"], true, "{j}");
    assert_eq!(env.count("Work"), 1);
}

/// Seeds V0047/V0058: an append to a folder the server no longer has is answered
/// `NO [TRYCREATE]`; the folder is created and the APPEND sent once more. The new folder has a
/// new UIDVALIDITY, so its APPENDUID is not recorded under the old one: the next sync binds the
/// copy to the file by content (V0003), uploading nothing twice.
#[test]
fn v0047_append_to_a_folder_gone_from_the_server_creates_it() {
    let env = Env::new();
    env.dovecot.create_mailbox(&env.user, "Notes");
    env.run(&["sync"]).ok();
    env.dovecot
        .doveadm(&["mailbox", "delete", "-u", &env.user, "Notes"]);
    let file = env.home.path().join("note.eml");
    std::fs::write(&file, plain("Me <user1@example.org>", "a note", "body")).unwrap();
    let a = env
        .run(&[
            "--json",
            "append",
            file.to_str().unwrap(),
            "--folder",
            "Notes",
        ])
        .ok()
        .json();
    assert_eq!(a["pushed"], "server", "{a}");
    assert_eq!(env.count("Notes"), 1);
    let j = env.run(&["--json", "sync"]).ok().json();
    assert_eq!(j["accounts"][0]["complete"], true, "{j}");
    assert_eq!(env.count("Notes"), 1, "uploaded twice: {j}");
    let list = env.run(&["--json", "list", "Notes"]).ok().json();
    assert!(list["messages"][0]["uid"].as_u64().is_some(), "{list}");
}
