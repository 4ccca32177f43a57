//! Typed IMAP commands: everything a client sends, as data.
//!
//! A [`Command`] says *what* to send; [`crate::encode`] decides *how* (atom, quoted string or
//! literal; which literal form), given the server's capabilities. Keeping the two apart means
//! a command built once can be encoded differently for a server with LITERAL+ or UTF8=ACCEPT,
//! and that every wire-level rule lives in one strict place (seed N3/N4).
//!
//! Coverage: every RFC 3501 command, the UID forms (seed V0059), and the extensions a sync
//! client needs: IDLE (RFC 2177), ENABLE (RFC 5161), UNSELECT (RFC 3691), MOVE (RFC 6851),
//! UIDPLUS `UID EXPUNGE` (RFC 4315), CONDSTORE/QRESYNC (RFC 7162), ESEARCH `RETURN` (RFC 4731,
//! SAVE from RFC 5182), ID (RFC 2971), NAMESPACE (RFC 2342), COMPRESS (RFC 4978), LIST-EXTENDED
//! and LIST-STATUS (RFC 5258, 5819), SPECIAL-USE (RFC 6154), BINARY (RFC 3516). Anything else
//! goes through [`Command::Raw`] (seed V0061).
//!
//! Values a type can check on construction are checked there ([`Date`], [`DateTime`], the
//! sequence sets); strings are free-form bytes and are checked by the encoder, which is the
//! one place that knows how they will be written.

use std::fmt;
use std::num::NonZeroU32;

use mailfold_sasl::Secret;

use crate::core::{Flag, InvalidValue, Mailbox};
use crate::seqset::{SeqSet, UidSet};

/// One IMAP command, without its tag.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// `CAPABILITY` (RFC 3501 6.1.1).
    Capability,
    /// `NOOP` (RFC 3501 6.1.2); also the keepalive (seed V0025).
    Noop,
    /// `LOGOUT` (RFC 3501 6.1.3).
    Logout,
    /// `STARTTLS` (RFC 3501 6.2.1).
    StartTls,
    /// `AUTHENTICATE mechanism [initial-response]` (RFC 3501 6.2.2, SASL-IR RFC 4959). The
    /// initial response is raw bytes; the encoder base64-encodes it (an empty one is `=`).
    Authenticate {
        /// SASL mechanism name, e.g. `PLAIN`, `SCRAM-SHA-256`, `XOAUTH2`.
        mechanism: String,
        /// Initial client response, sent only when the server offers SASL-IR.
        initial_response: Option<Secret<Vec<u8>>>,
    },
    /// `LOGIN user password` (RFC 3501 6.2.3). The password is redacted in `Debug`.
    Login {
        /// User name.
        username: Vec<u8>,
        /// Password.
        password: Secret<Vec<u8>>,
    },
    /// `SELECT mailbox [(CONDSTORE) / (QRESYNC ...)]` (RFC 3501 6.3.1, RFC 7162).
    Select {
        /// The mailbox.
        mailbox: Mailbox,
        /// CONDSTORE / QRESYNC parameters.
        params: SelectParams,
    },
    /// `EXAMINE`: read-only SELECT (RFC 3501 6.3.2).
    Examine {
        /// The mailbox.
        mailbox: Mailbox,
        /// CONDSTORE / QRESYNC parameters.
        params: SelectParams,
    },
    /// `CREATE mailbox` (RFC 3501 6.3.3).
    Create(Mailbox),
    /// `DELETE mailbox` (RFC 3501 6.3.4).
    Delete(Mailbox),
    /// `RENAME from to` (RFC 3501 6.3.5).
    Rename {
        /// Existing name.
        from: Mailbox,
        /// New name.
        to: Mailbox,
    },
    /// `SUBSCRIBE mailbox` (RFC 3501 6.3.6).
    Subscribe(Mailbox),
    /// `UNSUBSCRIBE mailbox` (RFC 3501 6.3.7).
    Unsubscribe(Mailbox),
    /// `LIST` (RFC 3501 6.3.8), with LIST-EXTENDED options when any are set (RFC 5258).
    List(List),
    /// `LSUB reference pattern` (RFC 3501 6.3.9).
    Lsub {
        /// Reference name (usually empty).
        reference: Mailbox,
        /// Pattern with `%`/`*` wildcards, in wire form.
        pattern: Vec<u8>,
    },
    /// `STATUS mailbox (items)` (RFC 3501 6.3.10).
    Status {
        /// The mailbox.
        mailbox: Mailbox,
        /// At least one item.
        items: Vec<StatusItem>,
    },
    /// `APPEND mailbox [(flags)] [date-time] message` (RFC 3501 6.3.11).
    Append(Append),
    /// `CHECK` (RFC 3501 6.4.1, seed V0049).
    Check,
    /// `CLOSE` (RFC 3501 6.4.2).
    Close,
    /// `UNSELECT` (RFC 3691): close without expunging.
    Unselect,
    /// `EXPUNGE` (RFC 3501 6.4.3).
    Expunge,
    /// `UID EXPUNGE set` (RFC 4315 2.1): expunge only these UIDs.
    UidExpunge(UidSet),
    /// `SEARCH` or `UID SEARCH` (RFC 3501 6.4.4; RETURN options RFC 4731).
    Search(Search),
    /// `FETCH set items [(modifiers)]` (RFC 3501 6.4.5).
    Fetch {
        /// Messages by sequence number.
        set: SeqSet,
        /// What to fetch.
        items: FetchItems,
        /// CONDSTORE modifiers; `vanished` is invalid here (UID FETCH only, RFC 7162 3.2.6).
        modifiers: FetchModifiers,
    },
    /// `UID FETCH set items [(modifiers)]` (RFC 3501 6.4.8).
    UidFetch {
        /// Messages by UID.
        set: UidSet,
        /// What to fetch. The server adds UID to every response anyway.
        items: FetchItems,
        /// CONDSTORE/QRESYNC modifiers.
        modifiers: FetchModifiers,
    },
    /// `STORE set [(UNCHANGEDSINCE n)] action` (RFC 3501 6.4.6, RFC 7162 3.1.3).
    Store {
        /// Messages by sequence number.
        set: SeqSet,
        /// Flags and how to apply them.
        store: StoreFlags,
        /// `UNCHANGEDSINCE` mod-sequence (0 is allowed: "only if never modified").
        unchanged_since: Option<u64>,
    },
    /// `UID STORE` (RFC 3501 6.4.8).
    UidStore {
        /// Messages by UID.
        set: UidSet,
        /// Flags and how to apply them.
        store: StoreFlags,
        /// `UNCHANGEDSINCE` mod-sequence.
        unchanged_since: Option<u64>,
    },
    /// `COPY set mailbox` (RFC 3501 6.4.7).
    Copy {
        /// Messages by sequence number.
        set: SeqSet,
        /// Destination.
        mailbox: Mailbox,
    },
    /// `UID COPY` (RFC 3501 6.4.8).
    UidCopy {
        /// Messages by UID.
        set: UidSet,
        /// Destination.
        mailbox: Mailbox,
    },
    /// `MOVE set mailbox` (RFC 6851).
    Move {
        /// Messages by sequence number.
        set: SeqSet,
        /// Destination.
        mailbox: Mailbox,
    },
    /// `UID MOVE` (RFC 6851).
    UidMove {
        /// Messages by UID.
        set: UidSet,
        /// Destination.
        mailbox: Mailbox,
    },
    /// `IDLE` (RFC 2177). End it with [`crate::encode::encode_done`].
    Idle,
    /// `ENABLE cap...` (RFC 5161), e.g. `CONDSTORE`, `QRESYNC`, `UTF8=ACCEPT`.
    Enable(Vec<String>),
    /// `ID (field value ...)` or `ID NIL` (RFC 2971). Values may be NIL.
    Id(Option<Vec<(String, Option<String>)>>),
    /// `NAMESPACE` (RFC 2342).
    Namespace,
    /// `COMPRESS DEFLATE` (RFC 4978).
    CompressDeflate,
    /// `NOTIFY SET …` or `NOTIFY NONE` (RFC 5465); see [`crate::notify`].
    Notify(crate::notify::Notify),
    /// A command the library does not model (seed V0061): the text after the tag, which the
    /// caller vouches is valid for the server. The encoder only refuses CR, LF and NUL, which
    /// would end the line early or are never valid.
    Raw(Vec<u8>),
}

impl Command {
    /// The command name as it appears on the wire (`UID FETCH`, `SELECT`), for logs and for
    /// matching responses; `Raw` commands report their first word.
    pub fn name(&self) -> &str {
        match self {
            Command::Capability => "CAPABILITY",
            Command::Noop => "NOOP",
            Command::Logout => "LOGOUT",
            Command::StartTls => "STARTTLS",
            Command::Authenticate { .. } => "AUTHENTICATE",
            Command::Login { .. } => "LOGIN",
            Command::Select { .. } => "SELECT",
            Command::Examine { .. } => "EXAMINE",
            Command::Create(_) => "CREATE",
            Command::Delete(_) => "DELETE",
            Command::Rename { .. } => "RENAME",
            Command::Subscribe(_) => "SUBSCRIBE",
            Command::Unsubscribe(_) => "UNSUBSCRIBE",
            Command::List(_) => "LIST",
            Command::Lsub { .. } => "LSUB",
            Command::Status { .. } => "STATUS",
            Command::Append(_) => "APPEND",
            Command::Check => "CHECK",
            Command::Close => "CLOSE",
            Command::Unselect => "UNSELECT",
            Command::Expunge => "EXPUNGE",
            Command::UidExpunge(_) => "UID EXPUNGE",
            Command::Search(s) if s.uid => "UID SEARCH",
            Command::Search(_) => "SEARCH",
            Command::Fetch { .. } => "FETCH",
            Command::UidFetch { .. } => "UID FETCH",
            Command::Store { .. } => "STORE",
            Command::UidStore { .. } => "UID STORE",
            Command::Copy { .. } => "COPY",
            Command::UidCopy { .. } => "UID COPY",
            Command::Move { .. } => "MOVE",
            Command::UidMove { .. } => "UID MOVE",
            Command::Idle => "IDLE",
            Command::Enable(_) => "ENABLE",
            Command::Id(_) => "ID",
            Command::Namespace => "NAMESPACE",
            Command::CompressDeflate => "COMPRESS",
            Command::Notify(_) => "NOTIFY",
            Command::Raw(text) => {
                let end = text.iter().position(|&b| b == b' ').unwrap_or(text.len());
                std::str::from_utf8(&text[..end]).unwrap_or("RAW")
            }
        }
    }

    /// `SELECT` with no parameters.
    pub fn select(mailbox: Mailbox) -> Command {
        Command::Select {
            mailbox,
            params: SelectParams::None,
        }
    }

    /// `EXAMINE` with no parameters.
    pub fn examine(mailbox: Mailbox) -> Command {
        Command::Examine {
            mailbox,
            params: SelectParams::None,
        }
    }

    /// `LOGIN` from text credentials.
    pub fn login(username: &str, password: Secret<String>) -> Command {
        Command::Login {
            username: username.as_bytes().to_vec(),
            password: Secret::new(password.into_inner().into_bytes()),
        }
    }
}

/// SELECT/EXAMINE parameters (RFC 7162 3.1.8 and 3.2.5).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SelectParams {
    /// Plain SELECT.
    #[default]
    None,
    /// `(CONDSTORE)`: enable mod-sequences for this session.
    CondStore,
    /// `(QRESYNC (uidvalidity modseq [known-uids [(seqs uids)]]))`: quick resync. Requires a
    /// prior `ENABLE QRESYNC`.
    Qresync(Qresync),
}

/// QRESYNC parameters: what the client knew at its last sync (RFC 7162 3.2.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Qresync {
    /// The UIDVALIDITY the cached state belongs to.
    pub uid_validity: NonZeroU32,
    /// The last known HIGHESTMODSEQ (must be at least 1).
    pub modseq: u64,
    /// UIDs the client knows about (no `*` allowed).
    pub known_uids: Option<UidSet>,
    /// Sequence-number/UID pairs that let the server skip unchanged ranges: two sets of equal
    /// size (no `*`).
    pub seq_match: Option<(SeqSet, UidSet)>,
}

/// LIST, with optional LIST-EXTENDED selection and return options (RFC 5258, 5819, 6154).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct List {
    /// Selection options: `(SUBSCRIBED REMOTE ...)` before the reference.
    pub selection: Vec<ListSelect>,
    /// Reference name; usually empty.
    pub reference: Mailbox,
    /// One or more patterns with `%`/`*` wildcards, in wire form; more than one needs
    /// LIST-EXTENDED.
    pub patterns: Vec<Vec<u8>>,
    /// Return options: `RETURN (CHILDREN ...)`.
    pub returns: Vec<ListReturn>,
}

impl List {
    /// `LIST reference pattern` with no extended options.
    pub fn new(reference: Mailbox, pattern: impl Into<Vec<u8>>) -> Self {
        List {
            selection: Vec::new(),
            reference,
            patterns: vec![pattern.into()],
            returns: Vec::new(),
        }
    }
}

/// LIST selection options (RFC 5258 3.1, RFC 6154 5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ListSelect {
    /// `SUBSCRIBED`
    Subscribed,
    /// `REMOTE`
    Remote,
    /// `RECURSIVEMATCH` (never alone: RFC 5258 3.1).
    RecursiveMatch,
    /// `SPECIAL-USE`
    SpecialUse,
}

/// LIST return options (RFC 5258 3.2, RFC 5819, RFC 6154).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListReturn {
    /// `SUBSCRIBED`
    Subscribed,
    /// `CHILDREN`
    Children,
    /// `SPECIAL-USE`
    SpecialUse,
    /// `STATUS (items)` (LIST-STATUS, RFC 5819).
    Status(Vec<StatusItem>),
}

/// STATUS data items (RFC 3501 6.3.10, RFC 7162, RFC 8438, RFC 9051).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatusItem {
    /// `MESSAGES`
    Messages,
    /// `RECENT`
    Recent,
    /// `UIDNEXT`
    UidNext,
    /// `UIDVALIDITY`
    UidValidity,
    /// `UNSEEN`
    Unseen,
    /// `HIGHESTMODSEQ` (CONDSTORE)
    HighestModSeq,
    /// `SIZE` (RFC 8438)
    Size,
    /// `DELETED` (IMAP4rev2)
    Deleted,
}

impl StatusItem {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusItem::Messages => "MESSAGES",
            StatusItem::Recent => "RECENT",
            StatusItem::UidNext => "UIDNEXT",
            StatusItem::UidValidity => "UIDVALIDITY",
            StatusItem::Unseen => "UNSEEN",
            StatusItem::HighestModSeq => "HIGHESTMODSEQ",
            StatusItem::Size => "SIZE",
            StatusItem::Deleted => "DELETED",
        }
    }
}

/// APPEND arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Append {
    /// Destination mailbox.
    pub mailbox: Mailbox,
    /// Flags to set (never `\Recent`: seed V0004). Empty means no flag list is sent.
    pub flags: Vec<Flag>,
    /// INTERNALDATE to set; the server uses the current time when absent.
    pub internal_date: Option<DateTime>,
    /// The message.
    pub message: AppendData,
}

/// The message of an APPEND.
#[derive(Clone, PartialEq, Eq)]
pub enum AppendData {
    /// The bytes are here. If they contain NUL the encoder needs BINARY (seed V0014).
    Inline(Vec<u8>),
    /// The driver streams `len` bytes itself after the literal header, so a large message
    /// never has to sit in memory. `binary` says whether the data may contain NUL (and so
    /// needs BINARY's `~{n}`); messages are normally 7- or 8-bit text and do not.
    Streamed {
        /// Exact byte count the driver will send.
        len: u64,
        /// Whether the data may contain NUL bytes.
        binary: bool,
    },
}

impl fmt::Debug for AppendData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Message bodies are large and private: show only their size.
            AppendData::Inline(b) => write!(f, "Inline({} bytes)", b.len()),
            AppendData::Streamed { len, binary } => {
                write!(f, "Streamed({len} bytes, binary: {binary})")
            }
        }
    }
}

/// SEARCH / UID SEARCH (RFC 3501 6.4.4, RFC 4731).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Search {
    /// `UID SEARCH` when true (results are UIDs).
    pub uid: bool,
    /// `CHARSET` name (e.g. `UTF-8`); required when the criteria carry 8-bit text and
    /// UTF8=ACCEPT is not enabled (seed V0013).
    pub charset: Option<String>,
    /// At least one key; several keys are ANDed.
    pub criteria: Vec<SearchKey>,
    /// ESEARCH `RETURN (...)` options; `Some(vec![])` sends `RETURN ()` (meaning ALL).
    pub returns: Option<Vec<SearchReturn>>,
}

impl Search {
    /// A plain search for the given keys.
    pub fn new(uid: bool, criteria: Vec<SearchKey>) -> Self {
        Search {
            uid,
            charset: None,
            criteria,
            returns: None,
        }
    }
}

/// ESEARCH return options (RFC 4731 3.1; SAVE from RFC 5182).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SearchReturn {
    /// `MIN`
    Min,
    /// `MAX`
    Max,
    /// `ALL`
    All,
    /// `COUNT`
    Count,
    /// `SAVE`
    Save,
}

/// A search key: the whole RFC 3501 6.4.4 grammar plus CONDSTORE `MODSEQ`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchKey {
    /// `ALL`
    All,
    /// `ANSWERED`
    Answered,
    /// `BCC string`
    Bcc(Vec<u8>),
    /// `BEFORE date` (internal date)
    Before(Date),
    /// `BODY string`
    Body(Vec<u8>),
    /// `CC string`
    Cc(Vec<u8>),
    /// `DELETED`
    Deleted,
    /// `DRAFT`
    Draft,
    /// `FLAGGED`
    Flagged,
    /// `FROM string`
    From(Vec<u8>),
    /// `HEADER field-name string`
    Header(Vec<u8>, Vec<u8>),
    /// `KEYWORD flag` (a keyword, not a system flag)
    Keyword(Flag),
    /// `LARGER n`
    Larger(u32),
    /// `NEW`
    New,
    /// `NOT key`
    Not(Box<SearchKey>),
    /// `OLD`
    Old,
    /// `ON date`
    On(Date),
    /// `OR key key`
    Or(Box<SearchKey>, Box<SearchKey>),
    /// `RECENT`
    Recent,
    /// `SEEN`
    Seen,
    /// `SENTBEFORE date`
    SentBefore(Date),
    /// `SENTON date`
    SentOn(Date),
    /// `SENTSINCE date`
    SentSince(Date),
    /// `SINCE date`
    Since(Date),
    /// `SMALLER n`
    Smaller(u32),
    /// `SUBJECT string`
    Subject(Vec<u8>),
    /// `TEXT string`
    Text(Vec<u8>),
    /// `TO string`
    To(Vec<u8>),
    /// `UID set`
    Uid(UidSet),
    /// `UNANSWERED`
    Unanswered,
    /// `UNDELETED`
    Undeleted,
    /// `UNDRAFT`
    Undraft,
    /// `UNFLAGGED`
    Unflagged,
    /// `UNKEYWORD flag`
    Unkeyword(Flag),
    /// `UNSEEN`
    Unseen,
    /// A bare sequence set.
    SequenceSet(SeqSet),
    /// `MODSEQ n` (RFC 7162 3.1.5; 0 allowed).
    ModSeq(u64),
    /// `(key key ...)`: a parenthesised AND (at least one key).
    And(Vec<SearchKey>),
}

/// What to fetch: a macro or a list of items (RFC 3501 6.4.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchItems {
    /// `ALL` = `(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)` (seed V0052).
    All,
    /// `FAST` = `(FLAGS INTERNALDATE RFC822.SIZE)`.
    Fast,
    /// `FULL` = `(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY)`.
    Full,
    /// Explicit items (at least one); a single item is sent without parentheses.
    Items(Vec<FetchItem>),
}

/// One FETCH data item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchItem {
    /// `FLAGS`
    Flags,
    /// `INTERNALDATE`
    InternalDate,
    /// `RFC822.SIZE`
    Rfc822Size,
    /// `ENVELOPE`
    Envelope,
    /// `BODY` (structure without extension data)
    Body,
    /// `BODYSTRUCTURE`
    BodyStructure,
    /// `UID`
    Uid,
    /// `MODSEQ` (CONDSTORE)
    ModSeq,
    /// `RFC822` (= `BODY[]`, sets \Seen)
    Rfc822,
    /// `RFC822.HEADER` (= `BODY.PEEK[HEADER]`)
    Rfc822Header,
    /// `RFC822.TEXT` (= `BODY[TEXT]`, sets \Seen)
    Rfc822Text,
    /// `BODY[section]<partial>` or, with `peek`, `BODY.PEEK[...]` (seed V0054).
    BodySection {
        /// `.PEEK`: do not set \Seen. Sync always peeks.
        peek: bool,
        /// Which part.
        section: Section,
        /// `<origin.length>`.
        partial: Option<Partial>,
    },
    /// `BINARY[part]<partial>` / `BINARY.PEEK[...]` (RFC 3516): decoded content.
    Binary {
        /// `.PEEK`
        peek: bool,
        /// Part numbers (empty for the whole message).
        part: Vec<NonZeroU32>,
        /// `<origin.length>`.
        partial: Option<Partial>,
    },
    /// `BINARY.SIZE[part]` (RFC 3516).
    BinarySize {
        /// Part numbers.
        part: Vec<NonZeroU32>,
    },
}

impl FetchItem {
    /// `BODY.PEEK[]`: the whole message without setting \Seen.
    pub fn body_peek() -> Self {
        FetchItem::BodySection {
            peek: true,
            section: Section::default(),
            partial: None,
        }
    }

    /// `BODY.PEEK[HEADER]`.
    pub fn header_peek() -> Self {
        FetchItem::BodySection {
            peek: true,
            section: Section {
                part: Vec::new(),
                text: Some(SectionText::Header),
            },
            partial: None,
        }
    }
}

/// `<origin.length>` of a partial fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partial {
    /// First byte.
    pub origin: u32,
    /// Maximum bytes.
    pub length: NonZeroU32,
}

/// A body section specifier: part numbers then an optional text part (RFC 3501 6.4.5).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Section {
    /// Part path such as `1.2.3`; empty for the whole message.
    pub part: Vec<NonZeroU32>,
    /// `HEADER`, `TEXT`, `MIME`, ...; `None` for the whole part.
    pub text: Option<SectionText>,
}

/// The text part of a section specifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SectionText {
    /// `HEADER`
    Header,
    /// `HEADER.FIELDS (names)` (at least one name).
    HeaderFields(Vec<Vec<u8>>),
    /// `HEADER.FIELDS.NOT (names)`.
    HeaderFieldsNot(Vec<Vec<u8>>),
    /// `TEXT`
    Text,
    /// `MIME` (only after a part number).
    Mime,
}

/// CONDSTORE/QRESYNC FETCH modifiers (RFC 7162 3.1.4, 3.2.6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FetchModifiers {
    /// `CHANGEDSINCE n` (n ≥ 1).
    pub changed_since: Option<u64>,
    /// `VANISHED` (UID FETCH with CHANGEDSINCE only).
    pub vanished: bool,
}

/// How STORE changes flags (RFC 3501 6.4.6, seed V0056).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoreMode {
    /// `FLAGS`: replace.
    Replace,
    /// `+FLAGS`: add.
    Add,
    /// `-FLAGS`: remove.
    Remove,
}

/// The flags part of a STORE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreFlags {
    /// Replace, add or remove.
    pub mode: StoreMode,
    /// `.SILENT`: the server need not echo the new flags.
    pub silent: bool,
    /// The flags (may be empty for `FLAGS ()`, clearing all).
    pub flags: Vec<Flag>,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A calendar date for SEARCH (`d-Mon-yyyy`, RFC 3501 `date`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

impl Date {
    /// Validates a date (year 1..=9999, real day of month, leap years included).
    pub fn new(year: u16, month: u8, day: u8) -> Result<Self, InvalidValue> {
        let leap =
            (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => 0,
        };
        if (1..=9999).contains(&year) && day >= 1 && day <= days {
            Ok(Date { year, month, day })
        } else {
            Err(InvalidValue::new(
                "date",
                &format!("{year:04}-{month:02}-{day:02}"),
            ))
        }
    }

    /// Year.
    pub fn year(self) -> u16 {
        self.year
    }

    /// Month, 1–12.
    pub fn month(self) -> u8 {
        self.month
    }

    /// Day of month, from 1.
    pub fn day(self) -> u8 {
        self.day
    }

    fn month_name(self) -> &'static str {
        // month is 1..=12 by construction.
        MONTHS[usize::from(self.month - 1)]
    }
}

impl fmt::Display for Date {
    /// Wire form `1-Feb-2024` (RFC 3501 `date-text`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{:04}", self.day, self.month_name(), self.year)
    }
}

/// A date and time with zone, for APPEND's INTERNALDATE (RFC 3501 `date-time`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DateTime {
    date: Date,
    hour: u8,
    minute: u8,
    second: u8,
    /// Offset from UTC in minutes, within ±99:59 as the grammar allows.
    zone_minutes: i16,
}

impl DateTime {
    /// Validates the time of day (seconds up to 60 for a leap second) and zone offset.
    pub fn new(
        date: Date,
        hour: u8,
        minute: u8,
        second: u8,
        zone_minutes: i16,
    ) -> Result<Self, InvalidValue> {
        if hour < 24 && minute < 60 && second <= 60 && zone_minutes.unsigned_abs() <= 99 * 60 + 59 {
            Ok(DateTime {
                date,
                hour,
                minute,
                second,
                zone_minutes,
            })
        } else {
            Err(InvalidValue::new(
                "date-time",
                &format!("{hour:02}:{minute:02}:{second:02} {zone_minutes:+}"),
            ))
        }
    }

    /// The date part.
    pub fn date(self) -> Date {
        self.date
    }
}

impl fmt::Display for DateTime {
    /// Wire form without the quotes: ` 1-Feb-2024 09:05:00 +0100` (`date-day-fixed` pads the
    /// day with a space).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.zone_minutes < 0 { '-' } else { '+' };
        let z = self.zone_minutes.unsigned_abs();
        write!(
            f,
            "{:>2}-{}-{:04} {:02}:{:02}:{:02} {}{:02}{:02}",
            self.date.day,
            self.date.month_name(),
            self.date.year,
            self.hour,
            self.minute,
            self.second,
            sign,
            z / 60,
            z % 60
        )
    }
}
