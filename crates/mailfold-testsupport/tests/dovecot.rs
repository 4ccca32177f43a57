//! The private Dovecot: starts fast, speaks every mechanism it advertises, serves TLS with the
//! per-run CA, takes deliveries, and leaves nothing behind.

mod util;

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use mailfold_testsupport::{
    Dovecot, Fault, FaultPlan, FaultProxy, Layout, Plaintext, ANONYMOUS_USER, MECHANISMS,
};
use util::{tagged_ok, Raw};

#[test]
fn starts_and_greets_with_every_mechanism() {
    let started = Instant::now();
    let dovecot = Dovecot::start();
    eprintln!("Dovecot ready in {:?}", started.elapsed());
    let mut raw = Raw::connect(dovecot.imap_addr());
    let greeting = raw.line();
    assert!(greeting.starts_with("* OK"), "{greeting}");
    assert!(greeting.contains("STARTTLS"), "{greeting}");
    for mech in MECHANISMS {
        assert!(
            greeting.contains(&format!("AUTH={mech}")),
            "{mech} missing: {greeting}"
        );
    }
    assert_eq!(dovecot.users().len(), 2);
    assert_eq!(dovecot.user(0).name, "user1");
    assert_ne!(dovecot.user(0).password, dovecot.user(1).password);
}

#[test]
fn authenticate_plain_built_by_hand() {
    let dovecot = Dovecot::start();
    let user = dovecot.user(0);
    let mut raw = Raw::connect(dovecot.imap_addr());
    raw.line();
    let ir = B64.encode(format!("\0{}\0{}", user.name, user.password));
    let lines = raw.cmd("a1", &format!("AUTHENTICATE PLAIN {ir}"));
    assert!(tagged_ok(&lines), "{lines:?}\n{}", dovecot.log());
    // Without SASL-IR: empty challenge, then the response.
    let mut raw = Raw::connect(dovecot.imap_addr());
    raw.line();
    raw.send("a1 AUTHENTICATE PLAIN");
    assert!(raw.line().starts_with('+'));
    raw.send(&ir);
    assert!(tagged_ok(&raw.until_tagged("a1")));
}

#[test]
fn wrong_password_and_wrong_token_are_refused() {
    let dovecot = Dovecot::start();
    let user = dovecot.user(0);
    let mut raw = Raw::connect(dovecot.imap_addr());
    raw.line();
    let ir = B64.encode(format!("\0{}\0wrong", user.name));
    let lines = raw.cmd("a1", &format!("AUTHENTICATE PLAIN {ir}"));
    assert!(lines.last().unwrap().starts_with("a1 NO"), "{lines:?}");
    // user2's token does not log in user1.
    let ir = B64.encode(format!(
        "user={}\x01auth=Bearer {}\x01\x01",
        user.name,
        dovecot.user(1).token
    ));
    raw.send(&format!("a2 AUTHENTICATE XOAUTH2 {ir}"));
    // RFC 7628 section 3.2.2: the failure comes as a challenge with an error JSON, which the
    // client must answer with an empty response before the tagged NO.
    let challenge = raw.line();
    assert!(challenge.starts_with("+ "), "{challenge}");
    let error = B64.decode(challenge[2..].trim()).unwrap();
    assert!(
        String::from_utf8_lossy(&error).contains("\"status\""),
        "{error:?}"
    );
    raw.send("");
    let lines = raw.until_tagged("a2");
    assert!(lines.last().unwrap().starts_with("a2 NO"), "{lines:?}");
}

#[test]
fn login_command_and_login_mechanism() {
    let dovecot = Dovecot::start();
    let user = dovecot.user(1);
    let mut raw = Raw::connect(dovecot.imap_addr());
    raw.line();
    let lines = raw.cmd("a", &format!("LOGIN {} {}", user.name, user.password));
    assert!(tagged_ok(&lines), "{lines:?}");

    let mut raw = Raw::connect(dovecot.imap_addr());
    raw.line();
    raw.send("b AUTHENTICATE LOGIN");
    assert!(raw.line().starts_with("+ "));
    raw.send(&B64.encode(&user.name));
    assert!(raw.line().starts_with("+ "));
    raw.send(&B64.encode(&user.password));
    assert!(tagged_ok(&raw.until_tagged("b")));
}

#[test]
fn anonymous_xoauth2_and_oauthbearer() {
    let dovecot = Dovecot::start();
    let user = dovecot.user(0);

    let mut raw = Raw::connect(dovecot.imap_addr());
    raw.line();
    let lines = raw.cmd(
        "a",
        &format!("AUTHENTICATE ANONYMOUS {}", B64.encode("tester")),
    );
    assert!(tagged_ok(&lines), "{lines:?}");
    // Dovecot's login process writes its log line on its own schedule, shortly after the
    // tagged OK: wait for it (bounded) rather than read the log at once.
    let want = format!("user=<{ANONYMOUS_USER}>");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !dovecot.log().contains(&want) && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(dovecot.log().contains(&want), "{}", dovecot.log());

    let mut raw = Raw::connect(dovecot.imap_addr());
    raw.line();
    let ir = B64.encode(format!(
        "user={}\x01auth=Bearer {}\x01\x01",
        user.name, user.token
    ));
    let lines = raw.cmd("b", &format!("AUTHENTICATE XOAUTH2 {ir}"));
    assert!(tagged_ok(&lines), "{lines:?}\n{}", dovecot.log());

    let mut raw = Raw::connect(dovecot.imap_addr());
    raw.line();
    let ir = B64.encode(format!(
        "n,a={},\x01auth=Bearer {}\x01\x01",
        user.name, user.token
    ));
    let lines = raw.cmd("c", &format!("AUTHENTICATE OAUTHBEARER {ir}"));
    assert!(tagged_ok(&lines), "{lines:?}\n{}", dovecot.log());
    assert!(dovecot.oauth_requests() >= 2);
}

#[test]
fn implicit_tls_and_starttls_verify_with_the_generated_ca() {
    let dovecot = Dovecot::start();
    assert!(dovecot.ca_file().is_file());
    let config = dovecot.pki().client_config();

    let mut raw = Raw::connect_tls(dovecot.imaps_addr(), config.clone());
    let greeting = raw.line();
    assert!(greeting.starts_with("* OK"), "{greeting}");
    assert!(!greeting.contains("STARTTLS"));
    let user = dovecot.user(0);
    assert!(tagged_ok(
        &raw.cmd("a", &format!("LOGIN {} {}", user.name, user.password))
    ));

    let tcp = util::tcp(dovecot.imap_addr());
    let mut raw = Raw::over(Box::new(tcp.try_clone().unwrap()));
    raw.line();
    assert!(tagged_ok(&raw.cmd("s", "STARTTLS")));
    let mut raw = raw.upgrade(config, tcp);
    let caps = raw.cmd("c", "CAPABILITY");
    assert!(
        caps[0].contains("AUTH=PLAIN") && !caps[0].contains("STARTTLS"),
        "{caps:?}"
    );
}

#[test]
fn deliver_then_select_shows_one_message() {
    let dovecot = Dovecot::start();
    let user = dovecot.user(0);
    dovecot.deliver(
        &user.name,
        "INBOX",
        b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n",
    );
    assert!(dovecot.mail_root(&user.name).join("cur").is_dir());
    let mut raw = Raw::connect(dovecot.imap_addr());
    raw.line();
    raw.cmd("a", &format!("LOGIN {} {}", user.name, user.password));
    let lines = raw.cmd("b", "SELECT INBOX");
    assert!(lines.iter().any(|l| l == "* 1 EXISTS"), "{lines:?}");
    assert!(tagged_ok(&lines));
}

#[test]
fn uidvalidity_can_be_forced() {
    let dovecot = Dovecot::start();
    let user = dovecot.user(0).name.clone();
    dovecot.deliver(&user, "INBOX", b"Subject: x\r\n\r\nx\r\n");
    dovecot.set_uidvalidity(&user, "INBOX", 42);
    assert!(dovecot
        .status(&user, "INBOX", "uidvalidity")
        .contains("uidvalidity=42"));
}

#[test]
fn special_use_mailboxes_and_maildir_plus_plus_delimiter() {
    let dovecot = Dovecot::start();
    let user = dovecot.user(0);
    dovecot.create_mailbox(&user.name, "Work.Projects");
    let mut raw = Raw::connect(dovecot.imap_addr());
    raw.line();
    raw.cmd("a", &format!("LOGIN {} {}", user.name, user.password));
    let lines = raw.cmd("b", "LIST \"\" *").join("\n");
    for (name, flag) in [
        ("Sent", "\\Sent"),
        ("Drafts", "\\Drafts"),
        ("Trash", "\\Trash"),
        ("Junk", "\\Junk"),
        ("Archive", "\\Archive"),
    ] {
        assert!(
            lines
                .lines()
                .any(|l| l.contains(flag) && l.ends_with(&format!(" {name}"))),
            "{name}: {lines}"
        );
    }
    assert!(lines.contains("\".\" Work.Projects"), "{lines}");
    assert!(dovecot
        .mail_root(&user.name)
        .join(".Work.Projects")
        .is_dir());
}

#[test]
fn fs_layout_without_special_use() {
    let dovecot = Dovecot::builder()
        .layout(Layout::Fs)
        .special_use(false)
        .users(1)
        .start();
    assert_eq!(dovecot.delimiter(), '/');
    let user = dovecot.user(0);
    dovecot.create_mailbox(&user.name, "Work/Projects");
    let mut raw = Raw::connect(dovecot.imap_addr());
    raw.line();
    let login = raw.cmd("a", &format!("LOGIN {} {}", user.name, user.password));
    assert!(!login.join(" ").contains("SPECIAL-USE"), "{login:?}");
    let lines = raw.cmd("b", "LIST \"\" *").join("\n");
    assert!(lines.contains("\"/\" Work/Projects"), "{lines}");
    assert!(!lines.contains("Sent"), "{lines}");
    assert!(dovecot
        .mail_root(&user.name)
        .join("Work")
        .join("Projects")
        .is_dir());
}

#[test]
fn plaintext_listeners_allow_or_refuse_cleartext_passwords() {
    let dovecot = Dovecot::builder().plaintext(Plaintext::AllowAuth).start();
    let addr = dovecot.plaintext_addr().expect("plaintext listener");
    let mut raw = Raw::connect(addr);
    let greeting = raw.line();
    assert!(
        !greeting.contains("STARTTLS") && !greeting.contains("LOGINDISABLED"),
        "{greeting}"
    );
    let user = dovecot.user(0);
    assert!(tagged_ok(
        &raw.cmd("a", &format!("LOGIN {} {}", user.name, user.password))
    ));

    let dovecot = Dovecot::builder()
        .plaintext(Plaintext::LoginDisabled)
        .start();
    let mut raw = Raw::connect(dovecot.plaintext_addr().unwrap());
    let greeting = raw.line();
    assert!(
        greeting.contains("LOGINDISABLED") && !greeting.contains("STARTTLS"),
        "{greeting}"
    );
    assert!(Dovecot::start().plaintext_addr().is_none());
}

#[test]
fn rawlog_records_the_session() {
    let dovecot = Dovecot::builder().rawlog(true).start();
    let user = dovecot.user(0);
    let mut raw = Raw::connect(dovecot.imap_addr());
    raw.line();
    raw.cmd("a", &format!("LOGIN {} {}", user.name, user.password));
    raw.cmd("b", "NOOP");
    raw.cmd("c", "LOGOUT");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !dovecot.rawlog(&user.name).contains("b NOOP") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        dovecot.rawlog(&user.name).contains("b NOOP"),
        "{}",
        dovecot.log()
    );
}

#[test]
fn files_and_processes_are_gone_after_drop() {
    let dovecot = Dovecot::start();
    let root = dovecot.root().to_path_buf();
    let imap = dovecot.imap_addr();
    let config = dovecot.config_path();
    let text = std::fs::read_to_string(&config).unwrap();
    let instance = text
        .lines()
        .find_map(|l| l.strip_prefix("instance_name = "))
        .unwrap()
        .to_string();
    // A session open at drop time must not keep anything alive.
    let mut raw = Raw::connect(imap);
    raw.line();
    let started = Instant::now();
    drop(dovecot);
    eprintln!("stopped in {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(8));
    assert!(!root.exists(), "{} still exists", root.display());
    assert!(std::net::TcpStream::connect(imap).is_err());
    let prefix = format!("dovecot-{instance}/");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            assert!(
                !cmdline.starts_with(prefix.as_bytes()),
                "straggler {:?}",
                entry.path()
            );
        }
    }
}

#[test]
fn parallel_instances_are_independent() {
    let handles: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                let dovecot = Dovecot::builder().users(1).special_use(false).start();
                let user = dovecot.user(0).clone();
                dovecot.deliver(&user.name, "INBOX", b"Subject: p\r\n\r\np\r\n");
                let mut raw = Raw::connect(dovecot.imap_addr());
                raw.line();
                raw.cmd("a", &format!("LOGIN {} {}", user.name, user.password));
                let lines = raw.cmd("b", "SELECT INBOX");
                assert!(lines.iter().any(|l| l == "* 1 EXISTS"), "{lines:?}");
                (dovecot.imap_addr(), dovecot.root().to_path_buf())
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (i, a) in results.iter().enumerate() {
        for b in &results[i + 1..] {
            assert_ne!(a.0, b.0);
            assert_ne!(a.1, b.1);
        }
    }
}

#[test]
fn fault_proxy_in_front_of_dovecot() {
    let dovecot = Dovecot::start();
    let proxy = FaultProxy::start(dovecot.imap_addr(), FaultPlan::Always(Fault::None));
    let mut raw = Raw::connect(proxy.addr());
    assert!(raw.line().contains("AUTH=PLAIN"));
    let user = dovecot.user(0);
    assert!(tagged_ok(
        &raw.cmd("a", &format!("LOGIN {} {}", user.name, user.password))
    ));
}
