//! Talking to the live server from a command: one tokio runtime per command, one session
//! opened through the sync engine ([`ServerSession`]), and the rules for what the user sees of
//! the server.
//!
//! * `[ALERT]` text always reaches the user, on stderr, marked as coming from the server
//!   (seed V0063; RFC 3501 7.1 says the client MUST present it).
//! * A BYE ends the session with an error that carries the server's text (seed V0064): the
//!   driver's error already holds it, and [`server_error`] keeps it in the message.
//! * A server that cannot be reached at all (connection refused, no route, timeout) is
//!   [`Connect::Unreachable`]: commands that change mail then leave their change queued in the
//!   local mirror for the next sync. Every other failure (TLS, authentication, a BYE) is an
//!   error with exit status 3, since retrying later would not help.

use std::future::Future;

use mailfold_sync::inspect::{Notice, ServerSession, SessionError};
use mailfold_sync::{NetRemote, Remote};

use crate::account;
use crate::config::Account;
use crate::exit::ServerError;
use crate::term;

/// Why a session could not be opened.
#[derive(Debug)]
pub enum Connect {
    /// The server is not reachable now; try again later (the change stays queued).
    Unreachable(String),
    /// Anything else: TLS, authentication, configuration, a BYE.
    Failed(anyhow::Error),
}

/// Runs a future to completion on a fresh single-threaded runtime. Commands are short and
/// talk to one server, so one thread is enough and keeps the process small.
pub fn block_on<F: Future>(fut: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the I/O runtime: {e}"))?;
    Ok(rt.block_on(fut))
}

/// Connects and logs in to the account's server.
pub async fn connect(name: &str, acct: &Account) -> Result<ServerSession, Connect> {
    let spec = account::session_spec(name, acct).map_err(Connect::Failed)?;
    tracing::info!(host = %spec.host, port = spec.port, "connecting");
    match ServerSession::connect(&spec).await {
        Ok(mut s) => {
            show_notifications(&mut s, &acct.host);
            Ok(s)
        }
        Err(e) if e.is_unreachable() => Err(Connect::Unreachable(crate::exit::with_subject(
            &format!("{}:{}", acct.host, acct.effective_port()),
            &e.to_string(),
        ))),
        Err(e) => Err(Connect::Failed(server_error(&acct.host, e))),
    }
}

/// An error from the session as an `anyhow::Error` with the right exit status: a refused
/// command is an ordinary failure (status 1) with the server's text (seed V0019); anything
/// that ends the session is a server error (status 3) with its text, BYE included (V0064).
pub fn server_error(host: &str, e: SessionError) -> anyhow::Error {
    let msg = crate::exit::with_subject(host, &e.to_string());
    if e.is_fatal() {
        anyhow::Error::new(ServerError(msg))
    } else {
        anyhow::anyhow!(msg)
    }
}

/// Prints what the server said on its own that the user must see: ALERT text (V0063), and a
/// BYE (V0064) as soon as it arrives.
pub fn show_notifications(session: &mut ServerSession, host: &str) {
    for n in session.take_notices() {
        show_notification(&n, host);
    }
}

/// Prints one thing the server said on its own (see [`show_notifications`]).
pub fn show_notification(n: &Notice, host: &str) {
    match n {
        Notice::Alert { text, encrypted } => {
            let how = if *encrypted {
                ""
            } else {
                " (over an unencrypted connection: anyone on the path could have written it)"
            };
            eprintln!(
                "mailfold: ALERT from server {host}{how}: {}",
                term::line(text)
            );
        }
        Notice::Bye { text } => {
            eprintln!(
                "mailfold: server {host} closed the session (BYE): {}",
                term::line(text)
            );
        }
        Notice::Other(other) => tracing::debug!(%other, "server notification"),
    }
}

/// Logs out, showing anything the server still had to say. A failed LOGOUT only matters in
/// the log: the command's work is done.
pub async fn logout(mut session: ServerSession, host: &str) {
    show_notifications(&mut session, host);
    if let Err(e) = session.logout().await {
        tracing::info!("LOGOUT: {e}");
    }
}

/// How a server step ended when the server may be away.
#[derive(Debug)]
pub enum Reached<T> {
    /// The work ran on the server.
    Done(T),
    /// The server was not contacted (`--offline`) or not reachable: the reason.
    Offline(String),
}

/// Connects (unless `offline`), runs `work`, shows the server's notifications and logs out.
/// A refused command is a failure with the server's text; a session that dies is a server
/// error; a server nobody answers for is [`Reached::Offline`].
pub fn with_session<T>(
    offline: bool,
    name: &str,
    acct: &Account,
    work: impl AsyncFnOnce(&mut ServerSession) -> Result<T, SessionError>,
) -> anyhow::Result<Reached<T>> {
    if offline {
        return Ok(Reached::Offline("--offline".into()));
    }
    block_on(async {
        let mut s = match connect(name, acct).await {
            Ok(s) => s,
            Err(Connect::Unreachable(why)) => return Ok(Reached::Offline(why)),
            Err(Connect::Failed(e)) => return Err(e),
        };
        let r = work(&mut s).await;
        show_notifications(&mut s, &acct.host);
        logout(s, &acct.host).await;
        r.map(Reached::Done)
            .map_err(|e| server_error(&acct.host, e))
    })?
}

/// Connects (unless `offline`) and returns the session as the sync engine's [`Remote`], for
/// a change run by the sync's applier ([`mailfold_sync::changes`]); `Ok(Err(why))` when the
/// server was not contacted (`--offline`) or not reachable. Close it with [`close_remote`].
pub fn open_remote(
    offline: bool,
    name: &str,
    acct: &Account,
) -> anyhow::Result<Result<NetRemote, String>> {
    if offline {
        return Ok(Err("--offline".into()));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the I/O runtime: {e}"))?;
    match rt.block_on(connect(name, acct)) {
        // The greeting's and the login's notifications were shown by `connect`.
        Ok(s) => Ok(Ok(s.into_remote(rt))),
        Err(Connect::Unreachable(why)) => Ok(Err(why)),
        Err(Connect::Failed(e)) => Err(e),
    }
}

/// Shows what the server said during the change that the user must see (ALERT text, seed
/// V0063) and logs out.
pub fn close_remote(mut remote: NetRemote, host: &str) {
    for a in remote.take_alerts() {
        eprintln!("mailfold: ALERT from server {host}: {}", term::line(&a));
    }
    for w in remote.take_warnings() {
        tracing::info!("{w}");
    }
    remote.logout();
}
