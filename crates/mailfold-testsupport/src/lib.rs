//! mailfold-testsupport: real and hostile IMAP servers for mailfold's tests.
//!
//! This crate is a dev-dependency only. It offers three things:
//!
//! - [`Dovecot`]: a private Dovecot per test, on free loopback ports, with its own CA, test
//!   users, every SASL mechanism Dovecot supports (including OAuth through a local
//!   introspection endpoint), and STARTTLS, implicit-TLS and optional cleartext listeners.
//! - [`ScriptedServer`]: a loopback server that plays a script of steps (send, expect a line,
//!   answer with the client's tag, start TLS with a good or bad certificate, trickle, stall,
//!   close) and records every byte the client sent, for hostile-server tests.
//! - [`FaultProxy`]: a loopback proxy that cuts, stalls, delays or fragments a connection to a
//!   real server, chosen per connection by a seedable generator, for reliability tests.
//!
//! A typical hostile-server test scripts the server, points the client at it, and checks what
//! the client sent:
//!
//! ```no_run
//! use mailfold_testsupport::{CertKind, Script, ScriptedServer};
//!
//! // STARTTLS answered OK, then a certificate for the wrong host.
//! let server = ScriptedServer::start(
//!     Script::new()
//!         .send_line("* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] ready")
//!         .expect("STARTTLS")
//!         .send_tagged("OK Begin TLS negotiation now")
//!         .start_tls(CertKind::WrongHost),
//! );
//! // ... run the client against server.addr() with server.ca_file() as its CA ...
//! assert!(!server.received_contains(b"the-password"));
//! ```
//!
//! and a test against a real server starts its own Dovecot:
//!
//! ```no_run
//! use mailfold_testsupport::Dovecot;
//!
//! let dovecot = Dovecot::start();
//! let user = dovecot.user(0);
//! dovecot.deliver(&user.name, "INBOX", b"Subject: hi\r\n\r\nbody\r\n");
//! // connect to dovecot.imaps_addr() (implicit TLS) or dovecot.imap_addr() (STARTTLS),
//! // trusting dovecot.ca_file(), and log in with user.name / user.password or user.token.
//! ```
//!
//! A test that needs Cyrus, `sasl2-bin` or notmuch starts with
//! [`require_or_skip!`]`(Tool::…)`: it skips visibly on a machine without the tool, and fails
//! under CI or when `scripts/test` installed the tool (see [`require`]).
//!
//! Being test code, setup failures panic with a message that says what to fix; but no wait is
//! unbounded, and every thread and process started here ends when its owner is dropped.

#![forbid(unsafe_code)]

pub mod cyrus;
mod dovecot;
mod fault;
mod instance;
mod oauth;
mod pki;
mod ports;
mod require;
mod rng;
mod scripted;

pub use cyrus::{Cyrus, CyrusBuilder, RealServer, CYRUS_ADMIN, CYRUS_MECHANISMS};
pub use dovecot::{Dovecot, DovecotBuilder, Layout, Plaintext, ANONYMOUS_USER, MECHANISMS};
pub use fault::{Direction, Fault, FaultPlan, FaultProxy};
pub use instance::TestUser;
pub use pki::{CertKind, TestPki};
pub use ports::free_port;
pub use require::{find_program, require, require_that, Tool, CI_ENV};
pub use rng::SplitMix64;
pub use scripted::{ConnectionReport, Script, ScriptedServer, Step};
