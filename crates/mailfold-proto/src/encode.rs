//! The strict command encoder (seed N3/N4): typed [`Command`]s to wire bytes.
//!
//! Every byte sequence this module produces is valid RFC 3501 / RFC 9051 command syntax:
//! exactly one SP between tokens, CRLF line ends, no TABs, and every string written as atom,
//! quoted string or literal according to its content (seed V0017). Values that cannot be
//! written validly (CR/LF in a raw command, `\Recent` in STORE, an empty set) are an
//! [`EncodeError`], never silently altered.
//!
//! # Contract for the engine
//!
//! [`encode`] returns an [`Encoded`]: an ordered list of [`Part`]s to send one after another.
//!
//! * A [`Part::Line`] is sent as is. When a literal follows, the line already ends with that
//!   literal's header (`{n}\r\n`, `{n+}\r\n`, `~{n}\r\n`, ...).
//! * A [`Part::Literal`] with [`LiteralMode::Sync`] must not be sent until the server has
//!   answered the preceding line with a continuation request (`+ ...`). If it answers with a
//!   tagged NO or BAD instead, the command is finished and the remaining parts are dropped.
//!   [`LiteralMode::NonSync`] literals (LITERAL+ `{n+}`, or LITERAL- for n ≤ 4096) are sent at
//!   once.
//! * [`LiteralData::Inline`] bytes are in the part; [`LiteralData::Driver`] means the driver
//!   streams exactly `len` bytes itself (APPEND of a large message, never held in memory).
//! * The last part is always a line ending in CRLF.
//! * Parts marked `sensitive` carry credentials: the `Debug` output redacts them, and a
//!   driver that logs traffic must not log them.
//!
//! # String forms
//!
//! An `astring` (mailbox, user name, search text, ...) is written as an atom when every byte is
//! an `ASTRING-CHAR` and it does not read as `NIL`; as a quoted string when it is printable
//! 7-bit (or, after UTF8=ACCEPT, valid UTF-8 without controls) and at most
//! [`MAX_QUOTED_LEN`] bytes; otherwise as a literal. So 8-bit text only goes in a literal
//! unless UTF8=ACCEPT is enabled (seed V0013), control characters are carried byte-exact in a
//! literal (seed V0015), and the empty string is `""` (seed V0012). NUL cannot appear in any
//! IMAP string (`CHAR8` excludes it) and is an error.
//!
//! # Message data
//!
//! APPEND data is sent as-is in a normal literal: messages are 7- or 8-bit MIME text, which a
//! literal carries unchanged. Data containing NUL is binary, and is sent only with BINARY's
//! `~{n}` literal8 when the server offers BINARY (seed V0014); otherwise encoding it (e.g.
//! base64 MIME) is the caller's job, and the encoder refuses it.

use std::fmt;

use mailfold_sasl::Secret;

use crate::command::{
    Append, AppendData, Command, FetchItem, FetchItems, FetchModifiers, List, ListReturn,
    ListSelect, Partial, Qresync, Search, SearchKey, SearchReturn, Section, SectionText,
    SelectParams, StatusItem, StoreFlags, StoreMode,
};
use crate::core::{is_astring_char, is_atom_char, Flag, Mailbox, Tag};
use crate::notify::{Notify, NotifyFilter};
use crate::seqset::{NumberSet, SetKind};

/// Longest string written as a quoted string; longer ones become literals (seed V0017).
pub const MAX_QUOTED_LEN: usize = 1024;

/// Largest literal LITERAL- lets the client send without waiting (RFC 7888 section 4).
pub const LITERAL_MINUS_MAX: u64 = 4096;

/// Deepest nesting of search keys accepted, so that encoding cannot exhaust the stack.
pub const MAX_SEARCH_DEPTH: usize = 64;

/// Largest value of a `mod-sequence-value` (RFC 7162: 63-bit).
const MAX_MODSEQ: u64 = i64::MAX as u64;

/// What the server allows, as far as the encoder cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeCaps {
    /// `IMAP4rev1` advertised. Without it, whole-message and header fetches use the RFC822.*
    /// forms (seed V0055).
    pub imap4rev1: bool,
    /// `LITERAL+`: every literal may be non-synchronizing (RFC 7888).
    pub literal_plus: bool,
    /// `LITERAL-`: literals up to 4096 bytes may be non-synchronizing (RFC 7888).
    pub literal_minus: bool,
    /// `UTF8=ACCEPT` has been enabled: UTF-8 may appear in quoted strings (RFC 6855).
    pub utf8_accept: bool,
    /// `BINARY` advertised: `~{n}` literals and BINARY fetch items (RFC 3516).
    pub binary: bool,
    /// `SASL-IR` advertised: AUTHENTICATE may carry an initial response (RFC 4959).
    pub sasl_ir: bool,
}

impl Default for EncodeCaps {
    /// A plain IMAP4rev1 server with no extensions: the safest assumption.
    fn default() -> Self {
        EncodeCaps {
            imap4rev1: true,
            literal_plus: false,
            literal_minus: false,
            utf8_accept: false,
            binary: false,
            sasl_ir: false,
        }
    }
}

/// Why a command could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// A set or list that must have members is empty (`what` names it).
    Empty {
        /// Which value.
        what: &'static str,
    },
    /// `\Recent` or `\*` in STORE or APPEND: read-only flags cannot be set (seed V0004).
    UnstorableFlag(Flag),
    /// A value with content that cannot be written validly.
    Invalid {
        /// Which value.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The command needs an extension the server did not advertise.
    NeedsCapability {
        /// The capability, e.g. `BINARY`.
        capability: &'static str,
        /// What needed it.
        what: &'static str,
    },
    /// A value too large for the protocol (`len` against `max`).
    TooLarge {
        /// Which value.
        what: &'static str,
        /// Its size.
        len: u64,
        /// The limit.
        max: u64,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::Empty { what } => write!(f, "{what} must not be empty"),
            EncodeError::UnstorableFlag(flag) => {
                write!(f, "flag {flag} is read-only and cannot be stored")
            }
            EncodeError::Invalid { what, reason } => write!(f, "invalid {what}: {reason}"),
            EncodeError::NeedsCapability { capability, what } => {
                write!(f, "{what} needs the server capability {capability}")
            }
            EncodeError::TooLarge { what, len, max } => {
                write!(f, "{what} is too large: {len} (at most {max})")
            }
        }
    }
}

impl std::error::Error for EncodeError {}

fn invalid(what: &'static str, reason: &'static str) -> EncodeError {
    EncodeError::Invalid { what, reason }
}

/// Whether the engine must wait for a continuation request before a literal's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiteralMode {
    /// `{n}`: wait for `+`.
    Sync,
    /// `{n+}`: send at once (LITERAL+ / LITERAL-).
    NonSync,
}

/// Where a literal's bytes come from.
#[derive(Clone, PartialEq, Eq)]
pub enum LiteralData {
    /// The bytes are here.
    Inline(Vec<u8>),
    /// The driver sends exactly `len` bytes from its own source.
    Driver {
        /// Byte count announced in the header.
        len: u64,
    },
}

impl LiteralData {
    /// Byte count of the literal.
    pub fn len(&self) -> u64 {
        match self {
            LiteralData::Inline(b) => b.len() as u64,
            LiteralData::Driver { len } => *len,
        }
    }

    /// True for a zero-length literal.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One piece of an encoded command; see the module docs for the sending contract.
#[derive(Clone, PartialEq, Eq)]
pub enum Part {
    /// Bytes to send as they are.
    Line {
        /// The bytes.
        bytes: Vec<u8>,
        /// Carries credentials: never log.
        sensitive: bool,
    },
    /// Literal data whose header ended the previous line.
    Literal {
        /// Wait for `+` first, or not.
        mode: LiteralMode,
        /// `~{n}` literal8 (BINARY).
        binary: bool,
        /// The bytes or their length.
        data: LiteralData,
        /// Carries credentials: never log.
        sensitive: bool,
    },
}

impl fmt::Debug for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Line {
                sensitive: true,
                bytes,
            } => {
                write!(f, "Line(<redacted {} bytes>)", bytes.len())
            }
            Part::Line { bytes, .. } => write!(f, "Line({:?})", String::from_utf8_lossy(bytes)),
            Part::Literal {
                mode,
                binary,
                data,
                sensitive,
            } => {
                let what = match (data, sensitive) {
                    (_, true) => "redacted",
                    (LiteralData::Inline(_), false) => "inline",
                    (LiteralData::Driver { .. }, false) => "from driver",
                };
                write!(
                    f,
                    "Literal({mode:?}, binary: {binary}, {} bytes {what})",
                    data.len()
                )
            }
        }
    }
}

/// An encoded command: parts to send in order (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    parts: Vec<Part>,
}

impl Encoded {
    /// The parts in sending order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Takes the parts.
    pub fn into_parts(self) -> Vec<Part> {
        self.parts
    }

    /// True when some literal needs a continuation request before its bytes.
    pub fn has_sync_literal(&self) -> bool {
        self.parts.iter().any(|p| {
            matches!(
                p,
                Part::Literal {
                    mode: LiteralMode::Sync,
                    ..
                }
            )
        })
    }

    /// True when any part carries credentials.
    pub fn is_sensitive(&self) -> bool {
        self.parts.iter().any(|p| match p {
            Part::Line { sensitive, .. } | Part::Literal { sensitive, .. } => *sensitive,
        })
    }

    /// All bytes joined, as they go on the wire (ignoring continuation waits); `None` when a
    /// literal is provided by the driver. Meant for tests and for small commands.
    pub fn to_bytes(&self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        for p in &self.parts {
            match p {
                Part::Line { bytes, .. } => out.extend_from_slice(bytes),
                Part::Literal {
                    data: LiteralData::Inline(b),
                    ..
                } => out.extend_from_slice(b),
                Part::Literal {
                    data: LiteralData::Driver { .. },
                    ..
                } => return None,
            }
        }
        Some(out)
    }
}

/// Encodes `tag SP command CRLF` for a server with the given capabilities.
pub fn encode(tag: &Tag, cmd: &Command, caps: &EncodeCaps) -> Result<Encoded, EncodeError> {
    let mut w = Writer::new(caps);
    w.raw(tag.as_str().as_bytes());
    w.sp();
    w.command(cmd)?;
    Ok(w.finish())
}

/// `DONE\r\n`, which ends IDLE (RFC 2177). It has no tag.
pub fn encode_done() -> Encoded {
    Encoded {
        parts: vec![Part::Line {
            bytes: b"DONE\r\n".to_vec(),
            sensitive: false,
        }],
    }
}

/// One AUTHENTICATE response line: `data` in base64, then CRLF (RFC 3501 6.2.2). Empty data
/// is an empty line. Marked sensitive.
pub fn encode_continuation(data: &[u8]) -> Encoded {
    let mut bytes = base64(data);
    bytes.extend_from_slice(b"\r\n");
    Encoded {
        parts: vec![Part::Line {
            bytes,
            sensitive: true,
        }],
    }
}

/// `*\r\n`: cancels an AUTHENTICATE exchange (RFC 3501 6.2.2).
pub fn encode_auth_cancel() -> Encoded {
    Encoded {
        parts: vec![Part::Line {
            bytes: b"*\r\n".to_vec(),
            sensitive: false,
        }],
    }
}

// Standard base64 with padding (RFC 4648 section 4), as SASL needs: the crate's one
// implementation, shared with the engine's challenge decoder.
use crate::base64::encode as base64;

/// How a string may be written in its grammar position.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StrKind {
    /// `astring`: atom allowed (ASTRING-CHARs).
    AString,
    /// `list-mailbox`: atom of list-chars (adds `%` and `*`).
    ListMailbox,
    /// `string`: quoted or literal only.
    String,
}

struct Writer<'c> {
    caps: &'c EncodeCaps,
    parts: Vec<Part>,
    line: Vec<u8>,
    /// Set while encoding a credential; applies to every part written meanwhile.
    sensitive: bool,
    /// Set when a search string holds 8-bit bytes (seed V0013 needs a CHARSET then).
    search_8bit: bool,
}

impl<'c> Writer<'c> {
    fn new(caps: &'c EncodeCaps) -> Self {
        Writer {
            caps,
            parts: Vec::new(),
            line: Vec::with_capacity(64),
            sensitive: false,
            search_8bit: false,
        }
    }

    fn finish(mut self) -> Encoded {
        self.line.extend_from_slice(b"\r\n");
        let bytes = std::mem::take(&mut self.line);
        self.parts.push(Part::Line {
            bytes,
            sensitive: self.sensitive,
        });
        Encoded { parts: self.parts }
    }

    fn raw(&mut self, b: &[u8]) {
        self.line.extend_from_slice(b);
    }

    fn sp(&mut self) {
        self.line.push(b' ');
    }

    fn display(&mut self, d: impl fmt::Display) {
        use std::io::Write;
        // Writing to a Vec cannot fail.
        let _ = write!(self.line, "{d}");
    }

    fn literal(&mut self, data: LiteralData, binary: bool) -> Result<(), EncodeError> {
        let len = data.len();
        if len > u64::from(u32::MAX) {
            return Err(EncodeError::TooLarge {
                what: "literal",
                len,
                max: u64::from(u32::MAX),
            });
        }
        let nonsync =
            self.caps.literal_plus || (self.caps.literal_minus && len <= LITERAL_MINUS_MAX);
        if binary {
            self.raw(b"~");
        }
        self.display(format_args!(
            "{{{len}{}}}\r\n",
            if nonsync { "+" } else { "" }
        ));
        let bytes = std::mem::take(&mut self.line);
        self.parts.push(Part::Line {
            bytes,
            sensitive: self.sensitive,
        });
        let mode = if nonsync {
            LiteralMode::NonSync
        } else {
            LiteralMode::Sync
        };
        self.parts.push(Part::Literal {
            mode,
            binary,
            data,
            sensitive: self.sensitive,
        });
        Ok(())
    }

    /// Writes a string in the lightest valid form (see the module docs).
    fn string(&mut self, s: &[u8], kind: StrKind, what: &'static str) -> Result<(), EncodeError> {
        if s.contains(&0) {
            return Err(invalid(
                what,
                "contains NUL, which no IMAP string can carry",
            ));
        }
        let atom_ok = match kind {
            StrKind::AString => s.iter().all(|&b| is_astring_char(b)),
            StrKind::ListMailbox => s
                .iter()
                .all(|&b| is_astring_char(b) || b == b'%' || b == b'*'),
            StrKind::String => false,
        };
        // An atom spelled NIL could be mistaken for nil by a lenient server: quote it.
        if atom_ok && !s.is_empty() && !s.eq_ignore_ascii_case(b"NIL") {
            self.raw(s);
            return Ok(());
        }
        let printable = s.iter().all(|&b| (0x20..0x7f).contains(&b));
        let utf8_ok = self.caps.utf8_accept
            && std::str::from_utf8(s).is_ok()
            && s.iter().all(|&b| b >= 0x20 && b != 0x7f);
        if s.len() <= MAX_QUOTED_LEN && (printable || utf8_ok) {
            self.line.reserve(s.len() + 2);
            self.line.push(b'"');
            for &b in s {
                if b == b'"' || b == b'\\' {
                    self.line.push(b'\\');
                }
                self.line.push(b);
            }
            self.line.push(b'"');
            return Ok(());
        }
        self.literal(LiteralData::Inline(s.to_vec()), false)
    }

    fn astring(&mut self, s: &[u8], what: &'static str) -> Result<(), EncodeError> {
        self.string(s, StrKind::AString, what)
    }

    fn mailbox(&mut self, m: &Mailbox) -> Result<(), EncodeError> {
        self.astring(m.as_wire(), "mailbox name")
    }

    /// A bare atom the caller supplies (mechanism, capability, charset in atom form).
    fn atom(&mut self, s: &str, what: &'static str) -> Result<(), EncodeError> {
        if s.is_empty() || !s.bytes().all(is_atom_char) {
            return Err(invalid(what, "must be a non-empty atom"));
        }
        self.raw(s.as_bytes());
        Ok(())
    }

    fn set<K: SetKind>(
        &mut self,
        set: &NumberSet<K>,
        what: &'static str,
    ) -> Result<(), EncodeError> {
        if set.is_empty() {
            return Err(EncodeError::Empty { what });
        }
        self.display(set);
        Ok(())
    }

    fn modseq(&mut self, v: u64, allow_zero: bool, what: &'static str) -> Result<(), EncodeError> {
        if v == 0 && !allow_zero {
            return Err(invalid(what, "must be at least 1"));
        }
        if v > MAX_MODSEQ {
            return Err(EncodeError::TooLarge {
                what,
                len: v,
                max: MAX_MODSEQ,
            });
        }
        self.display(v);
        Ok(())
    }

    fn flag(&mut self, f: &Flag, storing: bool) -> Result<(), EncodeError> {
        if storing && !f.is_storable() {
            return Err(EncodeError::UnstorableFlag(f.clone()));
        }
        match f {
            Flag::Keyword(k) if k.is_empty() || !k.bytes().all(is_atom_char) => {
                return Err(invalid("keyword", "must be a non-empty atom"))
            }
            Flag::Extension(e) if e.is_empty() || !e.bytes().all(is_atom_char) => {
                return Err(invalid("flag", "extension flag must be \\ and an atom"))
            }
            _ => {}
        }
        self.display(f);
        Ok(())
    }

    fn flag_list(&mut self, flags: &[Flag]) -> Result<(), EncodeError> {
        self.raw(b"(");
        for (i, f) in flags.iter().enumerate() {
            if i > 0 {
                self.sp();
            }
            self.flag(f, true)?;
        }
        self.raw(b")");
        Ok(())
    }

    /// One command, after its tag. Long by design: one arm per [`Command`] variant (RFC 3501
    /// section 9 and the extensions'), each the verb and a call to the encoder of its
    /// arguments, so the whole command set reads in one place against the grammar.
    fn command(&mut self, cmd: &Command) -> Result<(), EncodeError> {
        match cmd {
            Command::Capability => self.raw(b"CAPABILITY"),
            Command::Noop => self.raw(b"NOOP"),
            Command::Logout => self.raw(b"LOGOUT"),
            Command::StartTls => self.raw(b"STARTTLS"),
            Command::Authenticate {
                mechanism,
                initial_response,
            } => self.authenticate(mechanism, initial_response.as_ref())?,
            Command::Login { username, password } => {
                self.sensitive = true;
                self.raw(b"LOGIN ");
                self.astring(username, "user name")?;
                self.sp();
                self.astring(password.expose(), "password")?;
            }
            Command::Select { mailbox, params } => {
                self.simple_mailbox(b"SELECT ", mailbox)?;
                self.select_params(params)?;
            }
            Command::Examine { mailbox, params } => {
                self.simple_mailbox(b"EXAMINE ", mailbox)?;
                self.select_params(params)?;
            }
            Command::Create(m) => self.simple_mailbox(b"CREATE ", m)?,
            Command::Delete(m) => self.simple_mailbox(b"DELETE ", m)?,
            Command::Subscribe(m) => self.simple_mailbox(b"SUBSCRIBE ", m)?,
            Command::Unsubscribe(m) => self.simple_mailbox(b"UNSUBSCRIBE ", m)?,
            Command::Rename { from, to } => {
                self.raw(b"RENAME ");
                self.mailbox(from)?;
                self.sp();
                self.mailbox(to)?;
            }
            Command::List(list) => self.list(list)?,
            Command::Lsub { reference, pattern } => {
                self.raw(b"LSUB ");
                self.mailbox(reference)?;
                self.sp();
                self.string(pattern, StrKind::ListMailbox, "LSUB pattern")?;
            }
            Command::Status { mailbox, items } => {
                self.raw(b"STATUS ");
                self.mailbox(mailbox)?;
                self.sp();
                self.status_items(items)?;
            }
            Command::Append(a) => self.append(a)?,
            Command::Check => self.raw(b"CHECK"),
            Command::Close => self.raw(b"CLOSE"),
            Command::Unselect => self.raw(b"UNSELECT"),
            Command::Expunge => self.raw(b"EXPUNGE"),
            Command::UidExpunge(set) => {
                self.raw(b"UID EXPUNGE ");
                self.set(set, "UID EXPUNGE set")?;
            }
            Command::Search(s) => self.search(s)?,
            Command::Fetch {
                set,
                items,
                modifiers,
            } => {
                self.raw(b"FETCH ");
                self.set(set, "FETCH set")?;
                self.fetch(items, modifiers, false)?;
            }
            Command::UidFetch {
                set,
                items,
                modifiers,
            } => {
                self.raw(b"UID FETCH ");
                self.set(set, "UID FETCH set")?;
                self.fetch(items, modifiers, true)?;
            }
            Command::Store {
                set,
                store,
                unchanged_since,
            } => {
                self.raw(b"STORE ");
                self.set(set, "STORE set")?;
                self.store(store, *unchanged_since)?;
            }
            Command::UidStore {
                set,
                store,
                unchanged_since,
            } => {
                self.raw(b"UID STORE ");
                self.set(set, "UID STORE set")?;
                self.store(store, *unchanged_since)?;
            }
            Command::Copy { set, mailbox } => {
                self.set_to_mailbox(b"COPY ", set, "COPY set", mailbox)?
            }
            Command::UidCopy { set, mailbox } => {
                self.set_to_mailbox(b"UID COPY ", set, "UID COPY set", mailbox)?
            }
            Command::Move { set, mailbox } => {
                self.set_to_mailbox(b"MOVE ", set, "MOVE set", mailbox)?
            }
            Command::UidMove { set, mailbox } => {
                self.set_to_mailbox(b"UID MOVE ", set, "UID MOVE set", mailbox)?
            }
            Command::Idle => self.raw(b"IDLE"),
            Command::Enable(caps) => self.enable(caps)?,
            Command::Id(params) => self.id(params.as_deref())?,
            Command::Namespace => self.raw(b"NAMESPACE"),
            Command::CompressDeflate => self.raw(b"COMPRESS DEFLATE"),
            Command::Notify(n) => self.notify(n)?,
            Command::Raw(text) => self.raw_command(text)?,
        }
        Ok(())
    }

    /// `AUTHENTICATE mechanism [initial-response]` (RFC 3501 6.2.2, RFC 4959 SASL-IR).
    fn authenticate(
        &mut self,
        mechanism: &str,
        initial_response: Option<&Secret<Vec<u8>>>,
    ) -> Result<(), EncodeError> {
        self.raw(b"AUTHENTICATE ");
        self.atom(mechanism, "SASL mechanism")?;
        let Some(ir) = initial_response else {
            return Ok(());
        };
        if !self.caps.sasl_ir {
            return Err(EncodeError::NeedsCapability {
                capability: "SASL-IR",
                what: "an AUTHENTICATE initial response",
            });
        }
        self.sensitive = true;
        self.sp();
        let data = ir.expose();
        if data.is_empty() {
            // RFC 4959: "=" stands for an empty initial response.
            self.raw(b"=");
        } else {
            let b = base64(data);
            self.raw(&b);
        }
        Ok(())
    }

    /// `COPY`/`MOVE` and their UID forms: the verb, the set, the destination mailbox.
    fn set_to_mailbox<K: SetKind>(
        &mut self,
        verb: &[u8],
        set: &NumberSet<K>,
        what: &'static str,
        mailbox: &Mailbox,
    ) -> Result<(), EncodeError> {
        self.raw(verb);
        self.set(set, what)?;
        self.sp();
        self.mailbox(mailbox)
    }

    /// `ENABLE capability…` (RFC 5161): at least one.
    fn enable(&mut self, caps: &[String]) -> Result<(), EncodeError> {
        if caps.is_empty() {
            return Err(EncodeError::Empty {
                what: "ENABLE capability list",
            });
        }
        self.raw(b"ENABLE");
        for c in caps {
            self.sp();
            self.atom(c, "capability")?;
        }
        Ok(())
    }

    /// A raw command line (seed V0061): sent as given, but never empty and never able to end
    /// the line early or smuggle a second command (no CR, LF or NUL).
    fn raw_command(&mut self, text: &[u8]) -> Result<(), EncodeError> {
        if text.is_empty() {
            return Err(EncodeError::Empty {
                what: "raw command",
            });
        }
        if text.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)) {
            return Err(invalid("raw command", "contains CR, LF or NUL"));
        }
        self.raw(text);
        Ok(())
    }

    /// `NOTIFY` (RFC 5465 section 8 grammar). The [`Notify`] constructors already refused
    /// what the RFC forbids; the empty cases are checked again because the enum's fields are
    /// public.
    fn notify(&mut self, n: &Notify) -> Result<(), EncodeError> {
        let (status, groups) = match n {
            Notify::None => {
                self.raw(b"NOTIFY NONE");
                return Ok(());
            }
            Notify::Set { status, groups } => (*status, groups),
        };
        if groups.is_empty() {
            return Err(EncodeError::Empty {
                what: "NOTIFY event groups",
            });
        }
        self.raw(b"NOTIFY SET");
        if status {
            self.raw(b" STATUS");
        }
        for g in groups {
            self.raw(b" (");
            match g.filter() {
                NotifyFilter::Selected => self.raw(b"selected"),
                NotifyFilter::SelectedDelayed => self.raw(b"selected-delayed"),
                NotifyFilter::Inboxes => self.raw(b"inboxes"),
                NotifyFilter::Personal => self.raw(b"personal"),
                NotifyFilter::Subscribed => self.raw(b"subscribed"),
                NotifyFilter::Subtree(m) | NotifyFilter::Mailboxes(m) => {
                    self.raw(if matches!(g.filter(), NotifyFilter::Subtree(_)) {
                        b"subtree ("
                    } else {
                        b"mailboxes ("
                    });
                    if m.is_empty() {
                        return Err(EncodeError::Empty {
                            what: "NOTIFY mailbox list",
                        });
                    }
                    for (i, mb) in m.iter().enumerate() {
                        if i > 0 {
                            self.sp();
                        }
                        self.mailbox(mb)?;
                    }
                    self.raw(b")");
                }
            }
            if g.events().is_empty() {
                self.raw(b" NONE)");
                continue;
            }
            self.raw(b" (");
            for (i, e) in g.events().iter().enumerate() {
                if i > 0 {
                    self.sp();
                }
                self.raw(e.name().as_bytes());
            }
            self.raw(b"))");
        }
        Ok(())
    }

    fn simple_mailbox(&mut self, verb: &[u8], m: &Mailbox) -> Result<(), EncodeError> {
        self.raw(verb);
        self.mailbox(m)
    }

    fn select_params(&mut self, params: &SelectParams) -> Result<(), EncodeError> {
        match params {
            SelectParams::None => {}
            SelectParams::CondStore => self.raw(b" (CONDSTORE)"),
            SelectParams::Qresync(q) => self.qresync(q)?,
        }
        Ok(())
    }

    fn qresync(&mut self, q: &Qresync) -> Result<(), EncodeError> {
        self.raw(b" (QRESYNC (");
        self.display(q.uid_validity);
        self.sp();
        self.modseq(q.modseq, false, "QRESYNC mod-sequence")?;
        if let Some(known) = &q.known_uids {
            if known.star().is_some() {
                return Err(invalid("QRESYNC known UIDs", "'*' is not allowed"));
            }
            self.sp();
            self.set(known, "QRESYNC known UIDs")?;
        }
        // RFC 7162 3.2.5: seq-match-data may also come without known-uids (then the server
        // takes all UIDs as known).
        if let Some((seqs, uids)) = &q.seq_match {
            if seqs.star().is_some() || uids.star().is_some() {
                return Err(invalid("QRESYNC sequence match data", "'*' is not allowed"));
            }
            if seqs.len() != uids.len() {
                return Err(invalid(
                    "QRESYNC sequence match data",
                    "the two sets must have the same size",
                ));
            }
            self.raw(b" (");
            self.set(seqs, "QRESYNC known sequence set")?;
            self.sp();
            self.set(uids, "QRESYNC known UID set")?;
            self.raw(b")");
        }
        self.raw(b"))");
        Ok(())
    }

    fn list(&mut self, list: &List) -> Result<(), EncodeError> {
        self.raw(b"LIST ");
        if !list.selection.is_empty() {
            if list
                .selection
                .iter()
                .all(|s| *s == ListSelect::RecursiveMatch)
            {
                // RFC 5258 3.1: RECURSIVEMATCH alone is a syntax error (BAD).
                return Err(invalid(
                    "LIST selection",
                    "RECURSIVEMATCH needs another option",
                ));
            }
            self.raw(b"(");
            for (i, s) in list.selection.iter().enumerate() {
                if i > 0 {
                    self.sp();
                }
                self.raw(match s {
                    ListSelect::Subscribed => b"SUBSCRIBED".as_slice(),
                    ListSelect::Remote => b"REMOTE",
                    ListSelect::RecursiveMatch => b"RECURSIVEMATCH",
                    ListSelect::SpecialUse => b"SPECIAL-USE",
                });
            }
            self.raw(b") ");
        }
        self.mailbox(&list.reference)?;
        self.sp();
        match list.patterns.as_slice() {
            [] => {
                return Err(EncodeError::Empty {
                    what: "LIST patterns",
                })
            }
            [one] => self.string(one, StrKind::ListMailbox, "LIST pattern")?,
            many => {
                self.raw(b"(");
                for (i, p) in many.iter().enumerate() {
                    if i > 0 {
                        self.sp();
                    }
                    self.string(p, StrKind::ListMailbox, "LIST pattern")?;
                }
                self.raw(b")");
            }
        }
        if !list.returns.is_empty() {
            self.raw(b" RETURN (");
            for (i, r) in list.returns.iter().enumerate() {
                if i > 0 {
                    self.sp();
                }
                match r {
                    ListReturn::Subscribed => self.raw(b"SUBSCRIBED"),
                    ListReturn::Children => self.raw(b"CHILDREN"),
                    ListReturn::SpecialUse => self.raw(b"SPECIAL-USE"),
                    ListReturn::Status(items) => {
                        self.raw(b"STATUS ");
                        self.status_items(items)?;
                    }
                }
            }
            self.raw(b")");
        }
        Ok(())
    }

    fn status_items(&mut self, items: &[StatusItem]) -> Result<(), EncodeError> {
        if items.is_empty() {
            return Err(EncodeError::Empty {
                what: "STATUS items",
            });
        }
        self.raw(b"(");
        for (i, it) in items.iter().enumerate() {
            if i > 0 {
                self.sp();
            }
            self.raw(it.as_str().as_bytes());
        }
        self.raw(b")");
        Ok(())
    }

    fn append(&mut self, a: &Append) -> Result<(), EncodeError> {
        self.raw(b"APPEND ");
        self.mailbox(&a.mailbox)?;
        if !a.flags.is_empty() {
            self.sp();
            self.flag_list(&a.flags)?;
        }
        if let Some(dt) = &a.internal_date {
            self.sp();
            self.display(format_args!("\"{dt}\""));
        }
        self.sp();
        let (data, binary) = match &a.message {
            AppendData::Inline(bytes) => (LiteralData::Inline(bytes.clone()), bytes.contains(&0)),
            AppendData::Streamed { len, binary } => (LiteralData::Driver { len: *len }, *binary),
        };
        if binary && !self.caps.binary {
            // Seed V0014: binary data is never sent raw unless the server offers BINARY.
            return Err(EncodeError::NeedsCapability {
                capability: "BINARY",
                what: "a message containing NUL bytes",
            });
        }
        self.literal(data, binary)
    }

    fn search(&mut self, s: &Search) -> Result<(), EncodeError> {
        self.raw(if s.uid {
            b"UID SEARCH".as_slice()
        } else {
            b"SEARCH"
        });
        if let Some(returns) = &s.returns {
            self.raw(b" RETURN (");
            for (i, r) in returns.iter().enumerate() {
                if i > 0 {
                    self.sp();
                }
                self.raw(match r {
                    SearchReturn::Min => b"MIN".as_slice(),
                    SearchReturn::Max => b"MAX",
                    SearchReturn::All => b"ALL",
                    SearchReturn::Count => b"COUNT",
                    SearchReturn::Save => b"SAVE",
                });
            }
            self.raw(b")");
        }
        if let Some(cs) = &s.charset {
            self.raw(b" CHARSET ");
            self.astring(cs.as_bytes(), "charset")?;
        }
        if s.criteria.is_empty() {
            return Err(EncodeError::Empty {
                what: "search criteria",
            });
        }
        for k in &s.criteria {
            self.sp();
            self.search_key(k, 0)?;
        }
        if self.search_8bit && s.charset.is_none() && !self.caps.utf8_accept {
            // Seed V0013 (RFC 3501 4.3.1): 8-bit text only with its character set named.
            return Err(invalid(
                "search charset",
                "8-bit search text needs CHARSET (or UTF8=ACCEPT)",
            ));
        }
        Ok(())
    }

    /// One `search-key` (RFC 3501 6.4.4, RFC 7162 3.1.5), nested keys at most
    /// `MAX_SEARCH_DEPTH` deep. Long by design: one short arm per [`SearchKey`] variant, so
    /// the key list reads in one place against the grammar.
    fn search_key(&mut self, k: &SearchKey, depth: usize) -> Result<(), EncodeError> {
        if depth >= MAX_SEARCH_DEPTH {
            return Err(EncodeError::TooLarge {
                what: "search key nesting",
                len: depth as u64,
                max: MAX_SEARCH_DEPTH as u64,
            });
        }
        let word = |w: &mut Self, s: &[u8]| w.raw(s);
        match k {
            SearchKey::All => word(self, b"ALL"),
            SearchKey::Answered => word(self, b"ANSWERED"),
            SearchKey::Deleted => word(self, b"DELETED"),
            SearchKey::Draft => word(self, b"DRAFT"),
            SearchKey::Flagged => word(self, b"FLAGGED"),
            SearchKey::New => word(self, b"NEW"),
            SearchKey::Old => word(self, b"OLD"),
            SearchKey::Recent => word(self, b"RECENT"),
            SearchKey::Seen => word(self, b"SEEN"),
            SearchKey::Unanswered => word(self, b"UNANSWERED"),
            SearchKey::Undeleted => word(self, b"UNDELETED"),
            SearchKey::Undraft => word(self, b"UNDRAFT"),
            SearchKey::Unflagged => word(self, b"UNFLAGGED"),
            SearchKey::Unseen => word(self, b"UNSEEN"),
            SearchKey::Bcc(s) => self.key_string(b"BCC ", s)?,
            SearchKey::Body(s) => self.key_string(b"BODY ", s)?,
            SearchKey::Cc(s) => self.key_string(b"CC ", s)?,
            SearchKey::From(s) => self.key_string(b"FROM ", s)?,
            SearchKey::Subject(s) => self.key_string(b"SUBJECT ", s)?,
            SearchKey::Text(s) => self.key_string(b"TEXT ", s)?,
            SearchKey::To(s) => self.key_string(b"TO ", s)?,
            SearchKey::Header(name, value) => {
                self.search_8bit |= !name.is_ascii() || !value.is_ascii();
                self.raw(b"HEADER ");
                self.astring(name, "header field name")?;
                self.sp();
                self.astring(value, "search string")?;
            }
            SearchKey::Before(d) => self.display(format_args!("BEFORE {d}")),
            SearchKey::On(d) => self.display(format_args!("ON {d}")),
            SearchKey::Since(d) => self.display(format_args!("SINCE {d}")),
            SearchKey::SentBefore(d) => self.display(format_args!("SENTBEFORE {d}")),
            SearchKey::SentOn(d) => self.display(format_args!("SENTON {d}")),
            SearchKey::SentSince(d) => self.display(format_args!("SENTSINCE {d}")),
            SearchKey::Keyword(f) | SearchKey::Unkeyword(f) => {
                if !matches!(f, Flag::Keyword(_)) {
                    return Err(invalid(
                        "search keyword",
                        "KEYWORD takes a keyword, not a \\flag",
                    ));
                }
                self.raw(if matches!(k, SearchKey::Keyword(_)) {
                    b"KEYWORD ".as_slice()
                } else {
                    b"UNKEYWORD "
                });
                self.flag(f, false)?;
            }
            SearchKey::Larger(n) => self.display(format_args!("LARGER {n}")),
            SearchKey::Smaller(n) => self.display(format_args!("SMALLER {n}")),
            SearchKey::Not(inner) => {
                self.raw(b"NOT ");
                self.search_key(inner, depth + 1)?;
            }
            SearchKey::Or(a, b) => {
                self.raw(b"OR ");
                self.search_key(a, depth + 1)?;
                self.sp();
                self.search_key(b, depth + 1)?;
            }
            SearchKey::Uid(set) => {
                self.raw(b"UID ");
                self.set(set, "search UID set")?;
            }
            SearchKey::SequenceSet(set) => self.set(set, "search sequence set")?,
            SearchKey::ModSeq(v) => {
                self.raw(b"MODSEQ ");
                self.modseq(*v, true, "search MODSEQ")?;
            }
            SearchKey::And(keys) => {
                if keys.is_empty() {
                    return Err(EncodeError::Empty {
                        what: "parenthesised search keys",
                    });
                }
                self.raw(b"(");
                for (i, key) in keys.iter().enumerate() {
                    if i > 0 {
                        self.sp();
                    }
                    self.search_key(key, depth + 1)?;
                }
                self.raw(b")");
            }
        }
        Ok(())
    }

    fn key_string(&mut self, key: &[u8], s: &[u8]) -> Result<(), EncodeError> {
        self.search_8bit |= !s.is_ascii();
        self.raw(key);
        self.astring(s, "search string")
    }

    fn fetch(
        &mut self,
        items: &FetchItems,
        modifiers: &FetchModifiers,
        uid: bool,
    ) -> Result<(), EncodeError> {
        self.sp();
        match items {
            FetchItems::All => self.raw(b"ALL"),
            FetchItems::Fast => self.raw(b"FAST"),
            FetchItems::Full => self.raw(b"FULL"),
            FetchItems::Items(list) => match list.as_slice() {
                [] => {
                    return Err(EncodeError::Empty {
                        what: "FETCH items",
                    })
                }
                [one] => self.fetch_item(one)?,
                many => {
                    self.raw(b"(");
                    for (i, it) in many.iter().enumerate() {
                        if i > 0 {
                            self.sp();
                        }
                        self.fetch_item(it)?;
                    }
                    self.raw(b")");
                }
            },
        }
        if modifiers.vanished && !uid {
            return Err(invalid(
                "FETCH modifiers",
                "VANISHED is only valid with UID FETCH",
            ));
        }
        if modifiers.vanished && modifiers.changed_since.is_none() {
            return Err(invalid("FETCH modifiers", "VANISHED needs CHANGEDSINCE"));
        }
        if let Some(since) = modifiers.changed_since {
            self.raw(b" (CHANGEDSINCE ");
            self.modseq(since, false, "CHANGEDSINCE")?;
            if modifiers.vanished {
                self.raw(b" VANISHED");
            }
            self.raw(b")");
        }
        Ok(())
    }

    fn fetch_item(&mut self, item: &FetchItem) -> Result<(), EncodeError> {
        match item {
            FetchItem::Flags => self.raw(b"FLAGS"),
            FetchItem::InternalDate => self.raw(b"INTERNALDATE"),
            FetchItem::Rfc822Size => self.raw(b"RFC822.SIZE"),
            FetchItem::Envelope => self.raw(b"ENVELOPE"),
            FetchItem::Body => self.raw(b"BODY"),
            FetchItem::BodyStructure => self.raw(b"BODYSTRUCTURE"),
            FetchItem::Uid => self.raw(b"UID"),
            FetchItem::ModSeq => self.raw(b"MODSEQ"),
            FetchItem::Rfc822 => self.raw(b"RFC822"),
            FetchItem::Rfc822Header => self.raw(b"RFC822.HEADER"),
            FetchItem::Rfc822Text => self.raw(b"RFC822.TEXT"),
            FetchItem::BodySection {
                peek,
                section,
                partial,
            } => {
                if !self.caps.imap4rev1 && partial.is_none() && section.part.is_empty() {
                    // Seed V0055: a pre-IMAP4rev1 server gets the RFC822.* forms.
                    let old: Option<&[u8]> = match (&section.text, peek) {
                        (None, false) => Some(b"RFC822"),
                        (None, true) => Some(b"RFC822.PEEK"),
                        (Some(SectionText::Header), _) => Some(b"RFC822.HEADER"),
                        (Some(SectionText::Text), false) => Some(b"RFC822.TEXT"),
                        _ => None,
                    };
                    if let Some(old) = old {
                        self.raw(old);
                        return Ok(());
                    }
                }
                self.raw(if *peek {
                    b"BODY.PEEK".as_slice()
                } else {
                    b"BODY"
                });
                self.section(section)?;
                self.partial(partial);
            }
            FetchItem::Binary {
                peek,
                part,
                partial,
            } => {
                self.need_binary("BINARY fetch")?;
                self.raw(if *peek {
                    b"BINARY.PEEK[".as_slice()
                } else {
                    b"BINARY["
                });
                self.part_path(part);
                self.raw(b"]");
                self.partial(partial);
            }
            FetchItem::BinarySize { part } => {
                self.need_binary("BINARY.SIZE fetch")?;
                self.raw(b"BINARY.SIZE[");
                self.part_path(part);
                self.raw(b"]");
            }
        }
        Ok(())
    }

    fn need_binary(&self, what: &'static str) -> Result<(), EncodeError> {
        if self.caps.binary {
            Ok(())
        } else {
            Err(EncodeError::NeedsCapability {
                capability: "BINARY",
                what,
            })
        }
    }

    fn part_path(&mut self, part: &[std::num::NonZeroU32]) {
        for (i, p) in part.iter().enumerate() {
            if i > 0 {
                self.raw(b".");
            }
            self.display(p);
        }
    }

    fn partial(&mut self, partial: &Option<Partial>) {
        if let Some(p) = partial {
            self.display(format_args!("<{}.{}>", p.origin, p.length));
        }
    }

    fn section(&mut self, s: &Section) -> Result<(), EncodeError> {
        self.raw(b"[");
        self.part_path(&s.part);
        if let Some(text) = &s.text {
            if !s.part.is_empty() {
                self.raw(b".");
            }
            match text {
                SectionText::Header => self.raw(b"HEADER"),
                SectionText::Text => self.raw(b"TEXT"),
                SectionText::Mime => {
                    if s.part.is_empty() {
                        return Err(invalid("section", "MIME needs a part number"));
                    }
                    self.raw(b"MIME");
                }
                SectionText::HeaderFields(names) | SectionText::HeaderFieldsNot(names) => {
                    self.raw(if matches!(text, SectionText::HeaderFields(_)) {
                        b"HEADER.FIELDS (".as_slice()
                    } else {
                        b"HEADER.FIELDS.NOT ("
                    });
                    if names.is_empty() {
                        return Err(EncodeError::Empty {
                            what: "header field list",
                        });
                    }
                    for (i, n) in names.iter().enumerate() {
                        if i > 0 {
                            self.sp();
                        }
                        self.astring(n, "header field name")?;
                    }
                    self.raw(b")");
                }
            }
        }
        self.raw(b"]");
        Ok(())
    }

    fn store(&mut self, s: &StoreFlags, unchanged_since: Option<u64>) -> Result<(), EncodeError> {
        if let Some(v) = unchanged_since {
            self.raw(b" (UNCHANGEDSINCE ");
            self.modseq(v, true, "UNCHANGEDSINCE")?;
            self.raw(b")");
        }
        self.raw(match s.mode {
            StoreMode::Replace => b" FLAGS".as_slice(),
            StoreMode::Add => b" +FLAGS",
            StoreMode::Remove => b" -FLAGS",
        });
        if s.silent {
            self.raw(b".SILENT");
        }
        self.sp();
        self.flag_list(&s.flags)
    }

    fn id(&mut self, params: Option<&[(String, Option<String>)]>) -> Result<(), EncodeError> {
        self.raw(b"ID ");
        let Some(params) = params else {
            self.raw(b"NIL");
            return Ok(());
        };
        if params.is_empty() {
            // "ID ()" is allowed by RFC 2971 but means the same as NIL, which every server
            // parses.
            self.raw(b"NIL");
            return Ok(());
        }
        if params.len() > 30 {
            return Err(EncodeError::TooLarge {
                what: "ID field count",
                len: params.len() as u64,
                max: 30,
            });
        }
        self.raw(b"(");
        for (i, (k, v)) in params.iter().enumerate() {
            if i > 0 {
                self.sp();
            }
            // RFC 2971 section 3.3: fields at most 30 octets, values at most 1024.
            if k.len() > 30 {
                return Err(EncodeError::TooLarge {
                    what: "ID field name",
                    len: k.len() as u64,
                    max: 30,
                });
            }
            self.string(k.as_bytes(), StrKind::String, "ID field name")?;
            self.sp();
            match v {
                None => self.raw(b"NIL"),
                Some(v) if v.len() > 1024 => {
                    return Err(EncodeError::TooLarge {
                        what: "ID field value",
                        len: v.len() as u64,
                        max: 1024,
                    })
                }
                Some(v) => self.string(v.as_bytes(), StrKind::String, "ID field value")?,
            }
        }
        self.raw(b")");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o.as_bytes());
        }
    }
}
