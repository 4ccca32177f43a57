//! The private Cyrus: greets with every mechanism, logs in with LOGIN and AUTHENTICATE PLAIN,
//! uses `/` as delimiter, serves TLS (implicit and STARTTLS) with the per-run CA, takes
//! deliveries, and leaves neither processes nor files behind.
//!
//! Each test skips, saying why, when Cyrus is not installed (`scripts/install-cyrus`); under
//! CI or `scripts/test` (MAILFOLD_REQUIRE_CYRUS) a missing Cyrus fails it instead.

mod util;

use std::time::Instant;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use mailfold_testsupport::{Cyrus, RealServer, CYRUS_ADMIN, CYRUS_MECHANISMS};
use util::{tagged_ok, Raw};

/// Starts an instance from `builder`; without Cyrus, returns from the test saying why, or
/// fails it under CI (`mailfold_testsupport::require`).
macro_rules! cyrus_or_skip {
    ($builder:expr) => {{
        mailfold_testsupport::require_or_skip!(mailfold_testsupport::Tool::Cyrus);
        $builder.start()
    }};
}

#[test]
fn starts_and_greets_with_every_mechanism() {
    let started = Instant::now();
    let cyrus = cyrus_or_skip!(Cyrus::builder());
    eprintln!("Cyrus ready in {:?}", started.elapsed());
    let mut raw = Raw::connect(cyrus.imap_addr());
    let greeting = raw.line();
    assert!(greeting.starts_with("* OK"), "{greeting}");
    assert!(greeting.contains("Cyrus IMAP"), "{greeting}");
    assert!(greeting.contains("STARTTLS"), "{greeting}");
    for mech in CYRUS_MECHANISMS {
        assert!(
            greeting.contains(&format!("AUTH={mech} "))
                || greeting.contains(&format!("AUTH={mech}]")),
            "{mech} missing: {greeting}"
        );
    }
    assert_eq!(cyrus.users().len(), 2);
    assert_eq!(cyrus.user(0).name, "user1");
    assert_ne!(cyrus.user(0).password, cyrus.user(1).password);
    assert_eq!(cyrus.admin().name, CYRUS_ADMIN);
}

#[test]
fn login_command_and_authenticate_plain_built_by_hand() {
    let cyrus = cyrus_or_skip!(Cyrus::builder());
    let user = cyrus.user(0);

    let mut raw = Raw::connect(cyrus.imap_addr());
    raw.line();
    let lines = raw.cmd("a", &format!("LOGIN {} {}", user.name, user.password));
    assert!(tagged_ok(&lines), "{lines:?}");
    // Cyrus quirk: the capabilities after login name LOGINDISABLED, though login is done.
    assert!(lines.last().unwrap().contains("LOGINDISABLED"), "{lines:?}");

    let ir = B64.encode(format!("\0{}\0{}", user.name, user.password));
    let mut raw = Raw::connect(cyrus.imap_addr());
    raw.line();
    let lines = raw.cmd("b", &format!("AUTHENTICATE PLAIN {ir}"));
    assert!(tagged_ok(&lines), "{lines:?}");

    // Without SASL-IR: an empty challenge, then the response.
    let mut raw = Raw::connect(cyrus.imap_addr());
    raw.line();
    raw.send("c AUTHENTICATE PLAIN");
    assert!(raw.line().starts_with('+'));
    raw.send(&ir);
    assert!(tagged_ok(&raw.until_tagged("c")));

    // A wrong password is refused, at once (failedloginpause: 0).
    let mut raw = Raw::connect(cyrus.imap_addr());
    raw.line();
    let started = Instant::now();
    let ir = B64.encode(format!("\0{}\0wrong", user.name));
    let lines = raw.cmd("d", &format!("AUTHENTICATE PLAIN {ir}"));
    assert!(lines.last().unwrap().starts_with("d NO"), "{lines:?}");
    assert!(started.elapsed().as_secs() < 2);
}

#[test]
fn hierarchy_delimiter_is_slash() {
    let cyrus = cyrus_or_skip!(Cyrus::builder());
    assert_eq!(cyrus.delimiter(), '/');
    let user = cyrus.user(0);
    cyrus.create_mailbox(&user.name, "Projects");
    cyrus.create_mailbox(&user.name, "Projects/2024");
    let mut raw = Raw::connect(cyrus.imap_addr());
    raw.line();
    assert!(tagged_ok(
        &raw.cmd("a", &format!("LOGIN {} {}", user.name, user.password))
    ));
    let lines = raw.cmd("b", "LIST \"\" \"*\"");
    assert!(tagged_ok(&lines), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("\"/\" Projects/2024")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l.contains("\"/\" INBOX")), "{lines:?}");
    // A fresh user has only INBOX plus what this test created.
    assert_eq!(lines.iter().filter(|l| l.starts_with("* LIST")).count(), 3);
}

#[test]
fn implicit_tls_and_starttls_verify_with_the_generated_ca() {
    let cyrus = cyrus_or_skip!(Cyrus::builder());
    let config = cyrus.pki().client_config();
    let user = cyrus.user(0);

    let mut raw = Raw::connect_tls(cyrus.imaps_addr(), config.clone());
    let greeting = raw.line();
    assert!(greeting.starts_with("* OK"), "{greeting}");
    assert!(!greeting.contains("STARTTLS"), "{greeting}");
    assert!(tagged_ok(
        &raw.cmd("a", &format!("LOGIN {} {}", user.name, user.password))
    ));

    let tcp = util::tcp(cyrus.imap_addr());
    let mut raw = Raw::over(Box::new(tcp.try_clone().unwrap()));
    raw.line();
    let lines = raw.cmd("a", "STARTTLS");
    assert!(tagged_ok(&lines), "{lines:?}");
    let mut raw = raw.upgrade(config, tcp);
    let lines = raw.cmd("b", "CAPABILITY");
    assert!(!lines[0].contains("STARTTLS"), "{lines:?}");
    assert!(tagged_ok(
        &raw.cmd("c", &format!("LOGIN {} {}", user.name, user.password))
    ));

    // A client that trusts only another CA refuses the certificate.
    let other = mailfold_testsupport::TestPki::generate().client_config();
    let mut tls = rustls::StreamOwned::new(
        rustls::ClientConnection::new(other, "127.0.0.1".try_into().unwrap()).unwrap(),
        util::tcp(cyrus.imaps_addr()),
    );
    let mut byte = [0u8; 1];
    assert!(std::io::Read::read(&mut tls, &mut byte).is_err());
}

#[test]
fn plaintext_auth_off_advertises_logindisabled_before_starttls() {
    let cyrus = cyrus_or_skip!(Cyrus::builder().plaintext_auth(false));
    let mut raw = Raw::connect(cyrus.imap_addr());
    let greeting = raw.line();
    assert!(greeting.contains("LOGINDISABLED"), "{greeting}");
    assert!(!greeting.contains("AUTH=PLAIN"), "{greeting}");
    let user = cyrus.user(0);
    let lines = raw.cmd("a", &format!("LOGIN {} {}", user.name, user.password));
    assert!(!tagged_ok(&lines), "{lines:?}");
}

#[test]
fn deliver_create_and_special_use() {
    let cyrus = cyrus_or_skip!(Cyrus::builder().special_use(true).users(1));
    let user = cyrus.user(0).name.clone();
    let uid = cyrus.deliver(&user, "INBOX", b"Subject: one\r\n\r\nbody\r\n");
    let uid2 = cyrus.deliver(&user, "Sent", b"Subject: two\r\n\r\nbody\r\n");
    assert!(uid >= 1 && uid2 >= 1);
    assert_eq!(
        cyrus.deliver(&user, "INBOX", b"Subject: three\r\n\r\nbody\r\n"),
        uid + 1
    );
    let replies = cyrus
        .run_as(
            &user,
            &[
                "LIST (SPECIAL-USE) \"\" \"*\"",
                "STATUS INBOX (MESSAGES UIDNEXT)",
                "SELECT Nowhere",
            ],
        )
        .unwrap();
    for flag in ["\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive"] {
        assert!(
            replies[0].iter().any(|l| l.contains(flag)),
            "{flag}: {:?}",
            replies[0]
        );
    }
    assert!(
        replies[1].iter().any(|l| l.contains("MESSAGES 2")),
        "{:?}",
        replies[1]
    );
    assert!(
        replies[2].last().unwrap().contains(" NO "),
        "{:?}",
        replies[2]
    );
    // Delivering to a mailbox that does not exist is an error, not a silent success.
    assert!(cyrus
        .try_deliver(&user, "Nowhere", b"Subject: x\r\n\r\nx\r\n")
        .is_err());
    // The generic interface sees the same server.
    let server: &dyn RealServer = &cyrus;
    assert_eq!(server.kind(), "Cyrus");
    assert_eq!(server.delimiter(), '/');
    server.create_mailbox(&user, "Via/Trait");
    server.deliver(&user, "Via/Trait", b"Subject: t\r\n\r\nt\r\n");
}

#[test]
fn telemetry_records_the_protocol() {
    let cyrus = cyrus_or_skip!(Cyrus::builder().telemetry(true).users(1));
    let user = cyrus.user(0).name.clone();
    cyrus.run_as(&user, &["NOOP"]).unwrap();
    let log = cyrus.telemetry(&user);
    assert!(log.contains("NOOP"), "{log}");
    assert!(cyrus.telemetry_enabled());
}

#[test]
fn stops_its_processes_and_removes_its_files() {
    let cyrus = cyrus_or_skip!(Cyrus::builder());
    let root = cyrus.root().to_path_buf();
    let pid = cyrus.pid().expect("running");
    // An imapd child exists while a connection is open.
    let mut raw = Raw::connect(cyrus.imap_addr());
    raw.line();
    let imaps = cyrus.imaps_addr();
    drop(cyrus);
    assert!(!root.exists(), "{} left behind", root.display());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z"))
                .unwrap_or(true),
        "master {pid} still running"
    );
    assert!(std::net::TcpStream::connect(imaps).is_err());
}

/// A master that stops signals its whole process group; each instance has its own group,
/// so stopping one leaves the others (and this test process) untouched.
#[test]
fn stopping_one_instance_leaves_the_others_running() {
    mailfold_testsupport::require_or_skip!(mailfold_testsupport::Tool::Cyrus);
    let first = Cyrus::builder().users(1).start();
    let second = Cyrus::builder().users(1).start();
    let third = Cyrus::builder().users(1).start();
    drop(second);
    std::thread::sleep(std::time::Duration::from_millis(300));
    for cyrus in [&first, &third] {
        let uid = cyrus.deliver("user1", "INBOX", b"Subject: still here\r\n\r\nyes\r\n");
        assert_eq!(uid, 1);
        let mut raw = Raw::connect(cyrus.imap_addr());
        assert!(raw.line().starts_with("* OK"));
    }
}
