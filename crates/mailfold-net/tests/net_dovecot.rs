//! End-to-end sessions against a private Dovecot (mailfold-testsupport): transports, every
//! mechanism Dovecot offers, and SELECT/FETCH/STORE/APPEND/IDLE round trips.

use std::time::Duration;

use mailfold_net::{ConnectConfig, Error, FetchSink, IdleStop, Security, SelectOptions, Session};
use mailfold_proto::command::{FetchItem, FetchItems, FetchModifiers, StoreFlags, StoreMode};
use mailfold_proto::core::{Flag, Mailbox};
use mailfold_proto::engine::{BodyPart, Event, MailboxChange};
use mailfold_proto::response::{Code, Fetch};
use mailfold_proto::seqset::UidSet;
use mailfold_sasl::{Credentials, MechanismName, Policy};
use mailfold_testsupport::{Dovecot, Plaintext};

fn cfg(d: &Dovecot, security: Security) -> ConnectConfig {
    let addr = match security {
        Security::ImplicitTls => d.imaps_addr(),
        Security::StartTls => d.imap_addr(),
        Security::Plaintext => d.plaintext_addr().expect("plaintext listener"),
    };
    let mut c = ConnectConfig::new(addr.ip().to_string());
    c.port = Some(addr.port());
    c.security = security;
    c.tls.ca_file = Some(d.ca_file());
    c.connect_timeout = Duration::from_secs(10);
    c.engine.command_timeout = Duration::from_secs(20);
    c
}

fn password(d: &Dovecot) -> Credentials {
    let u = d.user(0);
    Credentials::password(u.name.clone(), u.password.clone())
}

const MSG: &[u8] =
    b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hello\r\n\r\nbody line\r\n";

/// Seed N1: implicit TLS, STARTTLS, and plaintext (only when the account says so).
#[tokio::test]
async fn n1_implicit_tls_starttls_and_explicit_plaintext() {
    let d = Dovecot::builder().plaintext(Plaintext::AllowAuth).start();
    for sec in [Security::ImplicitTls, Security::StartTls] {
        let s = Session::connect(&cfg(&d, sec), Some(&password(&d)))
            .await
            .unwrap();
        assert!(s.is_encrypted(), "{sec:?}");
        assert!(s.capabilities().unwrap().has("IMAP4rev1"));
        s.logout().await.unwrap();
    }
    let mut c = cfg(&d, Security::Plaintext);
    c.auth_policy = Policy {
        allow_plaintext_password: true,
        ..Policy::password()
    };
    let s = Session::connect(&c, Some(&password(&d))).await.unwrap();
    assert!(!s.is_encrypted());
    s.logout().await.unwrap();
}

/// Seeds E0001, E0002, V0027, V0029: every mechanism Dovecot supports, end to end.
#[tokio::test]
async fn e0001_every_dovecot_mechanism_authenticates() {
    let d = Dovecot::start();
    let u = d.user(0).clone();
    let cases = [
        (
            MechanismName::Plain,
            Credentials::password(u.name.clone(), u.password.clone()),
        ),
        (
            MechanismName::Login,
            Credentials::password(u.name.clone(), u.password.clone()),
        ),
        (
            MechanismName::CramMd5,
            Credentials::password(u.name.clone(), u.password.clone()),
        ),
        (
            MechanismName::DigestMd5,
            Credentials::password(u.name.clone(), u.password.clone()),
        ),
        (
            MechanismName::ScramSha1,
            Credentials::password(u.name.clone(), u.password.clone()),
        ),
        (
            MechanismName::ScramSha256,
            Credentials::password(u.name.clone(), u.password.clone()),
        ),
        (
            MechanismName::OAuthBearer,
            Credentials::bearer_token(u.name.clone(), u.token.clone()),
        ),
        (
            MechanismName::XOAuth2,
            Credentials::bearer_token(u.name.clone(), u.token.clone()),
        ),
        (
            MechanismName::Anonymous,
            Credentials::anonymous("test@example.org"),
        ),
    ];
    for (mech, creds) in cases {
        let mut c = cfg(&d, Security::ImplicitTls);
        c.auth_policy = match mech {
            MechanismName::OAuthBearer | MechanismName::XOAuth2 => Policy::oauth_token(),
            MechanismName::Anonymous => Policy::anonymous(),
            _ => Policy::password(),
        };
        c.auth_policy.order = Some(vec![mech]);
        let mut s = Session::connect(&c, Some(&creds))
            .await
            .unwrap_or_else(|e| panic!("{mech}: {e}\n{}", d.log()));
        assert_eq!(s.stats().commands("AUTHENTICATE"), 1, "{mech}");
        s.noop().await.unwrap();
        s.logout().await.unwrap();
    }
}

/// Seed E0002: with the default policy, against Dovecot's offer (PLAIN, LOGIN, CRAM-MD5,
/// DIGEST-MD5, SCRAM-SHA-1, SCRAM-SHA-256, OAUTHBEARER, XOAUTH2, …), the strongest SCRAM is
/// the one chosen, at the first attempt; with a token, OAUTHBEARER.
#[tokio::test]
async fn e0002_scram_preferred_by_default() {
    let d = Dovecot::start();
    let s = Session::connect(&cfg(&d, Security::ImplicitTls), Some(&password(&d)))
        .await
        .unwrap();
    assert_eq!(s.stats().commands("AUTHENTICATE"), 1);
    assert_eq!(s.stats().commands("LOGIN"), 0);
    let a = s.auth_info();
    for m in ["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"] {
        assert!(a.mechanisms_offered.iter().any(|o| o == m), "{a:?}");
    }
    assert_eq!(a.mechanism_used.as_deref(), Some("SCRAM-SHA-256"), "{a:?}");
    assert_eq!(a.attempts, ["SCRAM-SHA-256"], "{a:?}");
    s.logout().await.unwrap();

    let mut c = cfg(&d, Security::ImplicitTls);
    c.auth_policy = Policy::oauth_token();
    let u = d.user(0);
    let token = Credentials::bearer_token(u.name.clone(), u.token.clone());
    let s = Session::connect(&c, Some(&token)).await.unwrap();
    let a = s.auth_info();
    assert_eq!(a.mechanism_used.as_deref(), Some("OAUTHBEARER"), "{a:?}");
    assert_eq!(a.attempts, ["OAUTHBEARER"], "{a:?}");
    s.logout().await.unwrap();
}

/// Seed V0034: a wrong password fails clearly, the strongest mechanism first; over plaintext
/// a rejected password is never retried with a weaker mechanism (nor the LOGIN command).
/// Which mechanisms were chosen is read from the session's own record of its attempts.
#[tokio::test]
async fn v0034_wrong_password_is_reported_not_retried_weaker() {
    let d = Dovecot::builder().plaintext(Plaintext::AllowAuth).start();
    let creds = Credentials::password(d.user(0).name.clone(), "wrong password")
        .with_origin("password_command of account t");
    let f = Session::connect_report(&cfg(&d, Security::ImplicitTls), Some(&creds))
        .await
        .unwrap_err();
    assert!(matches!(f.error, Error::Auth { .. }), "{}", f.error);
    // Dovecot offers every mechanism; one was tried, and the message says whose
    // credentials were refused and where they came from.
    assert_eq!(f.auth.attempts, ["SCRAM-SHA-256"], "{:?}", f.auth);
    let text = f.error.to_string();
    assert!(
        text.contains("refused the credentials") && text.contains("password_command"),
        "{text}"
    );

    // Over plaintext (allowed by the account), one attempt and no fallback to a weaker one.
    let mut c = cfg(&d, Security::Plaintext);
    c.auth_policy = Policy {
        allow_plaintext_password: true,
        ..Policy::password()
    };
    let f = Session::connect_report(&c, Some(&creds)).await.unwrap_err();
    assert!(matches!(f.error, Error::Auth { .. }), "{}", f.error);
    assert_eq!(f.auth.attempts.len(), 1, "no silent fallback: {:?}", f.auth);
    assert!(f.auth.attempts[0].starts_with("SCRAM-"), "{:?}", f.auth);
}

/// Seed V0034 made visible: when the login fails, every mechanism tried is kept with how it
/// failed (the server's text and response code), with the greeting and the TLS session.
#[tokio::test]
async fn v0034_failed_login_keeps_what_was_tried_and_why() {
    let d = Dovecot::start();
    let creds = Credentials::password(d.user(0).name.clone(), "wrong password");
    let mut c = cfg(&d, Security::ImplicitTls);
    c.auth_policy.order = Some(vec![MechanismName::ScramSha256, MechanismName::Plain]);
    let f = Session::connect_report(&c, Some(&creds)).await.unwrap_err();
    assert!(matches!(f.error, Error::Auth { .. }), "{}", f.error);
    let tried: Vec<&str> = f.auth.tried.iter().map(|a| a.mechanism.as_str()).collect();
    // A rejected password ends the login, over TLS too: PLAIN is not tried with it (V0034),
    // so a wrong password is one failed login on the server.
    assert_eq!(tried, ["SCRAM-SHA-256"], "{:?}", f.auth);
    assert!(
        f.error.to_string().contains("refused the credentials"),
        "{}",
        f.error
    );
    assert_eq!(f.auth.attempts, tried);
    for a in &f.auth.tried {
        let why = a.failure.as_deref().unwrap_or_default();
        assert!(why.contains("AUTHENTICATIONFAILED"), "{a:?}");
    }
    assert!(f.auth.mechanism_used.is_none());
    assert!(f.auth.mechanisms_offered.iter().any(|m| m == "PLAIN"));
    assert!(f.greeting.as_deref().is_some_and(|g| g.contains("ready")));
    assert!(f.tls.is_some_and(|t| t.peer_certificates.len() == 1));

    // On success the one that worked has no failure.
    let s = Session::connect(&c, Some(&password(&d))).await.unwrap();
    let a = &s.auth_info().tried;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].mechanism, "SCRAM-SHA-256");
    assert_eq!(a[0].failure, None);
    s.logout().await.unwrap();
}

/// The greeting text is kept for probe, over implicit TLS and STARTTLS, with and without
/// login.
#[tokio::test]
async fn greeting_text_is_kept() {
    let d = Dovecot::start();
    for sec in [Security::ImplicitTls, Security::StartTls] {
        let s = Session::open(&cfg(&d, sec)).await.unwrap();
        let g = s.greeting().map(str::to_string);
        assert!(g.as_deref().is_some_and(|g| g.contains("ready")), "{g:?}");
        s.logout().await.unwrap();
        let s = Session::connect(&cfg(&d, sec), Some(&password(&d)))
            .await
            .unwrap();
        assert_eq!(s.greeting().map(str::to_string), g, "{sec:?}");
        s.logout().await.unwrap();
    }
}

#[derive(Default)]
struct Collect {
    fetches: Vec<Fetch>,
    body: Vec<u8>,
    starts: usize,
}

impl FetchSink for Collect {
    fn fetch(&mut self, f: Fetch) -> std::io::Result<()> {
        if let Some(b) = f.items.iter().find_map(|i| match i {
            mailfold_proto::response::FetchItem::BodySection { data, .. } => data.bytes(),
            _ => None,
        }) {
            self.body.extend_from_slice(b);
        }
        self.fetches.push(f);
        Ok(())
    }
    fn body_start(&mut self, _p: &BodyPart) -> std::io::Result<()> {
        self.starts += 1;
        Ok(())
    }
    fn body_chunk(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.body.extend_from_slice(data);
        Ok(())
    }
}

/// APPEND (in memory and streamed), SELECT, UID FETCH with a streamed body, UID STORE.
#[tokio::test]
async fn select_fetch_store_append_round_trip() {
    let d = Dovecot::start();
    let mut s = Session::connect(&cfg(&d, Security::ImplicitTls), Some(&password(&d)))
        .await
        .unwrap();
    let inbox = Mailbox::inbox();
    let code = s
        .append(&inbox, &[Flag::Flagged], None, MSG.to_vec())
        .await
        .unwrap();
    assert!(matches!(code, Some(Code::AppendUid { .. })), "{code:?}");
    let big: Vec<u8> = {
        let mut m = b"Subject: big\r\n\r\n".to_vec();
        while m.len() < 300_000 {
            m.extend_from_slice(
                b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnop\r\n",
            );
        }
        m
    };
    let len = big.len() as u64;
    s.append_stream(
        &inbox,
        &[],
        None,
        Box::new(std::io::Cursor::new(big.clone())),
        len,
    )
    .await
    .unwrap();

    let mb = s.select(&inbox, SelectOptions::default()).await.unwrap();
    assert_eq!(mb.exists, 2);
    assert!(mb.uid_validity.is_some());
    assert!(!mb.read_only);

    let mut sink = Collect::default();
    let n = s
        .uid_fetch(
            &UidSet::range(1, u32::MAX).unwrap(),
            FetchItems::Items(vec![FetchItem::Flags, FetchItem::body_peek()]),
            FetchModifiers::default(),
            &mut sink,
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        sink.starts, 1,
        "the large body was streamed, the small one inlined"
    );
    let mut want = MSG.to_vec();
    want.extend_from_slice(&big);
    assert_eq!(sink.body, want);
    assert!(sink.fetches[0].flags().unwrap().contains(&Flag::Flagged));

    let uid = sink.fetches[0].uid().unwrap();
    let res = s
        .uid_store(
            &UidSet::single(uid).unwrap(),
            StoreFlags {
                mode: StoreMode::Add,
                silent: false,
                flags: vec![Flag::Seen],
            },
            None,
        )
        .await
        .unwrap();
    assert!(res[0].flags().unwrap().contains(&Flag::Seen));
    assert_eq!(s.stats().commands("SELECT"), 1);
    s.logout().await.unwrap();
}

/// Seed V0026 against a real server: many commands pipelined, each awaited. That they really
/// were pipelined is checked on the wire: a relay holds back everything Dovecot answers once
/// the first STATUS has reached it, until all five STATUS commands have; a client that waited
/// for each answer before sending the next would never get there (the relay then gives up
/// and the test fails; checked once by hand with a client that waits for each answer).
#[tokio::test]
async fn v0026_pipelined_status_commands() {
    let d = Dovecot::builder().plaintext(Plaintext::AllowAuth).start();
    let (port, seen) = holding_relay(d.plaintext_addr().unwrap(), b" STATUS ", 5).await;
    let mut c = cfg(&d, Security::Plaintext);
    c.host = "127.0.0.1".into();
    c.port = Some(port);
    c.auth_policy = Policy {
        allow_plaintext_password: true,
        ..Policy::password()
    };
    let mut s = Session::connect(&c, Some(&password(&d))).await.unwrap();
    let names = ["INBOX", "Sent", "Drafts", "Trash", "Junk"];
    let handles: Vec<_> = names
        .iter()
        .map(|n| {
            s.submit(mailfold_proto::command::Command::Status {
                mailbox: Mailbox::from_utf8(n),
                items: vec![mailfold_proto::command::StatusItem::Messages],
            })
        })
        .collect();
    for h in handles {
        let c = s.wait(h).await.unwrap();
        assert!(c.outcome.is_ok(), "{c:?}");
    }
    assert_eq!(
        *seen.lock().unwrap(),
        Some(true),
        "all five STATUS commands reached the server before any answer was let through"
    );
    s.logout().await.unwrap();
}

/// Relays one connection from a fresh loopback port to `upstream`. Once the client has sent
/// `needle` once, nothing from the server is passed on until the client has sent it `count`
/// times (then everything flows). The result is `Some(true)` when that count was reached,
/// `Some(false)` when the relay gave up waiting (10 s, a bound against a hang only, below the
/// client's 20 s command timeout so that the verdict, not a timeout, is what a test sees).
async fn holding_relay(
    upstream: std::net::SocketAddr,
    needle: &'static [u8],
    count: usize,
) -> (u16, std::sync::Arc<std::sync::Mutex<Option<bool>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let result = std::sync::Arc::new(std::sync::Mutex::new(None));
    let out = result.clone();
    tokio::spawn(async move {
        let (down, _) = listener.accept().await.unwrap();
        let up = tokio::net::TcpStream::connect(upstream).await.unwrap();
        let (mut dr, mut dw) = down.into_split();
        let (mut ur, mut uw) = up.into_split();
        let (tx, mut rx) = tokio::sync::watch::channel(0usize);
        let to_server = tokio::spawn(async move {
            let (mut buf, mut sent) = ([0u8; 8192], Vec::new());
            while let Ok(n) = dr.read(&mut buf).await {
                if n == 0 || uw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                sent.extend_from_slice(&buf[..n]);
                let seen = sent.windows(needle.len()).filter(|w| *w == needle).count();
                let _ = tx.send(seen);
            }
        });
        let mut buf = [0u8; 8192];
        while let Ok(n) = ur.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let seen = *rx.borrow();
            if seen >= 1 && out.lock().unwrap().is_none() {
                let all = tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    rx.wait_for(|&s| s >= count),
                )
                .await
                .is_ok_and(|r| r.is_ok());
                *out.lock().unwrap() = Some(all);
            }
            if dw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = dw.shutdown().await;
        to_server.abort();
    });
    (port, result)
}

/// Seed V0023 (and V0028): a second connection changes the mailbox while the first IDLEs.
#[tokio::test]
async fn v0023_idle_sees_another_clients_changes() {
    let d = Dovecot::start();
    let c = cfg(&d, Security::ImplicitTls);
    let mut watcher = Session::connect(&c, Some(&password(&d))).await.unwrap();
    let inbox = Mailbox::inbox();
    watcher
        .select(&inbox, SelectOptions::default())
        .await
        .unwrap();
    let stop = IdleStop::new();
    let other = {
        let c = c.clone();
        let creds = password(&d);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut s = Session::connect(&c, Some(&creds)).await.unwrap();
            s.append(&Mailbox::inbox(), &[], None, MSG.to_vec())
                .await
                .unwrap();
            s.logout().await.unwrap();
        })
    };
    let notes = watcher.idle(&stop, Duration::from_secs(20)).await.unwrap();
    other.await.unwrap();
    assert!(
        notes
            .iter()
            .any(|n| matches!(n, Event::Mailbox(MailboxChange::Exists(1)))),
        "{notes:?}"
    );
    assert_eq!(watcher.mailbox().unwrap().exists, 1);
    watcher.logout().await.unwrap();
}

/// Seeds N2 and V0011: a session that ends normally sends LOGOUT and reads the server's
/// tagged OK to it before closing (the server's own record of the session shows both). The
/// other half, no LOGOUT only after an error, is
/// `net_hostile::v0011_protocol_error_drops_without_logout_and_says_why`.
#[tokio::test]
async fn v0011_logout_reads_the_tagged_ok() {
    let d = Dovecot::builder().rawlog(true).start();
    let mut s = Session::connect(&cfg(&d, Security::StartTls), Some(&password(&d)))
        .await
        .unwrap();
    s.noop().await.unwrap();
    let stats = s.stats().clone();
    let received_before = stats.bytes_received();
    s.logout().await.unwrap();
    assert_eq!(stats.commands("LOGOUT"), 1);
    // Dovecot's rawlog: `.in` is what the client sent, `.out` what the server answered.
    let log = d.rawlog(&d.user(0).name);
    let tag = log
        .lines()
        .find_map(|l| {
            let l = l.trim_end();
            l.strip_suffix(" LOGOUT")
                .map(|t| t.rsplit(' ').next().unwrap_or(t).to_owned())
        })
        .unwrap_or_else(|| panic!("LOGOUT sent: {log}"));
    let ok = format!("{tag} OK Logout completed");
    assert!(log.contains(&ok), "the server answered {ok:?}: {log}");
    // ... and the client read it: `* BYE` plus the tagged OK arrived after the NOOP's answer.
    assert!(
        stats.bytes_received() >= received_before + ok.len() as u64,
        "{} -> {}",
        received_before,
        stats.bytes_received()
    );
}

/// Seed V0061: a caller sends a raw command and reads its responses: the untagged data it
/// brought (here `* STATUS` and `* LIST`, checked against what Dovecot holds) and the tagged
/// outcome, including a BAD for a command the server does not know (an X-command).
#[tokio::test]
async fn v0061_raw_command_responses_are_read() {
    use mailfold_proto::engine::{CommandData, Outcome};
    use mailfold_proto::response::Response;
    let d = Dovecot::start();
    let u = d.user(0).name.clone();
    d.deliver(&u, "INBOX", MSG);
    d.deliver(&u, "INBOX", MSG);
    let mut s = Session::connect(&cfg(&d, Security::ImplicitTls), Some(&password(&d)))
        .await
        .unwrap();
    let c = s.raw("STATUS INBOX (MESSAGES UIDNEXT)").await.unwrap();
    assert!(c.outcome.is_ok(), "{c:?}");
    let CommandData::Raw(responses) = &c.data else {
        panic!("raw data expected: {c:?}");
    };
    let status = responses
        .iter()
        .find_map(|r| match r {
            Response::MailboxStatus(st) => Some(st),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no STATUS response: {responses:?}"));
    assert_eq!(status.mailbox.as_wire(), b"INBOX");
    assert_eq!(status.messages(), Some(2), "{status:?}");

    let c = s.raw("LIST \"\" \"Sent\"").await.unwrap();
    let CommandData::Raw(responses) = &c.data else {
        panic!("raw data expected: {c:?}");
    };
    let names: Vec<&[u8]> = responses
        .iter()
        .filter_map(|r| match r {
            Response::List(l) => Some(l.mailbox.as_wire()),
            _ => None,
        })
        .collect();
    assert_eq!(names, [b"Sent".as_slice()], "{responses:?}");

    let c = s.raw("X-MAILFOLD-UNKNOWN now").await.unwrap();
    assert!(matches!(c.outcome, Outcome::Bad { .. }), "{c:?}");
    // The session goes on after it.
    s.noop().await.unwrap();
    s.logout().await.unwrap();
}

/// Seed V0029: ANONYMOUS when the account is configured for it.
#[tokio::test]
async fn v0029_anonymous_login() {
    let d = Dovecot::start();
    let mut c = cfg(&d, Security::ImplicitTls);
    c.auth_policy = Policy::anonymous();
    let mut s = Session::connect(&c, Some(&Credentials::anonymous("tester")))
        .await
        .unwrap();
    assert_eq!(s.stats().commands("AUTHENTICATE"), 1);
    s.noop().await.unwrap();
    s.logout().await.unwrap();
}

/// Seeds V0033/V0065: the CAPABILITY code of the greeting and of the tagged OK to
/// AUTHENTICATE are used, so no CAPABILITY command is needed; the post-login set is used.
#[tokio::test]
async fn v0033_capability_codes_save_round_trips() {
    let d = Dovecot::start();
    let s = Session::connect(&cfg(&d, Security::ImplicitTls), Some(&password(&d)))
        .await
        .unwrap();
    assert_eq!(s.stats().commands("CAPABILITY"), 0);
    let caps = s.capabilities().unwrap();
    assert!(
        caps.has("IDLE") && caps.has("UIDPLUS"),
        "post-login capabilities"
    );
    assert!(
        caps.auth_mechanisms().is_empty(),
        "pre-login AUTH= list replaced"
    );
    s.logout().await.unwrap();
}

/// A Dovecot that offers only AUTH=PLAIN, and an account whose explicit list names only
/// LOGIN: no offered mechanism is permitted, and the list allows the LOGIN command (an
/// explicit list without LOGIN rules the command out, mailfold-sasl's policy).
fn login_command_only(sec: Security) -> (Dovecot, ConnectConfig) {
    let d = Dovecot::builder()
        .extra_config("auth_mechanisms = plain")
        .start();
    let mut c = cfg(&d, sec);
    c.auth_policy.order = Some(vec![MechanismName::Login]);
    (d, c)
}

/// Seed V0035: the same after the LOGIN command.
#[tokio::test]
async fn v0035_capabilities_after_login_command() {
    let (d, c) = login_command_only(Security::StartTls);
    let s = Session::connect(&c, Some(&password(&d))).await.unwrap();
    assert_eq!(s.stats().commands("LOGIN"), 1);
    assert_eq!(s.stats().commands("AUTHENTICATE"), 0);
    assert!(s.capabilities().unwrap().has("IDLE"));
    s.logout().await.unwrap();
}

/// Seeds V0025 and V0028: watching uses IDLE where offered, and the engine re-issues it on
/// its own timer (shortened here) without the caller doing anything.
#[tokio::test]
async fn v0025_idle_is_refreshed_by_the_engine_timer() {
    let d = Dovecot::start();
    let mut c = cfg(&d, Security::ImplicitTls);
    c.engine.idle_refresh = Duration::from_millis(400);
    let mut s = Session::connect(&c, Some(&password(&d))).await.unwrap();
    s.select(&Mailbox::inbox(), SelectOptions::default())
        .await
        .unwrap();
    let before = s.stats().bytes_sent();
    let notes = s
        .idle(&IdleStop::new(), Duration::from_millis(1500))
        .await
        .unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    // One IDLE cycle is "tttt IDLE\r\n" + "DONE\r\n" = 17 bytes; refreshes add more.
    let sent = s.stats().bytes_sent() - before;
    assert!(sent >= 34, "only {sent} bytes: IDLE was not refreshed");
    assert_eq!(
        s.stats().commands("IDLE"),
        1,
        "refreshes are the engine's own"
    );
    s.logout().await.unwrap();
}

/// For `mailfold probe`: what TLS negotiated (version, suite, the chain, which anchors
/// verified it) and how the session authenticated (capabilities before and after, mechanisms
/// offered and used; seeds V0027, V0033, V0035), over implicit TLS and STARTTLS.
#[tokio::test]
async fn v0027_tls_info_and_auth_info_for_probe() {
    let d = Dovecot::start();
    for sec in [Security::ImplicitTls, Security::StartTls] {
        let s = Session::connect(&cfg(&d, sec), Some(&password(&d)))
            .await
            .unwrap();
        let tls = s.tls_info().expect("TLS info");
        assert_eq!(tls.via_starttls, sec == Security::StartTls);
        assert!(
            tls.protocol == "TLSv1_3" || tls.protocol == "TLSv1_2",
            "{}",
            tls.protocol
        );
        assert!(tls.cipher_suite.starts_with("TLS"), "{}", tls.cipher_suite);
        assert_eq!(tls.trust, Some(mailfold_net::TrustSource::AccountCa));
        let leaf = &tls.peer_certificates[0];
        assert!(leaf.subject.contains("CN="), "{leaf:?}");
        assert!(leaf.issuer.contains("CN="), "{leaf:?}");
        assert_ne!(
            leaf.subject, leaf.issuer,
            "the leaf is issued by the test CA"
        );
        assert!(leaf.not_before < leaf.not_after, "{leaf:?}");
        assert_eq!(leaf.not_after.len(), "2030-01-01T00:00:00Z".len());
        let auth = s.auth_info();
        assert!(!auth.preauth);
        let before = auth.capabilities_before.as_ref().unwrap();
        let after = auth.capabilities_after.as_ref().unwrap();
        assert!(before.iter().any(|c| c.starts_with("AUTH=")), "{before:?}");
        assert!(!after.iter().any(|c| c.starts_with("AUTH=")), "{after:?}");
        assert!(auth.mechanisms_offered.iter().any(|m| m == "SCRAM-SHA-256"));
        let used = auth.mechanism_used.clone().unwrap();
        assert!(auth.mechanisms_offered.contains(&used), "{used}");
        assert_eq!(auth.attempts, vec![used]);
        s.logout().await.unwrap();
    }
    // The LOGIN command is reported as such.
    let (d, c) = login_command_only(Security::ImplicitTls);
    let s = Session::connect(&c, Some(&password(&d))).await.unwrap();
    assert_eq!(
        s.auth_info().mechanism_used.as_deref(),
        Some(mailfold_net::LOGIN_COMMAND)
    );
    s.logout().await.unwrap();
}

/// CONDSTORE/QRESYNC against Dovecot (RFC 7162): after another client expunges one message
/// and flags another, a QRESYNC SELECT returns exactly those as VANISHED and changed; UID
/// FETCH (CHANGEDSINCE … VANISHED) agrees; a conditional STORE reports MODIFIED.
#[tokio::test]
async fn c0004_qresync_resync_after_another_clients_changes() {
    let d = Dovecot::start();
    let c = cfg(&d, Security::ImplicitTls);
    let inbox = Mailbox::inbox();
    let mut a = Session::connect(&c, Some(&password(&d))).await.unwrap();
    for _ in 0..3 {
        a.append(&inbox, &[], None, MSG.to_vec()).await.unwrap();
    }
    let first = a
        .select_with(
            &inbox,
            SelectOptions {
                condstore: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let validity = first.state.uid_validity.unwrap();
    let modseq = first.state.highest_modseq.unwrap();
    let mut sink = Collect::default();
    a.uid_fetch(
        &UidSet::all(),
        FetchItems::Items(vec![FetchItem::Uid]),
        FetchModifiers::default(),
        &mut sink,
    )
    .await
    .unwrap();
    let uids: Vec<u32> = sink.fetches.iter().filter_map(|f| f.uid()).collect();
    assert_eq!(uids.len(), 3);
    a.logout().await.unwrap();

    // Another client: expunge the first message, flag the second.
    let mut b = Session::connect(&c, Some(&password(&d))).await.unwrap();
    b.select(&inbox, SelectOptions::default()).await.unwrap();
    let flag = |mode| StoreFlags {
        mode,
        silent: true,
        flags: vec![Flag::Deleted],
    };
    b.uid_store(
        &UidSet::single(uids[0]).unwrap(),
        flag(StoreMode::Add),
        None,
    )
    .await
    .unwrap();
    b.uid_expunge(&UidSet::single(uids[0]).unwrap())
        .await
        .unwrap();
    b.uid_store(
        &UidSet::single(uids[1]).unwrap(),
        StoreFlags {
            mode: StoreMode::Add,
            silent: true,
            flags: vec![Flag::Flagged],
        },
        None,
    )
    .await
    .unwrap();
    b.logout().await.unwrap();

    let mut a = Session::connect(&c, Some(&password(&d))).await.unwrap();
    let sel = a
        .select_with(
            &inbox,
            SelectOptions {
                qresync: Some(mailfold_net::QresyncParams {
                    uid_validity: validity,
                    modseq,
                    known_uids: Some(UidSet::from_numbers(uids.iter().copied()).unwrap()),
                    seq_match: None,
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(a.enabled().iter().any(|e| e == "QRESYNC"));
    assert_eq!(sel.state.exists, 2);
    assert_eq!(sel.vanished, Some(UidSet::single(uids[0]).unwrap()));
    let changed: Vec<u32> = sel.changed.iter().filter_map(|f| f.uid()).collect();
    assert_eq!(changed, vec![uids[1]], "{:?}", sel.changed);
    assert!(sel.changed[0].flags().unwrap().contains(&Flag::Flagged));
    let now_modseq = sel.state.highest_modseq.unwrap();
    assert!(now_modseq > modseq);

    // The same question asked with UID FETCH.
    let mut sink = Collect::default();
    let report = a
        .uid_fetch_report(
            &UidSet::all(),
            FetchItems::Items(vec![FetchItem::Flags]),
            FetchModifiers {
                changed_since: Some(modseq),
                vanished: true,
            },
            &mut sink,
        )
        .await
        .unwrap();
    assert_eq!(report.vanished, Some(UidSet::single(uids[0]).unwrap()));
    assert_eq!(report.count, 1);
    assert_eq!(sink.fetches[0].uid(), Some(uids[1]));

    // Conditional STORE: uids[1] changed after `modseq`, uids[2] did not.
    let store = a
        .uid_store_report(
            &UidSet::from_numbers([uids[1], uids[2]]).unwrap(),
            StoreFlags {
                mode: StoreMode::Add,
                silent: false,
                flags: vec![Flag::Seen],
            },
            modseq,
        )
        .await
        .unwrap();
    assert_eq!(store.modified, UidSet::single(uids[1]).unwrap());
    assert!(store
        .fetched
        .iter()
        .any(|f| f.uid() == Some(uids[2]) && f.flags().unwrap().contains(&Flag::Seen)));
    a.logout().await.unwrap();
}
