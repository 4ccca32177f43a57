//! A reader's copy is a server copy, through the real binary against a private Dovecot: a
//! message file copied by a mail reader into another folder of the mirror (the same bytes
//! under a new name) becomes one `UID COPY` on the server, not an upload of its bytes; the
//! report says "copied", and the run after it has nothing to do.

mod util;

use serde_json::Value;
use util::{plain, Env};

fn folder<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["accounts"][0]["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["folder"] == name)
        .unwrap_or_else(|| panic!("no folder {name} in {v}"))
}

#[test]
fn a_readers_copy_into_another_folder_is_copied_on_the_server_not_uploaded() {
    let env = Env::new();
    env.dovecot.create_mailbox(&env.user, "Archive");
    // A message with a large body: an upload would send all of it again.
    let body = "attachment line that a copy must not send back to the server\n".repeat(3000);
    env.deliver("INBOX", &plain("a@example.org", "report", &body));
    env.run(&["sync"]).ok();
    assert_eq!(env.count("INBOX"), 1);
    assert_eq!(env.count("Archive"), 0);

    // The reader's copy: the same bytes, a name of its own, in Archive.
    let inbox = env.home.maildir().join("INBOX");
    let src = ["cur", "new"]
        .iter()
        .filter_map(|s| std::fs::read_dir(inbox.join(s)).ok())
        .flat_map(|d| d.flatten().map(|e| e.path()))
        .next()
        .expect("the synced message");
    let copy = env
        .home
        .maildir()
        .join("Archive")
        .join("cur")
        .join("1700000000.M1P1.reader:2,S");
    std::fs::copy(&src, &copy).unwrap();

    let r = env.run(&["sync", "--json"]).ok();
    let v = r.json();
    let archive = folder(&v, "Archive");
    assert_eq!(archive["copied"], 1, "{v}");
    assert_eq!(archive["uploaded"], 0, "{v}");
    let commands = &v["accounts"][0]["traffic"]["commands"];
    assert_eq!(commands["UID COPY"], 1, "{v}");
    assert!(commands.get("APPEND").is_none(), "{v}");
    assert_eq!(env.count("Archive"), 1);
    assert_eq!(env.count("INBOX"), 1);
    assert!(env.server("Archive", "body").contains("attachment line"));

    // The run after it has nothing to do: no folder reports a change.
    let again = env.run(&["sync", "--json"]).ok().json();
    assert_eq!(
        again["accounts"][0]["folders"],
        serde_json::json!([]),
        "{again}"
    );
    assert_eq!(env.count("Archive"), 1);
}
