//! Refused certificates as typed verdicts (seed N7): what `Error::Certificate`
//! says for each kind of bad certificate, with implicit TLS and after STARTTLS, with and
//! without the account's CA file, and the chain the server presented; and a port that does
//! not speak TLS at all (`Error::NotTls`). Every case asserts that nothing but the handshake
//! crossed the wire.

use std::time::Duration;

use mailfold_net::{CertProblem, CertSummary, ConnectConfig, Error, Security, Session};
use mailfold_sasl::Credentials;
use mailfold_testsupport::{CertKind, Script, ScriptedServer};

const PASSWORD: &str = "cert-test-secret";

fn server(kind: CertKind, security: Security) -> ScriptedServer {
    let script = Script::new().step_timeout(Duration::from_secs(5));
    let script = match security {
        Security::StartTls => script
            .send_line("* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] hi")
            .expect("STARTTLS")
            .send_tagged("OK begin TLS")
            .start_tls(kind),
        _ => script.start_tls(kind),
    };
    ScriptedServer::start(
        script
            .send_line("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi")
            .stall(),
    )
}

fn cfg(s: &ScriptedServer, security: Security, with_ca: bool) -> ConnectConfig {
    let mut c = ConnectConfig::new("127.0.0.1");
    c.port = Some(s.port());
    c.security = security;
    if with_ca {
        c.tls.ca_file = Some(s.ca_file());
    }
    c.connect_timeout = Duration::from_secs(5);
    c.engine.command_timeout = Duration::from_secs(3);
    c
}

/// Connects with a password and returns the refusal's verdict and presented chain.
async fn refusal(
    kind: CertKind,
    security: Security,
    with_ca: bool,
) -> (CertProblem, Vec<CertSummary>, String) {
    let s = server(kind, security);
    let creds = Credentials::password("alice", PASSWORD);
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        Session::connect(&cfg(&s, security, with_ca), Some(&creds)),
    )
    .await
    .expect("no hang");
    s.wait_finished(Duration::from_secs(5));
    assert!(!s.received_contains(PASSWORD.as_bytes()), "password sent");
    assert!(!s.received_contains(b"AUTHENTICATE"), "AUTHENTICATE sent");
    assert!(!s.received_contains(b"LOGIN"), "LOGIN sent");
    match r {
        Err(Error::Certificate {
            problem,
            presented,
            detail,
        }) => (problem, presented, detail),
        Err(e) => panic!("{kind:?} {security:?} ca={with_ca}: not a certificate error: {e:?}"),
        Ok(_) => panic!("{kind:?} {security:?} ca={with_ca}: the certificate was accepted"),
    }
}

/// Seed N7 (certificate and host name verified by default): each bad certificate is refused
/// with the verdict that names its real fault, with implicit TLS and after STARTTLS.
#[tokio::test]
async fn n7_each_refused_certificate_has_a_typed_reason() {
    for security in [Security::ImplicitTls, Security::StartTls] {
        // The account's CA issued these: its verdict is the one that counts.
        let (p, presented, detail) = refusal(CertKind::WrongHost, security, true).await;
        assert_eq!(
            p,
            CertProblem::WrongHost {
                valid_for: vec!["wrong.host.invalid".into()]
            },
            "{security:?}"
        );
        assert!(!detail.is_empty());
        assert_eq!(presented.len(), 1, "{presented:?}");
        assert_eq!(presented[0].subject, "CN=wrong.host.invalid");
        assert_eq!(presented[0].issuer, "CN=mailfold test CA");

        let (p, presented, _) = refusal(CertKind::Expired, security, true).await;
        assert_eq!(
            p,
            CertProblem::Expired {
                not_after: Some("2001-01-01T00:00:00Z".into())
            },
            "{security:?}"
        );
        assert_eq!(presented[0].not_after, "2001-01-01T00:00:00Z");

        let (p, presented, _) = refusal(CertKind::SelfSigned, security, true).await;
        assert_eq!(p, CertProblem::SelfSigned, "{security:?}");
        assert_eq!(presented[0].subject, presented[0].issuer);
    }
}

/// The two-store verifier reports the most meaningful error: a self-signed certificate is
/// "self-signed" whether or not the account has a CA file (a trust store holding an anchor
/// with the same name but another key must not turn this into a signature-algorithm error),
/// and a certificate whose issuer no store knows is "unknown issuer" even when it is also
/// expired or for another host.
#[tokio::test]
async fn n7_unknown_issuer_wins_when_no_store_knows_the_issuer() {
    for with_ca in [true, false] {
        let (p, _, detail) = refusal(CertKind::SelfSigned, Security::ImplicitTls, with_ca).await;
        assert_eq!(p, CertProblem::SelfSigned, "ca={with_ca}");
        assert!(detail.contains("UnknownIssuer"), "ca={with_ca}: {detail}");
    }
    for kind in [CertKind::Valid, CertKind::WrongHost, CertKind::Expired] {
        let (p, presented, _) = refusal(kind, Security::ImplicitTls, false).await;
        assert_eq!(p, CertProblem::UnknownIssuer, "{kind:?}");
        assert!(!presented.is_empty(), "{kind:?}");
    }
}

/// The verdict reads well for a person and keeps the names and dates.
#[test]
fn n7_certificate_errors_say_why_in_words() {
    let e = Error::Certificate {
        problem: CertProblem::WrongHost {
            valid_for: vec!["a.example".into(), "127.0.0.2".into()],
        },
        presented: Vec::new(),
        detail: "x".into(),
    };
    assert_eq!(
        e.to_string(),
        "TLS: certificate refused: the certificate is not valid for this host name \
         (it is valid for a.example, 127.0.0.2)"
    );
    assert!(e.is_fatal());
    let expired = CertProblem::Expired {
        not_after: Some("2001-01-01T00:00:00Z".into()),
    };
    assert_eq!(
        expired.to_string(),
        "the certificate expired on 2001-01-01T00:00:00Z"
    );
}

/// Implicit TLS to a port that greets in cleartext: `NotTls`, not a certificate verdict.
#[tokio::test]
async fn implicit_tls_to_a_cleartext_port_is_not_tls() {
    let s = ScriptedServer::start(
        Script::new()
            .send_line("* OK [CAPABILITY IMAP4rev1 STARTTLS] plain here")
            .stall(),
    );
    let creds = Credentials::password("alice", PASSWORD);
    let e = Session::connect(&cfg(&s, Security::ImplicitTls, true), Some(&creds))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotTls(_)), "{e:?}");
    assert!(!s.received_contains(PASSWORD.as_bytes()));
}

/// The greeting is kept with control characters removed: a server cannot drive the
/// terminal of whoever prints it.
#[tokio::test]
async fn greeting_is_kept_without_control_characters() {
    let s = ScriptedServer::start(
        Script::new()
            .start_tls(CertKind::Valid)
            .send(b"* OK [CAPABILITY IMAP4rev1] Hello\x1b[2J\x07 there\r\n")
            .stall(),
    );
    let sess = Session::open(&cfg(&s, Security::ImplicitTls, true))
        .await
        .unwrap();
    assert_eq!(sess.greeting(), Some("Hello[2J there"));
}

/// A valid certificate from the account's CA still connects, and the record of a refused
/// handshake does not leak into an accepted one.
#[tokio::test]
async fn valid_certificate_is_accepted_after_the_verdict_logic() {
    let s = ScriptedServer::start(
        Script::new()
            .start_tls(CertKind::Valid)
            .send_line("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi")
            .stall(),
    );
    let sess = Session::open(&cfg(&s, Security::ImplicitTls, true))
        .await
        .unwrap();
    let info = sess.tls_info().unwrap();
    assert_eq!(info.trust, Some(mailfold_net::TrustSource::AccountCa));
    assert_eq!(
        info.peer_certificates[0].subject_alt_names(),
        vec!["127.0.0.1", "::1", "localhost"]
    );
}
