//! [`ServerSession`]: a logged-in session a command opens for itself, and [`SessionError`],
//! how it failed.
//!
//! The session is `mailfold-net`'s, opened with the same settings as the sync's
//! ([`crate::remote_imap::connect_config`]), so every TLS, STARTTLS and SASL rule applies to a
//! command exactly as to a sync. What the server says on its own (an `[ALERT]`, a BYE) is kept
//! for the caller to show, as is any other unsolicited data, for its log
//! ([`ServerSession::take_notices`]).

use std::fmt;

use mailfold_net::{Error as NetError, Session};
use mailfold_proto::engine::Event;

use crate::account::AccountSpec;
use crate::remote_imap::NetRemote;

/// Why a session could not be opened or a command on it failed. Its text is the driver's,
/// which carries the server's own words (a BYE's, a NO's).
#[derive(Debug)]
pub struct SessionError(pub(crate) NetError);

impl SessionError {
    /// A command the client refused to send; `text` says why.
    pub(crate) fn not_sent(text: impl Into<String>) -> SessionError {
        SessionError(NetError::Command {
            status: "not sent".into(),
            text: text.into(),
        })
    }

    /// True when nobody answered (connection refused, no route, a timeout), as opposed to
    /// a server that said no: a change can then wait in the mirror for the next sync.
    pub fn is_unreachable(&self) -> bool {
        matches!(self.0, NetError::Io(..) | NetError::Timeout(_))
    }

    /// True when the session cannot be used any more (anything but a refused command).
    pub fn is_fatal(&self) -> bool {
        self.0.is_fatal()
    }

    /// The server's text when it answered the command with a tagged NO.
    pub fn refusal(&self) -> Option<&str> {
        match &self.0 {
            NetError::Command { status, text } if status == "NO" => Some(text),
            _ => None,
        }
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SessionError {}

impl From<NetError> for SessionError {
    fn from(e: NetError) -> Self {
        SessionError(e)
    }
}

/// What the server said on its own that the user must see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// `[ALERT]` text (RFC 3501 7.1: the client MUST present it; seed V0063), and whether
    /// the connection was encrypted when it arrived.
    Alert {
        /// The server's text.
        text: String,
        /// Sent over TLS.
        encrypted: bool,
    },
    /// The server ended the session (BYE, seed V0064), with its text.
    Bye {
        /// The server's text.
        text: String,
    },
    /// Any other unsolicited data, described for a log (never shown as the server's words).
    Other(String),
}

/// A logged-in session to an account's server, opened by a command for itself.
pub struct ServerSession {
    pub(crate) session: Session,
}

impl fmt::Debug for ServerSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSession").finish_non_exhaustive()
    }
}

impl ServerSession {
    /// Connects and logs in with the account's settings, secret and time limits. A pending
    /// secret ([`crate::account::PendingSecret`]) is waited for, on the blocking pool, only
    /// once the greeting and capabilities are in; one that fails ends the session unused
    /// (no LOGOUT, seed V0011) with its own line as a configuration error.
    pub async fn connect(account: &AccountSpec) -> Result<ServerSession, SessionError> {
        let cfg = crate::remote_imap::session_config(account);
        let mut session = Session::open(&cfg).await?;
        let creds = if account.secret.is_pending() {
            let a = account.clone();
            tokio::task::spawn_blocking(move || crate::remote_imap::credentials(&a))
                .await
                .map_err(|e| NetError::Config(format!("waiting for the secret: {e}")))?
        } else {
            crate::remote_imap::credentials(account)
        };
        let creds = creds.map_err(|e| NetError::Config(e.to_string()))?;
        session.log_in(&cfg, Some(&creds)).await?;
        Ok(ServerSession { session })
    }

    /// What the server said on its own since the last call.
    pub fn take_notices(&mut self) -> Vec<Notice> {
        self.session
            .take_notifications()
            .into_iter()
            .map(|n| match n {
                Event::Alert { text, encrypted } => Notice::Alert { text, encrypted },
                Event::Bye { text } => Notice::Bye { text },
                other => Notice::Other(format!("{other:?}")),
            })
            .collect()
    }

    /// True when the server advertises `capability` (as last seen).
    pub fn has_capability(&self, capability: &str) -> bool {
        self.session
            .capabilities()
            .is_some_and(|c| c.has(capability))
    }

    /// Logs out. Take the notices first: what arrives with the LOGOUT answer is logged.
    pub async fn logout(self) -> Result<(), SessionError> {
        Ok(self.session.logout().await?)
    }

    /// The session as the sync engine's [`crate::Remote`], run on `rt` (the runtime it was
    /// opened on), for a change run by the sync's applier ([`crate::changes`]).
    pub fn into_remote(self, rt: tokio::runtime::Runtime) -> NetRemote {
        NetRemote::from_session(rt, self.session)
    }
}
