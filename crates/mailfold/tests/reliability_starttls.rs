//! The STARTTLS attacks (stripping, refusal, response injection, PREAUTH, a bad certificate),
//! end to end through the real binary: `mailfold sync` and `mailfold probe` on an account with
//! `tls = "starttls"` against scripted servers that strip, refuse or abuse STARTTLS. Each must
//! fail with a clear error and send no credentials: no LOGIN, no AUTHENTICATE, and the password
//! neither raw nor in base64.

mod util;

use std::time::Duration;

use mailfold_testsupport::{CertKind, Script, ScriptedServer};
use util::Home;

const PASSWORD: &str = "Zq9-starttls-secret";

fn b64(s: &str) -> String {
    // Small local encoder: the test must not trust the code under test to spot the secret.
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(T[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Runs `sync` and `probe` against the script; returns what the server received.
fn attack(name: &str, script: Script) {
    let server = ScriptedServer::start(script.step_timeout(Duration::from_secs(5)));
    let home = Home::new();
    home.write_config(
        "127.0.0.1",
        server.port(),
        "starttls",
        PASSWORD,
        Some(&server.ca_file()),
        "",
    );
    for args in [&["sync"][..], &["probe"][..]] {
        let r = home.run(args);
        assert_ne!(r.code, 0, "{name}: `{args:?}` succeeded: {}", r.stdout);
        assert!(
            !r.stderr.contains("panicked"),
            "{name}: `{args:?}` panicked: {}",
            r.stderr
        );
        // sync explains on stderr; probe's report (stdout) says what went wrong.
        assert!(
            !(r.stderr.trim().is_empty() && r.stdout.trim().is_empty()),
            "{name}: `{args:?}` failed silently"
        );
        eprintln!(
            "--- {name} {args:?} (exit {}):\n{}{}",
            r.code, r.stdout, r.stderr
        );
    }
    let seen = String::from_utf8_lossy(&server.received()).to_ascii_uppercase();
    for needle in [
        PASSWORD.to_ascii_uppercase(),
        b64(PASSWORD).to_ascii_uppercase(),
        " LOGIN ".to_string(),
        " AUTHENTICATE ".to_string(),
    ] {
        assert!(
            !seen.contains(&needle),
            "{name}: the client sent {needle:?} to an unprotected server:\n{seen}"
        );
    }
}

#[test]
fn starttls_not_advertised_is_abandoned_not_downgraded() {
    attack(
        "no STARTTLS",
        Script::new()
            .send_line("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=LOGIN] no tls here")
            .wait(Duration::from_secs(2))
            .close(),
    );
}

#[test]
fn starttls_refused_with_no_or_bad_or_a_continuation_is_abandoned() {
    for answer in ["NO not today", "BAD what"] {
        attack(
            answer,
            Script::new()
                .send_line("* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] hi")
                .expect("STARTTLS")
                .send_tagged(answer)
                .wait(Duration::from_secs(2))
                .close(),
        );
    }
    attack(
        "continuation",
        Script::new()
            .send_line("* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] hi")
            .expect("STARTTLS")
            .send_line("+ go ahead")
            .wait(Duration::from_secs(2))
            .close(),
    );
}

#[test]
fn response_injected_after_the_starttls_ok_is_fatal() {
    attack(
        "injection",
        Script::new()
            .send_line("* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] hi")
            .expect("STARTTLS")
            // The tagged OK and forged data in one segment, as a man in the middle would
            // append them before the handshake.
            .send_tagged(
                "OK begin TLS\r\n* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN LOGINDISABLED] forged",
            )
            .start_tls(CertKind::Valid)
            .wait(Duration::from_secs(2))
            .close(),
    );
}

#[test]
fn preauth_on_a_cleartext_connection_is_refused() {
    attack(
        "PREAUTH",
        Script::new()
            .send_line("* PREAUTH [CAPABILITY IMAP4rev1] you are in, no TLS needed")
            .wait(Duration::from_secs(2))
            .close(),
    );
}

#[test]
fn a_bad_certificate_after_starttls_sends_nothing_more() {
    for kind in [CertKind::SelfSigned, CertKind::WrongHost, CertKind::Expired] {
        attack(
            &format!("{kind:?}"),
            Script::new()
                .send_line("* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] hi")
                .expect("STARTTLS")
                .send_tagged("OK begin TLS")
                .start_tls(kind)
                .wait(Duration::from_secs(2))
                .close(),
        );
    }
}

/// Several responses after the STARTTLS OK in one segment, then (if the client were fooled) a
/// TLS handshake: the client must end the connection with a security error (exit 3) before its
/// ClientHello, whatever follows the OK (forged lines, a forged tagged OK for the next command,
/// a BYE).
fn injected_then_nothing_sent(name: &str, after_ok: &str) {
    let server = ScriptedServer::start(
        Script::new()
            .send_line("* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] hi")
            .expect("STARTTLS")
            .send_tagged(&format!("OK begin TLS\r\n{after_ok}"))
            .wait(Duration::from_secs(2))
            .close()
            .step_timeout(Duration::from_secs(5)),
    );
    let home = Home::new();
    home.write_config(
        "127.0.0.1",
        server.port(),
        "starttls",
        PASSWORD,
        Some(&server.ca_file()),
        "",
    );
    for args in [&["sync"][..], &["probe"][..]] {
        let r = home.run(args);
        eprintln!(
            "--- {name} {args:?} (exit {}):\n{}{}",
            r.code, r.stdout, r.stderr
        );
        assert_eq!(
            r.code, 3,
            "{name}: `{args:?}` must fail as a security error"
        );
        let text = format!("{}{}", r.stdout, r.stderr);
        assert!(
            text.contains("injection"),
            "{name}: `{args:?}` does not say why: {text}"
        );
    }
    // The script does not answer a handshake, so every byte the client sent is recorded raw:
    // after `STARTTLS\r\n` there must be nothing at all, no ClientHello (0x16 …) in particular.
    for (i, report) in server.reports().iter().enumerate() {
        let got = &report.received;
        let end = got
            .windows(10)
            .position(|w| w.eq_ignore_ascii_case(b"STARTTLS\r\n"))
            .map(|p| p + 10)
            .unwrap_or_else(|| panic!("{name}: connection {i} sent no STARTTLS: {got:?}"));
        assert_eq!(
            &got[end..],
            b"",
            "{name}: connection {i} sent bytes after STARTTLS despite the injection"
        );
    }
}

#[test]
fn several_responses_injected_after_the_starttls_ok_end_the_connection_before_tls() {
    injected_then_nothing_sent(
        "forged capability and tagged OK",
        "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\nA0002 OK done\r\nA0003 OK more\r\n",
    );
    injected_then_nothing_sent(
        "forged lines without a tag",
        "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n* OK [ALERT] be quick\r\n* 3 EXISTS\r\n",
    );
    injected_then_nothing_sent("an unfinished line", "* CAPAB");
    // One forged line: the case the test above lets reach a completed handshake.
    injected_then_nothing_sent(
        "one forged line",
        "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN LOGINDISABLED] forged\r\n",
    );
}

#[test]
fn bye_after_the_starttls_ok_ends_the_connection_before_tls() {
    injected_then_nothing_sent("BYE", "* BYE going away\r\n");
}
