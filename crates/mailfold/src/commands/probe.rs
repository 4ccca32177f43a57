//! `mailfold probe [ACCOUNT] [--host H --port P --tls MODE]`: the first thing to run when a
//! server does not work. It reports how far a connection gets: the transport (TLS version,
//! cipher suite, the certificate chain and which trust anchors accepted it, or why it was
//! refused), the server's greeting, identity and capabilities, and with an account the
//! login under the account's policy, every mechanism tried and how it failed. The probe
//! itself is the sync engine's ([`mailfold_sync::inspect::probe`]), over the same session
//! code as every other command, so what probe sees is what sync gets; this module prints it.

use std::path::PathBuf;
use std::time::Duration;

use mailfold_sync::inspect::probe::{
    LoginReport, ProbeReport, ProbeVerdict, TlsReport, CERTIFICATE_KINDS,
};
use mailfold_sync::{AccountSpec, TlsMode};

use super::{print_json, Ctx};
use crate::cli::{ProbeArgs, TlsArg};
use crate::exit;
use crate::online;

/// Bound on connecting, the TLS handshake and the greeting: a probe should answer quickly.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the command.
pub fn run(ctx: &Ctx, a: &ProbeArgs) -> anyhow::Result<u8> {
    let (spec, login) = match &a.host {
        Some(h) => {
            let mut spec = AccountSpec::new(
                h.clone(),
                h.clone(),
                String::new(),
                mailfold_sync::Secret::new(String::new()),
                PathBuf::new(),
                PathBuf::new(),
            );
            spec.tls = match a.tls {
                TlsArg::Implicit => TlsMode::Implicit,
                TlsArg::Starttls => TlsMode::StartTls,
                TlsArg::None => TlsMode::None,
            };
            // Seed N1: 993 for implicit TLS, 143 for STARTTLS or none.
            spec.port = a.port.unwrap_or(match spec.tls {
                TlsMode::Implicit => 993,
                TlsMode::StartTls | TlsMode::None => 143,
            });
            spec.ca_file = a.ca_file.clone();
            spec.limits.connect_timeout = TIMEOUT;
            (spec, false)
        }
        None => {
            let (name, acct) = ctx.one_account(a.account_name.as_deref())?;
            // The account's time limits apply; its connect timeout only when it sets one.
            let mut spec = crate::account::session_spec(&name, &acct)?;
            if acct.connect_timeout().is_none() {
                spec.limits.connect_timeout = TIMEOUT;
            }
            if let Some(p) = a.port {
                spec.port = p;
            }
            (spec, true)
        }
    };
    let (report, verdict) = online::block_on(mailfold_sync::inspect::probe::probe(&spec, login))?;
    for n in &report.notices {
        online::show_notification(n, &spec.host);
    }
    let status = match verdict {
        ProbeVerdict::Usable => exit::OK,
        ProbeVerdict::Unusable => exit::SERVER,
        ProbeVerdict::Config => exit::USAGE,
    };
    if ctx.json {
        print_json(&serde_json::to_value(&report)?)?;
    } else {
        print_human(&report, &mut std::io::stdout().lock()).map_err(exit::stdout_error)?;
    }
    Ok(status)
}

/// Server-supplied text, safe for a terminal: control characters become `?` and the
/// process's secrets are scrubbed (a server may echo the password in its NO).
fn clean(s: &str) -> String {
    crate::term::line(s).into_owned()
}

/// The human form of a report.
pub fn print_human(r: &ProbeReport, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let mode = match r.tls_mode {
        "implicit" => "implicit TLS",
        "starttls" => "STARTTLS",
        _ => "no TLS",
    };
    writeln!(out, "server        {}:{} ({mode})", r.host, r.port)?;
    if let Some(g) = &r.greeting {
        // Before STARTTLS, or without TLS, anyone on the path could have written it.
        let how = if r.tls_mode == "implicit" {
            ""
        } else {
            "  (sent in clear)"
        };
        writeln!(out, "greeting      {}{how}", clean(g))?;
    }
    if let Some(t) = &r.tls {
        print_tls(out, &r.host, t)?;
    }
    if let Some(id) = &r.server_id {
        let text: Vec<String> = id
            .iter()
            .map(|(k, v)| format!("{}={}", clean(k), clean(v.as_deref().unwrap_or("NIL"))))
            .collect();
        if !text.is_empty() {
            writeln!(out, "server id     {}", text.join(" "))?;
        }
    }
    if let Some(b) = &r.capabilities_before_login {
        writeln!(out, "before login  {}", clean(&b.join(" ")))?;
        writeln!(
            out,
            "mechanisms    {}",
            if r.mechanisms_offered.is_empty() {
                "(none advertised)".to_string()
            } else {
                clean(&r.mechanisms_offered.join(" "))
            }
        )?;
    }
    if let Some(l) = &r.login {
        print_login(out, l)?;
    }
    if let Some(c) = &r.capabilities_after_login {
        writeln!(out, "after login   {}", clean(&c.join(" ")))?;
    }
    for e in &r.errors {
        writeln!(out, "error         {}", clean(e))?;
    }
    for h in &r.hints {
        writeln!(out, "hint          {h}")?;
    }
    Ok(())
}

/// The TLS lines of a report: version and cipher, whether and how the certificate was
/// verified, and the chain the server presented.
fn print_tls(out: &mut impl std::io::Write, host: &str, t: &TlsReport) -> std::io::Result<()> {
    if let (Some(v), Some(c)) = (&t.version, &t.cipher) {
        writeln!(out, "TLS           {v}, {c}")?;
    }
    match (&t.problem, t.trust) {
        (None, Some(trust)) => writeln!(
            out,
            "certificate   verified for {} by {}",
            host,
            match trust {
                "account-ca" => "the account's CA file (ca_file)",
                _ => "the system's trusted roots",
            }
        )?,
        (Some(p), _) if p.kind == "not-checked" => {
            writeln!(out, "certificate   NOT VERIFIED: {}", p.message)?
        }
        (Some(p), _) if !CERTIFICATE_KINDS.contains(&p.kind) => {
            writeln!(out, "TLS           FAILED: {}", p.message)?;
            if let Some(e) = &t.error {
                writeln!(out, "              ({})", clean(e))?;
            }
        }
        (Some(p), _) => {
            writeln!(out, "certificate   REFUSED: {}", p.message)?;
            if let Some(e) = &t.error {
                writeln!(out, "              ({})", clean(e))?;
            }
        }
        (None, None) => writeln!(out, "certificate   not verified")?,
    }
    if !t.chain.is_empty() {
        if t.problem.as_ref().is_some_and(|p| p.kind != "not-checked") {
            writeln!(
                out,
                "              the server presented (unverified; nothing but the handshake was sent):"
            )?;
        }
        for (i, c) in t.chain.iter().enumerate() {
            writeln!(out, "  [{i}] subject {}", clean(&c.subject))?;
            writeln!(out, "      issuer  {}", clean(&c.issuer))?;
            writeln!(out, "      valid   {} to {}", c.not_before, c.not_after)?;
            writeln!(out, "      serial  {}", c.serial)?;
            if !c.names.is_empty() {
                writeln!(out, "      names   {}", clean(&c.names.join(", ")))?;
            }
        }
    }
    Ok(())
}

/// The login line of a report, with each mechanism tried when it failed.
fn print_login(out: &mut impl std::io::Write, l: &LoginReport) -> std::io::Result<()> {
    let mech = l.mechanism.as_deref().unwrap_or("?");
    if l.ok && l.preauth {
        writeln!(
            out,
            "login         not needed (the server greeted with PREAUTH)"
        )?;
    } else if l.ok {
        let tried = if l.attempts.len() > 1 {
            format!(" (tried {})", l.attempts.join(", "))
        } else {
            String::new()
        };
        writeln!(out, "login         OK with {mech}{tried}")?;
    } else {
        writeln!(
            out,
            "login         FAILED ({mech}): {}",
            clean(l.error.as_deref().unwrap_or("?"))
        )?;
        for t in &l.tried {
            writeln!(
                out,
                "  tried {}: {}",
                clean(&t.mechanism),
                clean(t.error.as_deref().unwrap_or("accepted"))
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailfold_sync::inspect::probe::{AttemptReport, LoginReport};

    fn report() -> ProbeReport {
        ProbeReport {
            host: "h".into(),
            port: 143,
            tls_mode: "starttls",
            greeting: Some("Dovecot ready.".into()),
            tls: None,
            server_id: None,
            capabilities_before_login: Some(vec!["IMAP4REV1".into()]),
            mechanisms_offered: vec!["SCRAM-SHA-256".into(), "PLAIN".into()],
            login: None,
            capabilities_after_login: None,
            errors: Vec::new(),
            hints: Vec::new(),
            notices: Vec::new(),
        }
    }

    fn human(r: &ProbeReport) -> String {
        let mut out = Vec::new();
        print_human(r, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_greeting_is_shown_and_marked_when_sent_in_clear() {
        let mut r = report();
        assert!(human(&r).contains("greeting      Dovecot ready.  (sent in clear)\n"));
        r.tls_mode = "implicit";
        assert!(human(&r).contains("greeting      Dovecot ready.\n"));
        r.greeting = Some("evil\x1b[2J".into());
        assert!(human(&r).contains("greeting      evil?[2J"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["greeting"], "evil\u{1b}[2J");
    }

    #[test]
    fn a_failed_login_shows_every_mechanism_tried() {
        let mut r = report();
        // What the probe reports for this login (its mapping from the driver's record is
        // tested in mailfold-sync's probe module).
        r.login = Some(LoginReport {
            ok: false,
            mechanism: Some("PLAIN".into()),
            attempts: vec!["SCRAM-SHA-256".into(), "PLAIN".into()],
            tried: vec![
                AttemptReport {
                    mechanism: "SCRAM-SHA-256".into(),
                    error: Some("server said NO: [AUTHENTICATIONFAILED] no".into()),
                },
                AttemptReport {
                    mechanism: "PLAIN".into(),
                    error: Some("server said NO: [AUTHENTICATIONFAILED] no".into()),
                },
            ],
            preauth: false,
            error: Some("authentication failed".into()),
        });
        let text = human(&r);
        assert!(
            text.contains("login         FAILED (PLAIN): authentication failed"),
            "{text}"
        );
        assert!(
            text.contains("  tried SCRAM-SHA-256: server said NO: [AUTHENTICATIONFAILED] no\n"),
            "{text}"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["login"]["attempts"][1], "PLAIN");
        assert_eq!(json["login"]["tried"][0]["mechanism"], "SCRAM-SHA-256");
        assert!(json["login"]["tried"][0]["error"].is_string());
    }

    #[test]
    fn server_text_cannot_drive_the_terminal() {
        assert_eq!(clean("Dovecot\x1b[2J\r\n"), "Dovecot?[2J??");
    }
}
