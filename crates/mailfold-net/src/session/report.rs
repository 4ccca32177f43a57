//! What opening a session learned, kept for the caller whether the session opened or not:
//! capabilities, mechanisms offered, each authentication attempt and how it ended (seeds
//! V0027, V0033, V0034, V0035), and on failure the greeting and the TLS session too.

use crate::error::Error;
use crate::tls::TlsInfo;

/// How the session authenticated, for `mailfold probe` (seeds V0027, V0033, V0035).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthInfo {
    /// Capabilities before authentication (the ones over TLS when TLS is used: cleartext
    /// ones are discarded), upper-cased. `None` when there was no authentication step.
    pub capabilities_before: Option<Vec<String>>,
    /// Capabilities after authentication (or after a PREAUTH greeting).
    pub capabilities_after: Option<Vec<String>>,
    /// The SASL mechanisms offered (`AUTH=…`), in the server's order.
    pub mechanisms_offered: Vec<String>,
    /// What was tried, in order: SASL names, and `LOGIN-COMMAND` for the LOGIN command.
    pub attempts: Vec<String>,
    /// The same attempts with how each ended: `failure` is `None` for the one that
    /// authenticated. Kept when the login fails ([`ConnectFailure::auth`]), so a caller can
    /// show what was tried before giving up (seed V0034's fallback, made visible).
    pub tried: Vec<AuthAttempt>,
    /// What authenticated the session: a SASL name, or `LOGIN-COMMAND`. `None` for PREAUTH
    /// or when no credentials were given.
    pub mechanism_used: Option<String>,
    /// The server greeted with PREAUTH.
    pub preauth: bool,
}

/// One authentication attempt: a SASL mechanism or the LOGIN command, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthAttempt {
    /// The SASL name, or [`LOGIN_COMMAND`] for the LOGIN command.
    pub mechanism: String,
    /// Why it failed: the server's tagged answer with its response code (`server said NO:
    /// [AUTHENTICATIONFAILED] …`), why the client stopped the exchange, or the connection
    /// error that ended it. `None` when it authenticated the session.
    pub failure: Option<String>,
}

/// Why [`Session::connect_report`] or [`Session::open_report`] failed, with what the session
/// had learned by then: the greeting, the TLS session, and the authentication attempts (for
/// `mailfold probe`, which shows what was tried before the failure).
///
/// [`Session::connect_report`]: crate::Session::connect_report
/// [`Session::open_report`]: crate::Session::open_report
#[derive(Debug)]
pub struct ConnectFailure {
    /// What went wrong.
    pub error: Error,
    /// The server's greeting text, control characters stripped
    /// ([`Session::greeting`](crate::Session::greeting)); `None` when none arrived.
    pub greeting: Option<String>,
    /// What TLS negotiated, when the handshake completed
    /// ([`Session::tls_info`](crate::Session::tls_info)). A refused certificate is in the
    /// error instead ([`Error::Certificate`]).
    pub tls: Option<TlsInfo>,
    /// Capabilities, mechanisms offered and the attempts made
    /// ([`Session::auth_info`](crate::Session::auth_info)).
    pub auth: AuthInfo,
}

/// The name recorded in [`AuthInfo`] for the LOGIN command (not the SASL mechanism LOGIN).
pub const LOGIN_COMMAND: &str = "LOGIN-COMMAND";
