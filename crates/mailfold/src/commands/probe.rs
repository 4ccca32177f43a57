//! `mailfold probe [ACCOUNT] [--host H --port P --tls MODE]`: the first thing to run when a
//! server does not work. It reports how far a connection gets, all through `mailfold-net`'s
//! [`Session`] (the same code path as every other command, so what probe sees is what sync
//! gets):
//!
//! 1. the transport: TLS version, cipher suite, the certificate chain the server presented
//!    and which trust anchors accepted it ([`Session::tls_info`]);
//! 2. the server's identity (RFC 2971 ID, when offered) and its capabilities before login,
//!    with the SASL mechanisms offered;
//! 3. with an account: the login under the account's policy (strongest mechanism first,
//!    seeds V0031–V0034), the mechanisms tried and the one that worked, and the capabilities
//!    after login (seeds V0033, V0035) ([`Session::auth_info`]).
//!
//! The server's greeting text is shown too ([`Session::greeting`]).
//!
//! When the certificate is refused, the driver's typed verdict says why (not trusted,
//! self-signed, wrong host, expired, …) and carries the chain the server presented during the
//! refused handshake ([`NetError::Certificate`]), so the user sees what was wrong with it;
//! nothing but the handshake was sent. When the login fails, every mechanism tried is shown
//! with how it failed ([`Session::connect_report`]).

use std::collections::BTreeMap;
use std::time::Duration;

use mailfold_net::{
    AuthInfo, CertProblem, CertSummary, ConnectConfig, Error as NetError, Security, Session,
    TlsInfo, TrustSource,
};
use mailfold_sasl::Credentials;
use serde::Serialize;

use super::{print_json, Ctx};
use crate::cli::{ProbeArgs, TlsArg};
use crate::exit;
use crate::online;

/// Bound on connecting, the TLS handshake and the greeting: a probe should answer quickly.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Everything probe learned; the `--json` document (schema in docs/cli.md).
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    /// The host probed.
    pub host: String,
    /// The port.
    pub port: u16,
    /// `implicit`, `starttls` or `none`.
    pub tls_mode: &'static str,
    /// The server's greeting text (control characters removed); `null` when none arrived.
    /// Over STARTTLS or no TLS it was sent in clear.
    pub greeting: Option<String>,
    /// The TLS session, or why there is none; `null` without TLS or when the connection
    /// failed before a handshake.
    pub tls: Option<TlsReport>,
    /// The server's ID (RFC 2971) fields, when it offers ID.
    pub server_id: Option<BTreeMap<String, Option<String>>>,
    /// Capabilities before login (over TLS when TLS is used).
    pub capabilities_before_login: Option<Vec<String>>,
    /// SASL mechanisms offered (`AUTH=`), in the server's order.
    pub mechanisms_offered: Vec<String>,
    /// The login; `null` when probing `--host` without an account.
    pub login: Option<LoginReport>,
    /// Capabilities after login.
    pub capabilities_after_login: Option<Vec<String>>,
    /// What failed, in the order it happened.
    pub errors: Vec<String>,
    /// What to try, for failures with a likely cause (a TLS mode that does not match the
    /// port).
    pub hints: Vec<String>,
}

/// The TLS part of a [`ProbeReport`].
#[derive(Debug, Clone, Serialize)]
pub struct TlsReport {
    /// Protocol version as people write it, e.g. `TLS 1.3`; `null` when the handshake failed.
    pub version: Option<String>,
    /// Cipher suite; `null` when the handshake failed.
    pub cipher: Option<String>,
    /// TLS was started with STARTTLS.
    pub via_starttls: bool,
    /// The chain verified for the host name.
    pub verified: bool,
    /// Which anchors verified it: `system-roots`, `account-ca`, or `unverified` (the
    /// account sets `dangerously_accept_invalid_certs`).
    pub trust: Option<&'static str>,
    /// Why the chain was refused (or not checked).
    pub problem: Option<TlsProblem>,
    /// The handshake error as the TLS library put it.
    pub error: Option<String>,
    /// Number of certificates the server presented.
    pub certificates: usize,
    /// The certificates, end-entity first; empty when they could not be read.
    pub chain: Vec<CertReport>,
}

/// One certificate of the chain.
#[derive(Debug, Clone, Serialize)]
pub struct CertReport {
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Start of validity (`YYYY-MM-DDTHH:MM:SSZ`).
    pub not_before: String,
    /// End of validity.
    pub not_after: String,
    /// Serial number, hexadecimal.
    pub serial: String,
    /// The host names and IP addresses it is issued for (subjectAltName).
    pub names: Vec<String>,
}

impl From<&CertSummary> for CertReport {
    fn from(c: &CertSummary) -> Self {
        CertReport {
            subject: c.subject.clone(),
            issuer: c.issuer.clone(),
            not_before: c.not_before.clone(),
            not_after: c.not_after.clone(),
            serial: c.serial.clone(),
            names: c.subject_alt_names(),
        }
    }
}

/// Why a certificate was not accepted, or why TLS failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsProblem {
    /// `untrusted`, `wrong-host`, `expired`, `not-yet-valid`, `revoked` (the certificate
    /// was refused), `not-checked` (the account turned verification off), `not-tls` (the
    /// server did not answer with TLS) or `other` (another handshake failure).
    pub kind: &'static str,
    /// One sentence for a person.
    pub message: String,
}

/// The login part of a [`ProbeReport`].
#[derive(Debug, Clone, Serialize)]
pub struct LoginReport {
    /// Logged in.
    pub ok: bool,
    /// The mechanism that authenticated the session (a SASL name, or `LOGIN-COMMAND` for
    /// the LOGIN command); on failure, the last one tried.
    pub mechanism: Option<String>,
    /// Every mechanism tried, in order.
    pub attempts: Vec<String>,
    /// The same, with how each failed (`error` is `null` for the one that worked).
    pub tried: Vec<AttemptReport>,
    /// The server greeted with PREAUTH (no login needed).
    pub preauth: bool,
    /// Why the login failed, with the server's text.
    pub error: Option<String>,
}

/// One authentication attempt of a [`LoginReport`].
#[derive(Debug, Clone, Serialize)]
pub struct AttemptReport {
    /// The SASL mechanism, or `LOGIN-COMMAND`.
    pub mechanism: String,
    /// Why it failed, with the server's text; `null` when it authenticated.
    pub error: Option<String>,
}

/// The [`TlsProblem`] kinds that are a verdict on the server's certificate (the others are
/// handshake failures: `not-tls`, `other`).
pub const CERTIFICATE_KINDS: &[&str] = &[
    "untrusted",
    "wrong-host",
    "expired",
    "not-yet-valid",
    "revoked",
];

/// The report of the driver's verdict on a refused certificate: a stable `kind` for
/// `--json` and a sentence that says what to do.
pub fn certificate_problem(host: &str, problem: &CertProblem) -> TlsProblem {
    let clock = "(or this computer's clock is wrong)";
    let (kind, message) = match problem {
        CertProblem::UnknownIssuer => (
            "untrusted",
            "the certificate chain is not trusted: no trusted CA issued it (signed by a \
             private CA? set `ca_file` to that CA)"
                .to_string(),
        ),
        CertProblem::SelfSigned => (
            "untrusted",
            "the certificate chain is not trusted: the certificate is self-signed (set \
             `ca_file` to it, or to the CA that should have issued it)"
                .to_string(),
        ),
        CertProblem::WrongHost { valid_for } => {
            let names = if valid_for.is_empty() {
                String::new()
            } else {
                format!(" (it is only valid for {})", valid_for.join(", "))
            };
            (
                "wrong-host",
                format!("the certificate is not valid for the host name {host}{names}"),
            )
        }
        CertProblem::Expired { not_after } => (
            "expired",
            match not_after {
                Some(t) => format!("the certificate expired on {t} {clock}"),
                None => format!("the certificate has expired {clock}"),
            },
        ),
        CertProblem::NotYetValid { not_before } => (
            "not-yet-valid",
            match not_before {
                Some(t) => format!("the certificate is not valid before {t} {clock}"),
                None => format!("the certificate is not valid yet {clock}"),
            },
        ),
        CertProblem::Revoked => ("revoked", "the certificate has been revoked".to_string()),
        // Any other verdict on the chain (a certificate not meant for servers, a malformed
        // or unsupported one): no trusted path to it.
        other => (
            "untrusted",
            format!("the certificate chain is not trusted: {other}"),
        ),
    };
    TlsProblem { kind, message }
}

fn trust_name(t: TrustSource) -> &'static str {
    match t {
        TrustSource::SystemRoots => "system-roots",
        TrustSource::AccountCa => "account-ca",
        TrustSource::Unverified => "unverified",
    }
}

fn tls_report(info: &TlsInfo) -> TlsReport {
    let verified = matches!(
        info.trust,
        Some(TrustSource::SystemRoots | TrustSource::AccountCa)
    );
    TlsReport {
        version: Some(tls_version_name(&info.protocol)),
        cipher: Some(info.cipher_suite.clone()),
        via_starttls: info.via_starttls,
        verified,
        trust: info.trust.map(trust_name),
        problem: (info.trust == Some(TrustSource::Unverified)).then(|| TlsProblem {
            kind: "not-checked",
            message: "the certificate was not checked: the account sets \
                      dangerously_accept_invalid_certs, so anyone on the path can read the \
                      password and mail"
                .to_string(),
        }),
        error: None,
        certificates: info.peer_certificates.len(),
        chain: info
            .peer_certificates
            .iter()
            .map(CertReport::from)
            .collect(),
    }
}

fn mode_name(s: Security) -> &'static str {
    match s {
        Security::ImplicitTls => "implicit",
        Security::StartTls => "starttls",
        Security::Plaintext => "none",
    }
}

/// What one session showed before login: transport, identity, capabilities.
async fn read_session(s: &mut Session, report: &mut ProbeReport) {
    if let Some(info) = s.tls_info() {
        report.tls = Some(tls_report(info));
    }
    let caps = match s.capabilities().cloned() {
        Some(c) => Some(c),
        None => match s.capability().await {
            Ok(c) => Some(c),
            Err(e) => {
                report.errors.push(format!("CAPABILITY: {e}"));
                None
            }
        },
    };
    if let Some(c) = caps {
        if report.capabilities_before_login.is_none() {
            report.capabilities_before_login = Some(c.names().to_vec());
            report.mechanisms_offered = c.auth_mechanisms().iter().map(|m| m.to_string()).collect();
        }
        if c.has("ID") && report.server_id.is_none() {
            // ID NIL: the server's identity, without telling it anything about us.
            match s.id(None).await {
                Ok(fields) => report.server_id = Some(fields.into_iter().collect()),
                Err(e) => tracing::info!("ID: {e}"),
            }
        }
    }
}

/// The TLS part of a report for a handshake that failed.
fn failed_tls(cfg: &ConnectConfig, problem: TlsProblem, error: String) -> TlsReport {
    TlsReport {
        version: None,
        cipher: None,
        via_starttls: cfg.security == Security::StartTls,
        verified: false,
        trust: None,
        problem: Some(problem),
        error: Some(error),
        certificates: 0,
        chain: Vec::new(),
    }
}

fn login_report(a: &AuthInfo, ok: bool, error: Option<String>) -> LoginReport {
    LoginReport {
        ok,
        mechanism: a
            .mechanism_used
            .clone()
            .or_else(|| a.attempts.last().cloned()),
        attempts: a.attempts.clone(),
        tried: a
            .tried
            .iter()
            .map(|t| AttemptReport {
                mechanism: t.mechanism.clone(),
                error: t.failure.clone(),
            })
            .collect(),
        preauth: a.preauth,
        error,
    }
}

/// Runs the probe: never fails as a whole; what failed is in the report's `errors`, and the
/// returned status is [`exit::SERVER`] when the server could not be used.
pub async fn probe(cfg: &ConnectConfig, creds: Option<&Credentials>) -> (ProbeReport, u8) {
    let mut report = ProbeReport {
        host: cfg.host.clone(),
        port: cfg.port(),
        tls_mode: mode_name(cfg.security),
        greeting: None,
        tls: None,
        server_id: None,
        capabilities_before_login: None,
        mechanisms_offered: Vec::new(),
        login: None,
        capabilities_after_login: None,
        errors: Vec::new(),
        hints: Vec::new(),
    };
    let first = match creds {
        Some(c) => Session::connect_report(cfg, Some(c)).await,
        None => Session::open_report(cfg).await,
    };
    let failure = match first {
        Ok(mut s) => {
            report.greeting = s.greeting().map(str::to_string);
            if creds.is_some() {
                let a = s.auth_info().clone();
                report.capabilities_before_login = a.capabilities_before.clone();
                report.mechanisms_offered = a.mechanisms_offered.clone();
                report.capabilities_after_login = a.capabilities_after.clone();
                report.login = Some(login_report(&a, true, None));
            }
            read_session(&mut s, &mut report).await;
            online::logout(s, &cfg.host).await;
            return (report, exit::OK);
        }
        Err(f) => f,
    };
    report.greeting = failure.greeting.clone();
    if let Some(info) = &failure.tls {
        report.tls = Some(tls_report(info));
    }
    match failure.error {
        NetError::Certificate {
            problem,
            presented,
            detail,
        } => {
            let problem = certificate_problem(&cfg.host, &problem);
            report
                .errors
                .push(format!("certificate refused: {}", problem.message));
            let mut tls = failed_tls(cfg, problem, detail);
            tls.certificates = presented.len();
            tls.chain = presented.iter().map(CertReport::from).collect();
            report.tls = Some(tls);
        }
        NetError::NotTls(why) => {
            report.hints.push(
                "the server does not speak TLS on this port: it may expect STARTTLS \
                 (`tls = \"starttls\"`, or `--tls starttls`), or be a plaintext port"
                    .into(),
            );
            report.errors.push(format!("TLS handshake failed: {why}"));
            let problem = TlsProblem {
                kind: "not-tls",
                message: "the server did not answer with TLS".to_string(),
            };
            report.tls = Some(failed_tls(cfg, problem, why));
        }
        NetError::Tls(why) => {
            report.errors.push(format!("TLS handshake failed: {why}"));
            let problem = TlsProblem {
                kind: "other",
                message: "the TLS handshake failed".to_string(),
            };
            report.tls = Some(failed_tls(cfg, problem, why));
        }
        NetError::Config(e) => {
            report.errors.push(format!("configuration: {e}"));
            return (report, exit::USAGE);
        }
        e @ (NetError::Io(..) | NetError::Timeout(_)) => {
            if matches!(&e, NetError::Timeout(w) if w.contains("greeting"))
                && cfg.security != Security::ImplicitTls
            {
                report.hints.push(
                    "no greeting arrived: a server that expects TLS from the first byte says \
                     nothing in clear; try implicit TLS (`tls = \"implicit\"`, or `--tls implicit`)"
                        .into(),
                );
            }
            report.errors.push(format!("connection: {e}"));
        }
        e => {
            let a = &failure.auth;
            // The login step was reached when the session chose among the offered mechanisms
            // (or tried one): what it saw then is what the server offered.
            let login_reached = creds.is_some()
                && (a.capabilities_before.is_some() || matches!(e, NetError::Auth { .. }));
            if login_reached {
                report.capabilities_before_login = a.capabilities_before.clone();
                report.mechanisms_offered = a.mechanisms_offered.clone();
                report.login = Some(login_report(a, false, Some(e.to_string())));
                report.errors.push(format!("login: {e}"));
            } else {
                report.errors.push(format!("session: {e}"));
            }
            if report.capabilities_before_login.is_none() {
                // Failed before the capabilities were seen (a refused STARTTLS, a server
                // that is not IMAP4rev1…): a session that does not log in reads them, and
                // sends nothing but CAPABILITY, ID and LOGOUT.
                match Session::open(cfg).await {
                    Ok(mut s) => {
                        read_session(&mut s, &mut report).await;
                        online::logout(s, &cfg.host).await;
                    }
                    Err(e2) => {
                        if e2.to_string() != e.to_string() {
                            report.errors.push(format!("session: {e2}"));
                        }
                    }
                }
            }
        }
    }
    (report, exit::SERVER)
}

/// Runs the command.
pub fn run(ctx: &Ctx, a: &ProbeArgs) -> anyhow::Result<u8> {
    let (cfg, login) = match &a.host {
        Some(h) => {
            let mut cfg = ConnectConfig::new(h.clone());
            cfg.security = match a.tls {
                TlsArg::Implicit => Security::ImplicitTls,
                TlsArg::Starttls => Security::StartTls,
                TlsArg::None => Security::Plaintext,
            };
            cfg.port = a.port;
            cfg.tls.ca_file = a.ca_file.clone();
            cfg.connect_timeout = TIMEOUT;
            (cfg, None)
        }
        None => {
            let (name, acct) = ctx.one_account(a.account_name.as_deref())?;
            // The account's time limits apply; its connect timeout only when it sets one.
            let mut cfg = crate::account::connect_config(&acct)?;
            if acct.connect_timeout().is_none() {
                cfg.connect_timeout = TIMEOUT;
            }
            if let Some(p) = a.port {
                cfg.port = Some(p);
            }
            let (creds, policy) = crate::account::credentials(&name, &acct)?;
            cfg.auth_policy = policy;
            (cfg, Some(creds))
        }
    };
    let (report, status) = online::block_on(probe(&cfg, login.as_ref()))?;
    if ctx.json {
        print_json(&serde_json::to_value(&report)?)?;
    } else {
        print_human(&report, &mut std::io::stdout().lock()).map_err(exit::stdout_error)?;
    }
    Ok(status)
}

/// A TLS version as people write it: rustls's `TLSv1_3` becomes `TLS 1.3`.
pub fn tls_version_name(v: &str) -> String {
    match v.strip_prefix("TLSv") {
        Some(n) => format!("TLS {}", n.replace('_', ".")),
        None => v.to_string(),
    }
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
        if let (Some(v), Some(c)) = (&t.version, &t.cipher) {
            writeln!(out, "TLS           {v}, {c}")?;
        }
        match (&t.problem, t.trust) {
            (None, Some(trust)) => writeln!(
                out,
                "certificate   verified for {} by {}",
                r.host,
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

#[cfg(test)]
mod tests {
    #[test]
    fn tls_versions_read_as_people_write_them() {
        assert_eq!(super::tls_version_name("TLSv1_3"), "TLS 1.3");
        assert_eq!(super::tls_version_name("TLSv1_2"), "TLS 1.2");
        assert_eq!(super::tls_version_name("QUIC"), "QUIC");
    }

    use super::*;

    #[test]
    fn certificate_verdicts_map_to_stable_kinds_and_plain_sentences() {
        let cases = [
            (
                CertProblem::UnknownIssuer,
                "untrusted",
                "no trusted CA issued it",
            ),
            (CertProblem::SelfSigned, "untrusted", "self-signed"),
            (
                CertProblem::WrongHost {
                    valid_for: vec!["wrong.host.invalid".into()],
                },
                "wrong-host",
                "not valid for the host name h (it is only valid for wrong.host.invalid)",
            ),
            (
                CertProblem::Expired {
                    not_after: Some("2001-01-01T00:00:00Z".into()),
                },
                "expired",
                "expired on 2001-01-01T00:00:00Z",
            ),
            (
                CertProblem::NotYetValid { not_before: None },
                "not-yet-valid",
                "not valid yet",
            ),
            (CertProblem::Revoked, "revoked", "revoked"),
            (
                CertProblem::Other("InvalidPurpose".into()),
                "untrusted",
                "InvalidPurpose",
            ),
        ];
        for (problem, kind, text) in cases {
            let p = certificate_problem("h", &problem);
            assert_eq!(p.kind, kind, "{problem:?}");
            assert!(CERTIFICATE_KINDS.contains(&p.kind));
            assert!(p.message.contains(text), "{problem:?}: {}", p.message);
        }
    }

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
        let auth = AuthInfo {
            attempts: vec!["SCRAM-SHA-256".into(), "PLAIN".into()],
            tried: vec![
                mailfold_net::AuthAttempt {
                    mechanism: "SCRAM-SHA-256".into(),
                    failure: Some("server said NO: [AUTHENTICATIONFAILED] no".into()),
                },
                mailfold_net::AuthAttempt {
                    mechanism: "PLAIN".into(),
                    failure: Some("server said NO: [AUTHENTICATIONFAILED] no".into()),
                },
            ],
            ..AuthInfo::default()
        };
        r.login = Some(login_report(
            &auth,
            false,
            Some("authentication failed".into()),
        ));
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
