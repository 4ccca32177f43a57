//! What the CLI's commands that change nothing ask of a server, over a session of their own:
//! the narrow entry points that keep the network driver and the protocol types below this
//! crate.
//!
//! - [`session`]: [`ServerSession`], a logged-in session opened with the sync's own
//!   connection settings, what the server says on its own ([`Notice`]), and how a session
//!   fails ([`SessionError`]);
//! - [`probe`]: how far a connection gets (TLS, certificate, greeting, capabilities, login),
//!   as a report;
//! - [`folders`]: the server's folder tree with counts, under the account's root (V0022);
//! - [`search`]: `UID SEARCH` in an EXAMINEd folder, and the query's vocabulary;
//! - [`transcript`]: a raw server stream read back as the parser understands it;
//! - [`login_messages`]: the SASL messages that would carry a secret, for the output
//!   scrubber.
//!
//! None of them changes mail: changes go through [`crate::changes`].

pub mod folders;
mod login_messages;
pub mod probe;
pub mod search;
pub mod session;
pub mod transcript;

pub use folders::ServerFolder;
pub use login_messages::login_messages;
/// A calendar date-time with its UTC offset (RFC 3501 `date-time`), to and from Unix seconds:
/// the one calendar conversion of the program, for the CLI's dates too.
pub use mailfold_proto::response::DateTime;
pub use session::{Notice, ServerSession, SessionError};

/// A folder name (UTF-8, levels already joined by the server's delimiter) as it goes on the
/// wire: modified UTF-7 (RFC 3501 5.1.3).
pub fn wire_name(joined: &str) -> Vec<u8> {
    mailfold_proto::core::Mailbox::from_utf8(joined)
        .as_wire()
        .to_vec()
}
