//! What a user meets around the sync, through the real binary against a private Dovecot:
//! options anywhere and `--` (clap and git habits), flag names checked, `append` refusing a
//! file that is not a message, a closed stdout ending every command quietly, and errors that
//! say what to do (one exit-status table, JSON errors with `--json`, no doubled prefixes,
//! a pointer to `mailfold probe` on a connection failure).

mod util;

use std::io::Read;
use std::process::{Command, Stdio};

use util::{plain, Env, Home};

fn env_with_inbox(n: usize) -> Env {
    let env = Env::new();
    for i in 0..n {
        env.deliver(
            "INBOX",
            &plain(
                "Alice <alice@example.org>",
                &format!("hello {i}"),
                "some words",
            ),
        );
    }
    env.run(&["sync"]).ok();
    env
}

#[test]
fn options_anywhere_and_double_dash_ends_them() {
    let env = env_with_inbox(2);
    env.dovecot.doveadm(&[
        "flags",
        "add",
        "-u",
        &env.user,
        "\\Flagged",
        "mailbox",
        "INBOX",
        "uid",
        "2",
    ]);
    // --json after the search keys is the option, not a search word.
    let v = env
        .run(&["search", "INBOX", "flagged", "--json"])
        .ok()
        .json();
    assert_eq!(v["uids"], serde_json::json!([2]), "{v}");
    // So are -q and -v among them.
    let v = env
        .run(&["search", "INBOX", "-q", "from", "alice", "-v", "--json"])
        .ok()
        .json();
    assert_eq!(v["uids"], serde_json::json!([1, 2]), "{v}");
    // After `--`, `--json` is a word of the query (a text search that finds nothing).
    let r = env.run(&["--json", "search", "INBOX", "--", "--json"]);
    let v = r.json();
    assert_eq!(v["uids"], serde_json::json!([]), "{v}");
    // Global options after the command's arguments.
    let v = env.run(&["list", "INBOX", "--json"]).ok().json();
    assert_eq!(v["messages"].as_array().unwrap().len(), 2, "{v}");
}

#[test]
fn unknown_flag_names_are_refused_with_the_known_ones() {
    let env = env_with_inbox(1);
    let r = env.run(&["flag", "INBOX", "1", "--set", "flaged"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("\"flaged\" is not a flag name (did you mean flagged?); known: seen, answered, flagged, deleted, draft, forwarded"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("keyword:Name"), "{}", r.stderr);
    assert!(!env.server("INBOX", "flags").contains("flaged"));

    // Keywords by `$` or the `keyword:` prefix; --unset clears.
    env.run(&[
        "flag",
        "INBOX",
        "1",
        "--set",
        "$Junk,keyword:NonJunk,flagged",
    ])
    .ok();
    let flags = env.server("INBOX", "flags");
    assert!(
        flags.contains("$Junk") && flags.contains("NonJunk"),
        "{flags}"
    );
    assert!(flags.contains("\\Flagged"), "{flags}");
    env.run(&["flag", "INBOX", "1", "--unset", "flagged"]).ok();
    assert!(!env.server("INBOX", "flags").contains("\\Flagged"));

    // --json: the refusal is a JSON object on stdout.
    let r = env.run(&["--json", "flag", "INBOX", "1", "--set", "flaged"]);
    assert_eq!(r.code, 2);
    let v = r.json();
    assert_eq!(v["error"]["kind"], "usage", "{v}");
    assert_eq!(v["error"]["status"], 2, "{v}");
}

#[test]
fn append_refuses_a_file_without_a_header_block_unless_forced() {
    let env = env_with_inbox(0);
    let note = env.home.path().join("note.txt");
    std::fs::write(&note, "just some text\n\nwith no header\n").unwrap();
    let r = env.run(&["append", note.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("does not look like a message"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    assert_eq!(env.count("INBOX"), 0);

    env.run(&["append", note.to_str().unwrap(), "--force"]).ok();
    assert_eq!(env.count("INBOX"), 1);

    // A draft with headers only is a message (seed V0046).
    let draft = env.home.path().join("draft.eml");
    std::fs::write(&draft, "To: bob@example.org\nSubject: later\n").unwrap();
    env.run(&["append", draft.to_str().unwrap()]).ok();
    assert_eq!(env.count("INBOX"), 2);
}

/// Runs mailfold with its stdout a pipe whose reader is already gone: every write fails with
/// EPIPE. The run must end with status 0 and print nothing on stderr.
fn run_with_closed_stdout(home: &Home, args: &[&str]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailfold"))
        .arg("--config")
        .arg(home.config())
        .args(args)
        .env("HOME", home.path())
        .env("XDG_STATE_HOME", home.path().join("xdg-state"))
        .env("XDG_CONFIG_HOME", home.path().join("xdg-config"))
        .env_remove("MAILFOLD_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mailfold");
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    (status.code().unwrap_or(-1), err)
}

#[test]
fn a_closed_stdout_is_a_quiet_normal_end() {
    let env = env_with_inbox(30);
    let big = format!(
        "From: a@example.org\nSubject: big\nMessage-ID: <big@test>\n\n{}",
        "line of text\n".repeat(20_000)
    );
    env.deliver("INBOX", &big);
    env.run(&["sync"]).ok();
    let uid = "31";
    for args in [
        &["completions", "zsh"][..],
        &["completions", "bash"],
        &["man"],
        &["show", "INBOX", uid, "--raw"],
        &["show", "INBOX", uid],
        &["list", "INBOX"],
        &["--json", "list", "INBOX"],
        &["search", "INBOX", "all"],
        &["folders"],
        &["sync"],
        &["flag", "INBOX", "1", "--set", "seen"],
        &["probe"],
        &["--help"],
    ] {
        let (code, err) = run_with_closed_stdout(&env.home, args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?} printed: {err}");
    }
}

#[test]
fn an_unknown_folder_is_a_usage_error_in_every_command() {
    let env = env_with_inbox(1);
    for args in [
        &["list", "NoSuch"][..],
        &["search", "NoSuch", "all"],
        &["show", "NoSuch", "1"],
        &["flag", "NoSuch", "1", "--set", "seen"],
        &["move", "NoSuch", "1", "--to", "INBOX"],
        &["move", "INBOX", "1", "--to", "NoSuch/Deeper"],
        &["delete", "NoSuch", "1"],
        &["rename-folder", "NoSuch", "Other"],
        &["delete-folder", "NoSuch"],
    ] {
        let r = env.run(args);
        assert_eq!(r.code, 2, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.starts_with("mailfold: error: "),
            "{args:?}: {}",
            r.stderr
        );
        // With --json, the same error as a JSON object on stdout.
        let mut j = vec!["--json"];
        j.extend_from_slice(args);
        let r = env.run(&j);
        assert_eq!(r.code, 2, "{args:?}");
        assert_eq!(r.json()["error"]["kind"], "usage", "{args:?}: {}", r.stdout);
    }
    // A message that does not exist: status 1, and JSON with --json.
    let r = env.run(&["--json", "show", "INBOX", "99999"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v = r.json();
    assert_eq!(v["error"]["kind"], "failed", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("99999"),
        "{v}"
    );
    // clap's own refusals too.
    let r = env.run(&["--json", "list"]);
    assert_eq!(r.code, 2);
    assert_eq!(r.json()["error"]["kind"], "usage", "{}", r.stdout);
}

#[test]
fn connection_errors_name_their_subject_once_and_point_to_probe() {
    let env = env_with_inbox(0);
    // Nobody listens: the address is named once.
    env.reachable(false);
    let r = env.run(&["sync"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(r.stderr.matches("account t:").count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("mailfold probe t"), "{}", r.stderr);
    let r = env.run(&["search", "INBOX", "all"]);
    let addr_mentions = r.stderr.matches("127.0.0.1:").count();
    assert!(addr_mentions <= 1, "{}", r.stderr);

    // A password command that fails: one `account t:`.
    let addr = env.dovecot.imaps_addr();
    let ca = env.dovecot.ca_file();
    let extra = "";
    env.home
        .write_config("127.0.0.1", addr.port(), "implicit", "x", Some(&ca), extra);
    let cfg = std::fs::read_to_string(env.home.config()).unwrap().replace(
        "password_command = [\"cat\"",
        "password_command = [\"false\"",
    );
    std::fs::write(env.home.config(), cfg).unwrap();
    let r = env.run(&["sync"]);
    assert_ne!(r.code, 0);
    assert_eq!(r.stderr.matches("account t").count(), 1, "{}", r.stderr);

    // The wrong TLS mode: implicit TLS against the STARTTLS port says what to try.
    let pw = env.dovecot.user(0).password.clone();
    env.home.write_config(
        "127.0.0.1",
        env.dovecot.imap_addr().port(),
        "implicit",
        &pw,
        Some(&ca),
        "",
    );
    let r = env.run(&["sync"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("STARTTLS"), "{}", r.stderr);
    assert!(r.stderr.contains("mailfold probe t"), "{}", r.stderr);

    // STARTTLS against the implicit-TLS port: no greeting ever comes.
    env.home.write_config(
        "127.0.0.1",
        addr.port(),
        "starttls",
        &pw,
        Some(&ca),
        "connect_timeout = 2\n",
    );
    let r = env.run(&["sync"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("tls = \"implicit\""), "{}", r.stderr);
    assert!(!r.stderr.contains("TLSv1_"), "{}", r.stderr);
}

#[test]
fn probe_names_tls_versions_as_people_write_them() {
    let env = env_with_inbox(0);
    let r = env.run(&["probe"]).ok();
    assert!(
        r.stdout.contains("TLS 1.3, ") || r.stdout.contains("TLS 1.2, "),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("TLSv1"), "{}", r.stdout);
}

#[test]
fn the_folder_tree_shows_parents_and_leaves_no_empty_directories() {
    let env = env_with_inbox(1);
    let d = env.dovecot.delimiter().to_string();
    // Sent exists already (the private Dovecot's special-use folders).
    env.dovecot
        .create_mailbox(&env.user, &format!("Work{d}2025"));
    env.deliver(&format!("Work{d}2025"), &plain("a@example.org", "q1", "x"));
    env.dovecot.create_mailbox(&env.user, &format!("Proj{d}A"));
    // A folder is known as renamed by its messages.
    env.deliver(&format!("Proj{d}A"), &plain("a@example.org", "p1", "x"));
    env.dovecot.create_mailbox(&env.user, &format!("Old{d}X"));

    // From the server: Work is shown (marked) as the parent of 2025, not 2025 under Sent.
    let r = env.run(&["folders", "--server"]).ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    let work = lines
        .iter()
        .position(|l| l.starts_with("Work "))
        .unwrap_or_else(|| panic!("no Work row:\n{}", r.stdout));
    assert!(lines[work].contains("(parent only"), "{}", r.stdout);
    assert!(lines[work + 1].starts_with("  2025 "), "{}", r.stdout);
    let v = env.run(&["--json", "folders", "--server"]).ok().json();
    let row = |v: &serde_json::Value, n: &str| {
        v["folders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == n)
            .cloned()
    };
    assert_eq!(row(&v, "Work").unwrap()["selectable"], false, "{v}");
    assert_eq!(row(&v, "Work/2025").unwrap()["messages"], 1, "{v}");

    env.run(&["sync"]).ok();
    let mail = env.home.maildir();
    assert!(mail.join("Work").join("2025").join("cur").is_dir());

    // A rename that takes a container's last child removes the container.
    env.run(&["rename-folder", "Work/2025", "Y2025"]).ok();
    assert!(!mail.join("Work").exists(), "empty Work left behind");
    let v = env.run(&["--json", "folders", "--local"]).ok().json();
    assert!(row(&v, "Work").is_none(), "{v}");
    assert_eq!(row(&v, "Y2025").unwrap()["messages"], 1, "{v}");

    // So does a delete.
    env.run(&["delete-folder", "Old/X"]).ok();
    assert!(!mail.join("Old").exists(), "empty Old left behind");

    // And a rename made on the server, which the sync follows.
    env.dovecot.doveadm(&[
        "mailbox",
        "rename",
        "-u",
        &env.user,
        &format!("Proj{d}A"),
        "ProjA",
    ]);
    let r = env.run(&["sync"]).ok();
    assert!(
        r.stdout.contains("Proj/A → ProjA: renamed here"),
        "{}",
        r.stdout
    );
    assert!(mail.join("ProjA").join("cur").is_dir());
    assert!(!mail.join("Proj").exists(), "empty Proj left behind");

    // The next sync neither brings the containers back nor finds anything to do.
    let r = env.run(&["sync"]).ok();
    assert!(!r.stdout.contains("created"), "{}", r.stdout);
    for gone in ["Work", "Old", "Proj"] {
        assert!(!mail.join(gone).exists(), "{gone} came back:\n{}", r.stdout);
    }
}

#[test]
fn debug_parse_ends_quietly_when_its_reader_goes() {
    let home = Home::new();
    let stream = home.path().join("stream.txt");
    std::fs::write(&stream, "* OK still here\r\n".repeat(50_000)).unwrap();
    let out = Command::new("bash")
        .args([
            "-o",
            "pipefail",
            "-c",
            &format!(
                "{} debug parse --no-greeting < {} | head -1",
                env!("CARGO_BIN_EXE_mailfold"),
                stream.display()
            ),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with('{'));
}

#[test]
fn watch_ends_quietly_when_its_reader_goes() {
    let env = env_with_inbox(1);
    env.deliver("INBOX", &plain("b@example.org", "new", "x"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailfold"))
        .arg("--config")
        .arg(env.home.config())
        .args(["--json", "watch"])
        .env("HOME", env.home.path())
        .env("XDG_STATE_HOME", env.home.path().join("xdg-state"))
        .env("XDG_CONFIG_HOME", env.home.path().join("xdg-config"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first run's JSON line finds the pipe closed: watch ends, status 0, nothing said.
    drop(child.stdout.take());
    let mut err = String::new();
    // A bound so a regression fails instead of hanging the suite; not a speed check.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("watch did not end after its reader went");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
