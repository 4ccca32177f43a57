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
//! When the certificate is refused, the handshake error says why (not trusted, wrong host,
//! expired); a second connection that skips verification then reads the chain the server
//! presented, so the user sees what was wrong with it. Nothing but LOGOUT is sent over that
//! connection: no credentials, no command that reveals anything about the account.

use std::collections::BTreeMap;
use std::time::Duration;

use mailfold_net::{
    CertSummary, ConnectConfig, Error as NetError, Security, Session, TlsInfo, TrustSource,
};
use mailfold_sasl::Credentials;
use serde::Serialize;
use tracing::instrument::WithSubscriber;

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
    /// Protocol version, e.g. `TLSv1_3`; `null` when the handshake failed.
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
    pub problem: Option<CertProblem>,
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
}

impl From<&CertSummary> for CertReport {
    fn from(c: &CertSummary) -> Self {
        CertReport {
            subject: c.subject.clone(),
            issuer: c.issuer.clone(),
            not_before: c.not_before.clone(),
            not_after: c.not_after.clone(),
            serial: c.serial.clone(),
        }
    }
}

/// Why a certificate was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertProblem {
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
    /// Every mechanism tried, in order (known when the login succeeded).
    pub attempts: Vec<String>,
    /// The server greeted with PREAUTH (no login needed).
    pub preauth: bool,
    /// Why the login failed, with the server's text.
    pub error: Option<String>,
}

/// The [`CertProblem`] kinds that are a verdict on the server's certificate (the others are
/// handshake failures: `not-tls`, `other`).
pub const CERTIFICATE_KINDS: &[&str] = &[
    "untrusted",
    "wrong-host",
    "expired",
    "not-yet-valid",
    "revoked",
];

/// Classifies a TLS handshake error by what it says about the certificate. The driver keeps
/// the TLS library's message as text ([`NetError::Tls`]); its wording for each certificate
/// error is stable within rustls 0.23, and anything unrecognised is `other` with the text.
pub fn classify_tls_error(host: &str, text: &str) -> CertProblem {
    let lower = text.to_ascii_lowercase();
    let (kind, message) = if lower.contains("unknownissuer") || lower.contains("unknown issuer") {
        (
            "untrusted",
            "the certificate chain is not trusted: no trusted CA issued it (self-signed, or \
             signed by a private CA; set `ca_file` to that CA)"
                .to_string(),
        )
    } else if lower.contains("notvalidforname") || lower.contains("not valid for name") {
        // rustls names what the certificate is valid for; pass that on when it says.
        let names = text
            .split_once("is only valid for ")
            .map(|(_, names)| format!(" (it is only valid for {names})"))
            .unwrap_or_default();
        (
            "wrong-host",
            format!("the certificate is not valid for the host name {host}{names}"),
        )
    } else if lower.contains("notvalidyet") || lower.contains("not valid yet") {
        (
            "not-yet-valid",
            "the certificate is not valid yet (or this computer's clock is wrong)".to_string(),
        )
    } else if lower.contains("revocation list") {
        (
            "other",
            "a certificate revocation list is out of date".to_string(),
        )
    } else if lower.contains("expired") {
        (
            "expired",
            "the certificate has expired (or this computer's clock is wrong)".to_string(),
        )
    } else if lower.contains("revoked") {
        ("revoked", "the certificate has been revoked".to_string())
    } else if lower.contains("corrupt message") || lower.contains("invalidcontenttype") {
        ("not-tls", "the server did not answer with TLS".to_string())
    } else if lower.contains("invalid peer certificate") {
        // Any other verdict on the chain itself (a bad signature, an algorithm the chain's
        // anchor does not allow, a CA that may not issue) means no trusted path to it.
        (
            "untrusted",
            "the certificate chain is not trusted: it could not be verified up to a trusted CA"
                .to_string(),
        )
    } else {
        ("other", "the TLS handshake failed".to_string())
    };
    CertProblem { kind, message }
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
        version: Some(info.protocol.clone()),
        cipher: Some(info.cipher_suite.clone()),
        via_starttls: info.via_starttls,
        verified,
        trust: info.trust.map(trust_name),
        problem: (info.trust == Some(TrustSource::Unverified)).then(|| CertProblem {
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

/// The TLS handshake was refused: say why, then read the presented chain over a connection
/// that does not verify it (and carries nothing but LOGOUT).
async fn inspect_refused_certificate(
    cfg: &ConnectConfig,
    problem: CertProblem,
    why: &str,
    report: &mut ProbeReport,
) -> Result<(), NetError> {
    let mut tls = TlsReport {
        version: None,
        cipher: None,
        via_starttls: cfg.security == Security::StartTls,
        verified: false,
        trust: None,
        problem: Some(problem),
        error: Some(why.to_string()),
        certificates: 0,
        chain: Vec::new(),
    };
    let mut lax = cfg.clone();
    lax.tls.dangerously_accept_invalid_certs = true;
    let opened = Session::open(&lax).await;
    let result = match opened {
        Ok(s) => {
            if let Some(info) = s.tls_info() {
                tls.version = Some(info.protocol.clone());
                tls.cipher = Some(info.cipher_suite.clone());
                tls.certificates = info.peer_certificates.len();
                tls.chain = info
                    .peer_certificates
                    .iter()
                    .map(CertReport::from)
                    .collect();
            }
            online::logout(s, &cfg.host).await;
            Ok(())
        }
        Err(e) => Err(e),
    };
    if let (Some(p), Some(leaf)) = (tls.problem.as_mut(), tls.chain.first()) {
        match p.kind {
            "expired" => {
                p.message = format!(
                    "the certificate expired on {} (or this computer's clock is wrong)",
                    leaf.not_after
                )
            }
            "not-yet-valid" => {
                p.message = format!(
                    "the certificate is not valid before {} (or this computer's clock is wrong)",
                    leaf.not_before
                )
            }
            _ => {}
        }
    }
    if tls.problem.as_ref().is_some_and(|p| p.kind == "untrusted")
        && tls.chain.first().is_some_and(|c| c.subject == c.issuer)
    {
        if let Some(p) = tls.problem.as_mut() {
            p.message = "the certificate chain is not trusted: the certificate is self-signed \
                         (set `ca_file` to it, or to the CA that should have issued it)"
                .to_string();
        }
    }
    report.tls = Some(tls);
    result
}

/// Runs the probe: never fails as a whole; what failed is in the report's `errors`, and the
/// returned status is [`exit::SERVER`] when the server could not be used.
pub async fn probe(
    cfg: &ConnectConfig,
    creds: Option<&Credentials>,
    verbose: bool,
) -> (ProbeReport, u8) {
    let mut report = ProbeReport {
        host: cfg.host.clone(),
        port: cfg.port(),
        tls_mode: mode_name(cfg.security),
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
        Some(c) => Session::connect(cfg, Some(c)).await,
        None => Session::open(cfg).await,
    };
    let failure = match first {
        Ok(mut s) => {
            if creds.is_some() {
                let a = s.auth_info().clone();
                report.capabilities_before_login = a.capabilities_before.clone();
                report.mechanisms_offered = a.mechanisms_offered.clone();
                report.capabilities_after_login = a.capabilities_after.clone();
                report.login = Some(LoginReport {
                    ok: true,
                    mechanism: a.mechanism_used.clone(),
                    attempts: a.attempts.clone(),
                    preauth: a.preauth,
                    error: None,
                });
            }
            read_session(&mut s, &mut report).await;
            online::logout(s, &cfg.host).await;
            return (report, exit::OK);
        }
        Err(e) => e,
    };
    match failure {
        NetError::Tls(why) => {
            let problem = classify_tls_error(&cfg.host, &why);
            if CERTIFICATE_KINDS.contains(&problem.kind) {
                report.errors.push(format!("certificate refused: {why}"));
                // The inspection connection must not print the driver's "verification is
                // OFF" warning: it would read as if the account were unsafe. With -v the
                // user sees every log line, that one included.
                let inspect = inspect_refused_certificate(cfg, problem, &why, &mut report);
                let r = if verbose {
                    inspect.await
                } else {
                    inspect
                        .with_subscriber(tracing::subscriber::NoSubscriber::default())
                        .await
                };
                if let Err(e) = r {
                    report
                        .errors
                        .push(format!("reading the presented certificates: {e}"));
                }
            } else {
                // Not a verdict on a certificate: the handshake itself failed.
                if problem.kind == "not-tls" {
                    report.hints.push(
                        "the server does not speak TLS on this port: it may expect STARTTLS \
                         (`tls = \"starttls\"`, or `--tls starttls`), or be a plaintext port"
                            .into(),
                    );
                }
                report.errors.push(format!("TLS handshake failed: {why}"));
                report.tls = Some(TlsReport {
                    version: None,
                    cipher: None,
                    via_starttls: cfg.security == Security::StartTls,
                    verified: false,
                    trust: None,
                    problem: Some(problem),
                    error: Some(why),
                    certificates: 0,
                    chain: Vec::new(),
                });
            }
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
            // Whether login was the step that failed: a session that does not log in tells.
            match Session::open(cfg).await {
                Ok(mut s) => {
                    if creds.is_some() {
                        let mechanism = match &e {
                            NetError::Auth { mechanism, .. } => Some(mechanism.clone()),
                            _ => None,
                        };
                        report.login = Some(LoginReport {
                            ok: false,
                            mechanism,
                            attempts: Vec::new(),
                            preauth: false,
                            error: Some(e.to_string()),
                        });
                        report.errors.push(format!("login: {e}"));
                    } else {
                        report.errors.push(format!("session: {e}"));
                    }
                    read_session(&mut s, &mut report).await;
                    online::logout(s, &cfg.host).await;
                }
                Err(e2) => {
                    report.errors.push(format!("session: {e}"));
                    if e2.to_string() != e.to_string() {
                        report.errors.push(format!("session: {e2}"));
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
            (cfg, None)
        }
        None => {
            let (name, acct) = ctx.one_account(a.account_name.as_deref())?;
            let mut cfg = crate::account::connect_config(&acct)?;
            if let Some(p) = a.port {
                cfg.port = Some(p);
            }
            let (creds, policy) = crate::account::credentials(&name, &acct)?;
            cfg.auth_policy = policy;
            (cfg, Some(creds))
        }
    };
    let mut cfg = cfg;
    cfg.connect_timeout = TIMEOUT;
    let (report, status) = online::block_on(probe(&cfg, login.as_ref(), ctx.verbose > 0))?;
    if ctx.json {
        print_json(&serde_json::to_value(&report)?)?;
    } else {
        print_human(&report, &mut std::io::stdout().lock())?;
    }
    Ok(status)
}

/// Server-supplied text, safe for a terminal: control characters become `?`.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The human form of a report.
pub fn print_human(r: &ProbeReport, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let mode = match r.tls_mode {
        "implicit" => "implicit TLS",
        "starttls" => "STARTTLS",
        _ => "no TLS",
    };
    writeln!(out, "server        {}:{} ({mode})", r.host, r.port)?;
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
                    "              the server presented (read without verification; nothing was sent):"
                )?;
            }
            for (i, c) in t.chain.iter().enumerate() {
                writeln!(out, "  [{i}] subject {}", clean(&c.subject))?;
                writeln!(out, "      issuer  {}", clean(&c.issuer))?;
                writeln!(out, "      valid   {} to {}", c.not_before, c.not_after)?;
                writeln!(out, "      serial  {}", c.serial)?;
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
    use super::*;

    #[test]
    fn tls_errors_are_told_apart_by_cause() {
        let cases = [
            ("invalid peer certificate: UnknownIssuer", "untrusted"),
            (
                "invalid peer certificate: certificate not valid for name \"127.0.0.1\"; \
                 certificate is only valid for DnsName(\"wrong.host.invalid\")",
                "wrong-host",
            ),
            (
                "invalid peer certificate: certificate expired: verification time 1700000000 \
                 (UNIX), but certificate is not valid after 978307199 (721692801 seconds ago)",
                "expired",
            ),
            (
                "invalid peer certificate: certificate not valid yet: verification time 1",
                "not-yet-valid",
            ),
            ("invalid peer certificate: Revoked", "revoked"),
            (
                "invalid peer certificate: UnsupportedSignatureAlgorithmForPublicKeyContext { .. }",
                "untrusted",
            ),
            ("received fatal alert: HandshakeFailure", "other"),
            (
                "received corrupt message of type InvalidContentType",
                "not-tls",
            ),
        ];
        for (text, kind) in cases {
            assert_eq!(classify_tls_error("127.0.0.1", text).kind, kind, "{text}");
        }
        assert!(classify_tls_error("h", "NotValidForName")
            .message
            .contains("host name h"));
    }

    #[test]
    fn server_text_cannot_drive_the_terminal() {
        assert_eq!(clean("Dovecot\x1b[2J\r\n"), "Dovecot?[2J??");
    }
}
