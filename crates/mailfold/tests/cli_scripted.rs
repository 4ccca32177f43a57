//! The real `mailfold` binary against scripted servers: what the user sees of ALERT and BYE
//! text, and of a server refusing a folder name; names refused before anything is sent.

mod util;

use std::time::Duration;

use mailfold_testsupport::{Script, ScriptedServer};
use util::Home;

/// Greeting and LOGIN over cleartext (the account allows it: loopback test server).
fn logged_in(after_login: &[&str]) -> Script {
    let mut s = Script::new()
        .step_timeout(Duration::from_secs(5))
        .send_line("* OK [CAPABILITY IMAP4rev1] scripted server ready")
        .expect("LOGIN *");
    for l in after_login {
        s = s.send_line(l);
    }
    s.send_tagged("OK [CAPABILITY IMAP4rev1] logged in")
}

fn home_for(server: &ScriptedServer) -> Home {
    let home = Home::new();
    home.write_config(
        "127.0.0.1",
        server.port(),
        "none",
        "pw",
        None,
        "allow_plaintext_password = true\n",
    );
    home
}

#[test]
fn v0063_alert_text_is_shown_on_stderr_marked_as_the_servers() {
    let server = ScriptedServer::start(
        logged_in(&["* OK [ALERT] Your mailbox is 95% full"])
            .expect("LIST *")
            .send_line("* LIST (\\HasNoChildren) \"/\" INBOX")
            .send_tagged("OK done")
            .expect("STATUS *")
            .send_line("* STATUS INBOX (MESSAGES 2 UNSEEN 1)")
            .send_tagged("OK done")
            .expect("LOGOUT")
            .send_line("* BYE bye")
            .send_tagged("OK logged out"),
    );
    let home = home_for(&server);
    let r = home.run(&["--json", "folders", "--server"]).ok();
    assert!(
        r.stderr.contains("ALERT from server 127.0.0.1")
            && r.stderr.contains("Your mailbox is 95% full"),
        "{}",
        r.stderr
    );
    let j = r.json();
    assert_eq!(j["folders"][0]["messages"], 2, "{j}");
    assert_eq!(j["folders"][0]["unseen"], 1, "{j}");
}

#[test]
fn v0064_bye_text_is_in_the_error_that_ends_the_session() {
    let server = ScriptedServer::start(
        logged_in(&[])
            .expect("LIST *")
            .send_line("* BYE Server shutting down for maintenance, back at 14:00")
            .close(),
    );
    let home = home_for(&server);
    let r = home.run(&["folders", "--server"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("Server shutting down for maintenance, back at 14:00"),
        "{}",
        r.stderr
    );
}

#[test]
fn v0019_percent_and_star_are_allowed_and_a_server_no_is_shown() {
    let server = ScriptedServer::start(
        logged_in(&[])
            .expect("LIST *")
            .send_line("* LIST (\\Noselect) \"/\" \"\"")
            .send_tagged("OK done")
            .expect("CREATE *")
            .send_tagged("NO [CANNOT] Names with wildcards are not allowed by site policy")
            .expect("LOGOUT")
            .send_tagged("OK bye"),
    );
    let home = home_for(&server);
    let r = home.run(&["create-folder", "50% off*"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("Names with wildcards are not allowed by site policy"),
        "{}",
        r.stderr
    );
    // The name itself was acceptable: CREATE was sent with it, quoted.
    assert!(
        server.received_contains(b"CREATE \"50% off*\""),
        "{:?}",
        String::from_utf8_lossy(&server.received())
    );
    // And the refused folder does not linger in the mirror for every sync to retry.
    assert!(!home.maildir().join("50% off*").exists());
}

#[test]
fn v0018_control_characters_in_folder_names_are_refused() {
    let server = ScriptedServer::start(
        logged_in(&[])
            .expect("LIST *")
            .send_line("* LIST (\\Noselect) \".\" \"\"")
            .send_tagged("OK done")
            .expect("LOGOUT")
            .send_tagged("OK bye"),
    );
    let home = home_for(&server);
    for bad in ["bell\u{7}folder", "tab\there", "new\nline"] {
        let r = home.run(&["--offline", "create-folder", bad]);
        assert_eq!(r.code, 2, "{bad:?}: {}", r.stderr);
        assert!(r.stderr.contains("control character"), "{}", r.stderr);
    }
    let r = home.run(&["rename-folder", "INBOX", "x\u{1b}y"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    // Online too: refused before CREATE could be sent.
    let r = home.run(&["create-folder", "esc\u{1b}ape"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(!server.received_contains(b"CREATE"));
    // No directory was made for any of them.
    let entries: Vec<_> = std::fs::read_dir(home.maildir())
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        entries.iter().all(|n| n.to_string_lossy().starts_with('.')),
        "{entries:?}"
    );
}

#[test]
fn unknown_account_and_bad_config_exit_2() {
    let home = Home::new();
    std::fs::write(home.config(), "[accounts.a]\nhots = 1\n").unwrap();
    let r = home.run(&["folders"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("hots"), "{}", r.stderr);
}
