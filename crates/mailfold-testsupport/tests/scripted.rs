//! The scripted server does what its script says, records what the client sent, presents each
//! kind of certificate, and never hangs.

mod util;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailfold_testsupport::{CertKind, Script, ScriptedServer};
use rustls::pki_types::ServerName;
use util::Raw;

#[test]
fn greets_matches_and_answers_with_the_clients_tag() {
    let server = ScriptedServer::start(
        Script::new()
            .send_line("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hello")
            .expect("capability")
            .send_line("* CAPABILITY IMAP4rev1 AUTH=PLAIN")
            .send_tagged("OK done")
            .expect("LOGIN *")
            .send_tagged("NO [AUTHENTICATIONFAILED] nope")
            .close(),
    );
    let mut raw = Raw::connect(server.addr());
    assert!(raw.line().starts_with("* OK"));
    let lines = raw.cmd("x17", "CAPABILITY");
    assert_eq!(lines, ["* CAPABILITY IMAP4rev1 AUTH=PLAIN", "x17 OK done"]);
    let lines = raw.cmd("x18", "LOGIN alice s3cret");
    assert_eq!(lines, ["x18 NO [AUTHENTICATIONFAILED] nope"]);
    assert!(server.wait_finished(Duration::from_secs(5)));
    let report = &server.reports()[0];
    assert_eq!(report.error, None);
    assert_eq!(report.steps_completed, 7);
    assert_eq!(
        report.received,
        b"x17 CAPABILITY\r\nx18 LOGIN alice s3cret\r\n"
    );
    assert!(server.received_contains(b"s3cret"));
}

#[test]
fn records_bytes_sent_after_the_script_ended() {
    // A forged tagged OK: whatever the client sends next is recorded until it hangs up.
    let server = ScriptedServer::start(
        Script::new()
            .send_line("* OK hi")
            .expect("*")
            .send_tagged("OK fine"),
    );
    let mut tcp = util::tcp(server.addr());
    let mut raw = Raw::over(Box::new(tcp.try_clone().unwrap()));
    raw.line();
    raw.cmd("a", "NOOP");
    tcp.write_all(b"b LOGIN bob hunter2\r\n").unwrap();
    drop(raw);
    drop(tcp);
    assert!(server.wait_finished(Duration::from_secs(5)));
    assert!(server.received_contains(b"hunter2"));
    assert!(server.reports()[0].client_closed);
}

#[test]
fn mismatch_and_timeout_fail_the_script_and_close() {
    let server = ScriptedServer::start(
        Script::new()
            .step_timeout(Duration::from_millis(300))
            .send_line("* OK hi")
            .expect("STARTTLS")
            .send_tagged("OK go"),
    );
    let mut raw = Raw::connect(server.addr());
    raw.line();
    raw.send("a LOGIN u p");
    assert!(server.wait_finished(Duration::from_secs(5)));
    let error = server.reports()[0].error.clone().unwrap();
    assert!(
        error.contains("expected a tagged line matching \"STARTTLS\""),
        "{error}"
    );

    // Nothing sent at all: the expect step times out.
    let started = Instant::now();
    let mut s = util::tcp(server.addr());
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert_eq!(buf, b"* OK hi\r\n");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(server.wait_finished(Duration::from_secs(5)));
    let error = server.reports()[1].error.clone().unwrap();
    assert!(error.contains("timed out"), "{error}");
}

fn tls_client(server: &ScriptedServer) -> rustls::ClientConnection {
    rustls::ClientConnection::new(
        server.pki().client_config(),
        ServerName::try_from("127.0.0.1").unwrap(),
    )
    .unwrap()
}

fn handshake(server: &ScriptedServer, tcp: std::net::TcpStream) -> Result<(), rustls::Error> {
    let mut conn = tls_client(server);
    let mut tcp = tcp;
    while conn.is_handshaking() {
        match conn.complete_io(&mut tcp) {
            Ok(_) => {}
            Err(e) => {
                return Err(e
                    .into_inner()
                    .and_then(|inner| inner.downcast::<rustls::Error>().ok())
                    .map(|b| *b)
                    .unwrap_or(rustls::Error::General("io".into())))
            }
        }
    }
    Ok(())
}

#[test]
fn implicit_tls_with_each_certificate_kind() {
    for kind in CertKind::ALL {
        let server = ScriptedServer::start(
            Script::new()
                .start_tls(kind)
                .send_line("* OK secure hello")
                .expect("LOGIN *")
                .send_tagged("OK in"),
        );
        let tcp = util::tcp(server.addr());
        let result = handshake(&server, tcp.try_clone().unwrap());
        match kind {
            CertKind::Valid => {
                assert!(result.is_ok(), "{result:?}");
                drop(tcp);
                let mut raw = Raw::connect_tls(server.addr(), server.pki().client_config());
                assert_eq!(raw.line(), "* OK secure hello");
                assert_eq!(raw.cmd("t", "LOGIN me pw"), ["t OK in"]);
                drop(raw);
                assert!(server.wait_finished(Duration::from_secs(5)));
                let reports = server.reports();
                assert!(reports.iter().all(|r| r.tls_established));
                assert_eq!(reports[1].received, b"t LOGIN me pw\r\n");
            }
            CertKind::SelfSigned | CertKind::WrongHost | CertKind::Expired => {
                let err = result.expect_err("the client must reject this certificate");
                let text = format!("{err:?}");
                let expected = match kind {
                    CertKind::SelfSigned => "UnknownIssuer",
                    CertKind::WrongHost => "NotValidForName",
                    _ => "Expired",
                };
                assert!(text.contains(expected), "{kind:?}: {text}");
                drop(tcp);
                assert!(server.wait_finished(Duration::from_secs(5)));
                let report = &server.reports()[0];
                assert!(!report.tls_established);
                assert!(report.tls_error.is_some(), "{report:?}");
                assert!(report.received.is_empty());
            }
        }
    }
}

#[test]
fn starttls_upgrade_and_plaintext_sent_after_starttls_is_recorded() {
    let script = Script::new()
        .send_line("* OK [CAPABILITY IMAP4rev1 STARTTLS] hi")
        .expect("STARTTLS")
        .send_tagged("OK Begin TLS")
        .start_tls(CertKind::Valid)
        .expect("CAPABILITY")
        .send_line("* CAPABILITY IMAP4rev1 AUTH=PLAIN")
        .send_tagged("OK");
    let server = ScriptedServer::start(script);
    let tcp = util::tcp(server.addr());
    let mut raw = Raw::over(Box::new(tcp.try_clone().unwrap()));
    raw.line();
    assert_eq!(raw.cmd("s", "STARTTLS"), ["s OK Begin TLS"]);
    let mut raw = raw.upgrade(server.pki().client_config(), tcp);
    assert_eq!(raw.cmd("c", "CAPABILITY").len(), 2);
    drop(raw);
    assert!(server.wait_finished(Duration::from_secs(5)));
    let report = &server.reports()[0];
    assert!(report.tls_established);
    assert_eq!(report.tls_started_at, Some(b"s STARTTLS\r\n".len()));
    // The client's handshake bytes are not in the recording, only the commands.
    assert_eq!(report.received, b"s STARTTLS\r\nc CAPABILITY\r\n");

    // A client that keeps talking in clear after STARTTLS: the bytes are kept as evidence.
    let server = ScriptedServer::start(
        Script::new()
            .send_line("* OK hi")
            .expect("STARTTLS")
            .send_tagged("OK Begin TLS")
            .start_tls(CertKind::Valid)
            .step_timeout(Duration::from_millis(500)),
    );
    let mut tcp = util::tcp(server.addr());
    tcp.write_all(b"s STARTTLS\r\nl LOGIN me secret\r\n")
        .unwrap();
    assert!(server.wait_finished(Duration::from_secs(5)));
    let report = &server.reports()[0];
    assert!(report.tls_error.is_some());
    assert!(server.received_contains(b"LOGIN me secret"));
}

#[test]
fn trickle_and_send_after_take_their_time() {
    let server = ScriptedServer::start(
        Script::new()
            .trickle("* OK\r\n", Duration::from_millis(40))
            .send_after(Duration::from_millis(150), "* BYE\r\n"),
    );
    let started = Instant::now();
    let mut s = util::tcp(server.addr());
    let mut reads = 0;
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while !got.ends_with(b"* BYE\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        reads += 1;
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"* OK\r\n* BYE\r\n");
    assert!(reads >= 6, "{reads} reads");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn send_repeat_streams_a_huge_line() {
    let server = ScriptedServer::start(Script::new().send_repeat([b'a'; 1024], 4096).close());
    let mut s = util::tcp(server.addr());
    let mut total = 0usize;
    let mut buf = [0u8; 65536];
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        assert!(buf[..n].iter().all(|&b| b == b'a'));
        total += n;
    }
    assert_eq!(total, 4 * 1024 * 1024);
}

#[test]
fn stall_holds_until_the_client_gives_up_and_drop_is_prompt() {
    let server = Arc::new(ScriptedServer::start(
        Script::new().send_line("* OK").stall(),
    ));
    let mut s = util::tcp(server.addr());
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(s.read(&mut buf).unwrap(), 6);
    s.write_all(b"a NOOP\r\n").unwrap();
    assert!(
        s.read(&mut buf).is_err(),
        "a stalled server must not answer"
    );
    // The client gives up: the server notices and ends the connection.
    drop(s);
    assert!(server.wait_finished(Duration::from_secs(5)));
    assert!(server.received_contains(b"a NOOP"));

    // A client that never gives up: dropping the server ends it within a moment.
    let server = ScriptedServer::start(Script::new().stall());
    let mut s = util::tcp(server.addr());
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    drop(server);
    assert!(started.elapsed() < Duration::from_secs(2));
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0);
}

#[test]
fn each_connection_replays_the_script() {
    let server = ScriptedServer::start(Script::new().send_line("* BYE go away").close());
    for _ in 0..3 {
        let mut s = util::tcp(server.addr());
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert_eq!(out, "* BYE go away\r\n");
    }
    assert_eq!(server.connection_count(), 3);
}

#[test]
fn ipv6_loopback_with_tls_verifying_the_address() {
    let pki = Arc::new(mailfold_testsupport::TestPki::generate());
    let server = ScriptedServer::start_at(
        "::1".parse().unwrap(),
        Script::new()
            .start_tls(CertKind::Valid)
            .send_line("* OK v6"),
        pki.clone(),
    );
    assert!(server.addr().is_ipv6());
    let name = ServerName::try_from("::1").unwrap();
    let conn = rustls::ClientConnection::new(pki.client_config(), name).unwrap();
    let mut raw = Raw::over(Box::new(rustls::StreamOwned::new(
        conn,
        util::tcp(server.addr()),
    )));
    assert_eq!(raw.line(), "* OK v6");
}
