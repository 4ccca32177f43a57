//! # mailfold-net: the tokio driver for the IMAP engine
//!
//! Opens connections (TCP over IPv4/IPv6, implicit TLS or STARTTLS with rustls), runs the
//! sans-IO engine of `mailfold-proto` over them, and offers a typed async API
//! ([`Session`]) to the sync engine and the CLI. It is deliberately thin: protocol
//! decisions live in the engine; this crate owns sockets, time, TLS and the connection
//! policy (RFC 8314, RFC 9051 6.2.1, seeds N1, N2, N7, V0031–V0035).
//!
//! Modules: [`tls`] (rustls configuration, what a handshake negotiated), [`x509`]
//! (certificate summaries for display), [`connect`] (TCP with timeouts), [`stream`] (the
//! transport), [`session`] (the driver and its typed commands), [`stats`] (traffic
//! counters), [`error`].
#![forbid(unsafe_code)]

pub mod connect;
pub mod error;
pub mod session;
pub mod stats;
pub mod stream;
pub mod tls;
pub mod x509;

pub use error::{CertProblem, Error};
pub use session::{
    AuthAttempt, AuthInfo, ConnectConfig, ConnectFailure, FetchReport, FetchSink, IdleStop,
    Notification, QresyncParams, Security, SelectOptions, Selected, Session, StoreReport,
    LOGIN_COMMAND, MAX_FETCHED, MAX_NOTES,
};
pub use stats::Stats;
pub use tls::{TlsInfo, TlsOptions, TrustSource};
pub use x509::CertSummary;
