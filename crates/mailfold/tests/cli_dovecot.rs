//! The real `mailfold` binary against a private Dovecot: every command, human and `--json`
//! output, and the offline queue.

mod util;

use serde_json::Value;
use util::{plain, Env};

const ALT: &str = "From: =?UTF-8?Q?J=C3=BCrgen?= <j@example.de>\nTo: user1@example.org\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= aus Berlin\nDate: Tue, 16 Jan 2024 10:00:00 +0000\nMessage-ID: <alt@test>\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=b\n\n--b\nContent-Type: text/plain; charset=utf-8\n\nplain words here\n--b\nContent-Type: text/html; charset=utf-8\n\n<p>html words</p>\n--b--\n";

const ATTACH: &str = "From: Bob <bob@example.net>\nTo: user1@example.org\nSubject: figures\nDate: Wed, 17 Jan 2024 10:00:00 +0000\nMessage-ID: <att@test>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=m\n\n--m\nContent-Type: text/plain\n\nsee attached\n--m\nContent-Type: application/pdf; name=r.pdf\nContent-Disposition: attachment; filename=r.pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--m--\n";

fn messages(v: &Value) -> Vec<Value> {
    v["messages"].as_array().cloned().unwrap_or_default()
}

fn uid_with_subject(env: &Env, folder: &str, subject: &str) -> String {
    let list = env.run(&["--json", "list", folder]).ok().json();
    messages(&list)
        .into_iter()
        .find(|m| m["subject"].as_str().is_some_and(|s| s.contains(subject)))
        .and_then(|m| m["id"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no {subject:?} in {list}"))
}

/// After a change pushed online, the next sync has nothing to do.
fn assert_nothing_to_sync(env: &Env) {
    let r = env.run(&["--json", "sync"]).ok().json();
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

#[test]
fn every_command_against_dovecot() {
    let env = Env::new();
    env.deliver(
        "INBOX",
        &plain("Alice <alice@example.org>", "hello alice", "first body"),
    );
    env.deliver("INBOX", ALT);
    env.deliver("INBOX", ATTACH);
    env.dovecot.create_mailbox(&env.user, "Archive");

    // sync, human then JSON
    let r = env.run(&["sync"]).ok();
    assert!(r.stdout.contains("account t: synced"), "{}", r.stdout);
    assert!(r.stdout.contains("INBOX: 3 downloaded"), "{}", r.stdout);
    let j = env.run(&["--json", "sync"]).ok().json();
    assert_eq!(j["accounts"][0]["complete"], true);

    // folders: local (fresh) and server
    let local = env.run(&["--json", "folders"]).ok().json();
    assert_eq!(local["source"], "local", "{local}");
    let inbox = local["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "INBOX")
        .cloned()
        .unwrap();
    assert_eq!(inbox["messages"], 3);
    assert_eq!(inbox["unseen"], 3);
    let server = env.run(&["--json", "folders", "--server"]).ok().json();
    assert_eq!(server["source"], "server");
    let inbox = server["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "INBOX")
        .cloned()
        .unwrap();
    assert_eq!(inbox["messages"], 3);
    let human = env.run(&["folders"]).ok();
    assert!(
        human.stdout.contains("INBOX") && human.stdout.contains("Archive"),
        "{}",
        human.stdout
    );

    // list: UIDs, decoded RFC 2047 subject and sender
    let list = env.run(&["--json", "list", "INBOX"]).ok().json();
    let msgs = messages(&list);
    assert_eq!(msgs.len(), 3);
    assert!(msgs.iter().all(|m| m["uid"].as_u64().is_some()));
    assert!(
        msgs.iter()
            .any(|m| m["subject"] == "Grüße aus Berlin" && m["from"] == "Jürgen <j@example.de>"),
        "{list}"
    );
    let human = env.run(&["list", "INBOX", "--limit", "2"]).ok();
    assert_eq!(human.stdout.lines().count(), 2, "{}", human.stdout);

    // show: readable part of multipart/alternative, attachment named, raw bytes
    let alt = uid_with_subject(&env, "INBOX", "Grüße");
    let s = env.run(&["show", "INBOX", &alt]).ok();
    assert!(
        s.stdout.contains("Subject: Grüße aus Berlin"),
        "{}",
        s.stdout
    );
    assert!(
        s.stdout.contains("plain words here") && !s.stdout.contains("<p>"),
        "{}",
        s.stdout
    );
    let att = uid_with_subject(&env, "INBOX", "figures");
    let s = env.run(&["--json", "show", "INBOX", &att]).ok().json();
    assert_eq!(s["attachments"][0]["name"], "r.pdf", "{s}");
    let raw = env.run(&["show", "--raw", "INBOX", &alt]).ok();
    assert!(
        raw.stdout.contains("=?UTF-8?Q?Gr=C3=BC=C3=9Fe?="),
        "{}",
        raw.stdout
    );

    // flag: on the server at once, and recorded as synced
    let hello = uid_with_subject(&env, "INBOX", "hello alice");
    let f = env
        .run(&["--json", "flag", "INBOX", &hello, "--set", "flagged,seen"])
        .ok()
        .json();
    assert_eq!(f["pushed"], "server", "{f}");
    let flags = env.server("INBOX", "flags");
    assert!(
        flags.contains("\\Flagged") && flags.contains("\\Seen"),
        "{flags}"
    );
    assert_nothing_to_sync(&env);
    let f = env
        .run(&[
            "flag",
            "INBOX",
            &hello,
            "--clear",
            "flagged",
            "--set",
            "$Important",
        ])
        .ok();
    assert!(f.stdout.contains("$Important"), "{}", f.stdout);
    let flags = env.server("INBOX", "flags");
    assert!(
        !flags.contains("\\Flagged") && flags.contains("$Important"),
        "{flags}"
    );
    assert_nothing_to_sync(&env);

    // move: UID MOVE, state follows via COPYUID
    let m = env
        .run(&["--json", "move", "INBOX", &att, "--to", "Archive"])
        .ok()
        .json();
    assert_eq!(m["pushed"], "server", "{m}");
    assert!(m["messages"][0]["new_uid"].as_u64().is_some(), "{m}");
    assert_eq!(env.count("INBOX"), 2);
    assert_eq!(env.count("Archive"), 1);
    assert_nothing_to_sync(&env);
    let moved = uid_with_subject(&env, "Archive", "figures");
    assert_eq!(moved, m["messages"][0]["new_uid"].to_string());

    // delete: UID EXPUNGE
    let d = env.run(&["delete", "Archive", &moved]).ok();
    assert!(d.stdout.contains("deleted 1 message"), "{}", d.stdout);
    assert_eq!(env.count("Archive"), 0);
    assert_nothing_to_sync(&env);

    // append: APPENDUID recorded; a draft without required headers is accepted (V0046)
    let file = env.home.path().join("draft.eml");
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
    assert!(env.server("Drafts", "flags").contains("\\Draft"));
    assert_nothing_to_sync(&env);

    // folders: create (hierarchy with '/'), rename, delete
    env.run(&["create-folder", "Projects/2025"]).ok();
    assert_eq!(env.count("Projects.2025"), 0);
    let r = env
        .run(&["--json", "rename-folder", "Projects/2025", "Projects/Done"])
        .ok()
        .json();
    assert_eq!(r["pushed"], "server", "{r}");
    assert!(env
        .dovecot
        .try_doveadm(
            &[
                "mailbox",
                "status",
                "-u",
                &env.user,
                "messages",
                "Projects.Done"
            ],
            None
        )
        .is_ok());
    assert!(env
        .home
        .maildir()
        .join("Projects")
        .join("Done")
        .join("cur")
        .is_dir());
    env.run(&["delete-folder", "Projects/Done"]).ok();
    assert!(env
        .dovecot
        .try_doveadm(
            &[
                "mailbox",
                "status",
                "-u",
                &env.user,
                "messages",
                "Projects.Done"
            ],
            None
        )
        .is_err());
    assert_nothing_to_sync(&env);

    // search: server side, then the same query over the mirror
    let s = env
        .run(&["--json", "search", "INBOX", "from", "alice"])
        .ok()
        .json();
    assert_eq!(s["source"], "server");
    assert_eq!(s["uids"].as_array().unwrap().len(), 1, "{s}");
    let s = env
        .run(&["--json", "--offline", "search", "INBOX", "from alice"])
        .ok()
        .json();
    assert_eq!(s["source"], "local");
    assert_eq!(s["uids"].as_array().unwrap().len(), 1, "{s}");

    // probe: TLS verified with the account's CA, login works
    let p = env.run(&["--json", "probe"]).ok().json();
    assert_eq!(p["tls"]["verified"], true, "{p}");
    assert!(
        p["tls"]["version"]
            .as_str()
            .is_some_and(|v| v.contains("TLS")),
        "{p}"
    );
    assert_eq!(p["login"]["ok"], true, "{p}");
    assert!(
        p["capabilities_after_login"]
            .as_array()
            .is_some_and(|c| !c.is_empty()),
        "{p}"
    );
    let human = env.run(&["probe"]).ok();
    assert!(human.stdout.contains("verified for"), "{}", human.stdout);
}

#[test]
fn offline_changes_are_queued_and_the_next_sync_pushes_them() {
    let env = Env::new();
    for i in 0..4 {
        env.deliver(
            "INBOX",
            &plain("Carol <carol@example.org>", &format!("queued {i}"), "x"),
        );
    }
    env.dovecot.create_mailbox(&env.user, "Archive");
    env.run(&["sync"]).ok();
    let a = uid_with_subject(&env, "INBOX", "queued 0");
    let b = uid_with_subject(&env, "INBOX", "queued 1");
    let c = uid_with_subject(&env, "INBOX", "queued 2");

    env.reachable(false);
    let f = env
        .run(&["--json", "flag", "INBOX", &a, "--set", "flagged"])
        .ok()
        .json();
    assert_eq!(f["pushed"], "queued", "{f}");
    let m = env.run(&["move", "INBOX", &b, "--to", "Archive"]).ok();
    assert!(m.stderr.contains("queued for the next"), "{}", m.stderr);
    env.run(&["delete", "INBOX", &c]).ok();
    let file = env.home.path().join("new.eml");
    std::fs::write(
        &file,
        plain("Me <user1@example.org>", "written offline", "y"),
    )
    .unwrap();
    let ap = env
        .run(&["--json", "append", file.to_str().unwrap()])
        .ok()
        .json();
    assert_eq!(ap["pushed"], "queued", "{ap}");
    env.run(&["create-folder", "Later"]).ok();
    // Nothing reached the server.
    assert_eq!(env.count("INBOX"), 4);
    assert!(!env.server("INBOX", "flags").contains("\\Flagged"));

    env.reachable(true);
    let r = env.run(&["--json", "sync"]).ok().json();
    assert_eq!(r["accounts"][0]["complete"], true, "{r}");
    assert!(env.server("INBOX", "flags").contains("\\Flagged"));
    assert_eq!(env.count("Archive"), 1);
    // 4 - moved - deleted + appended
    assert_eq!(env.count("INBOX"), 3);
    assert!(env
        .server("INBOX", "hdr.subject")
        .contains("written offline"));
    assert!(env
        .dovecot
        .try_doveadm(
            &["mailbox", "status", "-u", &env.user, "messages", "Later"],
            None
        )
        .is_ok());
    assert_nothing_to_sync(&env);
}

#[test]
fn v0066_folders_show_special_use_marks() {
    let env = Env::new();
    let server = env.run(&["--json", "folders", "--server"]).ok().json();
    let special = |v: &Value, name: &str| {
        v["folders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .map(|f| f["special_use"].clone())
            .unwrap_or(Value::Null)
    };
    for (name, mark) in [
        ("Sent", "\\Sent"),
        ("Drafts", "\\Drafts"),
        ("Trash", "\\Trash"),
        ("Junk", "\\Junk"),
    ] {
        assert_eq!(special(&server, name), mark, "{server}");
    }
    env.run(&["sync"]).ok();
    let local = env.run(&["--json", "folders", "--local"]).ok().json();
    assert_eq!(special(&local, "Sent"), "\\Sent", "{local}");
    let human = env.run(&["folders", "--local"]).ok();
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.starts_with("Sent") && l.ends_with("\\Sent")),
        "{}",
        human.stdout
    );
}

#[test]
fn v0051_search_runs_on_the_server_with_utf8_charset_and_esearch() {
    let env = Env::with(mailfold_testsupport::Dovecot::builder().rawlog(true));
    env.deliver("INBOX", ALT);
    env.deliver(
        "INBOX",
        &plain("Dan <dan@example.org>", "report", "nothing"),
    );
    env.run(&["sync"]).ok();
    let s = env
        .run(&["--json", "search", "INBOX", "subject", "Grüße"])
        .ok()
        .json();
    assert_eq!(s["source"], "server", "{s}");
    assert_eq!(s["esearch"], true, "{s}");
    assert_eq!(s["messages"].as_array().unwrap().len(), 1, "{s}");
    assert_eq!(s["messages"][0]["subject"], "Grüße aus Berlin");
    let log = env.dovecot.rawlog(&env.user);
    assert!(log.contains("CHARSET UTF-8"), "{log}");
    // The full key grammar: OR, NOT, dates, sizes.
    let s = env
        .run(&[
            "--json",
            "search",
            "INBOX",
            "or subject report from jürgen not deleted since 2000-01-01 larger 10",
        ])
        .ok()
        .json();
    assert_eq!(s["uids"].as_array().unwrap().len(), 2, "{s}");
    // Offline: the mirror answers the same query.
    env.reachable(false);
    let s = env
        .run(&["--json", "search", "INBOX", "subject", "Grüße"])
        .ok()
        .json();
    assert_eq!(s["source"], "local", "{s}");
    assert_eq!(s["messages"].as_array().unwrap().len(), 1, "{s}");
}

#[test]
fn v0020_level_with_the_server_delimiter_is_refused() {
    let env = Env::new();
    env.run(&["sync"]).ok();
    // Dovecot's Maildir++ delimiter is '.'.
    let r = env.run(&["create-folder", "a.b"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("delimiter"), "{}", r.stderr);
    assert!(!env.home.maildir().join("a.b").exists());
    assert!(env
        .dovecot
        .try_doveadm(
            &["mailbox", "status", "-u", &env.user, "messages", "a.b"],
            None
        )
        .is_err());
}

#[test]
fn completions_and_man_page_come_from_the_argument_definitions() {
    let home = util::Home::new();
    let c = home.run(&["completions", "bash"]).ok();
    assert!(c.stdout.contains("mailfold") && c.stdout.contains("create-folder"));
    let m = home.run(&["man"]).ok();
    assert!(m.stdout.contains(".TH") && m.stdout.contains("mailfold"));
}

#[test]
fn mail_content_cannot_drive_the_terminal_and_a_closed_pipe_is_not_an_error() {
    let env = Env::new();
    let evil = "From: =?UTF-8?Q?Mallory=1B]0;pwned=07?= <m@example.org>\nTo: user1@example.org\nSubject: =?UTF-8?Q?hi=1B[2J_there?=\nDate: Mon, 15 Jan 2024 10:00:00 +0000\nMessage-ID: <evil@test>\n\nbody\x1b[31m red\n";
    env.deliver("INBOX", evil);
    env.run(&["sync"]).ok();
    let list = env.run(&["list", "INBOX"]).ok();
    assert!(!list.stdout.contains('\x1b'), "{:?}", list.stdout);
    assert!(list.stdout.contains("hi?[2J there"), "{}", list.stdout);
    let id = uid_with_subject(&env, "INBOX", "there");
    let show = env.run(&["show", "INBOX", &id]).ok();
    assert!(!show.stdout.contains('\x1b'), "{:?}", show.stdout);
    // --json keeps the content exact (escaped by JSON).
    let j = env.run(&["--json", "show", "INBOX", &id]).ok().json();
    assert!(
        j["text"].as_str().is_some_and(|t| t.contains("\x1b[31m")),
        "{j}"
    );

    // `mailfold list | head -1`: the reader goes away (here before the first write); no
    // error, status 0.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mailfold"))
        .arg("--config")
        .arg(env.home.config())
        .args(["--json", "list", "INBOX"])
        .env("HOME", env.home.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Seeds V0010, V0070 through the configuration: `download = "headers-only"` and
/// `max_message_size` reach the sync engine; `show` fetches a body that is not local.
#[test]
fn v0010_download_and_max_message_size_keys_are_applied_by_sync() {
    let env = Env::new();
    let big_body = "0123456789abcdef\n".repeat(400);
    env.deliver("INBOX", &plain("a@example.org", "small one", "tiny body"));
    env.deliver("INBOX", &plain("b@example.org", "big one", &big_body));
    let addr = env.dovecot.imaps_addr();
    let pw = env.dovecot.user(0).password.clone();
    let write = |extra: &str| {
        env.home.write_config(
            &addr.ip().to_string(),
            addr.port(),
            "implicit",
            &pw,
            Some(&env.dovecot.ca_file()),
            extra,
        )
    };
    let reset = || {
        let _ = std::fs::remove_dir_all(env.home.maildir());
        let _ = std::fs::remove_file(env.home.path().join("state.sqlite"));
    };
    let source_of = |subject: &str| {
        let id = uid_with_subject(&env, "INBOX", subject);
        let j = env.run(&["--json", "show", "INBOX", &id]).ok().json();
        (j["source"].as_str().unwrap_or("").to_string(), j)
    };

    write("max_message_size = 2000\n");
    let r = env.run(&["sync"]).ok();
    assert!(!r.stderr.contains("max_message_size"), "{}", r.stderr);
    let (src, _) = source_of("small one");
    assert_eq!(src, "local");
    let (src, j) = source_of("big one");
    assert_eq!(src, "server", "the big body stayed on the server: {j}");
    assert!(j["text"]
        .as_str()
        .is_some_and(|t| t.contains("0123456789abcdef")));

    reset();
    write("download = \"headers-only\"\n");
    let r = env.run(&["sync"]).ok();
    assert!(!r.stderr.contains("download"), "{}", r.stderr);
    let (src, j) = source_of("small one");
    assert_eq!(src, "server", "{j}");
    assert!(
        j["text"].as_str().is_some_and(|t| t.contains("tiny body")),
        "{j}"
    );
    // Offline, the header is what there is, and the user is told.
    let id = uid_with_subject(&env, "INBOX", "small one");
    let off = env.run(&["--offline", "show", "INBOX", &id]).ok();
    assert!(
        off.stderr.contains("only the header is local"),
        "{}",
        off.stderr
    );
}
