//! An IMAP session over tokio: owns the transport and drives the sans-IO engine.
//!
//! The driver only moves bytes and time: every protocol decision (tags, pipelining,
//! literals, STARTTLS sequencing, SASL continuations, keepalive) is the engine's. What lives
//! here is the connection policy of RFC 8314 and RFC 9051 6.2.1 (seed N1): which
//! transport to open, refusing to continue when STARTTLS is missing or refused, refusing a
//! PREAUTH over cleartext when TLS is required, and which authentication to try (seeds
//! V0031, V0032, V0034), with the mechanism order and fallback rule from `mailfold_sasl`.
//!
//! Time: the engine's timers run on tokio's clock and fire only while a `Session` method is
//! driving the connection. A holder that keeps a session without commands drives it with
//! [`Session::keepalive_tick`] (seed V0025) or watches with [`Session::idle`] /
//! [`Session::idle_or_poll`] (seed V0028); there is no background task that could write
//! behind the caller's back.
//!
//! The module is split along the session's seams, bottom up:
//! - `config`: what to connect to and how ([`ConnectConfig`], [`Security`]);
//! - `report`: what opening a session learned, kept for `mailfold probe` ([`AuthInfo`],
//!   [`ConnectFailure`]);
//! - `outcome`: how the engine's outcomes and errors become this crate's [`Error`];
//! - `driver`: the [`Session`] itself and its drive loop (reads, writes, timers, the TLS
//!   upgrade, sorting the engine's events), and pipelined [`Session::submit`]/[`Session::wait`];
//! - `open` and `auth`: the connection policy: transport, greeting, STARTTLS, then
//!   authentication;
//! - `commands`: typed commands with typed results;
//! - `watch`: IDLE, keepalive and polling for a holder that waits on the server.
//!
//! [`Error`]: crate::Error

mod auth;
mod commands;
mod config;
mod driver;
mod open;
mod outcome;
mod report;
mod watch;

pub use commands::{FetchReport, QresyncParams, SelectOptions, Selected, StoreReport};
pub use config::{ConnectConfig, Security};
pub use driver::{FetchSink, Notification, Session, MAX_FETCHED, MAX_NOTES};
pub use report::{AuthAttempt, AuthInfo, ConnectFailure, LOGIN_COMMAND};
pub use watch::IdleStop;
