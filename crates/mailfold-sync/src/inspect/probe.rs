//! The probe: how far a connection to a server gets, all through `mailfold-net`'s session (the
//! same code path as every other command and the sync, so what the probe sees is what a sync
//! gets):
//!
//! 1. the transport: TLS version, cipher suite, the certificate chain the server presented
//!    and which trust anchors accepted it;
//! 2. the server's identity (RFC 2971 ID, when offered) and its capabilities before login,
//!    with the SASL mechanisms offered;
//! 3. with a login: the login under the account's policy (strongest mechanism first, seeds
//!    V0031–V0034), the mechanisms tried and the one that worked, and the capabilities after
//!    login (seeds V0033, V0035).
//!
//! The server's greeting text is kept too. When the certificate is refused, the driver's
//! typed verdict says why (not trusted, self-signed, wrong host, expired, …) and carries the
//! chain the server presented during the refused handshake, so the user sees what was wrong
//! with it; nothing but the handshake was sent. When the login fails, every mechanism tried
//! is reported with how it failed.

use std::collections::BTreeMap;

use mailfold_net::{
    AuthInfo, CertProblem, CertSummary, ConnectConfig, ConnectFailure, Error as NetError, Security,
    Session, TlsInfo, TrustSource,
};
use mailfold_sasl::Credentials;
use serde::Serialize;

use super::session::{Notice, ServerSession};
use crate::account::AccountSpec;
use crate::account::SecretError;
use crate::remote_imap::{credentials, session_config};

/// Whether the probed server can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeVerdict {
    /// Connected (and logged in, when asked to).
    Usable,
    /// The server could not be used: see the report's `errors`.
    Unusable,
    /// The settings themselves are wrong (a bad CA file, …): see the report's `errors`.
    Config,
}

/// Logs out, keeping what the server still had to say. A failed LOGOUT only matters in the
/// log: the probe's work is done.
async fn logout(s: Session, report: &mut ProbeReport) {
    let mut s = ServerSession { session: s };
    report.notices.extend(s.take_notices());
    if let Err(e) = s.logout().await {
        tracing::info!("LOGOUT: {e}");
    }
}

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
    /// The login; `null` when the probe did not log in (`--host` without an account).
    pub login: Option<LoginReport>,
    /// Capabilities after login.
    pub capabilities_after_login: Option<Vec<String>>,
    /// What failed, in the order it happened.
    pub errors: Vec<String>,
    /// What to try, for failures with a likely cause (a TLS mode that does not match the
    /// port).
    pub hints: Vec<String>,
    /// What the server said on its own during the probe (an ALERT, a BYE), for the caller
    /// to show; not part of the document.
    #[serde(skip)]
    pub notices: Vec<Notice>,
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

/// Runs the probe on the account's server, logging in with its secret when `login` is true:
/// never fails as a whole; what failed is in the report's `errors`, and the verdict says
/// whether the server could be used.
pub async fn probe(account: &AccountSpec, login: bool) -> (ProbeReport, ProbeVerdict) {
    let cfg = &session_config(account);
    let creds = probe_credentials(account, login).await;
    let mut report = ProbeReport::empty(cfg);
    let creds = match creds {
        Some(Err(e)) => {
            // Nothing can be sent without it: the settings, not the server, are the problem.
            report.errors.push(e.to_string());
            return (report, ProbeVerdict::Config);
        }
        Some(Ok(c)) => Some(c),
        None => None,
    };
    let creds = creds.as_ref();
    let first = match creds {
        Some(c) => Session::connect_report(cfg, Some(c)).await,
        None => Session::open_report(cfg).await,
    };
    match first {
        Ok(s) => {
            record_session(s, creds.is_some(), &mut report).await;
            (report, ProbeVerdict::Usable)
        }
        Err(failure) => {
            let verdict = record_failure(cfg, creds.is_some(), *failure, &mut report).await;
            (report, verdict)
        }
    }
}

/// The account's credentials when the probe logs in (`None` when it does not). A pending
/// secret is waited for on the blocking pool, not on the probe's runtime.
async fn probe_credentials(
    account: &AccountSpec,
    login: bool,
) -> Option<Result<Credentials, SecretError>> {
    match login {
        false => None,
        true if account.secret.is_pending() => {
            let a = account.clone();
            match tokio::task::spawn_blocking(move || credentials(&a)).await {
                Ok(c) => Some(c),
                Err(e) => Some(Err(SecretError(format!("waiting for the secret: {e}")))),
            }
        }
        true => Some(credentials(account)),
    }
}

impl ProbeReport {
    /// The report of a probe of `cfg`'s server before anything is learned.
    fn empty(cfg: &ConnectConfig) -> ProbeReport {
        ProbeReport {
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
            notices: Vec::new(),
        }
    }
}

/// What a session that got through shows (with its login, when `logged_in`); then logs out.
async fn record_session(mut s: Session, logged_in: bool, report: &mut ProbeReport) {
    report.greeting = s.greeting().map(str::to_string);
    if logged_in {
        let a = s.auth_info().clone();
        report.capabilities_before_login = a.capabilities_before.clone();
        report.mechanisms_offered = a.mechanisms_offered.clone();
        report.capabilities_after_login = a.capabilities_after.clone();
        report.login = Some(login_report(&a, true, None));
    }
    read_session(&mut s, report).await;
    logout(s, report).await;
}

/// What a failed connection shows: how far it got, why it failed, and for the failures with
/// a likely cause what to try. The verdict is [`ProbeVerdict::Config`] when the settings are
/// at fault, else [`ProbeVerdict::Unusable`].
async fn record_failure(
    cfg: &ConnectConfig,
    with_login: bool,
    failure: ConnectFailure,
    report: &mut ProbeReport,
) -> ProbeVerdict {
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
            return ProbeVerdict::Config;
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
        e => record_session_failure(cfg, with_login, &failure.auth, e, report).await,
    }
    ProbeVerdict::Unusable
}

/// A failure after the transport was up: at the login when the session got as far as
/// choosing a mechanism, else in the session. When the capabilities were not seen, a session
/// that does not log in reads them.
async fn record_session_failure(
    cfg: &ConnectConfig,
    with_login: bool,
    a: &AuthInfo,
    e: NetError,
    report: &mut ProbeReport,
) {
    // The login step was reached when the session chose among the offered mechanisms
    // (or tried one): what it saw then is what the server offered.
    let login_reached =
        with_login && (a.capabilities_before.is_some() || matches!(e, NetError::Auth { .. }));
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
                read_session(&mut s, report).await;
                logout(s, report).await;
            }
            Err(e2) => {
                if e2.to_string() != e.to_string() {
                    report.errors.push(format!("session: {e2}"));
                }
            }
        }
    }
}

/// A TLS version as people write it: rustls's `TLSv1_3` becomes `TLS 1.3`.
pub fn tls_version_name(v: &str) -> String {
    match v.strip_prefix("TLSv") {
        Some(n) => format!("TLS {}", n.replace('_', ".")),
        None => v.to_string(),
    }
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

    #[test]
    fn a_failed_login_reports_every_mechanism_tried() {
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
        let r = login_report(&auth, false, Some("authentication failed".into()));
        assert!(!r.ok);
        assert_eq!(r.mechanism.as_deref(), Some("PLAIN"));
        assert_eq!(r.attempts, ["SCRAM-SHA-256", "PLAIN"]);
        assert_eq!(r.tried[0].mechanism, "SCRAM-SHA-256");
        assert!(r.tried[0].error.is_some());
        assert_eq!(r.error.as_deref(), Some("authentication failed"));
    }
}
