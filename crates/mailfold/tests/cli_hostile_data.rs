//! The real `mailfold` binary against a scripted server whose message data the sync cannot
//! use: what the user is told, and that no advice is given that would not help. Listed in
//! docs/reliability.md ("Hostile server cases (sync data)").

mod util;

use std::time::Duration;

use mailfold_testsupport::{Script, ScriptedServer};
use util::Home;

/// A message without RFC822.SIZE cannot be matched by content, so its folder is refused;
/// `--force` does not lift that refusal, so the output must not suggest it.
#[test]
fn a_refusal_that_force_does_not_lift_prints_no_force_hint() {
    let hdr = "Message-ID: <nosize@test>\r\n\r\n";
    let script = || {
        Script::new()
            .step_timeout(Duration::from_secs(10))
            .send_line("* OK [CAPABILITY IMAP4rev1] hostile server ready")
            .expect("LOGIN *")
            .send_tagged("OK [CAPABILITY IMAP4rev1] logged in")
            .expect("LSUB *")
            .send_tagged("OK LSUB done")
            .expect("LIST *")
            .send_line("* LIST (\\HasNoChildren) \"/\" INBOX")
            .send_tagged("OK LIST done")
            .expect("SELECT INBOX*")
            .send("* 1 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 2] n\r\n")
            .send_tagged("OK [READ-WRITE] selected")
            .expect("UID FETCH *FLAGS*")
            .send("* 1 FETCH (UID 1 FLAGS ())\r\n")
            .send_tagged("OK flags")
            .expect("UID FETCH *RFC822.SIZE*")
            .send(format!(
                "* 1 FETCH (UID 1 INTERNALDATE \"01-Jan-2024 10:00:00 +0000\" BODY[HEADER.FIELDS (MESSAGE-ID)] {{{}}}\r\n{hdr})\r\n",
                hdr.len()
            ))
            .send_tagged("OK details")
            .expect("LOGOUT")
            .send_line("* BYE bye")
            .send_tagged("OK bye")
    };
    for args in [&["sync"][..], &["sync", "--force"]] {
        let server = ScriptedServer::start(script());
        let home = Home::new();
        // An empty INBOX exists already: a mirror with nothing at all may be read one folder
        // at a time after a STATUS round, and the script gives one command order.
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(home.maildir().join("INBOX").join(sub)).unwrap();
        }
        home.write_config(
            "127.0.0.1",
            server.port(),
            "none",
            "pw",
            None,
            "allow_plaintext_password = true\n",
        );
        let run = home.run(args);
        let said = format!("{}\n{}", run.stdout, run.stderr);
        assert!(
            said.contains("refused") && said.contains("RFC822.SIZE"),
            "{args:?}: {said}"
        );
        assert!(!said.contains("--force"), "{args:?}: {said}");
    }
}
