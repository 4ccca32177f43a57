//! How the configuration's account keys reach `mailfold sync`: an anonymous account
//! syncs read-only over SASL ANONYMOUS (seed V0029, RFC 4505), and
//! `dangerously_accept_invalid_certs` lets a sync through a self-signed certificate, loudly,
//! while without it the same server is refused.

mod util;

use mailfold_testsupport::{CertKind, Dovecot, TestPki, ANONYMOUS_USER};
use util::{plain, Home};

/// Writes account `t` by hand: `extra` holds the authentication and TLS keys.
fn write_account(home: &Home, port: u16, extra: &str) {
    let text = format!(
        "[accounts.t]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"implicit\"\n{extra}\
         local = {:?}\nstate = {:?}\nfsync = false\n",
        home.maildir().display().to_string(),
        home.path().join("state.sqlite").display().to_string(),
    );
    std::fs::write(home.config(), text).unwrap();
}

fn files_in(dir: &std::path::Path) -> usize {
    ["cur", "new"]
        .iter()
        .filter_map(|s| std::fs::read_dir(dir.join(s)).ok())
        .map(|d| d.count())
        .sum()
}

#[test]
fn v0029_anonymous_account_syncs_read_only_by_default() {
    let dovecot = Dovecot::start();
    dovecot.deliver(
        ANONYMOUS_USER,
        "INBOX",
        plain("a@example.org", "public notice", "for everyone")
            .replace('\n', "\r\n")
            .as_bytes(),
    );
    let home = Home::new();
    write_account(
        &home,
        dovecot.imaps_addr().port(),
        &format!(
            "user = \"trace@example.org\"\nanonymous = true\nca_file = {:?}\n",
            dovecot.ca_file().display().to_string()
        ),
    );
    let r = home.run(&["sync", "--json"]).ok();
    let v = r.json();
    assert_eq!(v["accounts"][0]["complete"], true, "{}", r.stdout);
    assert_eq!(
        files_in(&home.maildir().join("INBOX")),
        1,
        "the message was downloaded"
    );
    // SASL ANONYMOUS with the trace string, and never a password mechanism.
    let log = dovecot.log();
    assert!(
        log.contains("method=ANONYMOUS") || log.contains("mech=ANONYMOUS"),
        "{log}"
    );
    // Pull-only by default: a local change stays local (reported pending), the server is
    // never written.
    let cur = home.maildir().join("INBOX/cur");
    let new = home.maildir().join("INBOX/new");
    for d in [&cur, &new] {
        for e in std::fs::read_dir(d).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
    }
    let r = home.run(&["sync", "--json"]).ok();
    let v = r.json();
    let pending: u64 = v["accounts"][0]["folders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["pending"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(pending, 1, "{}", r.stdout);
    let status = dovecot.status(ANONYMOUS_USER, "INBOX", "messages");
    assert!(
        status.trim().ends_with("=1") || status.contains("messages=1"),
        "{status}"
    );
}

#[test]
fn anonymous_account_with_a_secret_is_a_config_error() {
    let home = Home::new();
    write_account(
        &home,
        993,
        "user = \"\"\nanonymous = true\npassword_command = \"echo x\"\n",
    );
    let r = home.run(&["sync"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("password_command"), "{}", r.stderr);
}

#[test]
fn dangerously_accept_invalid_certs_reaches_sync_and_warns() {
    // Dovecot presents a certificate that signs itself; the later `ssl_cert` wins.
    let pki = TestPki::generate();
    let dovecot = Dovecot::builder()
        .extra_config(&format!(
            "ssl_cert = <{}\nssl_key = <{}\n",
            pki.cert_file(CertKind::SelfSigned).display(),
            pki.key_file(CertKind::SelfSigned).display()
        ))
        .start();
    let u = dovecot.user(0).clone();
    dovecot.deliver(
        &u.name,
        "INBOX",
        plain("a@example.org", "hello", "body")
            .replace('\n', "\r\n")
            .as_bytes(),
    );
    let home = Home::new();
    let pw = home.path().join("pw");
    std::fs::write(&pw, format!("{}\n", u.password)).unwrap();
    let auth = format!(
        "user = {:?}\npassword_command = [\"cat\", {:?}]\n",
        u.name,
        pw.display().to_string()
    );
    let port = dovecot.imaps_addr().port();

    // Without the switch (even with the test CA trusted): refused, nothing downloaded.
    write_account(
        &home,
        port,
        &format!(
            "{auth}ca_file = {:?}\n",
            dovecot.ca_file().display().to_string()
        ),
    );
    let r = home.run(&["sync"]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.to_lowercase().contains("certificate"),
        "{}",
        r.stderr
    );
    assert_eq!(files_in(&home.maildir().join("INBOX")), 0);

    // With it: the sync works, and says on stderr that verification is off.
    write_account(
        &home,
        port,
        &format!("{auth}dangerously_accept_invalid_certs = true\n"),
    );
    let r = home.run(&["sync"]).ok();
    assert!(r.stderr.contains("DANGER"), "{}", r.stderr);
    assert!(
        r.stderr.contains("dangerously_accept_invalid_certs"),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains("DANGER"), "stdout stays the report");
    assert_eq!(files_in(&home.maildir().join("INBOX")), 1);
    // On every run, not once.
    let r = home.run(&["sync"]).ok();
    assert!(r.stderr.contains("DANGER"), "{}", r.stderr);
}
