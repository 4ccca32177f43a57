//! Which commands may be written while others are in flight (RFC 3501 5.5, seed V0026).
//!
//! Three rules, checked before a queued command is written:
//! 1. **Barriers** change the connection state (SELECT, EXAMINE, CLOSE, UNSELECT, LOGOUT,
//!    STARTTLS, AUTHENTICATE, LOGIN, IDLE, ENABLE, COMPRESS, NOTIFY (it changes what the
//!    server may send unasked), and raw commands, whose effect we cannot know): one is
//!    written only when nothing is in flight, and nothing is written after it until it
//!    completes.
//! 2. **Sequence numbers**: a command that names messages by sequence number (FETCH, STORE,
//!    SEARCH, COPY, MOVE) may be written only while every command in flight is a FETCH, STORE
//!    or SEARCH by sequence number, the only commands during which a server must not send
//!    EXPUNGE (RFC 3501 7.4.1). Otherwise an EXPUNGE could renumber the messages between our
//!    writing the number and the server reading it.
//! 3. Everything else — UID commands, STATUS, LIST, APPEND, NOOP, … — pipelines freely.

use crate::command::Command;

/// How a command interacts with pipelining.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Class {
    /// Rule 1.
    pub barrier: bool,
    /// Rule 2: the command's arguments contain sequence numbers.
    pub uses_msn: bool,
    /// The server may not send EXPUNGE while this command is in progress.
    pub expunge_free: bool,
}

pub(crate) fn classify(cmd: &Command) -> Class {
    let barrier = matches!(
        cmd,
        Command::Select { .. }
            | Command::Examine { .. }
            | Command::Close
            | Command::Unselect
            | Command::Logout
            | Command::StartTls
            | Command::Authenticate { .. }
            | Command::Login { .. }
            | Command::Idle
            | Command::Enable(_)
            | Command::CompressDeflate
            | Command::Notify(_)
            | Command::Raw(_)
    );
    let (uses_msn, expunge_free) = match cmd {
        Command::Fetch { .. } | Command::Store { .. } => (true, true),
        Command::Search(s) => (!s.uid, !s.uid),
        Command::Copy { .. } | Command::Move { .. } => (true, false),
        _ => (false, false),
    };
    Class {
        barrier,
        uses_msn,
        expunge_free,
    }
}

/// Whether a command of class `next` may be written now, given the classes in flight.
pub(crate) fn may_write(next: Class, in_flight: impl Iterator<Item = Class> + Clone) -> bool {
    let mut flying = in_flight.clone().peekable();
    if flying.peek().is_none() {
        return true;
    }
    if next.barrier || in_flight.clone().any(|c| c.barrier) {
        return false;
    }
    if next.uses_msn {
        return in_flight.into_iter().all(|c| c.expunge_free);
    }
    true
}
