//! Hostile and broken servers: each test asserts that the client refuses or fails
//! cleanly, in bounded time, and that no credentials crossed the wire.

use std::time::Duration;

use mailfold_net::{ConnectConfig, Error, Security, Session};
use mailfold_proto::engine::Event;
use mailfold_sasl::{Credentials, Policy};
use mailfold_testsupport::{CertKind, Script, ScriptedServer};

const PASSWORD: &str = "hunter2-secret";

fn creds() -> Credentials {
    Credentials::password("alice", PASSWORD)
}

fn cfg(server: &ScriptedServer, security: Security) -> ConnectConfig {
    let mut c = ConnectConfig::new("127.0.0.1");
    c.port = Some(server.port());
    c.security = security;
    c.tls.ca_file = Some(server.ca_file());
    c.connect_timeout = Duration::from_secs(5);
    c.engine.command_timeout = Duration::from_secs(3);
    c
}

fn no_credentials_sent(server: &ScriptedServer) {
    server.wait_finished(Duration::from_secs(5));
    assert!(
        !server.received_contains(PASSWORD.as_bytes()),
        "password sent"
    );
    // PLAIN's base64 form of the password too.
    assert!(
        !server.received_contains(b"aHVudGVyMi1zZWNyZXQ"),
        "password sent in base64"
    );
    assert!(!server.received_contains(b"LOGIN alice"), "LOGIN sent");
    assert!(
        !server.received_contains(b"AUTHENTICATE"),
        "AUTHENTICATE sent"
    );
}

async fn connect(server: &ScriptedServer, security: Security) -> Result<Session, Error> {
    tokio::time::timeout(
        Duration::from_secs(20),
        Session::connect(&cfg(server, security), Some(&creds())),
    )
    .await
    .expect("the client must give up on its own, never hang")
}

#[tokio::test]
async fn starttls_not_advertised_abandons_the_connection() {
    let s = ScriptedServer::start(
        Script::new()
            .send_line("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] no tls here")
            .stall(),
    );
    let e = connect(&s, Security::StartTls).await.unwrap_err();
    assert!(matches!(e, Error::Security(_)), "{e}");
    no_credentials_sent(&s);
}

#[tokio::test]
async fn starttls_answered_no_bad_or_continuation_abandons() {
    for answer in ["NO not now", "BAD what"] {
        let s = ScriptedServer::start(
            Script::new()
                .send_line("* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] hi")
                .expect("STARTTLS")
                .send_tagged(answer)
                .stall(),
        );
        let e = connect(&s, Security::StartTls).await.unwrap_err();
        assert!(matches!(e, Error::Security(_)), "{answer}: {e}");
        no_credentials_sent(&s);
    }
    let s = ScriptedServer::start(
        Script::new()
            .send_line("* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] hi")
            .expect("STARTTLS")
            .send_line("+ go ahead")
            .stall(),
    );
    let e = connect(&s, Security::StartTls).await.unwrap_err();
    assert!(matches!(e, Error::Security(_)), "{e}");
    no_credentials_sent(&s);
}

#[tokio::test]
async fn capability_answered_bad_before_starttls_abandons() {
    let s = ScriptedServer::start(
        Script::new()
            .send_line("* OK hi")
            .expect("CAPABILITY")
            .send_tagged("BAD no")
            .stall(),
    );
    let e = connect(&s, Security::StartTls).await.unwrap_err();
    assert!(matches!(e, Error::Security(_)), "{e}");
    no_credentials_sent(&s);
}

#[tokio::test]
async fn starttls_response_injection_is_refused() {
    let s = ScriptedServer::start(
        Script::new()
            .send_line("* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] hi")
            .expect("STARTTLS")
            .send_tagged("OK begin TLS now\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN")
            .stall(),
    );
    let e = connect(&s, Security::StartTls).await.unwrap_err();
    assert!(matches!(e, Error::Security(_)), "{e}");
    no_credentials_sent(&s);
}

#[tokio::test]
async fn preauth_on_cleartext_is_refused_when_tls_is_required() {
    let s = ScriptedServer::start(
        Script::new()
            .send_line("* PREAUTH [CAPABILITY IMAP4rev1] you are in")
            .stall(),
    );
    let e = connect(&s, Security::StartTls).await.unwrap_err();
    assert!(matches!(e, Error::Security(_)), "{e}");
    no_credentials_sent(&s);
}

#[tokio::test]
async fn bad_certificates_are_refused() {
    for kind in [CertKind::SelfSigned, CertKind::WrongHost, CertKind::Expired] {
        let s = ScriptedServer::start(
            Script::new()
                .start_tls(kind)
                .send_line("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi")
                .stall(),
        );
        let e = connect(&s, Security::ImplicitTls).await.unwrap_err();
        assert!(matches!(e, Error::Certificate { .. }), "{kind:?}: {e}");
        no_credentials_sent(&s);
    }
}

#[tokio::test]
async fn n7_valid_certificate_from_the_account_ca_is_accepted() {
    let s = ScriptedServer::start(
        Script::new()
            .start_tls(CertKind::Valid)
            .send_line("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi")
            .expect("LOGOUT")
            .send_line("* BYE bye")
            .send_tagged("OK bye"),
    );
    let sess = Session::open(&cfg(&s, Security::ImplicitTls)).await;
    s.wait_finished(Duration::from_secs(1));
    let sess = sess.unwrap_or_else(|e| panic!("{e:?} {:?}", s.reports()));
    assert!(sess.is_encrypted());
    sess.logout().await.unwrap();
}

#[tokio::test]
async fn a_server_that_stops_answering_times_out() {
    let s = ScriptedServer::start(Script::new().stall());
    let e = connect(&s, Security::Plaintext).await.unwrap_err();
    assert!(matches!(e, Error::Timeout(_)), "{e}");
}

#[tokio::test]
async fn garbage_and_tagged_greetings_fail_cleanly() {
    for greeting in ["HTTP/1.1 200 OK", "a001 OK hello"] {
        let s = ScriptedServer::start(Script::new().send_line(greeting).stall());
        let e = connect(&s, Security::Plaintext).await.unwrap_err();
        assert!(matches!(e, Error::Protocol(_)), "{greeting}: {e}");
        no_credentials_sent(&s);
    }
}

#[tokio::test]
async fn connection_dropped_mid_command_fails_cleanly() {
    let s = ScriptedServer::start(
        Script::new()
            .send_line("* OK [CAPABILITY IMAP4rev1] hi")
            .expect("NOOP")
            .close(),
    );
    let mut sess = Session::open(&cfg(&s, Security::Plaintext)).await.unwrap();
    let e = sess.noop().await.unwrap_err();
    assert!(matches!(e, Error::Protocol(_) | Error::Io(..)), "{e}");
}

/// Seed V0031: no password over cleartext unless the account allows it.
#[tokio::test]
async fn v0031_no_password_over_cleartext_without_permission() {
    let s = ScriptedServer::start(
        Script::new()
            .send_line("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=LOGIN] hi")
            .stall(),
    );
    let e = connect(&s, Security::Plaintext).await.unwrap_err();
    assert!(matches!(e, Error::Security(_)), "{e}");
    no_credentials_sent(&s);
}

/// Seed V0032: LOGINDISABLED means no LOGIN command, even when allowed over cleartext.
#[tokio::test]
async fn v0032_never_login_when_logindisabled() {
    let s = ScriptedServer::start(
        Script::new()
            .send_line("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] hi")
            .stall(),
    );
    let mut c = cfg(&s, Security::Plaintext);
    c.auth_policy = Policy {
        allow_plaintext_password: true,
        ..Policy::password()
    };
    let e = tokio::time::timeout(
        Duration::from_secs(20),
        Session::connect(&c, Some(&creds())),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(matches!(e, Error::Security(_)), "{e}");
    no_credentials_sent(&s);
}

/// Seed V0034: a credentials rejection over cleartext does not fall back to a weaker
/// mechanism.
#[tokio::test]
async fn v0034_no_silent_fallback_after_rejection_over_cleartext() {
    let s = ScriptedServer::start(
        Script::new()
            .send_line("* OK [CAPABILITY IMAP4rev1 AUTH=CRAM-MD5 AUTH=PLAIN] hi")
            .expect("AUTHENTICATE CRAM-MD5")
            .send_line("+ PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+")
            .expect_line("*")
            .send_tagged("NO [AUTHENTICATIONFAILED] wrong")
            .stall(),
    );
    let mut c = cfg(&s, Security::Plaintext);
    c.auth_policy = Policy {
        allow_plaintext_password: true,
        ..Policy::password()
    };
    let e = tokio::time::timeout(
        Duration::from_secs(20),
        Session::connect(&c, Some(&creds())),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    s.wait_finished(Duration::from_secs(5));
    assert!(
        !s.received_contains(b"AUTHENTICATE PLAIN"),
        "fell back to PLAIN"
    );
    assert!(!s.received_contains(b"LOGIN alice"), "fell back to LOGIN");
}

/// Seed V0063: ALERT over cleartext is marked untrusted; seed V0064: BYE text in the error.
#[tokio::test]
async fn v0063_alert_over_cleartext_is_marked_and_v0064_bye_text_is_kept() {
    let s = ScriptedServer::start(
        Script::new()
            .send_line("* OK [ALERT] System going down at 5pm")
            .expect("NOOP")
            .send_line("* BYE shutting down now")
            .close(),
    );
    let mut sess = Session::open(&cfg(&s, Security::Plaintext)).await.unwrap();
    let notes = sess.take_notifications();
    assert!(notes.contains(&Event::Alert {
        text: "System going down at 5pm".into(),
        encrypted: false
    }));
    let e = sess.noop().await.unwrap_err();
    assert!(e.to_string().contains("shutting down now"), "{e}");
}

/// Seed N2: LOGOUT waits for the tagged OK, bounded: a server that never answers LOGOUT
/// does not hang the client.
#[tokio::test]
async fn n2_logout_is_bounded_when_the_server_never_answers() {
    let s = ScriptedServer::start(
        Script::new()
            .send_line("* OK [CAPABILITY IMAP4rev1] hi")
            .expect("LOGOUT")
            .stall(),
    );
    let mut c = cfg(&s, Security::Plaintext);
    c.engine.logout_timeout = Duration::from_millis(500);
    let sess = Session::open(&c).await.unwrap();
    let t0 = std::time::Instant::now();
    let r = sess.logout().await;
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(matches!(r, Err(Error::Timeout(_))), "{r:?}");
}

/// A tagged OK for a command never written is a forgery: fail, send nothing more.
#[tokio::test]
async fn tagged_ok_before_the_command_was_written_is_fatal() {
    let s = ScriptedServer::start(
        Script::new()
            .send_line("* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\nabcd OK LOGIN done")
            .stall(),
    );
    let e = connect(&s, Security::StartTls).await.unwrap_err();
    assert!(matches!(e, Error::Protocol(_) | Error::Security(_)), "{e}");
    no_credentials_sent(&s);
}

/// Seed V0027: every AUTH= name is recognised, unknown ones are ignored (50 of them), and the
/// strongest known mechanism goes first; STARTTLS is required when the account says so.
#[tokio::test]
async fn v0027_fifty_unknown_mechanisms_are_ignored() {
    let mut caps = String::from("* OK [CAPABILITY IMAP4rev1");
    for i in 0..50 {
        caps.push_str(&format!(" AUTH=X-JUNK-{i}"));
    }
    caps.push_str(" AUTH=PLAIN AUTH=SCRAM-SHA-256] hi");
    // Without STARTTLS on a STARTTLS account: abandoned, nothing sent.
    let s = ScriptedServer::start(Script::new().send_line(&caps).stall());
    let e = connect(&s, Security::StartTls).await.unwrap_err();
    assert!(matches!(e, Error::Security(_)), "{e}");
    no_credentials_sent(&s);
    // Over TLS: SCRAM-SHA-256 first.
    let s = ScriptedServer::start(
        Script::new()
            .start_tls(CertKind::Valid)
            .send_line(&caps)
            .expect("AUTHENTICATE SCRAM-SHA-256*")
            .send_tagged("NO [UNAVAILABLE] try later")
            .stall(),
    );
    let e = connect(&s, Security::ImplicitTls).await.unwrap_err();
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    s.wait_finished(Duration::from_secs(5));
    assert!(!s.received_contains(b"X-JUNK"));
}

fn tls_cfg(server: &ScriptedServer) -> ConnectConfig {
    cfg(server, Security::ImplicitTls)
}

/// RFC 2221 login referral in the answer to AUTHENTICATE: never followed (the referred
/// server sees no connection at all), and no other mechanism is tried on this server.
#[tokio::test]
async fn referral_on_login_is_never_followed_with_credentials() {
    let decoy = ScriptedServer::start(
        Script::new()
            .send_line("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] decoy")
            .stall(),
    );
    let s = ScriptedServer::start(
        Script::new()
            .start_tls(CertKind::Valid)
            .send_line("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=LOGIN SASL-IR] hi")
            .expect("AUTHENTICATE PLAIN*")
            .send_tagged(&format!(
                "NO [REFERRAL imap://alice;AUTH=*@127.0.0.1:{}/] go there",
                decoy.port()
            ))
            .stall(),
    );
    let e = tokio::time::timeout(
        Duration::from_secs(20),
        Session::connect(&tls_cfg(&s), Some(&creds())),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    assert!(e.to_string().contains("referral"), "{e}");
    s.wait_finished(Duration::from_secs(5));
    assert_eq!(s.connection_count(), 1);
    assert_eq!(decoy.connection_count(), 0, "the referral was followed");
    let sent = s.received();
    assert_eq!(
        sent.windows(12).filter(|w| w == b"AUTHENTICATE").count(),
        1,
        "tried another mechanism after the referral"
    );
}

/// A greeting `BYE [REFERRAL …]` ends the session; the referred server is not contacted.
#[tokio::test]
async fn referral_in_a_bye_greeting_is_not_followed() {
    let decoy = ScriptedServer::start(Script::new().stall());
    let s = ScriptedServer::start(
        Script::new()
            .start_tls(CertKind::Valid)
            .send_line(&format!(
                "* BYE [REFERRAL imap://127.0.0.1:{}/] moved",
                decoy.port()
            ))
            .close(),
    );
    let e = connect(&s, Security::ImplicitTls).await.unwrap_err();
    assert!(e.to_string().contains("moved"), "{e}");
    no_credentials_sent(&s);
    assert_eq!(decoy.connection_count(), 0);
}

struct NoteSink {
    fetches: usize,
    chunks: usize,
    ends: usize,
}

impl mailfold_net::FetchSink for NoteSink {
    fn fetch(&mut self, _f: mailfold_proto::response::Fetch) -> std::io::Result<()> {
        self.fetches += 1;
        Ok(())
    }
    fn body_chunk(&mut self, _data: &[u8]) -> std::io::Result<()> {
        self.chunks += 1;
        Ok(())
    }
    fn body_end(&mut self) -> std::io::Result<()> {
        self.ends += 1;
        Ok(())
    }
}

/// BYE inside a literal is literal data, not a BYE; the connection then closing mid-literal
/// fails the FETCH cleanly and no incomplete message is delivered as complete.
#[tokio::test]
async fn bye_in_the_middle_of_a_literal_fails_cleanly() {
    for size in [200usize, 200_000] {
        let s = ScriptedServer::start(
            Script::new()
                .send_line("* PREAUTH [CAPABILITY IMAP4rev1] hi")
                .expect("SELECT INBOX")
                .send_line("* 1 EXISTS\r\n* OK [UIDVALIDITY 3] v")
                .send_tagged("OK [READ-WRITE] ok")
                .expect("UID FETCH 1 *")
                .send(format!(
                    "* 1 FETCH (UID 1 BODY[] {{{size}}}\r\nSubject: x\r\n\r\n* BYE going away\r\n"
                ))
                .close(),
        );
        let mut sess = Session::open(&cfg(&s, Security::Plaintext)).await.unwrap();
        sess.select(&mailfold_proto::core::Mailbox::inbox(), Default::default())
            .await
            .unwrap();
        let mut sink = NoteSink {
            fetches: 0,
            chunks: 0,
            ends: 0,
        };
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            sess.uid_fetch(
                &mailfold_proto::seqset::UidSet::single(1).unwrap(),
                mailfold_proto::command::FetchItems::Items(vec![
                    mailfold_proto::command::FetchItem::body_peek(),
                ]),
                Default::default(),
                &mut sink,
            ),
        )
        .await
        .expect("bounded");
        let e = r.unwrap_err();
        assert!(matches!(e, Error::Protocol(_) | Error::Io(..)), "{e}");
        assert_eq!(sink.fetches, 0, "{size}: incomplete FETCH delivered");
        assert_eq!(sink.ends, 0, "{size}: incomplete body ended as complete");
    }
}

/// Untagged data sent in cleartext before STARTTLS (forged LIST, STATUS, FLAGS, EXISTS,
/// EXPUNGE, FETCH, CAPABILITY) leaves no trace in the session once TLS is up.
#[tokio::test]
async fn forged_data_before_starttls_is_discarded() {
    let s = ScriptedServer::start(
        Script::new()
            .send_line("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED X-BEFORE-TLS] hi")
            .expect("STARTTLS")
            .send(
                "* LIST () \"/\" Forged\r\n* STATUS Forged (MESSAGES 9)\r\n* FLAGS (\\Forged)\r\n\
                 * 7 EXISTS\r\n* 3 EXPUNGE\r\n* 1 FETCH (FLAGS (\\Seen))\r\n\
                 * OK [ALERT] forged alert\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN X-FORGED\r\n",
            )
            .send_tagged("OK begin TLS")
            .start_tls(CertKind::Valid)
            .expect("CAPABILITY")
            .send_line("* CAPABILITY IMAP4rev1 AUTH=PLAIN X-AFTER-TLS")
            .send_tagged("OK done")
            .stall(),
    );
    let mut sess = tokio::time::timeout(
        Duration::from_secs(20),
        Session::open(&cfg(&s, Security::StartTls)),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(sess.is_encrypted());
    let caps = sess.capabilities().unwrap().clone();
    assert!(caps.has("X-AFTER-TLS"));
    assert!(!caps.has("X-FORGED") && !caps.has("X-BEFORE-TLS") && !caps.has("LOGINDISABLED"));
    assert!(sess.mailbox().is_none());
    let notes = sess.take_notifications();
    assert!(notes.is_empty(), "cleartext data survived TLS: {notes:?}");
    assert!(sess.tls_info().unwrap().via_starttls);
    no_credentials_sent(&s);
}

/// A server that speaks only IMAP4 (RFC 1730), not IMAP4rev1, gets no credentials.
#[tokio::test]
async fn server_advertising_only_imap4_is_refused() {
    let s = ScriptedServer::start(
        Script::new()
            .start_tls(CertKind::Valid)
            .send_line("* OK [CAPABILITY IMAP4 AUTH=PLAIN] old server")
            .stall(),
    );
    let e = connect(&s, Security::ImplicitTls).await.unwrap_err();
    assert!(matches!(e, Error::Protocol(_)), "{e}");
    assert!(e.to_string().contains("IMAP4rev1"), "{e}");
    no_credentials_sent(&s);
}

/// CAPABILITY answered BAD over TLS (not only before STARTTLS): the connection fails
/// cleanly, nothing else is sent.
#[tokio::test]
async fn capability_answered_bad_over_tls_fails_cleanly() {
    let s = ScriptedServer::start(
        Script::new()
            .start_tls(CertKind::Valid)
            .send_line("* OK hi")
            .expect("CAPABILITY")
            .send_tagged("BAD no")
            .stall(),
    );
    let e = connect(&s, Security::ImplicitTls).await.unwrap_err();
    assert!(matches!(e, Error::Command { .. }), "{e}");
    no_credentials_sent(&s);
}

/// ALERT or BYE injected right after STARTTLS's OK, in the same segment or the next one:
/// never read as trusted, the connection is dropped, nothing is sent.
#[tokio::test]
async fn alert_or_bye_injected_after_starttls_ok_is_refused() {
    for injected in ["* OK [ALERT] call +1-555-SCAM now", "* BYE [ALERT] go away"] {
        for same_segment in [true, false] {
            let script = Script::new()
                .send_line("* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] hi")
                .expect("STARTTLS");
            let script = if same_segment {
                script.send_tagged(&format!("OK begin TLS now\r\n{injected}"))
            } else {
                script
                    .send_tagged("OK begin TLS now")
                    .send_after(Duration::from_millis(50), format!("{injected}\r\n"))
            };
            let s = ScriptedServer::start(script.stall());
            let e = connect(&s, Security::StartTls).await.unwrap_err();
            assert!(
                matches!(e, Error::Security(_) | Error::Tls(_) | Error::NotTls(_)),
                "{injected} (same segment: {same_segment}): {e}"
            );
            no_credentials_sent(&s);
        }
    }
}

/// Self-signed, wrong-host and expired certificates are refused after STARTTLS too.
#[tokio::test]
async fn bad_certificates_after_starttls_are_refused() {
    for kind in [CertKind::SelfSigned, CertKind::WrongHost, CertKind::Expired] {
        let s = ScriptedServer::start(
            Script::new()
                .send_line("* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] hi")
                .expect("STARTTLS")
                .send_tagged("OK begin TLS")
                .start_tls(kind)
                .stall(),
        );
        let e = connect(&s, Security::StartTls).await.unwrap_err();
        assert!(matches!(e, Error::Certificate { .. }), "{kind:?}: {e}");
        no_credentials_sent(&s);
    }
}

/// Seed V0011: after a protocol error (a tagged answer to a command never sent) the client
/// drops the connection without LOGOUT, since the session's state can no longer be trusted,
/// and the error says why; every later command, LOGOUT included, reports that same cause
/// without writing anything. The normal end (LOGOUT sent and its OK read) is
/// `net_dovecot::v0011_logout_reads_the_tagged_ok`.
#[tokio::test]
async fn v0011_protocol_error_drops_without_logout_and_says_why() {
    let s = ScriptedServer::start(
        Script::new()
            .send_line("* PREAUTH [CAPABILITY IMAP4rev1] hi")
            .expect("NOOP")
            .send_line("ZZ99 OK an answer to nothing")
            // Anything the client sends from here on is recorded; it must close instead.
            .expect("LOGOUT")
            .send_tagged("OK unreachable"),
    );
    let mut sess = Session::open(&cfg(&s, Security::Plaintext)).await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(20), sess.noop())
        .await
        .expect("bounded")
        .unwrap_err();
    assert!(matches!(e, Error::Protocol(_)), "{e}");
    let why = e.to_string();
    assert!(why.contains("ZZ99"), "the error names the cause: {why}");
    let after = tokio::time::timeout(Duration::from_secs(20), sess.logout())
        .await
        .expect("bounded")
        .unwrap_err();
    assert!(
        after.to_string().contains("ZZ99"),
        "LOGOUT after the error reports the cause: {after}"
    );
    assert!(
        s.wait_finished(Duration::from_secs(10)),
        "the client closed"
    );
    let reports = s.reports();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].client_closed, "{:?}", reports[0].error);
    assert!(
        !s.received_contains(b"LOGOUT"),
        "no LOGOUT after a protocol error: {:?}",
        String::from_utf8_lossy(&s.received())
    );
}

/// A server that stops answering in the middle of a session: the command times out within
/// the command timeout, no hang.
#[tokio::test]
async fn a_server_that_stops_answering_mid_session_times_out() {
    let s = ScriptedServer::start(
        Script::new()
            .send_line("* PREAUTH [CAPABILITY IMAP4rev1] hi")
            .expect("NOOP")
            .stall(),
    );
    let mut c = cfg(&s, Security::Plaintext);
    c.engine.command_timeout = Duration::from_secs(1);
    let mut sess = Session::open(&c).await.unwrap();
    let t0 = std::time::Instant::now();
    let e = tokio::time::timeout(Duration::from_secs(10), sess.noop())
        .await
        .expect("no hang")
        .unwrap_err();
    assert!(matches!(e, Error::Timeout(_)), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(5));
}

/// A server answering one byte per second: the greeting is bounded by the connect timeout.
#[tokio::test]
async fn one_byte_per_second_greeting_is_bounded_by_the_connect_timeout() {
    let s = ScriptedServer::start(
        Script::new()
            .trickle(
                "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] a very slow server greets you\r\n",
                Duration::from_secs(1),
            )
            .stall(),
    );
    let mut c = cfg(&s, Security::Plaintext);
    c.connect_timeout = Duration::from_secs(2);
    let t0 = std::time::Instant::now();
    let e = tokio::time::timeout(Duration::from_secs(10), Session::open(&c))
        .await
        .expect("no hang")
        .unwrap_err();
    assert!(matches!(e, Error::Timeout(_)), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    no_credentials_sent(&s);
}

/// A slow but live answer is not a dead connection: whole lines that keep coming prove
/// progress, so a reply spread over longer than the silence timeout still completes
/// correctly. (Bytes of a line that never finishes no longer count: the engine's time budgets,
/// see `net_trickle.rs`.)
#[tokio::test]
async fn trickled_answer_is_handled_correctly() {
    let s = ScriptedServer::start(
        Script::new()
            .send_line("* PREAUTH [CAPABILITY IMAP4rev1] hi")
            .expect("NOOP")
            .send_after(Duration::from_millis(300), "* OK [ALERT] slow\r\n")
            .send_after(Duration::from_millis(300), "* OK still working\r\n")
            .send_after(Duration::from_millis(300), "* OK almost\r\n")
            .send_tagged("OK done")
            .stall(),
    );
    let mut c = cfg(&s, Security::Plaintext);
    c.engine.command_timeout = Duration::from_millis(400);
    let mut sess = Session::open(&c).await.unwrap();
    sess.noop().await.unwrap();
    assert!(sess
        .take_notifications()
        .iter()
        .any(|n| matches!(n, Event::Alert { text, .. } if text == "slow")));
}

/// Runs a login over implicit TLS against `script` (which starts TLS itself) and returns the
/// error and what the client sent.
async fn login_over_tls(script: Script) -> (Error, String) {
    let s = ScriptedServer::start(script.step_timeout(Duration::from_secs(5)));
    let e = tokio::time::timeout(
        Duration::from_secs(20),
        Session::connect(&cfg(&s, Security::ImplicitTls), Some(&creds())),
    )
    .await
    .expect("the client must give up on its own, never hang")
    .unwrap_err();
    s.wait_finished(Duration::from_secs(5));
    (e, String::from_utf8_lossy(&s.received()).into_owned())
}

fn attempts(sent: &str) -> Vec<String> {
    sent.lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once(' ')?;
            let upper = rest.to_ascii_uppercase();
            (upper.starts_with("AUTHENTICATE ") || upper.starts_with("LOGIN "))
                .then(|| upper.split(' ').take(2).collect::<Vec<_>>().join(" "))
        })
        .collect()
}

/// A credentials rejection ends the login over TLS too: with `[AUTHENTICATIONFAILED]`, and
/// with a NO without code after the server took up the mechanism. No weaker mechanism, no
/// LOGIN command: one wrong password is one failed login (lock-outs, fail2ban).
#[tokio::test]
async fn a_credentials_rejection_over_tls_is_one_attempt() {
    for answer in [
        "NO [AUTHENTICATIONFAILED] Authentication failed.",
        "NO bad password",
        "NO [X-UNKNOWN] nope",
    ] {
        let (e, sent) = login_over_tls(
            Script::new()
                .start_tls(CertKind::Valid)
                .send_line("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN AUTH=LOGIN] hi")
                .expect("AUTHENTICATE PLAIN *")
                .send_tagged(answer)
                .wait(Duration::from_millis(300))
                .close(),
        )
        .await;
        assert!(matches!(e, Error::Auth { .. }), "{answer}: {e}");
        assert!(e.to_string().contains("refused the credentials"), "{e}");
        assert_eq!(attempts(&sent), ["AUTHENTICATE PLAIN"], "{answer}: {sent}");
    }
    // A server-first mechanism: the NO comes after the client answered the challenge.
    let (e, sent) = login_over_tls(
        Script::new()
            .start_tls(CertKind::Valid)
            .send_line("* OK [CAPABILITY IMAP4rev1 AUTH=CRAM-MD5 AUTH=PLAIN] hi")
            .expect("AUTHENTICATE CRAM-MD5")
            .send_line("+ PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+")
            .expect_line("*")
            .send_tagged("NO wrong")
            .wait(Duration::from_millis(300))
            .close(),
    )
    .await;
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    assert_eq!(attempts(&sent), ["AUTHENTICATE CRAM-MD5"], "{sent}");
}

/// Another mechanism is tried only when the server refused the mechanism itself: BAD,
/// `[CANNOT]`, or a NO before the client said anything. The next one's rejection then ends
/// the login.
#[tokio::test]
async fn a_refused_mechanism_gives_way_to_the_next_then_one_rejection_ends_it() {
    for refusal in [
        "BAD unknown mechanism",
        "NO [CANNOT] not here",
        "NO unsupported",
    ] {
        let (e, sent) = login_over_tls(
            Script::new()
                .start_tls(CertKind::Valid)
                .send_line("* OK [CAPABILITY IMAP4rev1 AUTH=CRAM-MD5 AUTH=PLAIN AUTH=LOGIN] hi")
                .expect("AUTHENTICATE CRAM-MD5")
                .send_tagged(refusal)
                .expect("AUTHENTICATE PLAIN")
                .send_line("+ ")
                .expect_line("*")
                .send_tagged("NO [AUTHENTICATIONFAILED] Authentication failed.")
                .wait(Duration::from_millis(300))
                .close(),
        )
        .await;
        assert!(matches!(e, Error::Auth { .. }), "{refusal}: {e}");
        assert_eq!(
            attempts(&sent),
            ["AUTHENTICATE CRAM-MD5", "AUTHENTICATE PLAIN"],
            "{refusal}: {sent}"
        );
    }
}
