//! The IMAP client state machine: tags, pipelining, continuation requests, session state
//! and timers, with no I/O and no clock.
//!
//! [`Client`] turns commands into bytes to write and server bytes into [`Event`]s. The
//! connection states are those of RFC 3501 section 3 ([`ConnState`]); every untagged
//! response updates [`SessionState`] whenever it arrives (seeds V0001, C0002, C0004, V0024).
//! Commands are pipelined within the limits of RFC 3501 5.5 (see `pipeline`, seed V0026).
//! STARTTLS, AUTHENTICATE (driving a [`mailfold_sasl::Mechanism`]) and IDLE are handled
//! here, so the driver (`mailfold-net`) makes no protocol decision of its own.

mod attribution;
mod budget;
mod notice;
mod pipeline;
mod session;
mod tags;
mod untagged;
mod wire;

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use mailfold_sasl::{Mechanism, SaslError};

use crate::command::Command;
use crate::core::{Mailbox, Tag};
use crate::parse::ParserConfig;
use crate::response::{
    Code, Esearch, Fetch, GreetingKind, MailboxList, MailboxStatus, Namespaces, Response,
    StatusKind, StatusResponse,
};
use crate::seqset::UidSet;

use attribution::{Scope, Target, Wants};

pub use session::{Capabilities, MailboxChange, MailboxState, SessionState, MAX_KNOWN_UIDS};
pub use wire::BodyPart;

/// Most LIST/LSUB/STATUS entries, raw responses, ID fields or ENABLED names one command may
/// collect (256 Ki; far more folders than any real account has). A server that sends more
/// fails the connection rather than growing memory without bound.
pub const MAX_COLLECTED: usize = 1 << 18;

/// Most numbers one SEARCH may collect (16 Mi, 64 MiB): more than any mailbox holds.
pub const MAX_SEARCH_IDS: usize = 1 << 24;

use pipeline::{classify, may_write, Class};
use tags::TagGen;
use wire::{Incoming, Input, Segment};

/// Engine settings. The defaults follow the seed: NOOP after 10 minutes without traffic
/// (seed V0025), IDLE re-issued after 28 minutes (RFC 2177 asks for less than 29).
///
/// The time limits (`command_timeout`, `command_budget`, `per_message`, `per_message_cap`,
/// `min_rate`) work together as described in the `budget` module docs: silence, an
/// unfinished response, and a per-command budget scaled by what the command asks for and
/// earned by the data that arrives for it. With the defaults a NOOP, SELECT, STATUS, LIST
/// or LOGIN gets 2 minutes plus 1 s per 16 KiB of data it receives; a UID FETCH of 50
/// bodies gets 2 minutes + 50 × 250 ms, plus the same for its bytes; an APPEND of 1 MiB
/// gets 2 minutes + 64 s.
#[derive(Clone, Debug)]
pub struct Config {
    /// Send NOOP after this long without any traffic while authenticated (seed V0025).
    pub keepalive: Duration,
    /// End and re-issue IDLE after this long (RFC 2177: "at least every 29 minutes").
    pub idle_refresh: Duration,
    /// A command (or the greeting) that sees no response bytes for this long fails the
    /// connection: a silently dropped connection is detected, never a hang. A response
    /// that has not finished (no CRLF) this long after its first byte, plus the time its
    /// bytes would take at `min_rate`, is a stall too, however many bytes keep arriving.
    /// Default 60 s.
    pub command_timeout: Duration,
    /// The base time every command may take from the moment it is written (or the moment
    /// the command before it completed, when pipelined), before the allowances below.
    /// Default 2 minutes.
    pub command_budget: Duration,
    /// Added to a command's budget for each message it names (FETCH, STORE, COPY, MOVE,
    /// UID EXPUNGE by their sets; SEARCH, EXPUNGE and CLOSE by the mailbox size): the
    /// server's time to find and read each one. Default 250 ms.
    pub per_message: Duration,
    /// Ceiling of the per-message part of a budget (a set that names four billion UIDs
    /// must not buy years). Default 1 hour.
    pub per_message_cap: Duration,
    /// The slowest data rate, in bytes per second, that still counts as a live server:
    /// each byte of data received for a command adds `1 / min_rate` s to its budget, and
    /// an APPEND's own size is allowed at this rate. Untagged status lines (`* OK still
    /// here`) earn nothing. Default 16 KiB/s.
    pub min_rate: u32,
    /// How long to wait for the tagged OK to LOGOUT (seed N2).
    pub logout_timeout: Duration,
    /// Seed for tag generation (seed C0001). Supply OS randomness in real use; tests fix it.
    pub tag_seed: u64,
    /// Parser limits. FETCH bodies above `framing.max_inline_literal` are streamed as
    /// [`Event::BodyChunk`]s; `expect_greeting` is forced on.
    pub parser: ParserConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            keepalive: Duration::from_secs(10 * 60),
            idle_refresh: Duration::from_secs(28 * 60),
            command_timeout: Duration::from_secs(60),
            command_budget: Duration::from_secs(120),
            per_message: Duration::from_millis(250),
            per_message_cap: Duration::from_secs(3600),
            min_rate: 16 * 1024,
            logout_timeout: Duration::from_secs(5),
            tag_seed: 0x5eed,
            parser: ParserConfig::default(),
        }
    }
}

/// The connection states of RFC 3501 section 3, plus the wait for the greeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    /// Connected, greeting not yet received.
    Greeting,
    /// Not authenticated (greeting OK).
    NotAuthenticated,
    /// Authenticated (after LOGIN/AUTHENTICATE, or a PREAUTH greeting).
    Authenticated,
    /// A mailbox is selected.
    Selected,
    /// LOGOUT completed, BYE received, or the connection failed.
    Logout,
}

/// Identifies a submitted command. Responses are matched to handles, never to tag strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandHandle(u64);

/// Something to write to the transport.
#[derive(Debug, PartialEq, Eq)]
pub enum Transmit {
    /// These bytes, in order.
    Data(Vec<u8>),
    /// The driver writes exactly `len` bytes of the literal it holds for `handle` (a
    /// streamed APPEND) before anything a later `poll_transmit` returns.
    Literal {
        /// The APPEND this literal belongs to.
        handle: CommandHandle,
        /// Exact byte count to write.
        len: u64,
    },
}

/// How a command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Tagged OK.
    Ok {
        /// Response code, e.g. `[READ-WRITE]`, `[APPENDUID …]`.
        code: Option<Code>,
        /// Human text.
        text: String,
    },
    /// Tagged NO: the server could not do it.
    No {
        /// Response code, e.g. `[TRYCREATE]`.
        code: Option<Code>,
        /// The server's text (seed V0019: shown to the user).
        text: String,
    },
    /// Tagged BAD: the server did not understand it.
    Bad {
        /// Response code.
        code: Option<Code>,
        /// The server's text.
        text: String,
    },
    /// Never sent: the command could not be encoded for this server, or was refused by
    /// the engine (the reason says which).
    Rejected(String),
    /// The connection ended before the command completed.
    Aborted,
}

impl Outcome {
    /// True for a tagged OK.
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok { .. })
    }

    /// The response code, when the server sent one.
    pub fn code(&self) -> Option<&Code> {
        match self {
            Outcome::Ok { code, .. } | Outcome::No { code, .. } | Outcome::Bad { code, .. } => {
                code.as_ref()
            }
            _ => None,
        }
    }
}

/// Results of SEARCH or UID SEARCH (seed V0067), plain or ESEARCH (RFC 4731).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchResult {
    /// Numbers from `* SEARCH` (UIDs for UID SEARCH).
    pub ids: Vec<u32>,
    /// `(MODSEQ n)` from a CONDSTORE search.
    pub modseq: Option<u64>,
    /// The ESEARCH response, when RETURN options were used.
    pub esearch: Option<Esearch>,
}

/// Data collected for a command, typed by command.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandData {
    /// Nothing specific (NOOP, STORE .SILENT, CREATE, …).
    None,
    /// CAPABILITY.
    Capability(Capabilities),
    /// SELECT/EXAMINE: the mailbox state when the tagged OK arrived (seeds V0036–V0038).
    Select(MailboxState),
    /// LIST/LSUB entries, and STATUS responses returned by LIST-STATUS.
    List {
        /// The mailboxes.
        mailboxes: Vec<MailboxList>,
        /// STATUS responses (LIST … RETURN (STATUS …)).
        statuses: Vec<MailboxStatus>,
    },
    /// STATUS.
    Status(Option<MailboxStatus>),
    /// SEARCH / UID SEARCH.
    Search(SearchResult),
    /// FETCH / STORE: the items were delivered as [`Event::Fetch`]; this is their count.
    Fetch {
        /// How many FETCH responses were delivered for the command.
        count: u64,
    },
    /// ENABLED.
    Enabled(Vec<String>),
    /// ID (field, value) pairs; empty for `ID NIL`.
    Id(Vec<(String, Option<String>)>),
    /// NAMESPACE.
    Namespace(Namespaces),
    /// AUTHENTICATE: the mechanism's error when it cancelled the exchange with `*`.
    Auth {
        /// Why the mechanism gave up, if it did (a server-proof failure is in here).
        sasl_error: Option<SaslError>,
    },
    /// A raw command (seed V0061): every untagged response received while it was the only
    /// command in flight.
    Raw(Vec<Response>),
}

/// A finished command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The command.
    pub handle: CommandHandle,
    /// The tagged status, or why there is none.
    pub outcome: Outcome,
    /// Data the command collected.
    pub data: CommandData,
    /// UIDs reported expunged by `VANISHED (EARLIER)` in answer to this command: a SELECT or
    /// EXAMINE with QRESYNC, or a UID FETCH with the VANISHED modifier (RFC 7162 3.2.5.2,
    /// 3.2.6). `None` when the server sent none. The sync engine removes these messages.
    pub vanished: Option<UidSet>,
}

/// Something the driver or the application must learn about.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The greeting arrived (OK or PREAUTH; a BYE greeting ends in [`Event::Closed`]).
    Greeting {
        /// OK or PREAUTH.
        kind: GreetingKind,
        /// The greeting text.
        text: String,
    },
    /// A command completed.
    Completed(Completion),
    /// A FETCH response: for `handle`'s FETCH/STORE, or unsolicited (`None`) when another
    /// client changed flags (seed V0023).
    Fetch {
        /// The command it answers, if any.
        handle: Option<CommandHandle>,
        /// The response; streamed bodies appear as `BodyValue::Streamed` (length only).
        fetch: Fetch,
    },
    /// A large body literal begins; its bytes follow as [`Event::BodyChunk`]s.
    BodyStart {
        /// The FETCH command it answers, if known.
        handle: Option<CommandHandle>,
        /// Where the literal belongs.
        part: BodyPart,
    },
    /// Bytes of the current body literal, in order.
    BodyChunk {
        /// The FETCH command it answers, if known.
        handle: Option<CommandHandle>,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The current body literal is complete.
    BodyEnd {
        /// The FETCH command it answers, if known.
        handle: Option<CommandHandle>,
    },
    /// The selected mailbox changed (EXISTS, EXPUNGE, VANISHED, FLAGS, …); already applied
    /// to [`Client::session`].
    Mailbox(MailboxChange),
    /// `[ALERT]` text, which must reach the user (seed V0063). `encrypted` is false when it
    /// arrived over cleartext: then anyone on the path could have written it.
    Alert {
        /// The alert text.
        text: String,
        /// Whether the connection was encrypted when it arrived.
        encrypted: bool,
    },
    /// The server said BYE (seed V0064); the connection will close.
    Bye {
        /// The server's text.
        text: String,
    },
    /// The server accepted IDLE (`+`); changes now arrive as events until
    /// [`Client::idle_done`].
    IdleStarted(CommandHandle),
    /// STARTTLS was accepted: the driver must run the TLS handshake now, writing and
    /// reading nothing else, then call [`Client::tls_established`].
    StartTls,
    /// A response that could not be parsed was skipped (it poisons only itself).
    Malformed(String),
    /// An untagged response with no place in the session state (kept raw, e.g. vendor data).
    Untagged(Response),
    /// The session is over: cleanly after LOGOUT (`None`), or because of the error.
    Closed(Option<EngineError>),
}

/// Why the engine failed the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineError {
    /// The server broke the protocol (unknown tag, unexpected continuation, bad greeting).
    Protocol(String),
    /// Bytes arrived after STARTTLS's OK and before TLS: a response injection attempt
    /// (RFC 9051 6.2.1). The connection must be dropped.
    Injection(String),
    /// The server ended the session with BYE; its text (seed V0064).
    Bye(String),
    /// Nothing arrived in time.
    Timeout(String),
    /// The transport closed while the session was still in use.
    ConnectionClosed,
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Protocol(s) => write!(f, "server protocol violation: {s}"),
            EngineError::Injection(s) => write!(f, "response injection after STARTTLS: {s}"),
            EngineError::Bye(s) => write!(f, "server closed the session: {s}"),
            EngineError::Timeout(s) => write!(f, "timed out: {s}"),
            EngineError::ConnectionClosed => f.write_str("connection closed by the server"),
        }
    }
}

impl std::error::Error for EngineError {}

/// What a command is, for routing responses and state changes.
#[derive(Debug)]
enum Kind {
    Capability,
    Login,
    Authenticate {
        mech: Mech,
        error: Option<SaslError>,
    },
    StartTls,
    Select(Mailbox, bool),
    Close,
    Logout,
    List,
    Status(Mailbox),
    Search,
    /// FETCH or UID FETCH; `vanished` when the VANISHED modifier was sent.
    Fetch {
        scope: Scope,
        vanished: bool,
    },
    /// STORE or UID STORE; `scope` is `None` with `.SILENT` (no FETCH answers it).
    Store {
        scope: Option<Scope>,
    },
    Idle,
    Enable,
    Id,
    Namespace,
    Raw,
    /// MOVE or UID MOVE: its COPYUID comes in an untagged OK (RFC 6851 4.3).
    Move,
    Other,
}

/// A SASL mechanism in flight; `Debug` shows only its name (its state holds secrets).
struct Mech(Box<dyn Mechanism>);

impl fmt::Debug for Mech {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mechanism({})", self.0.name())
    }
}

/// IDLE's progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IdlePhase {
    /// `IDLE` written, waiting for `+`.
    Requested,
    /// Idling since this instant.
    Idling(Instant),
    /// DONE written; `refresh` when the engine ended it to re-issue it.
    DoneSent { refresh: bool },
}

/// Collected data while a command is in flight.
#[derive(Debug)]
enum Collect {
    Nothing,
    Capability(Option<Capabilities>),
    List(Vec<MailboxList>, Vec<MailboxStatus>),
    Status(Option<MailboxStatus>),
    Search(SearchResult),
    Fetch(u64),
    /// SELECT/EXAMINE: FETCH responses seen (QRESYNC's changed messages).
    Select(u64),
    Enabled(Vec<String>),
    Id(Vec<(String, Option<String>)>),
    Namespace(Option<Namespaces>),
    Raw(Vec<Response>),
}

impl Collect {
    /// What a command of this kind collects while it is in flight (empty yet).
    fn for_kind(kind: &Kind) -> Collect {
        match kind {
            Kind::Capability => Collect::Capability(None),
            Kind::List => Collect::List(Vec::new(), Vec::new()),
            Kind::Status(_) => Collect::Status(None),
            Kind::Search => Collect::Search(SearchResult::default()),
            Kind::Fetch { .. } | Kind::Store { .. } => Collect::Fetch(0),
            Kind::Select(..) => Collect::Select(0),
            Kind::Enable => Collect::Enabled(Vec::new()),
            Kind::Id => Collect::Id(Vec::new()),
            Kind::Namespace => Collect::Namespace(None),
            Kind::Raw => Collect::Raw(Vec::new()),
            _ => Collect::Nothing,
        }
    }

    /// What a command collected, as its completion carries it.
    fn into_data(self) -> CommandData {
        match self {
            Collect::Nothing => CommandData::None,
            Collect::Capability(c) => match c {
                Some(c) => CommandData::Capability(c),
                None => CommandData::None,
            },
            Collect::List(mailboxes, statuses) => CommandData::List {
                mailboxes,
                statuses,
            },
            Collect::Status(s) => CommandData::Status(s),
            Collect::Search(s) => CommandData::Search(s),
            Collect::Fetch(count) => CommandData::Fetch { count },
            // Only reached for a failed SELECT, whose data is not worth returning.
            Collect::Select(_) => CommandData::None,
            Collect::Enabled(v) => CommandData::Enabled(v),
            Collect::Id(v) => CommandData::Id(v),
            Collect::Namespace(n) => match n {
                Some(n) => CommandData::Namespace(n),
                None => CommandData::None,
            },
            Collect::Raw(v) => CommandData::Raw(v),
        }
    }
}

/// A command waiting to be written.
#[derive(Debug)]
struct Queued {
    handle: CommandHandle,
    cmd: Command,
    kind: Kind,
    internal: bool,
}

/// A command written (at least partly) and not yet completed.
#[derive(Debug)]
struct InFlight {
    handle: CommandHandle,
    tag: Tag,
    class: Class,
    kind: Kind,
    collect: Collect,
    /// What is left to write; empty once fully written.
    rest: VecDeque<Segment>,
    /// When the command (or its last part) was written.
    written_at: Instant,
    /// The command's name, for timeout messages.
    name: String,
    /// When its budget started: written, or the previous command completed (pipelining).
    started: Instant,
    /// The fixed part of its budget (`budget::allowance`).
    allowance: Duration,
    /// Bytes of data received while it was in flight; each earns `1 / min_rate` s.
    credit: u64,
    internal: bool,
    idle: Option<IdlePhase>,
    /// For IDLE: the application asked to stop.
    idle_stop: bool,
    /// `VANISHED (EARLIER)` UIDs collected for this command.
    vanished: Option<UidSet>,
    /// For MOVE: the `COPYUID` of an untagged OK sent while it ran (RFC 6851 4.3).
    copy_uid: Option<Code>,
}

/// The room the event queue keeps once drained (see [`Client::poll_event`]).
const EVENTS_KEPT: usize = 256;

/// The sans-IO IMAP client.
///
/// # Driving contract
///
/// The engine never touches a socket or a clock. The driver:
///
/// 1. creates it with [`Client::new`] right after the transport is connected (for implicit
///    TLS: after the handshake, with `encrypted = true`);
/// 2. after every read, passes the bytes to [`Client::handle_input`] (and calls
///    [`Client::handle_eof`] when the peer closes);
/// 3. after any call, drains [`Client::poll_transmit`] and writes the results in order
///    ([`Transmit::Literal`] means: write that many bytes of the caller's own APPEND data
///    now), then drains [`Client::poll_event`];
/// 4. sleeps until [`Client::poll_timeout`] (when `Some`) or the next read, whichever comes
///    first, and on waking at the deadline calls [`Client::handle_timeout`];
/// 5. on [`Event::StartTls`], stops reading and writing cleartext, runs the TLS handshake,
///    and calls [`Client::tls_established`] (or drops the connection if it fails);
/// 6. stops when [`Event::Closed`] arrives, closing the transport.
///
/// Commands are submitted with [`Client::submit`] (or [`Client::authenticate`]), which
/// returns a [`CommandHandle`] at once; the command is written as soon as the pipelining
/// rules allow and completes with [`Event::Completed`] carrying the same handle. Every
/// method that needs the time takes `now`.
#[derive(Debug)]
pub struct Client {
    config: Config,
    state: ConnState,
    session: SessionState,
    input: Input,
    tags: TagGen,
    next_handle: u64,
    queue: VecDeque<Queued>,
    in_flight: Vec<InFlight>,
    out: VecDeque<Transmit>,
    events: VecDeque<Event>,
    /// A synchronizing literal waits for `+`: nothing more is written until it arrives.
    awaiting_continuation: Option<CommandHandle>,
    /// STARTTLS's OK arrived; waiting for the driver's handshake.
    tls_pending: bool,
    /// The command currently receiving a streamed body literal.
    body_owner: Option<Option<CommandHandle>>,
    last_rx: Instant,
    last_tx: Instant,
    created: Instant,
    /// Since when bytes of an unfinished response have been waiting (see `budget`).
    partial_since: Option<Instant>,
    /// The parser's stream offset when `partial_since` was last checked.
    partial_offset: u64,
    bye: Option<String>,
    closed: bool,
}

/// Which clock ran out for a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Clock {
    /// No byte for `command_timeout`.
    Silence,
    /// Its budget (allowance plus earned time) is spent.
    Budget,
    /// LOGOUT's own short wait (seed N2).
    Logout,
}

impl Client {
    /// A client for a freshly connected transport. `encrypted` is true for implicit TLS.
    pub fn new(config: Config, encrypted: bool, now: Instant) -> Self {
        let input = Input::new(ParserConfig {
            expect_greeting: true,
            ..config.parser
        });
        let tags = TagGen::new(config.tag_seed);
        Client {
            config,
            state: ConnState::Greeting,
            session: SessionState {
                encrypted,
                ..Default::default()
            },
            input,
            tags,
            next_handle: 1,
            queue: VecDeque::new(),
            in_flight: Vec::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            awaiting_continuation: None,
            tls_pending: false,
            body_owner: None,
            last_rx: now,
            last_tx: now,
            created: now,
            partial_since: None,
            partial_offset: 0,
            bye: None,
            closed: false,
        }
    }

    /// The connection state (RFC 3501 section 3).
    pub fn state(&self) -> ConnState {
        self.state
    }

    /// What the session knows: capabilities, the selected mailbox, encryption.
    pub fn session(&self) -> &SessionState {
        &self.session
    }

    /// True once the session is over (see [`Event::Closed`]).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Number of commands submitted and not yet completed.
    pub fn pending(&self) -> usize {
        self.queue.iter().filter(|q| !q.internal).count()
            + self.in_flight.iter().filter(|c| !c.internal).count()
    }

    /// True when nothing at all is queued, in flight or waiting to be written, the engine's
    /// own keepalive NOOP and IDLE refreshes included. A driver that holds an idle session
    /// uses it to tell when a keepalive round trip has finished (seed V0025).
    pub fn is_quiet(&self) -> bool {
        self.queue.is_empty() && self.in_flight.is_empty() && self.out.is_empty()
    }

    /// Queues a command; it is written when the RFC 3501 5.5 rules allow. For
    /// AUTHENTICATE use [`Client::authenticate`]; IDLE ends with [`Client::idle_done`].
    pub fn submit(&mut self, cmd: Command) -> CommandHandle {
        let kind = match &cmd {
            Command::Capability => Kind::Capability,
            Command::Login { .. } => Kind::Login,
            Command::StartTls => Kind::StartTls,
            Command::Select { mailbox, .. } => Kind::Select(mailbox.clone(), false),
            Command::Examine { mailbox, .. } => Kind::Select(mailbox.clone(), true),
            Command::Close | Command::Unselect => Kind::Close,
            Command::Logout => Kind::Logout,
            Command::List(_) | Command::Lsub { .. } => Kind::List,
            Command::Status { mailbox, .. } => Kind::Status(mailbox.clone()),
            Command::Search(_) => Kind::Search,
            Command::Fetch { set, items, .. } => Kind::Fetch {
                scope: Scope {
                    target: Target::Seqs(set.clone()),
                    wants: Wants::of(items),
                },
                vanished: false,
            },
            Command::UidFetch {
                set,
                items,
                modifiers,
            } => Kind::Fetch {
                scope: Scope {
                    target: Target::Uids(set.clone()),
                    wants: Wants::of(items),
                },
                vanished: modifiers.vanished,
            },
            Command::Store { set, store, .. } => Kind::Store {
                scope: (!store.silent).then(|| Scope {
                    target: Target::Seqs(set.clone()),
                    wants: Wants::store(),
                }),
            },
            Command::UidStore { set, store, .. } => Kind::Store {
                scope: (!store.silent).then(|| Scope {
                    target: Target::Uids(set.clone()),
                    wants: Wants::store(),
                }),
            },
            Command::Idle => Kind::Idle,
            Command::Enable(_) => Kind::Enable,
            Command::Id(_) => Kind::Id,
            Command::Namespace => Kind::Namespace,
            Command::Raw(_) => Kind::Raw,
            Command::Move { .. } | Command::UidMove { .. } => Kind::Move,
            Command::Authenticate { .. } => {
                // Without a mechanism there is nothing to answer challenges with.
                let handle = self.new_handle();
                self.complete_now(
                    handle,
                    Outcome::Rejected("AUTHENTICATE needs Client::authenticate".into()),
                );
                return handle;
            }
            _ => Kind::Other,
        };
        self.enqueue(cmd, kind, false)
    }

    /// Queues `AUTHENTICATE` driven by `mech` (RFC 3501 6.2.2). With `sasl_ir` (the server
    /// advertises SASL-IR, RFC 4959) the initial response goes on the command line.
    pub fn authenticate(&mut self, mut mech: Box<dyn Mechanism>, sasl_ir: bool) -> CommandHandle {
        let initial = if sasl_ir {
            match mech.initial_response() {
                Ok(r) => r,
                Err(e) => {
                    let handle = self.new_handle();
                    self.complete_with(
                        handle,
                        Outcome::Rejected(format!("SASL: {e}")),
                        CommandData::Auth {
                            sasl_error: Some(e),
                        },
                    );
                    return handle;
                }
            }
        } else {
            None
        };
        let cmd = Command::Authenticate {
            mechanism: mech.name().to_string(),
            initial_response: initial,
        };
        self.enqueue(
            cmd,
            Kind::Authenticate {
                mech: Mech(mech),
                error: None,
            },
            false,
        )
    }

    /// Ends an IDLE started with `handle` (writes DONE once the server has accepted it);
    /// the IDLE then completes normally. Does nothing for other handles.
    pub fn idle_done(&mut self, handle: CommandHandle, now: Instant) {
        if let Some(cmd) = self.in_flight.iter_mut().find(|c| c.handle == handle) {
            if cmd.idle.is_some() {
                cmd.idle_stop = true;
                if let Some(IdlePhase::Idling(_)) = cmd.idle {
                    self.send_done(handle, false, now);
                }
            }
        } else if let Some(pos) = self.queue.iter().position(|q| q.handle == handle) {
            // Never written: just drop it.
            if matches!(self.queue[pos].kind, Kind::Idle) {
                self.queue.remove(pos);
                self.complete_now(
                    handle,
                    Outcome::Ok {
                        code: None,
                        text: "IDLE not started".into(),
                    },
                );
            }
        }
    }

    /// Bytes received from the server.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        if self.closed {
            return;
        }
        if data.is_empty() {
            return;
        }
        if self.tls_pending {
            // Nothing may arrive between STARTTLS's OK and the handshake (RFC 9051 6.2.1).
            self.fail(EngineError::Injection(format!(
                "{} bytes after the STARTTLS OK",
                data.len()
            )));
            return;
        }
        self.last_rx = now;
        self.input.feed(data);
        self.process_input(now);
        self.track_partial(now);
        self.pump(now);
    }

    /// The server closed the transport.
    pub fn handle_eof(&mut self, _now: Instant) {
        if self.closed {
            return;
        }
        let logout_done = self.state == ConnState::Logout;
        if logout_done {
            self.close(None);
        } else if let Some(text) = self.bye.clone() {
            self.fail(EngineError::Bye(text));
        } else {
            self.fail(EngineError::ConnectionClosed);
        }
    }

    /// The TLS handshake after STARTTLS succeeded. Capabilities and every other piece of
    /// state learnt over cleartext are discarded (RFC 9051 6.2.1, seed V0033).
    pub fn tls_established(&mut self, now: Instant) {
        if !self.tls_pending {
            return;
        }
        self.tls_pending = false;
        self.input = Input::new(ParserConfig {
            // After STARTTLS no new greeting comes (RFC 3501 6.2.1).
            expect_greeting: false,
            ..self.config.parser
        });
        self.session = SessionState {
            encrypted: true,
            ..Default::default()
        };
        self.last_rx = now;
        self.last_tx = now;
        self.partial_since = None;
        self.partial_offset = 0;
        self.pump(now);
    }

    /// The next bytes to write, if any.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        self.pump(now);
        let t = self.out.pop_front()?;
        self.last_tx = now;
        Some(t)
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        let e = self.events.pop_front();
        if e.is_none() && self.events.capacity() > EVENTS_KEPT {
            // One read of short FETCH responses (`UID FETCH 1:* (UID)` over a large folder)
            // queues thousands of events at once; the queue's room is given back once they
            // are taken, so that it does not stay at the largest burst for the session.
            self.events.shrink_to(EVENTS_KEPT);
        }
        e
    }

    /// When [`Client::handle_timeout`] must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed || self.tls_pending {
            return None;
        }
        let mut best: Option<Instant> = None;
        let mut consider = |t: Instant| {
            best = Some(best.map_or(t, |b| b.min(t)));
        };
        if self.state == ConnState::Greeting {
            consider(self.created + self.config.command_timeout);
        }
        if let Some(t) = self.partial_deadline() {
            consider(t);
        }
        for c in &self.in_flight {
            match c.idle {
                Some(IdlePhase::Idling(since)) => {
                    if !c.idle_stop {
                        consider(since + self.config.idle_refresh);
                    }
                }
                _ => {
                    if let Some((t, _)) = self.command_deadline(c) {
                        consider(t);
                    }
                }
            }
        }
        if self.keepalive_due_state() {
            consider(self.last_rx.max(self.last_tx) + self.config.keepalive);
        }
        best
    }

    /// Timers: command and greeting timeouts, keepalive NOOP (seed V0025), IDLE refresh.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed || self.tls_pending {
            return;
        }
        if self.state == ConnState::Greeting && now >= self.created + self.config.command_timeout {
            self.fail(EngineError::Timeout("no greeting from the server".into()));
            return;
        }
        if let (Some(t), Some(since)) = (self.partial_deadline(), self.partial_since) {
            if now >= t {
                let what = format!(
                    "a response from the server has not finished after {} s ({} bytes without \
                     an end of line); the server is stalling",
                    now.saturating_duration_since(since).as_secs(),
                    self.input.buffered()
                );
                self.fail(EngineError::Timeout(what));
                return;
            }
        }
        let mut refresh = None;
        let mut expired = None;
        for c in &self.in_flight {
            match c.idle {
                Some(IdlePhase::Idling(since)) => {
                    if !c.idle_stop && now >= since + self.config.idle_refresh {
                        refresh = Some(c.handle);
                    }
                }
                _ => match self.command_deadline(c) {
                    Some((t, clock)) if now >= t => {
                        expired = Some(self.expiry_text(c, clock, now));
                        break;
                    }
                    _ => {}
                },
            }
        }
        if let Some(what) = expired {
            self.fail(EngineError::Timeout(what));
            return;
        }
        if let Some(h) = refresh {
            self.send_done(h, true, now);
        }
        if self.keepalive_due_state()
            && now >= self.last_rx.max(self.last_tx) + self.config.keepalive
        {
            let kind = Kind::Other;
            self.enqueue(Command::Noop, kind, true);
            self.last_tx = now;
        }
        self.pump(now);
    }

    // ----- internals -----

    /// When the unfinished response waiting in the parser becomes a stall: the silence
    /// timeout after its first byte, plus its bytes' time at `min_rate` (see `budget`).
    fn partial_deadline(&self) -> Option<Instant> {
        let since = self.partial_since?;
        let bytes = self.input.buffered() as u64;
        since.checked_add(
            self.config
                .command_timeout
                .saturating_add(budget::transfer_time(bytes, self.config.min_rate)),
        )
    }

    /// Notes whether an unfinished response is waiting, and since when: the clock restarts
    /// whenever the parser gets past something (a response, literal bytes, skipped garbage).
    fn track_partial(&mut self, now: Instant) {
        let offset = self.input.offset();
        if self.input.buffered() == 0 {
            self.partial_since = None;
        } else if self.partial_since.is_none() || offset != self.partial_offset {
            self.partial_since = Some(now);
        }
        self.partial_offset = offset;
    }

    /// When command `c` runs out of time and which clock runs out first: silence, or its
    /// budget (allowance plus the time its data earned); LOGOUT has only its own short
    /// wait. `None` when the deadline is too far away to represent.
    fn command_deadline(&self, c: &InFlight) -> Option<(Instant, Clock)> {
        let last = c.written_at.max(self.last_rx);
        if matches!(c.kind, Kind::Logout) {
            return last
                .checked_add(self.config.logout_timeout)
                .map(|t| (t, Clock::Logout));
        }
        let silence = last.checked_add(self.config.command_timeout);
        let earned = budget::transfer_time(c.credit, self.config.min_rate);
        let spent = c.started.checked_add(c.allowance.saturating_add(earned));
        match (silence, spent) {
            (Some(s), Some(b)) if b < s => Some((b, Clock::Budget)),
            (Some(s), _) => Some((s, Clock::Silence)),
            (None, Some(b)) => Some((b, Clock::Budget)),
            (None, None) => None,
        }
    }

    /// The error text for command `c` whose `clock` ran out.
    fn expiry_text(&self, c: &InFlight, clock: Clock, now: Instant) -> String {
        match clock {
            Clock::Logout => "no tagged OK to LOGOUT".to_string(),
            Clock::Silence => format!(
                "no response to command {} ({}) for {} s",
                c.tag,
                c.name,
                self.config.command_timeout.as_secs()
            ),
            Clock::Budget => format!(
                "command {} ({}) ran past its time budget: {} s allowed plus 1 s per {} bytes \
                 of data, {} bytes received in {} s; the server is too slow or stalling",
                c.tag,
                c.name,
                c.allowance.as_secs(),
                self.config.min_rate,
                c.credit,
                now.saturating_duration_since(c.started).as_secs()
            ),
        }
    }

    fn keepalive_due_state(&self) -> bool {
        matches!(self.state, ConnState::Authenticated | ConnState::Selected)
            && self.in_flight.is_empty()
            && self.queue.is_empty()
            && self.out.is_empty()
    }

    fn new_handle(&mut self) -> CommandHandle {
        let h = CommandHandle(self.next_handle);
        self.next_handle += 1;
        h
    }

    fn enqueue(&mut self, cmd: Command, kind: Kind, internal: bool) -> CommandHandle {
        let handle = self.new_handle();
        if self.closed {
            self.complete_now(handle, Outcome::Aborted);
            return handle;
        }
        self.queue.push_back(Queued {
            handle,
            cmd,
            kind,
            internal,
        });
        handle
    }

    fn complete_now(&mut self, handle: CommandHandle, outcome: Outcome) {
        self.complete_with(handle, outcome, CommandData::None);
    }

    fn complete_with(&mut self, handle: CommandHandle, outcome: Outcome, data: CommandData) {
        self.events.push_back(Event::Completed(Completion {
            handle,
            outcome,
            data,
            vanished: None,
        }));
    }

    fn push_data(&mut self, bytes: Vec<u8>) {
        if let Some(Transmit::Data(last)) = self.out.back_mut() {
            last.extend_from_slice(&bytes);
        } else {
            self.out.push_back(Transmit::Data(bytes));
        }
    }

    /// Writes whatever may be written now: the rest of a partly written command, then new
    /// commands from the queue while the pipelining rules allow.
    fn pump(&mut self, now: Instant) {
        if self.closed || self.tls_pending || self.state == ConnState::Greeting {
            return;
        }
        loop {
            if self.awaiting_continuation.is_some() {
                return;
            }
            // Finish a partly written command first (only one can be partly written).
            if let Some(i) = self.in_flight.iter().position(|c| !c.rest.is_empty()) {
                if !self.write_segments(i, now) {
                    return;
                }
                continue;
            }
            let Some(next) = self.queue.front() else {
                return;
            };
            let class = classify(&next.cmd);
            if !may_write(class, self.in_flight.iter().map(|c| c.class)) {
                return;
            }
            // Front exists: checked just above.
            let Some(q) = self.queue.pop_front() else {
                return;
            };
            let in_flight = &self.in_flight;
            let tag = self.tags.fresh(|t| in_flight.iter().any(|c| c.tag == *t));
            let segments = match wire::encode(&tag, &q.cmd, &self.session) {
                Ok(s) => s,
                Err(e) => {
                    if !q.internal {
                        self.complete_now(q.handle, Outcome::Rejected(e));
                    }
                    continue;
                }
            };
            if let Kind::Select(name, read_only) = &q.kind {
                // State for the new mailbox starts now; anything the server sends from here
                // on belongs to it (RFC 3501 6.3.1: SELECT ends the previous selection).
                self.session.mailbox = Some(MailboxState::new(name.clone(), *read_only));
                self.state = ConnState::Authenticated;
            }
            let collect = Collect::for_kind(&q.kind);
            let idle = matches!(q.kind, Kind::Idle).then_some(IdlePhase::Requested);
            let exists = self.session.mailbox.as_ref().map_or(0, |m| m.exists);
            let allowance = budget::allowance(
                self.config.command_budget,
                self.config.per_message,
                self.config.per_message_cap,
                self.config.min_rate,
                &q.cmd,
                exists,
            );
            self.in_flight.push(InFlight {
                handle: q.handle,
                tag,
                class,
                kind: q.kind,
                collect,
                rest: segments.into(),
                written_at: now,
                name: q.cmd.name().to_string(),
                started: now,
                allowance,
                credit: 0,
                internal: q.internal,
                idle,
                idle_stop: false,
                vanished: None,
                copy_uid: None,
            });
        }
    }

    /// Writes the remaining segments of in-flight command `i` until one needs a `+`.
    /// Returns false when writing must pause.
    fn write_segments(&mut self, i: usize, now: Instant) -> bool {
        while let Some(seg) = self.in_flight[i].rest.pop_front() {
            match seg {
                Segment::Data(d) => self.push_data(d),
                Segment::DriverLiteral(len) => {
                    let handle = self.in_flight[i].handle;
                    self.out.push_back(Transmit::Literal { handle, len });
                }
                Segment::AwaitContinuation => {
                    self.awaiting_continuation = Some(self.in_flight[i].handle);
                    self.in_flight[i].written_at = now;
                    return false;
                }
            }
        }
        self.in_flight[i].written_at = now;
        true
    }

    fn process_input(&mut self, now: Instant) {
        while !self.closed && !self.tls_pending {
            let Some((item, consumed)) = self.input.next() else {
                break;
            };
            let earns = match &item {
                Incoming::Response(r) => budget::earns_credit(r),
                Incoming::BodyStart(_) | Incoming::BodyChunk(_) | Incoming::BodyEnd => true,
                Incoming::Malformed(_) => false,
            };
            if earns {
                self.credit(consumed);
            }
            match item {
                Incoming::Response(r) => self.handle_response(r, now),
                Incoming::BodyStart(part) => {
                    let owner = self.body_owner_for(part.seq);
                    self.body_owner = Some(owner);
                    self.events.push_back(Event::BodyStart {
                        handle: owner,
                        part,
                    });
                }
                Incoming::BodyChunk(data) => {
                    let handle = self.body_owner.flatten();
                    self.events.push_back(Event::BodyChunk { handle, data });
                }
                Incoming::BodyEnd => {
                    let handle = self.body_owner.take().flatten();
                    self.events.push_back(Event::BodyEnd { handle });
                }
                Incoming::Malformed(e) => {
                    if self.state == ConnState::Greeting {
                        // Not an IMAP server (or a broken one): nothing to resynchronise to.
                        self.fail(EngineError::Protocol(format!("bad greeting: {e}")));
                    } else {
                        self.events.push_back(Event::Malformed(e));
                    }
                }
            }
        }
        if self.tls_pending && self.input.buffered() > 0 {
            // Bytes that came with the STARTTLS OK in the same read: injection (RFC 9051
            // 6.2.1; the 2021 STARTTLS study's "response injection").
            let n = self.input.buffered();
            self.fail(EngineError::Injection(format!(
                "{n} bytes followed the STARTTLS OK"
            )));
        }
    }

    /// Data arrived: every command waiting for an answer earns time for it (see `budget`;
    /// the commands after the first are waiting behind it, so its data is their progress).
    fn credit(&mut self, bytes: u64) {
        for c in &mut self.in_flight {
            c.credit = c.credit.saturating_add(bytes);
        }
    }

    fn handle_response(&mut self, r: Response, now: Instant) {
        if self.state == ConnState::Greeting {
            self.handle_greeting(r);
            return;
        }
        match r {
            Response::Status(s) if s.tag.is_some() => self.handle_tagged(s, now),
            Response::Continue(c) => self.handle_continuation(c.text, now),
            Response::Greeting(g) => {
                self.fail(EngineError::Protocol(format!(
                    "a second greeting: {:?} {}",
                    g.kind, g.text
                )));
            }
            other => {
                self.handle_untagged(other);
                self.check_collected();
            }
        }
    }

    /// Fails the connection when a command has collected more than the caps allow
    /// ([`MAX_COLLECTED`], [`MAX_SEARCH_IDS`]): memory stays bounded whatever the server
    /// sends, and a truncated answer is never passed off as complete.
    fn check_collected(&mut self) {
        let over = self.in_flight.iter().find_map(|c| {
            let over = match &c.collect {
                Collect::List(l, st) => l.len().saturating_add(st.len()) > MAX_COLLECTED,
                Collect::Search(r) => r.ids.len() > MAX_SEARCH_IDS,
                Collect::Raw(v) => v.len() > MAX_COLLECTED,
                Collect::Id(v) => v.len() > MAX_COLLECTED,
                Collect::Enabled(v) => v.len() > MAX_COLLECTED,
                _ => false,
            };
            over.then(|| c.name.clone())
        });
        if let Some(name) = over {
            self.fail(EngineError::Protocol(format!(
                "the server sent more data for one {name} command than any real server would; \
                 giving up"
            )));
        }
    }

    fn handle_greeting(&mut self, r: Response) {
        let (kind, code, text) = match r {
            Response::Greeting(g) => (g.kind, g.code, g.text),
            Response::Status(StatusResponse {
                tag: None,
                kind,
                code,
                text,
            }) => {
                let kind = match kind {
                    StatusKind::Ok => GreetingKind::Ok,
                    StatusKind::PreAuth => GreetingKind::PreAuth,
                    StatusKind::Bye => GreetingKind::Bye,
                    other => {
                        self.fail(EngineError::Protocol(format!(
                            "greeting is {other:?}, not OK/PREAUTH/BYE"
                        )));
                        return;
                    }
                };
                (kind, code, text)
            }
            other => {
                self.fail(EngineError::Protocol(format!(
                    "expected a greeting, got {}",
                    wire::describe(&other)
                )));
                return;
            }
        };
        if let Some(code) = &code {
            self.apply_code(code, &text);
        }
        match kind {
            GreetingKind::Ok => self.state = ConnState::NotAuthenticated,
            GreetingKind::PreAuth => self.state = ConnState::Authenticated,
            GreetingKind::Bye => {
                self.events.push_back(Event::Bye { text: text.clone() });
                self.fail(EngineError::Bye(text));
                return;
            }
        }
        self.events.push_back(Event::Greeting { kind, text });
    }

    fn apply_code(&mut self, code: &Code, text: &str) {
        if matches!(code, Code::Alert) {
            self.events.push_back(Event::Alert {
                text: text.to_string(),
                encrypted: self.session.encrypted,
            });
        }
        if matches!(code, Code::Closed) {
            // QRESYNC (RFC 7162 3.2.11): the previous mailbox is closed; what follows is
            // about the new one, so forget anything attributed to it so far.
            if let Some(mb) = &self.session.mailbox {
                let fresh = MailboxState::new(mb.name.clone(), mb.read_only);
                self.session.mailbox = Some(fresh);
            }
            return;
        }
        let old_validity = self.session.mailbox.as_ref().and_then(|m| m.uid_validity);
        self.session.apply_code(code);
        if let (Code::UidValidity(v), Some(old)) = (code, old_validity) {
            if old != *v {
                self.events
                    .push_back(Event::Mailbox(MailboxChange::UidValidity(*v)));
            }
        }
    }

    fn handle_continuation(&mut self, text: String, now: Instant) {
        if let Some(h) = self.awaiting_continuation.take() {
            // The server is ready for our literal (RFC 3501 7.5).
            if let Some(c) = self.in_flight.iter_mut().find(|c| c.handle == h) {
                c.written_at = now;
            }
            return;
        }
        // An AUTHENTICATE exchange in flight answers challenges.
        if let Some(i) = self
            .in_flight
            .iter()
            .position(|c| matches!(c.kind, Kind::Authenticate { .. }))
        {
            let answer = {
                let c = &mut self.in_flight[i];
                c.written_at = now;
                let Kind::Authenticate { mech, error } = &mut c.kind else {
                    return;
                };
                if error.is_some() {
                    // Already cancelled; the server should be sending its tagged response.
                    None
                } else {
                    let step = match wire::decode_challenge(&text) {
                        Some(challenge) => mech.0.step(&challenge),
                        None => Err(SaslError::MalformedChallenge {
                            mechanism: mech.0.name(),
                            reason: "challenge is not base64".into(),
                        }),
                    };
                    match step {
                        Ok(resp) => Some(wire::auth_line(resp.expose())),
                        Err(e) => {
                            // RFC 3501 6.2.2: "*" cancels; the server answers BAD.
                            *error = Some(e);
                            Some(wire::auth_cancel())
                        }
                    }
                }
            };
            if let Some(bytes) = answer {
                self.push_data(bytes);
            }
            return;
        }
        if let Some(c) = self
            .in_flight
            .iter_mut()
            .find(|c| c.idle == Some(IdlePhase::Requested))
        {
            let handle = c.handle;
            if c.idle_stop {
                c.idle = Some(IdlePhase::DoneSent { refresh: false });
                c.written_at = now;
                c.started = now;
                self.push_data(wire::done());
            } else {
                c.idle = Some(IdlePhase::Idling(now));
                if !c.internal {
                    self.events.push_back(Event::IdleStarted(handle));
                }
            }
            return;
        }
        // Includes `+` in answer to STARTTLS, a classic downgrade trick.
        self.fail(EngineError::Protocol(format!(
            "unexpected continuation request: {text:?}"
        )));
    }

    fn handle_tagged(&mut self, s: StatusResponse, now: Instant) {
        let Some(tag) = s.tag.clone() else {
            return;
        };
        let Some(i) = self.in_flight.iter().position(|c| c.tag == tag) else {
            // A tag we never sent, or a response before we wrote the command: forged or
            // broken either way.
            self.fail(EngineError::Protocol(format!(
                "tagged response for unknown tag {tag}"
            )));
            return;
        };
        if self.awaiting_continuation == Some(self.in_flight[i].handle) {
            // NO/BAD instead of `+`: the literal is never sent (RFC 3501 7.5).
            self.awaiting_continuation = None;
        }
        let mut cmd = self.in_flight.remove(i);
        // The commands pipelined behind it start their own budgets now at the latest: the
        // server was busy with this one until now.
        for c in &mut self.in_flight {
            c.started = c.started.max(now);
        }
        if let Some(code) = &s.code {
            self.apply_code(code, &s.text);
        }
        let outcome = match s.kind {
            StatusKind::Ok => Outcome::Ok {
                // A MOVE's COPYUID came untagged; the tagged OK is where every caller looks
                // for it (as for COPY), so it is placed there, even over a code of the OK's
                // own: with QRESYNC enabled Dovecot answers a MOVE `OK [HIGHESTMODSEQ n]`,
                // which the session applied above.
                code: cmd.copy_uid.take().or(s.code),
                text: s.text,
            },
            StatusKind::No => Outcome::No {
                code: s.code,
                text: s.text,
            },
            StatusKind::Bad => Outcome::Bad {
                code: s.code,
                text: s.text,
            },
            other => {
                self.fail(EngineError::Protocol(format!(
                    "tagged {other:?} response to {tag}"
                )));
                return;
            }
        };
        self.finish(cmd, outcome, now);
    }

    /// State transitions and the completion event of a finished command.
    fn finish(&mut self, cmd: InFlight, outcome: Outcome, now: Instant) {
        let ok = outcome.is_ok();
        let has_caps_code = matches!(outcome.code(), Some(Code::Capability(_)));
        let mut data = CommandData::None;
        match cmd.kind {
            Kind::Login if ok => {
                self.state = ConnState::Authenticated;
                if !has_caps_code {
                    // Seeds V0033/V0035: capabilities change with authentication.
                    self.session.capabilities = None;
                }
            }
            Kind::Authenticate { mech, error } => {
                if ok {
                    if !mech.0.is_complete() {
                        // The server said OK without finishing the exchange; for SCRAM and
                        // DIGEST-MD5 it never proved it knows the password.
                        self.fail(EngineError::Protocol(format!(
                            "server accepted {} without completing it (no server proof)",
                            mech.0.name()
                        )));
                        return;
                    }
                    self.state = ConnState::Authenticated;
                    if !has_caps_code {
                        self.session.capabilities = None;
                    }
                }
                data = CommandData::Auth { sasl_error: error };
            }
            Kind::StartTls if ok => {
                // StartTls comes before the Completed event: the handshake is what the
                // driver must do next.
                self.tls_pending = true;
                self.events.push_back(Event::StartTls);
            }
            Kind::Select(_, _) => {
                if ok {
                    self.state = ConnState::Selected;
                    if let Some(mb) = &self.session.mailbox {
                        data = CommandData::Select(mb.clone());
                    }
                } else {
                    // RFC 3501 6.3.1: a failed SELECT leaves no mailbox selected.
                    self.session.mailbox = None;
                    self.state = ConnState::Authenticated;
                }
            }
            Kind::Close if ok => {
                self.session.mailbox = None;
                self.state = ConnState::Authenticated;
            }
            Kind::Logout => {
                self.state = ConnState::Logout;
            }
            Kind::Idle => {
                let refreshed = matches!(cmd.idle, Some(IdlePhase::DoneSent { refresh: true }));
                if refreshed && ok && !cmd.idle_stop && self.queue.is_empty() {
                    self.reissue_idle(cmd.handle, cmd.internal, now);
                    return;
                }
            }
            _ => {}
        }
        if !matches!(data, CommandData::Auth { .. } | CommandData::Select(_)) {
            data = cmd.collect.into_data();
        }
        if !cmd.internal {
            self.events.push_back(Event::Completed(Completion {
                handle: cmd.handle,
                outcome,
                data,
                vanished: cmd.vanished,
            }));
        }
        if self.state == ConnState::Logout {
            self.close(None);
        }
    }

    /// Ends the IDLE of `handle` with DONE (RFC 2177), to stop it or to `refresh` it.
    fn send_done(&mut self, handle: CommandHandle, refresh: bool, now: Instant) {
        let Some(c) = self.in_flight.iter_mut().find(|c| c.handle == handle) else {
            return;
        };
        c.idle = Some(IdlePhase::DoneSent { refresh });
        c.written_at = now;
        // Waiting for the tagged OK after DONE is a short command of its own.
        c.started = now;
        c.credit = 0;
        self.push_data(wire::done());
        self.last_tx = now;
    }

    /// Issues again, under a new tag, the IDLE the engine ended to refresh it (RFC 2177: at
    /// least every 29 minutes); the caller's handle stays.
    fn reissue_idle(&mut self, handle: CommandHandle, internal: bool, now: Instant) {
        self.queue.push_front(Queued {
            handle,
            cmd: Command::Idle,
            kind: Kind::Idle,
            internal,
        });
        self.pump(now);
    }

    /// Ends the session cleanly.
    fn close(&mut self, error: Option<EngineError>) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.state = ConnState::Logout;
        self.awaiting_continuation = None;
        let mut aborted: Vec<CommandHandle> = Vec::new();
        for c in self.in_flight.drain(..) {
            if !c.internal {
                aborted.push(c.handle);
            }
        }
        for q in self.queue.drain(..) {
            if !q.internal {
                aborted.push(q.handle);
            }
        }
        for h in aborted {
            self.complete_now(h, Outcome::Aborted);
        }
        self.events.push_back(Event::Closed(error));
    }

    /// Fails the connection: nothing more is written; pending commands are aborted.
    fn fail(&mut self, error: EngineError) {
        self.out.clear();
        self.tls_pending = false;
        self.close(Some(error));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::SelectParams;

    fn sent(c: &mut Client, now: Instant) -> String {
        let mut out = Vec::new();
        while let Some(t) = c.poll_transmit(now) {
            if let Transmit::Data(d) = t {
                out.extend(d);
            }
        }
        String::from_utf8(out).unwrap()
    }

    fn tag_of(line: &str) -> &str {
        line.split(' ').next().unwrap()
    }

    fn completion(c: &mut Client, h: CommandHandle) -> Completion {
        while let Some(ev) = c.poll_event() {
            if let Event::Completed(done) = ev {
                if done.handle == h {
                    return done;
                }
            }
        }
        panic!("no completion for {h:?}");
    }

    /// A client greeted with `capabilities`, INBOX selected with `exists` messages.
    fn selected(capabilities: &str, exists: u32, now: Instant) -> Client {
        let mut c = Client::new(Config::default(), true, now);
        c.handle_input(
            format!("* PREAUTH [CAPABILITY {capabilities}] hi\r\n").as_bytes(),
            now,
        );
        let h = c.submit(Command::Select {
            mailbox: Mailbox::from_utf8("INBOX"),
            params: SelectParams::None,
        });
        let out = sent(&mut c, now);
        let reply = format!(
            "* {exists} EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n{} OK [READ-WRITE] x\r\n",
            tag_of(&out)
        );
        c.handle_input(reply.as_bytes(), now);
        assert!(completion(&mut c, h).outcome.is_ok());
        c
    }

    /// RFC 6851 4.3: UID MOVE's COPYUID arrives in an untagged OK before the EXPUNGEs; the
    /// completion carries it exactly as a COPY's tagged OK would.
    #[test]
    fn untagged_copyuid_of_a_move_reaches_its_completion() {
        let now = Instant::now();
        let mut c = selected("IMAP4rev1 MOVE UIDPLUS", 3, now);
        let h = c.submit(Command::UidMove {
            set: UidSet::from_numbers([5, 6]).unwrap(),
            mailbox: Mailbox::from_utf8("Archive"),
        });
        let out = sent(&mut c, now);
        assert!(out.contains("UID MOVE 5:6 Archive"), "{out}");
        let reply = format!(
            "* OK [COPYUID 9 5:6 20:21] Moved\r\n* 1 EXPUNGE\r\n* 1 EXPUNGE\r\n{} OK Done\r\n",
            tag_of(&out)
        );
        c.handle_input(reply.as_bytes(), now);
        let done = completion(&mut c, h);
        match done.outcome.code() {
            Some(Code::CopyUid(cu)) => {
                assert_eq!(cu.pairs().collect::<Vec<_>>(), [(5, 20), (6, 21)]);
            }
            other => panic!("expected COPYUID, got {other:?}"),
        }
        assert_eq!(c.session().mailbox.as_ref().map(|m| m.exists), Some(1));
        // A tagged OK with a code of its own (HIGHESTMODSEQ under QRESYNC) keeps the COPYUID.
        let h = c.submit(Command::UidMove {
            set: UidSet::from_numbers([7]).unwrap(),
            mailbox: Mailbox::from_utf8("Archive"),
        });
        let out = sent(&mut c, now);
        let reply = format!(
            "* OK [COPYUID 9 7 22] Moved\r\n* 1 EXPUNGE\r\n{} OK [HIGHESTMODSEQ 12] Done\r\n",
            tag_of(&out)
        );
        c.handle_input(reply.as_bytes(), now);
        match completion(&mut c, h).outcome.code() {
            Some(Code::CopyUid(cu)) => assert_eq!(cu.pairs().collect::<Vec<_>>(), [(7, 22)]),
            other => panic!("expected COPYUID, got {other:?}"),
        }
    }

    /// A burst of thousands of FETCH responses in one read fills the event queue; once they
    /// are all taken, the queue's room goes back to [`EVENTS_KEPT`] instead of staying at the
    /// burst's size for the rest of the session.
    #[test]
    fn the_event_queue_gives_its_room_back_once_drained() {
        let now = Instant::now();
        let mut c = selected("IMAP4rev1", 5000, now);
        let mut burst = String::new();
        for i in 1..=5000 {
            burst.push_str(&format!("* {i} FETCH (UID {i})\r\n"));
        }
        c.handle_input(burst.as_bytes(), now);
        assert!(c.events.capacity() >= 5000);
        let mut fetched = 0;
        while let Some(ev) = c.poll_event() {
            if matches!(ev, Event::Fetch { .. }) {
                fetched += 1;
            }
        }
        assert_eq!(fetched, 5000);
        assert!(
            c.events.capacity() <= EVENTS_KEPT,
            "{} events' room kept",
            c.events.capacity()
        );
    }
}
