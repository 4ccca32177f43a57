//! `mailfold probe` on the real binary: against a private Dovecot over implicit TLS and
//! STARTTLS (TLS details, the mechanism actually used, capabilities before and after login),
//! and against scripted servers presenting bad certificates (why it was refused, and what the
//! server presented), human and `--json`.

mod util;

use std::time::Duration;

use mailfold_testsupport::{CertKind, Dovecot, Script, ScriptedServer};
use serde_json::Value;
use util::{Env, Home};

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn probe_reports_tls_chain_mechanism_and_capabilities_from_dovecot() {
    let env = Env::new();

    // Implicit TLS, the account's CA.
    let p = env.run(&["--json", "probe"]).ok().json();
    assert_eq!(p["tls_mode"], "implicit", "{p}");
    let tls = &p["tls"];
    assert_eq!(tls["verified"], true, "{p}");
    assert_eq!(tls["trust"], "account-ca", "{p}");
    assert_eq!(tls["via_starttls"], false, "{p}");
    assert!(tls["problem"].is_null(), "{p}");
    assert!(
        tls["version"]
            .as_str()
            .is_some_and(|v| v == "TLS 1.2" || v == "TLS 1.3"),
        "{p}"
    );
    assert!(tls["cipher"].as_str().is_some_and(|c| !c.is_empty()), "{p}");
    let chain = tls["chain"].as_array().cloned().unwrap_or_default();
    assert!(!chain.is_empty(), "{p}");
    assert_eq!(tls["certificates"], chain.len(), "{p}");
    assert!(
        chain[0]["subject"].as_str().is_some_and(|s| !s.is_empty())
            && chain[0]["not_after"]
                .as_str()
                .is_some_and(|s| s.ends_with('Z')),
        "{p}"
    );
    // The mechanism actually used is one the server offered and the last one tried.
    let offered = strings(&p["mechanisms_offered"]);
    let login = &p["login"];
    assert_eq!(login["ok"], true, "{p}");
    let used = login["mechanism"].as_str().unwrap_or_default().to_string();
    assert!(offered.contains(&used), "{used} not in {offered:?}");
    assert_eq!(strings(&login["attempts"]).last(), Some(&used), "{p}");
    // Strongest first (seed E0002): Dovecot offers SCRAM-SHA-256.
    assert_eq!(used, "SCRAM-SHA-256", "{p}");
    let before = strings(&p["capabilities_before_login"]);
    let after = strings(&p["capabilities_after_login"]);
    assert!(before.iter().any(|c| c.starts_with("AUTH=")), "{p}");
    assert!(
        !after.is_empty() && !after.iter().any(|c| c.starts_with("AUTH=")),
        "{p}"
    );
    assert_eq!(p["server_id"]["name"], "Dovecot", "{p}");
    assert_eq!(p["errors"].as_array().map(Vec::len), Some(0), "{p}");

    let human = env.run(&["probe"]).ok().stdout;
    for needle in [
        "(implicit TLS)",
        "certificate   verified for 127.0.0.1 by the account's CA file (ca_file)",
        "[0] subject",
        "login         OK with SCRAM-SHA-256",
        "server id     ",
        "after login   ",
    ] {
        assert!(human.contains(needle), "{needle:?} in\n{human}");
    }

    // The account's mechanism order is what is used.
    let addr = env.dovecot.imap_addr();
    let pw = env.dovecot.user(0).password.clone();
    env.home.write_config(
        &addr.ip().to_string(),
        addr.port(),
        "starttls",
        &pw,
        Some(&env.dovecot.ca_file()),
        "mechanisms = [\"PLAIN\"]\n",
    );
    let p = env.run(&["--json", "probe"]).ok().json();
    assert_eq!(p["tls_mode"], "starttls", "{p}");
    assert_eq!(p["tls"]["via_starttls"], true, "{p}");
    assert_eq!(p["tls"]["verified"], true, "{p}");
    assert_eq!(p["login"]["mechanism"], "PLAIN", "{p}");
    let human = env.run(&["probe"]).ok().stdout;
    assert!(human.contains("(STARTTLS)"), "{human}");
    assert!(human.contains("login         OK with PLAIN"), "{human}");

    // A wrong password: the login fails with the server's text, capabilities still shown.
    env.home.write_config(
        &addr.ip().to_string(),
        addr.port(),
        "starttls",
        "not-the-password",
        Some(&env.dovecot.ca_file()),
        "mechanisms = [\"PLAIN\"]\n",
    );
    let r = env.run(&["--json", "probe"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let p = r.json();
    assert_eq!(p["login"]["ok"], false, "{p}");
    assert!(p["login"]["mechanism"].is_string(), "{p}");
    assert!(
        p["login"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("authentication failed")),
        "{p}"
    );
    assert!(!strings(&p["capabilities_before_login"]).is_empty(), "{p}");
    assert_eq!(p["tls"]["verified"], true, "{p}");
}

#[test]
fn probe_of_a_host_without_an_account_does_not_log_in() {
    let dovecot = Dovecot::start();
    let home = Home::new();
    let addr = dovecot.imaps_addr();
    let ca = dovecot.ca_file();
    let port = addr.port().to_string();
    let args = [
        "--json",
        "probe",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--ca-file",
        ca.to_str().unwrap(),
    ];
    let p = home.run(&args).ok().json();
    assert!(p["login"].is_null(), "{p}");
    assert_eq!(p["tls"]["verified"], true, "{p}");
    assert!(!strings(&p["mechanisms_offered"]).is_empty(), "{p}");
    // Without the CA file the chain is not trusted, and the presented chain is shown.
    let r = home.run(&args[..6]);
    assert_eq!(r.code, 3, "{}", r.stdout);
    let p = r.json();
    assert_eq!(p["tls"]["problem"]["kind"], "untrusted", "{p}");
    assert!(
        p["tls"]["certificates"].as_u64().is_some_and(|n| n >= 1),
        "{p}"
    );
}

/// A server whose TLS (implicit, or after STARTTLS) presents `kind`; after the handshake it
/// greets and answers LOGOUT, so the inspection connection can read the chain.
fn bad_cert_server(kind: CertKind, starttls: bool) -> ScriptedServer {
    let mut s = Script::new().step_timeout(Duration::from_secs(5));
    if starttls {
        s = s
            .send_line("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready")
            .expect("STARTTLS")
            .send_tagged("OK begin TLS")
            .start_tls(kind)
            .expect("CAPABILITY")
            .send_line("* CAPABILITY IMAP4rev1 AUTH=PLAIN")
            .send_tagged("OK done");
    } else {
        s = s
            .start_tls(kind)
            .send_line("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready");
    }
    ScriptedServer::start(
        s.expect("LOGOUT")
            .send_line("* BYE bye")
            .send_tagged("OK logged out"),
    )
}

#[test]
fn probe_says_why_a_certificate_is_refused_and_what_the_server_presented() {
    let cases = [
        (CertKind::SelfSigned, false, "untrusted", "is not trusted"),
        (
            CertKind::WrongHost,
            false,
            "wrong-host",
            "not valid for the host name 127.0.0.1",
        ),
        (CertKind::Expired, false, "expired", "expired on 200"),
        (
            CertKind::WrongHost,
            true,
            "wrong-host",
            "not valid for the host name 127.0.0.1",
        ),
    ];
    for (kind, starttls, expected, human_text) in cases {
        let server = bad_cert_server(kind, starttls);
        let home = Home::new();
        home.write_config(
            "127.0.0.1",
            server.port(),
            if starttls { "starttls" } else { "implicit" },
            "secret-password",
            Some(&server.ca_file()),
            "",
        );
        let r = home.run(&["--json", "probe"]);
        assert_eq!(r.code, 3, "{kind:?}: {}\n{}", r.stdout, r.stderr);
        let p = r.json();
        let tls = &p["tls"];
        assert_eq!(tls["verified"], false, "{kind:?}: {p}");
        assert_eq!(tls["problem"]["kind"], expected, "{kind:?}: {p}");
        assert_eq!(tls["via_starttls"], starttls, "{kind:?}: {p}");
        assert!(tls["error"].as_str().is_some_and(|e| !e.is_empty()), "{p}");
        let chain = tls["chain"].as_array().cloned().unwrap_or_default();
        assert!(
            !chain.is_empty(),
            "{kind:?}: the presented chain is shown: {p}"
        );
        if kind == CertKind::Expired {
            assert!(
                chain[0]["not_after"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("200")),
                "{p}"
            );
        }
        assert!(
            p["login"].is_null(),
            "no login over a refused certificate: {p}"
        );
        assert!(
            !r.stderr.contains("DANGER"),
            "the inspection connection is not the account's: {}",
            r.stderr
        );

        let h = home.run(&["probe"]);
        assert_eq!(h.code, 3);
        assert!(
            h.stdout.contains("certificate   REFUSED: ") && h.stdout.contains(human_text),
            "{kind:?}:\n{}",
            h.stdout
        );
        assert!(
            h.stdout.contains("the server presented") && h.stdout.contains("[0] subject"),
            "{}",
            h.stdout
        );
        // Nothing of the account crossed: no login, no password, on any connection.
        for needle in [&b"secret-password"[..], b"LOGIN", b"AUTHENTICATE"] {
            assert!(!server.received_contains(needle), "{kind:?}");
        }
    }
}
