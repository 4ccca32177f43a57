//! The driver's error type, grouped by cause: configuration, I/O, timeouts, security
//! refusals, the peer's misbehaviour, and commands the server refused.

use std::fmt;
use std::io;

use mailfold_proto::engine::EngineError;

use crate::x509::CertSummary;

/// Everything that can go wrong on a session.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The account configuration cannot work (bad host name, unreadable CA file, …).
    Config(String),
    /// An I/O failure, with what we were doing.
    Io(String, io::Error),
    /// TLS handshake or TLS-level failure other than a refused certificate (which is
    /// [`Error::Certificate`]) or a peer that does not speak TLS ([`Error::NotTls`]).
    Tls(String),
    /// The server's certificate chain was refused (RFC 5280 path validation, RFC 7817 host
    /// name), with implicit TLS or after STARTTLS. Nothing but the TLS handshake was sent.
    Certificate {
        /// Why, as a verdict a caller can act on (not trusted, self-signed, wrong host,
        /// expired, …).
        problem: CertProblem,
        /// The chain the server presented, end-entity first, as read during the refused
        /// handshake (unverified: it is what the server sent, not what is true).
        presented: Vec<CertSummary>,
        /// The TLS library's own description of the failure.
        detail: String,
    },
    /// The peer answered the TLS handshake with something that is not TLS (typically a
    /// cleartext IMAP greeting: the port expects STARTTLS or plaintext). The text is the TLS
    /// library's.
    NotTls(String),
    /// Nothing arrived in time: connect, a command, or LOGOUT took too long. The connection
    /// is unusable afterwards (a silently dropped connection surfaces here, never as a hang).
    Timeout(String),
    /// We refused to go on because going on would be unsafe (STARTTLS missing or refused,
    /// PREAUTH on cleartext, response injection, a password over cleartext, …). RFC 8314,
    /// RFC 9051 6.2.1.
    Security(String),
    /// The protocol engine failed the connection (the server broke the protocol, or the
    /// connection closed); the engine's error carries the details and any BYE text.
    Protocol(EngineError),
    /// Authentication failed. `text` is the server's own text; `mechanism` the last one tried.
    Auth {
        /// The SASL mechanism (or `LOGIN` for the LOGIN command) that was tried last.
        mechanism: String,
        /// What the server said, or why we stopped.
        text: String,
    },
    /// The server answered a command NO or BAD.
    Command {
        /// `NO` or `BAD`.
        status: String,
        /// The server's text, with its response code when present (seed V0019: shown to users).
        text: String,
    },
    /// The session is closed (after LOGOUT, or after a fatal error).
    Closed,
}

impl Error {
    /// True when the connection cannot be used any more.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, Error::Command { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(s) => write!(f, "configuration: {s}"),
            Error::Io(what, e) => write!(f, "{what}: {e}"),
            Error::Tls(s) => write!(f, "TLS: {s}"),
            Error::Certificate { problem, .. } => write!(f, "TLS: certificate refused: {problem}"),
            Error::NotTls(s) => write!(f, "TLS: the server did not answer with TLS ({s})"),
            Error::Timeout(s) => write!(f, "timed out: {s}"),
            Error::Security(s) => write!(f, "refused for safety: {s}"),
            Error::Protocol(e) => write!(f, "{e}"),
            Error::Auth { mechanism, text } => {
                write!(f, "authentication failed ({mechanism}): {text}")
            }
            Error::Command { status, text } => write!(f, "server said {status}: {text}"),
            Error::Closed => f.write_str("the connection is closed"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(_, e) => Some(e),
            Error::Protocol(e) => Some(e),
            _ => None,
        }
    }
}

impl From<EngineError> for Error {
    fn from(e: EngineError) -> Self {
        Error::Protocol(e)
    }
}

/// Why the server's certificate was refused, as the verifier saw it: the verdict that
/// [`crate::Error::Certificate`] reports (shown by `mailfold probe`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertProblem {
    /// No trust anchor (system roots or the account's CA file) issued the chain.
    UnknownIssuer,
    /// Like [`CertProblem::UnknownIssuer`], and the certificate names itself as its issuer:
    /// a self-signed certificate nobody was told to trust.
    SelfSigned,
    /// The chain is trusted but not issued for the host name connected to (RFC 7817,
    /// RFC 6125): `valid_for` lists the names it is issued for (subjectAltName DNS names and
    /// IP addresses).
    WrongHost {
        /// The names the certificate is valid for.
        valid_for: Vec<String>,
    },
    /// A certificate of the chain has expired (or this computer's clock is wrong).
    Expired {
        /// End of its validity, `YYYY-MM-DDTHH:MM:SSZ`, when known.
        not_after: Option<String>,
    },
    /// A certificate of the chain is not valid yet (or this computer's clock is wrong).
    NotYetValid {
        /// Start of its validity, `YYYY-MM-DDTHH:MM:SSZ`, when known.
        not_before: Option<String>,
    },
    /// A certificate of the chain has been revoked.
    Revoked,
    /// Any other verdict (a certificate that may not be used for a server, an unsupported
    /// critical extension, a malformed certificate…), as the TLS library put it.
    Other(String),
}

impl std::fmt::Display for CertProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertProblem::UnknownIssuer => {
                f.write_str("the certificate chain is not trusted: no trusted CA issued it")
            }
            CertProblem::SelfSigned => {
                f.write_str("the certificate is self-signed and nothing trusts it")
            }
            CertProblem::WrongHost { valid_for } if valid_for.is_empty() => {
                f.write_str("the certificate is not valid for this host name")
            }
            CertProblem::WrongHost { valid_for } => write!(
                f,
                "the certificate is not valid for this host name (it is valid for {})",
                valid_for.join(", ")
            ),
            CertProblem::Expired { not_after: Some(t) } => {
                write!(f, "the certificate expired on {t}")
            }
            CertProblem::Expired { not_after: None } => f.write_str("the certificate has expired"),
            CertProblem::NotYetValid {
                not_before: Some(t),
            } => write!(f, "the certificate is not valid before {t}"),
            CertProblem::NotYetValid { not_before: None } => {
                f.write_str("the certificate is not valid yet")
            }
            CertProblem::Revoked => f.write_str("the certificate has been revoked"),
            CertProblem::Other(text) => write!(f, "the certificate was refused: {text}"),
        }
    }
}
