//! Hostile and broken servers (issue 3): each test asserts that the client refuses or fails
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
        assert!(matches!(e, Error::Tls(_)), "{kind:?}: {e}");
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
