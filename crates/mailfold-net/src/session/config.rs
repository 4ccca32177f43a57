//! What a session connects to and how: the host, the transport's protection (seed N1), the
//! certificates, timeouts, the engine's timers and the authentication policy.

use std::time::Duration;

use mailfold_proto::engine::Config as EngineConfig;
use mailfold_sasl::Policy;

use crate::tls::TlsOptions;

/// How the connection is protected (seed N1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (RFC 8314), port 993 by default. The default.
    ImplicitTls,
    /// Cleartext, then STARTTLS (port 143 by default). Abandoned, never downgraded, if the
    /// server does not offer STARTTLS or refuses it.
    StartTls,
    /// No TLS at all. Only when the account explicitly says so; passwords then still need
    /// `allow_plaintext_password` (seed V0031).
    Plaintext,
}

impl Security {
    /// The standard port for this security mode.
    pub fn default_port(self) -> u16 {
        match self {
            Security::ImplicitTls => 993,
            Security::StartTls | Security::Plaintext => 143,
        }
    }
}

/// Everything needed to open a session to one account's server.
#[derive(Clone, Debug)]
pub struct ConnectConfig {
    /// Host name or IP literal.
    pub host: String,
    /// Port; `None` means the default for `security`.
    pub port: Option<u16>,
    /// Transport protection.
    pub security: Security,
    /// Certificates.
    pub tls: TlsOptions,
    /// Bound on TCP connect (per address), the TLS handshake, and the greeting.
    pub connect_timeout: Duration,
    /// Engine timers: command timeout, keepalive, IDLE refresh, LOGOUT wait.
    pub engine: EngineConfig,
    /// Which mechanisms to try and whether a password may cross cleartext.
    pub auth_policy: Policy,
    /// A command to run instead of connecting (argv, no shell): the session speaks IMAP over
    /// its stdin and stdout, and must be greeted with PREAUTH (the command authenticates, e.g.
    /// `ssh host /usr/lib/dovecot/imap`). `host`, `port`, `security` and `tls` do not apply.
    pub tunnel: Option<Vec<String>>,
}

impl ConnectConfig {
    /// Implicit TLS to `host:993` with default timeouts and policy.
    pub fn new(host: impl Into<String>) -> Self {
        ConnectConfig {
            host: host.into(),
            port: None,
            security: Security::ImplicitTls,
            tls: TlsOptions::default(),
            connect_timeout: Duration::from_secs(30),
            engine: EngineConfig::default(),
            auth_policy: Policy::password(),
            tunnel: None,
        }
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(self.security.default_port())
    }
}
