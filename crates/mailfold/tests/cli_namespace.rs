//! Folder names under a root (seed V0022): with `root_folder` set, or a server whose
//! personal namespace has a prefix (`INBOX.`, as on Cyrus and Courier), every command names
//! folders exactly as the sync filed them — the root's levels taken off, INBOX kept — and
//! sends the server the full names.

mod util;

use mailfold_testsupport::Dovecot;
use serde_json::Value;
use util::{plain, Env};

fn names(v: &Value) -> Vec<String> {
    let mut n: Vec<String> = v["folders"]
        .as_array()
        .unwrap_or_else(|| panic!("no folders in {v}"))
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

fn server_mailboxes(env: &Env) -> Vec<String> {
    let mut v: Vec<String> = env
        .dovecot
        .doveadm(&["mailbox", "list", "-u", &env.user])
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    v.sort();
    v
}

fn uid_of(env: &Env, folder: &str, subject: &str) -> String {
    let list = env.run(&["--json", "list", folder]).ok().json();
    list["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages in {list}"))
        .iter()
        .find(|m| m["subject"].as_str().is_some_and(|s| s.contains(subject)))
        .and_then(|m| m["id"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no {subject:?} in {list}"))
}

/// Points account `t` at the Dovecot again, with `extra` config keys.
fn reconfigure(env: &Env, extra: &str) {
    let addr = env.dovecot.imaps_addr();
    env.home.write_config(
        &addr.ip().to_string(),
        addr.port(),
        "implicit",
        &env.dovecot.user(0).password,
        Some(&env.dovecot.ca_file()),
        extra,
    );
}

/// The commands after a first sync: local and server listings, list, create-folder and
/// move all agree with the sync's names; the server sees `full(local)`.
fn commands_agree(env: &Env, expected: &[&str], full: impl Fn(&str) -> String) {
    let r = env.run(&["--json", "sync"]).ok().json();
    assert_eq!(r["accounts"][0]["complete"], true, "{r}");
    // The sync's own names, from its report.
    let mut synced: Vec<String> = r["accounts"][0]["folders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["folder"].as_str().unwrap().to_string())
        .collect();
    synced.sort();
    assert_eq!(synced, expected, "{r}");

    let local = env.run(&["--json", "folders", "--local"]).ok().json();
    assert_eq!(names(&local), expected, "{local}");
    let server = env.run(&["--json", "folders", "--server"]).ok().json();
    assert_eq!(names(&server), expected, "{server}");
    let work = server["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Work")
        .cloned()
        .unwrap();
    assert_eq!(work["messages"], 1, "{server}");

    // `list` and `move` name the folder as the sync did; the server moves between the full
    // names.
    let uid = uid_of(env, "Work", "work item");
    env.run(&["--json", "move", "Work", &uid, "--to", "Sent"])
        .ok();
    assert_eq!(env.count(&full("Work")), 0);
    assert_eq!(env.count(&full("Sent")), 1);
    uid_of(env, "Sent", "work item");

    // A new folder goes under the root on the server.
    let r = env
        .run(&["--json", "create-folder", "Projects"])
        .ok()
        .json();
    assert_eq!(r["pushed"], "server", "{r}");
    assert!(
        server_mailboxes(env).contains(&full("Projects")),
        "{:?}",
        server_mailboxes(env)
    );
    let local = env.run(&["--json", "folders", "--local"]).ok().json();
    assert!(names(&local).contains(&"Projects".to_string()), "{local}");

    // Nothing left for the sync to do: it sees the same folders the commands made.
    let r = env.run(&["--json", "sync"]).ok().json();
    for f in r["accounts"][0]["folders"].as_array().unwrap() {
        for k in ["downloaded", "uploaded", "remote_moves", "local_moves"] {
            assert_eq!(f[k], 0, "{k} in {f}");
        }
        assert_ne!(f["created_remote"], true, "{f}");
        assert_ne!(f["created_local"], true, "{f}");
    }
}

#[test]
fn v0022_commands_use_the_root_folder_like_the_sync() {
    let env = Env::new();
    for mb in ["Mail", "Mail.Sent", "Mail.Work", "Other"] {
        env.dovecot.create_mailbox(&env.user, mb);
    }
    env.deliver("Mail.Work", &plain("a@example.org", "work item", "w"));
    env.deliver("Other", &plain("b@example.org", "elsewhere", "o"));
    env.deliver("INBOX", &plain("c@example.org", "inbox item", "i"));
    reconfigure(&env, "root_folder = \"Mail\"\n");
    // Before any sync (no mirror yet), a search still names the folder under the root.
    let r = env
        .run(&["--json", "search", "Work", "subject", "work"])
        .ok()
        .json();
    assert_eq!(r["source"], "server", "{r}");
    assert_eq!(r["uids"].as_array().map(Vec::len), Some(1), "{r}");
    commands_agree(&env, &["INBOX", "Sent", "Work"], |local| {
        format!("Mail.{local}")
    });
    // The folder outside the root never reached the mirror.
    assert!(!env.home.maildir().join("Other").exists());
}

#[test]
fn v0022_commands_use_a_prefixed_personal_namespace_like_the_sync() {
    // Dovecot merges a second block of the same namespace into the first: the personal
    // namespace becomes `INBOX.` as on Cyrus and Courier.
    let env = Env::with(
        Dovecot::builder()
            .special_use(false)
            .extra_config("namespace inbox {\n  prefix = INBOX.\n}\n"),
    );
    for mb in ["INBOX.Sent", "INBOX.Work"] {
        env.dovecot.create_mailbox(&env.user, mb);
    }
    env.deliver("INBOX.Work", &plain("a@example.org", "work item", "w"));
    env.deliver("INBOX", &plain("c@example.org", "inbox item", "i"));
    commands_agree(&env, &["INBOX", "Sent", "Work"], |local| {
        format!("INBOX.{local}")
    });
    // No folder was made as INBOX/Work or INBOX/INBOX locally.
    assert!(!env.home.maildir().join("INBOX").join("Work").exists());
}
