//! The real `mailfold` binary against Cyrus IMAP 3.6, the second real server:
//! `sync`, `folders`, `list`, `search`, `flag`, `append` and `create-folder` on a server whose
//! hierarchy delimiter is `/` (so `.` is an ordinary character in a folder name), whose
//! special-use folders come from `CREATE … (USE …)`, which rewrites 8-bit header bytes and
//! refuses messages without a header.
//!
//! The server side is checked without mailfold, over IMAP with the test support crate's
//! own client (`Cyrus::run_as`). Each test skips, saying why, when Cyrus is not installed
//! (`scripts/install-cyrus`); under CI or `scripts/test` (MAILFOLD_REQUIRE_CYRUS) a missing
//! Cyrus fails it instead.

use std::path::PathBuf;
use std::process::{Command, Output};

use mailfold_testsupport::{Cyrus, CyrusBuilder};
use serde_json::Value;

/// Starts an instance from `builder`; without Cyrus, returns from the test saying why, or
/// fails it under CI (`mailfold_testsupport::require`).
macro_rules! cyrus_or_skip {
    ($builder:expr) => {{
        mailfold_testsupport::require_or_skip!(mailfold_testsupport::Tool::Cyrus);
        let builder: CyrusBuilder = $builder;
        builder.start()
    }};
}

/// What one run printed.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr)
        })
    }

    #[track_caller]
    fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A Cyrus and a home whose account `t` points at it over implicit TLS as `user1`.
struct Env {
    cyrus: Cyrus,
    dir: tempfile::TempDir,
    user: String,
}

impl Env {
    fn new(cyrus: Cyrus) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let u = cyrus.user(0).clone();
        let pw = dir.path().join("password");
        std::fs::write(&pw, format!("{}\n", u.password)).unwrap();
        let addr = cyrus.imaps_addr();
        let config = format!(
            "[accounts.t]\nhost = {:?}\nport = {}\ntls = \"implicit\"\nuser = {:?}\n\
             password_command = [\"cat\", {:?}]\nca_file = {:?}\nlocal = {:?}\nstate = {:?}\n\
             fsync = false\n",
            addr.ip().to_string(),
            addr.port(),
            u.name,
            pw.display().to_string(),
            cyrus.ca_file().display().to_string(),
            dir.path().join("mail").display().to_string(),
            dir.path().join("state.sqlite").display().to_string(),
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        Env {
            cyrus,
            dir,
            user: u.name,
        }
    }

    fn maildir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// Runs `mailfold --config <ours> ARGS`.
    fn run(&self, args: &[&str]) -> Run {
        Command::new(env!("CARGO_BIN_EXE_mailfold"))
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .args(args)
            .env("HOME", self.dir.path())
            .env("XDG_STATE_HOME", self.dir.path().join("xdg-state"))
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg-config"))
            .env_remove("MAILFOLD_CONFIG")
            .output()
            .expect("run mailfold")
            .into()
    }

    fn deliver(&self, wire: &str, msg: &str) -> u32 {
        self.cyrus
            .deliver(&self.user, wire, msg.replace('\n', "\r\n").as_bytes())
    }

    /// Runs IMAP commands as the user; each must end in a tagged OK.
    #[track_caller]
    fn imap(&self, commands: &[&str]) -> Vec<Vec<String>> {
        let replies = self
            .cyrus
            .run_as(&self.user, commands)
            .unwrap_or_else(|e| panic!("IMAP session: {e}"));
        for (c, r) in commands.iter().zip(&replies) {
            let tagged = r.last().map(String::as_str).unwrap_or("");
            assert!(tagged.split(' ').nth(1) == Some("OK"), "{c}: {r:?}");
        }
        replies
    }

    /// The server's `LIST "" "*"` lines.
    fn server_list(&self) -> Vec<String> {
        self.imap(&["LIST \"\" \"*\""])[0]
            .iter()
            .filter(|l| l.starts_with("* LIST"))
            .cloned()
            .collect()
    }

    /// Whether the server lists `wire` (a name in modified UTF-7) with the `/` delimiter.
    fn server_has(&self, wire: &str) -> bool {
        let quoted = format!("\"/\" \"{wire}\"");
        let bare = format!("\"/\" {wire}");
        self.server_list()
            .iter()
            .any(|l| l.ends_with(&quoted) || l.ends_with(&bare))
    }

    /// `FETCH (UID FLAGS)` lines of a server folder.
    fn server_flags(&self, wire: &str) -> Vec<String> {
        let select = format!("SELECT \"{wire}\"");
        let r = self.imap(&[&select, "UID FETCH 1:* (UID FLAGS)"]);
        r[1].iter()
            .filter(|l| l.contains(" FETCH ("))
            .cloned()
            .collect()
    }

    /// The FLAGS of one UID on the server.
    fn flags_of(&self, wire: &str, uid: &str) -> String {
        self.server_flags(wire)
            .into_iter()
            .find(|l| l.contains(&format!("UID {uid} ")) || l.contains(&format!("UID {uid})")))
            .unwrap_or_else(|| panic!("UID {uid} not in {wire}"))
    }

    /// Message count of a server folder.
    fn count(&self, wire: &str) -> usize {
        let r = self.imap(&[&format!("STATUS \"{wire}\" (MESSAGES)")]);
        r[0].iter()
            .find_map(|l| {
                let i = l.find("MESSAGES ")? + "MESSAGES ".len();
                l[i..].split(')').next()?.trim().parse().ok()
            })
            .unwrap_or_else(|| panic!("no STATUS in {r:?}"))
    }

    /// The local Maildir of a folder (levels as nested directories).
    fn local_dir(&self, folder: &str) -> PathBuf {
        let mut p = self.maildir();
        for c in folder.split('/') {
            p.push(c);
        }
        p
    }

    fn uid_with_subject(&self, folder: &str, subject: &str) -> String {
        let list = self.run(&["--json", "list", folder]).ok().json();
        messages(&list)
            .into_iter()
            .find(|m| m["subject"].as_str().is_some_and(|s| s.contains(subject)))
            .and_then(|m| m["id"].as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("no {subject:?} in {list}"))
    }

    /// After a change pushed online, the next sync has nothing to do.
    #[track_caller]
    fn assert_nothing_to_sync(&self) {
        let r = self.run(&["--json", "sync"]).ok().json();
        let acct = &r["accounts"][0];
        assert_eq!(acct["complete"], true, "{r}");
        for f in acct["folders"].as_array().unwrap() {
            for k in [
                "downloaded",
                "uploaded",
                "local_flag_changes",
                "remote_flag_changes",
                "local_deletions",
                "remote_deletions",
                "local_moves",
                "remote_moves",
            ] {
                assert_eq!(f[k], 0, "{k} in {f}");
            }
        }
    }
}

fn messages(v: &Value) -> Vec<Value> {
    v["messages"].as_array().cloned().unwrap_or_default()
}

fn folder_named<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v["folders"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["name"] == name))
}

/// A message with the given subject (plain text, ASCII headers).
fn plain(from: &str, subject: &str, body: &str) -> String {
    format!(
        "From: {from}\nTo: user1@example.org\nSubject: {subject}\n\
         Date: Mon, 15 Jan 2024 10:00:00 +0000\nMessage-ID: <{}@test>\nMIME-Version: 1.0\n\
         Content-Type: text/plain; charset=utf-8\n\n{body}\n",
        subject
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// RFC 2047 encoded words: the way non-ASCII headers reach Cyrus intact.
const ENCODED: &str = "From: =?UTF-8?Q?J=C3=BCrgen?= <j@example.de>\nTo: user1@example.org\n\
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= aus Berlin\nDate: Tue, 16 Jan 2024 10:00:00 +0000\n\
Message-ID: <encoded@test>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\
Content-Transfer-Encoding: 8bit\n\nGrüße im Text\n";

/// Every command the brief names, end to end on Cyrus: sync of a `/` hierarchy with non-ASCII
/// names, folders (local and server, special-use marks from Cyrus, V0066), list, search on
/// the server with CHARSET UTF-8 and offline (V0051), flag with a keyword (V0005), append of a
/// draft (V0046), create-folder with `/` levels, a `.` and non-ASCII (V0021); after each
/// online change, a sync has nothing left to do.
#[test]
fn every_command_against_cyrus() {
    let env = Env::new(cyrus_or_skip!(Cyrus::builder().special_use(true)));
    env.deliver(
        "INBOX",
        &plain("Alice <alice@example.org>", "hello alice", "first body"),
    );
    env.deliver("INBOX", ENCODED);
    env.deliver(
        "INBOX",
        &plain("Bob <bob@example.net>", "figures", "numbers"),
    );
    env.cyrus.create_mailbox(&env.user, "Projects");
    env.cyrus.create_mailbox(&env.user, "Projects/2024");
    env.cyrus.create_mailbox(&env.user, "&AMk-t&AOk-");
    env.deliver(
        "Projects/2024",
        &plain("Carol <carol@example.org>", "q1 plan", "plan"),
    );
    env.deliver(
        "&AMk-t&AOk-",
        &plain("Dan <dan@example.org>", "summer", "sun"),
    );

    // sync, human then JSON
    let r = env.run(&["sync"]).ok();
    assert!(r.stdout.contains("account t: synced"), "{}", r.stdout);
    assert!(r.stdout.contains("INBOX: 3 downloaded"), "{}", r.stdout);
    let j = env.run(&["--json", "sync"]).ok().json();
    assert_eq!(j["accounts"][0]["complete"], true, "{j}");
    for dir in ["Projects/2024", "Été"] {
        assert!(
            env.local_dir(dir).join("cur").is_dir(),
            "{dir} not mirrored"
        );
    }

    // folders: the local tree and the server's, with Cyrus' special-use folders
    let local = env.run(&["--json", "folders", "--local"]).ok().json();
    for name in [
        "INBOX",
        "Projects",
        "Projects/2024",
        "Été",
        "Sent",
        "Drafts",
    ] {
        assert!(folder_named(&local, name).is_some(), "{name} in {local}");
    }
    assert_eq!(
        folder_named(&local, "INBOX").unwrap()["messages"],
        3,
        "{local}"
    );
    assert_eq!(
        folder_named(&local, "Projects/2024").unwrap()["messages"],
        1,
        "{local}"
    );
    // Cyrus' special-use marks are kept in the mirror too (V0066).
    assert_eq!(
        folder_named(&local, "Sent").map(|f| f["special_use"].clone()),
        Some(Value::from("\\Sent")),
        "{local}"
    );
    let server = env.run(&["--json", "folders", "--server"]).ok().json();
    assert_eq!(server["source"], "server", "{server}");
    assert_eq!(
        folder_named(&server, "Projects/2024").map(|f| f["messages"].clone()),
        Some(Value::from(1)),
        "{server}"
    );
    assert!(folder_named(&server, "Été").is_some(), "{server}");
    for (name, mark) in [
        ("Sent", "\\Sent"),
        ("Drafts", "\\Drafts"),
        ("Trash", "\\Trash"),
        ("Junk", "\\Junk"),
        ("Archive", "\\Archive"),
    ] {
        assert_eq!(
            folder_named(&server, name).map(|f| f["special_use"].clone()),
            Some(Value::from(mark)),
            "{server}"
        );
    }
    let human = env.run(&["folders"]).ok();
    assert!(
        // A tree: the child level indented under its parent.
        human.stdout.lines().any(|l| l.starts_with("Projects"))
            && human.stdout.lines().any(|l| l.starts_with("  2024"))
            && human.stdout.lines().any(|l| l.starts_with("Été")),
        "{}",
        human.stdout
    );

    // list: UIDs, decoded RFC 2047 subject and sender; a nested folder by its `/` name
    let list = env.run(&["--json", "list", "INBOX"]).ok().json();
    assert_eq!(messages(&list).len(), 3, "{list}");
    assert!(
        messages(&list)
            .iter()
            .any(|m| m["subject"] == "Grüße aus Berlin" && m["from"] == "Jürgen <j@example.de>"),
        "{list}"
    );
    let nested = env.run(&["--json", "list", "Projects/2024"]).ok().json();
    assert_eq!(messages(&nested).len(), 1, "{nested}");
    assert_eq!(messages(&nested)[0]["subject"], "q1 plan", "{nested}");
    let human = env.run(&["list", "Été"]).ok();
    assert!(human.stdout.contains("summer"), "{}", human.stdout);

    // search: on the server (Cyrus has ESEARCH and UTF-8 search), then over the mirror
    let s = env
        .run(&["--json", "search", "INBOX", "from", "alice"])
        .ok()
        .json();
    assert_eq!(s["source"], "server", "{s}");
    assert_eq!(s["uids"].as_array().unwrap().len(), 1, "{s}");
    let s = env
        .run(&["--json", "search", "INBOX", "subject", "Grüße"])
        .ok()
        .json();
    assert_eq!(s["source"], "server", "{s}");
    assert_eq!(s["messages"].as_array().unwrap().len(), 1, "{s}");
    assert_eq!(s["messages"][0]["subject"], "Grüße aus Berlin", "{s}");
    let s = env
        .run(&["--json", "search", "Projects/2024", "subject", "plan"])
        .ok()
        .json();
    assert_eq!(s["uids"].as_array().unwrap().len(), 1, "{s}");
    let s = env
        .run(&["--json", "--offline", "search", "INBOX", "from alice"])
        .ok()
        .json();
    assert_eq!(s["source"], "local", "{s}");
    assert_eq!(s["uids"].as_array().unwrap().len(), 1, "{s}");

    // flag: on the server at once, recorded as synced; a keyword too (V0005)
    let hello = env.uid_with_subject("INBOX", "hello alice");
    let f = env
        .run(&["--json", "flag", "INBOX", &hello, "--set", "flagged,seen"])
        .ok()
        .json();
    assert_eq!(f["pushed"], "server", "{f}");
    let flags = env.flags_of("INBOX", &hello);
    assert!(
        flags.contains("\\Flagged") && flags.contains("\\Seen"),
        "{flags}"
    );
    env.assert_nothing_to_sync();
    env.run(&[
        "flag",
        "INBOX",
        &hello,
        "--clear",
        "flagged",
        "--set",
        "$Important",
    ])
    .ok();
    let flags = env.flags_of("INBOX", &hello);
    assert!(
        !flags.contains("\\Flagged") && flags.contains("$Important"),
        "{flags}"
    );
    env.assert_nothing_to_sync();
    let plan = env.uid_with_subject("Projects/2024", "q1 plan");
    env.run(&["flag", "Projects/2024", &plan, "--set", "answered"])
        .ok();
    assert!(env.flags_of("Projects/2024", &plan).contains("\\Answered"));
    env.assert_nothing_to_sync();

    // append: a draft with a header but no From or Date is accepted by Cyrus (V0046)
    let file = env.dir.path().join("draft.eml");
    std::fs::write(&file, "Subject: unfinished\n\nno From, no Date yet\n").unwrap();
    let a = env
        .run(&[
            "--json",
            "append",
            "--draft",
            file.to_str().unwrap(),
            "--folder",
            "Drafts",
        ])
        .ok()
        .json();
    assert_eq!(a["pushed"], "server", "{a}");
    assert!(a["uid"].as_u64().is_some(), "{a}");
    assert_eq!(env.count("Drafts"), 1);
    assert!(env.server_flags("Drafts")[0].contains("\\Draft"));
    env.assert_nothing_to_sync();
    // into a nested folder, by its `/` name
    let file = env.dir.path().join("note.eml");
    std::fs::write(&file, plain("Me <user1@example.org>", "appended note", "n")).unwrap();
    let a = env
        .run(&[
            "--json",
            "append",
            file.to_str().unwrap(),
            "--folder",
            "Projects/2024",
        ])
        .ok()
        .json();
    assert_eq!(a["pushed"], "server", "{a}");
    assert_eq!(env.count("Projects/2024"), 2);
    env.assert_nothing_to_sync();

    // create-folder: `/` levels, and names that are only legal with Cyrus' delimiter
    env.run(&["create-folder", "Projects/2025"]).ok();
    assert!(env.server_has("Projects/2025"), "{:?}", env.server_list());
    assert!(env.local_dir("Projects/2025").join("cur").is_dir());
    env.run(&["create-folder", "Reisen/Übersee"]).ok();
    assert!(
        env.server_has("Reisen/&ANw-bersee"),
        "{:?}",
        env.server_list()
    );
    assert!(env.local_dir("Reisen/Übersee").join("cur").is_dir());
    env.assert_nothing_to_sync();
}

/// Seed V0020 on Cyrus: the delimiter is `/`, so a `.` in a level is an ordinary character
/// (on Dovecot's Maildir++ the same name is refused), and the folder round-trips.
#[test]
fn v0020_dot_is_an_ordinary_character_with_the_slash_delimiter() {
    let env = Env::new(cyrus_or_skip!(Cyrus::builder()));
    env.deliver("INBOX", &plain("A <a@example.org>", "x", "y"));
    env.run(&["sync"]).ok();
    let r = env.run(&["create-folder", "v1.2"]);
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(env.server_has("v1.2"), "{:?}", env.server_list());
    assert!(env.local_dir("v1.2").join("cur").is_dir());
    let file = env.dir.path().join("m.eml");
    std::fs::write(&file, plain("Me <user1@example.org>", "release notes", "n")).unwrap();
    env.run(&["append", file.to_str().unwrap(), "--folder", "v1.2"])
        .ok();
    assert_eq!(env.count("v1.2"), 1);
    env.assert_nothing_to_sync();
    let list = env.run(&["--json", "list", "v1.2"]).ok().json();
    assert_eq!(messages(&list).len(), 1, "{list}");
}

/// Seed V0046 and V0019 on Cyrus: a file with no header at all is refused by Cyrus
/// ("Message contains invalid header"). `append` says so with the server's text and a
/// failure status, the server gets nothing, and no later sync uploads a copy or loops.
#[test]
fn v0046_append_of_a_headerless_file_reports_the_server_text() {
    let env = Env::new(cyrus_or_skip!(Cyrus::builder()));
    env.deliver("INBOX", &plain("A <a@example.org>", "x", "y"));
    env.run(&["sync"]).ok();
    let file = env.dir.path().join("bare.txt");
    std::fs::write(&file, "just a draft line\n").unwrap();
    // Without --force, mailfold itself refuses a file with no header block (usage, status 2).
    let r = env.run(&[
        "append",
        "--draft",
        file.to_str().unwrap(),
        "--folder",
        "INBOX",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("does not look like a message"),
        "{}",
        r.stderr
    );
    // With --force it is sent, and Cyrus's refusal reaches the user.
    let r = env.run(&[
        "append",
        "--draft",
        "--force",
        file.to_str().unwrap(),
        "--folder",
        "INBOX",
    ]);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert_ne!(r.code, 0, "a refused append must fail: {all}");
    assert!(all.contains("invalid header"), "the server's text: {all}");
    assert_eq!(env.count("INBOX"), 1);
    for _ in 0..2 {
        let s = env.run(&["--json", "sync"]);
        assert_eq!(
            env.count("INBOX"),
            1,
            "no copy reached the server: {}",
            s.stdout
        );
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"just a draft line\n");
}

/// The commands around the brief's list on Cyrus: `show` of a message in a nested folder,
/// `move` into a nested folder (UID MOVE, state follows through COPYUID, V0057), `delete`
/// (UID EXPUNGE: another client's `\Deleted` message survives), `rename-folder` of a folder
/// with a child and `delete-folder`; after each, a sync has nothing left to do.
#[test]
fn show_move_delete_and_rename_against_cyrus() {
    let env = Env::new(cyrus_or_skip!(Cyrus::builder()));
    env.deliver("INBOX", ENCODED);
    env.deliver("INBOX", &plain("Bob <bob@example.net>", "to move", "m"));
    env.deliver("INBOX", &plain("Eve <eve@example.net>", "to delete", "d"));
    let other = env.deliver("INBOX", &plain("Fay <fay@example.net>", "not mine", "n"));
    env.cyrus.create_mailbox(&env.user, "Archive");
    env.cyrus.create_mailbox(&env.user, "Archive/2024");
    env.run(&["sync"]).ok();

    let id = env.uid_with_subject("INBOX", "Grüße");
    let s = env.run(&["show", "INBOX", &id]).ok();
    assert!(
        s.stdout.contains("Subject: Grüße aus Berlin"),
        "{}",
        s.stdout
    );
    assert!(s.stdout.contains("Grüße im Text"), "{}", s.stdout);

    let mv = env.uid_with_subject("INBOX", "to move");
    let m = env
        .run(&["--json", "move", "INBOX", &mv, "--to", "Archive/2024"])
        .ok()
        .json();
    assert_eq!(m["pushed"], "server", "{m}");
    assert_eq!(env.count("Archive/2024"), 1);
    env.assert_nothing_to_sync();
    let moved = env.uid_with_subject("Archive/2024", "to move");
    assert_eq!(moved, m["messages"][0]["new_uid"].to_string(), "{m}");

    // Another client marks a message \Deleted without expunging it: `delete` must remove
    // only the message it names.
    env.imap(&[
        "SELECT INBOX",
        &format!("UID STORE {other} +FLAGS.SILENT (\\Deleted)"),
    ]);
    env.run(&["sync"]).ok();
    let del = env.uid_with_subject("INBOX", "to delete");
    let d = env.run(&["delete", "INBOX", &del]).ok();
    assert!(d.stdout.contains("deleted 1 message"), "{}", d.stdout);
    assert_eq!(env.count("INBOX"), 2, "only the named message is expunged");
    assert!(env
        .flags_of("INBOX", &other.to_string())
        .contains("\\Deleted"));
    env.assert_nothing_to_sync();

    let r = env
        .run(&["--json", "rename-folder", "Archive", "Old"])
        .ok()
        .json();
    assert_eq!(r["pushed"], "server", "{r}");
    assert!(env.server_has("Old/2024"), "{:?}", env.server_list());
    assert!(!env.server_has("Archive"), "{:?}", env.server_list());
    assert!(env.local_dir("Old/2024").join("cur").is_dir());
    assert_eq!(env.count("Old/2024"), 1);
    env.assert_nothing_to_sync();
    let list = env.run(&["--json", "list", "Old/2024"]).ok().json();
    assert_eq!(messages(&list).len(), 1, "{list}");

    env.run(&["create-folder", "Scratch/Empty"]).ok();
    env.run(&["delete-folder", "Scratch/Empty"]).ok();
    assert!(!env.server_has("Scratch/Empty"), "{:?}", env.server_list());
    env.assert_nothing_to_sync();
}
