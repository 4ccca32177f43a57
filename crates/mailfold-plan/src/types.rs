//! Planner inputs: plain data describing the three sides of a sync.
//!
//! These types are plain data: the network driver and the store translate their own views into
//! them, and a test or a fuzzer can build them by hand. They describe *what is*, never what to
//! do; decisions live in [`super::engine`]. The protocol value types ([`Uid`], [`UidValidity`],
//! [`ModSeq`]) are `mailfold-proto`'s, re-exported here, so the store and the sync hand theirs
//! over unconverted.

use std::fmt;

pub use mailfold_proto::core::{ModSeq, Uid, UidValidity};

use mailfold_proto::core::Flag as WireFlag;

/// A point in time as whole seconds since the Unix epoch (UTC). INTERNALDATE has second
/// precision, and a downloaded file's mtime is set from it (seed V0006), so equality of the two is
/// meaningful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(pub i64);

/// A content hash of a message: SHA-256 over the message text with line ends normalised to
/// CRLF (so the local LF copy and the server copy hash alike). The store computes it
/// (`mailfold_store::crlf`) and keeps it in its rows; the planner only compares hashes for
/// equality.
///
/// Defined here, once, for the planner, the store and the sync: the planner's inputs and
/// operations carry it, and the store depends on this crate (which is pure and depends on
/// nothing but `mailfold-proto`) to keep it in its rows, so a hash read from a row goes into a
/// plan, and back, unconverted. It is not a protocol value, so it does not belong in
/// `mailfold-proto`; and the planner cannot depend on the store, which does I/O.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// Parses 64 hex digits (the form [`Display`](fmt::Display) writes).
    pub fn from_hex(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            let h = (b[2 * i] as char).to_digit(16)?;
            let l = (b[2 * i + 1] as char).to_digit(16)?;
            // Both digits are < 16, so the value fits a byte.
            *o = (h * 16 + l) as u8;
        }
        Some(ContentHash(out))
    }
}

/// The 64 lowercase hex digits of the hash.
impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The first four bytes only, so that a dump of a plan stays readable.
impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// A folder, as the list of its hierarchy components, decoded to UTF-8 (modified UTF-7 decoding
/// and the hierarchy delimiter are the driver's business; seed V0021). The same path names the
/// remote folder, the local Maildir and the state entry. Ordering is component-wise, so a parent
/// sorts before its children.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FolderPath(pub Vec<String>);

impl FolderPath {
    /// A path from `/`-separated components (a convenience for tests and configuration; a
    /// component that itself contains `/` must be built with [`FolderPath::from_components`]).
    pub fn parse(s: &str) -> FolderPath {
        FolderPath(s.split('/').map(str::to_owned).collect())
    }

    /// A path from its components.
    pub fn from_components<I: IntoIterator<Item = S>, S: Into<String>>(parts: I) -> FolderPath {
        FolderPath(parts.into_iter().map(Into::into).collect())
    }

    /// How deep the folder sits (INBOX is 1).
    pub fn depth(&self) -> usize {
        self.0.len()
    }

    /// Whether `self` is a strict ancestor of `other`.
    pub fn is_ancestor_of(&self, other: &FolderPath) -> bool {
        other.0.len() > self.0.len() && other.0.starts_with(&self.0)
    }
}

impl fmt::Display for FolderPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("/"))
    }
}

/// A local message's identity: the Maildir file's *base name*, i.e. the unique part before the
/// `:2,` info suffix, without directory. Renaming a file to change its flags or moving it between
/// `new/` and `cur/` keeps its identity; mutt and notmuch keep it when moving a file to another
/// folder, which is how local moves are recognised.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalId(pub String);

impl LocalId {
    /// Wraps a base name.
    pub fn new(s: impl Into<String>) -> LocalId {
        LocalId(s.into())
    }
}

impl fmt::Display for LocalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One message flag as the planner sees it: a flag a message can hold and a Maildir or the state
/// database can keep.
///
/// It is not [`mailfold_proto::core::Flag`], the flag as the wire carries it, on purpose: the wire
/// also has `\Recent`, session state the server owns that can never be stored (seed V0004), and
/// `\*`, which only marks PERMANENTFLAGS as open to new keywords and is no flag of any message.
/// Neither has a variant here, so no plan can hold them. [`Flag::from_wire`] is the one mapping
/// from the wire flag to this one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flag {
    /// `\Seen` (Maildir `S`).
    Seen,
    /// `\Answered` (Maildir `R`).
    Answered,
    /// `\Flagged` (Maildir `F`).
    Flagged,
    /// `\Deleted` (Maildir `T`).
    Deleted,
    /// `\Draft` (Maildir `D`).
    Draft,
    /// A keyword such as `$Junk` or a user label (seed V0005), without quoting.
    Keyword(String),
    /// A system-flag extension `\Name` other than the five above (seed N6), stored without the
    /// backslash. Kept and synced like a keyword, but never assumed creatable.
    Extension(String),
}

impl Flag {
    /// The planner's flag for a wire flag; `None` for `\Recent` (seed V0004) and for `\*`.
    pub fn from_wire(flag: WireFlag) -> Option<Flag> {
        match flag {
            WireFlag::Seen => Some(Flag::Seen),
            WireFlag::Answered => Some(Flag::Answered),
            WireFlag::Flagged => Some(Flag::Flagged),
            WireFlag::Deleted => Some(Flag::Deleted),
            WireFlag::Draft => Some(Flag::Draft),
            WireFlag::Recent | WireFlag::MayCreate => None,
            WireFlag::Extension(name) => Some(Flag::Extension(name)),
            WireFlag::Keyword(k) => Some(Flag::Keyword(k)),
        }
    }

    /// Parses one flag from its wire text (`\Seen`, `$Junk`, `\Foo`): as the wire flag
    /// ([`WireFlag::parse`], case-insensitive for the system flags, RFC 3501 2.3.2), then
    /// [`Flag::from_wire`]. `None` for `\Recent`, `\*` and the empty string.
    ///
    /// Flags reach the planner as text because the `Remote` interface and the state database
    /// carry them as text. Text the wire grammar refuses (a keyword with a character outside
    /// `atom`, as a Maildir keyword file or an old state row may hold) is still kept, as a
    /// keyword or an extension, so nothing local is dropped.
    pub fn from_imap(s: &str) -> Option<Flag> {
        if let Some(flag) = WireFlag::parse(s) {
            return Flag::from_wire(flag);
        }
        match s.strip_prefix('\\') {
            Some("") => None,
            Some(name) => Some(Flag::Extension(name.to_owned())),
            None if s.is_empty() => None,
            None => Some(Flag::Keyword(s.to_owned())),
        }
    }

    /// The flag as written in an IMAP command.
    pub fn to_imap(&self) -> String {
        match self {
            Flag::Seen => "\\Seen".into(),
            Flag::Answered => "\\Answered".into(),
            Flag::Flagged => "\\Flagged".into(),
            Flag::Deleted => "\\Deleted".into(),
            Flag::Draft => "\\Draft".into(),
            Flag::Keyword(k) => k.clone(),
            Flag::Extension(e) => format!("\\{e}"),
        }
    }

    /// Whether this is a keyword (as opposed to a system flag), which matters for `\*` in
    /// PERMANENTFLAGS.
    pub fn is_keyword(&self) -> bool {
        matches!(self, Flag::Keyword(_))
    }
}

/// The system flags in [`Flag`]'s order; bit `i` of [`FlagSet`]'s mask is `SYSTEM[i]`.
static SYSTEM: [Flag; 5] = [
    Flag::Seen,
    Flag::Answered,
    Flag::Flagged,
    Flag::Deleted,
    Flag::Draft,
];

fn system_bit(flag: &Flag) -> Option<u8> {
    match flag {
        Flag::Seen => Some(1),
        Flag::Answered => Some(1 << 1),
        Flag::Flagged => Some(1 << 2),
        Flag::Deleted => Some(1 << 3),
        Flag::Draft => Some(1 << 4),
        Flag::Keyword(_) | Flag::Extension(_) => None,
    }
}

/// A set of flags: the five system flags, extension flags and keywords.
///
/// Compact, because the planner holds several per message: the system flags are a bit mask
/// and only keywords and extension flags take heap space (none at all for the common message
/// that has system flags only). The order, equality and hash are those of the set of flags
/// (iteration in [`Flag`]'s order), whatever the representation.
#[derive(Debug, Clone, Default)]
pub struct FlagSet {
    /// The system flags present, one bit each (see `SYSTEM`).
    system: u8,
    /// Keywords and extension flags, sorted, without duplicates.
    other: Vec<Flag>,
}

impl PartialEq for FlagSet {
    fn eq(&self, other: &Self) -> bool {
        self.system == other.system && self.other == other.other
    }
}

impl Eq for FlagSet {}

impl std::hash::Hash for FlagSet {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.system.hash(state);
        self.other.hash(state);
    }
}

impl PartialOrd for FlagSet {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for FlagSet {
    /// Lexicographic over the flags in order, as for an ordered set of flags.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.iter().cmp(other.iter())
    }
}

impl FlagSet {
    /// The empty set.
    pub fn new() -> FlagSet {
        FlagSet::default()
    }

    /// Builds a set from wire names with [`Flag::from_imap`], dropping `\Recent` (seed V0004)
    /// and `\*`.
    pub fn from_imap<'a, I: IntoIterator<Item = &'a str>>(names: I) -> FlagSet {
        names.into_iter().filter_map(Flag::from_imap).collect()
    }

    /// Whether `flag` is in the set.
    pub fn contains(&self, flag: &Flag) -> bool {
        match system_bit(flag) {
            Some(b) => self.system & b != 0,
            None => self.other.binary_search(flag).is_ok(),
        }
    }

    /// Adds a flag.
    pub fn insert(&mut self, flag: Flag) {
        match system_bit(&flag) {
            Some(b) => self.system |= b,
            None => {
                if let Err(i) = self.other.binary_search(&flag) {
                    self.other.insert(i, flag);
                }
            }
        }
    }

    /// Removes a flag; returns whether it was there.
    pub fn remove(&mut self, flag: &Flag) -> bool {
        match system_bit(flag) {
            Some(b) => {
                let had = self.system & b != 0;
                self.system &= !b;
                had
            }
            None => match self.other.binary_search(flag) {
                Ok(i) => {
                    self.other.remove(i);
                    true
                }
                Err(_) => false,
            },
        }
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.system == 0 && self.other.is_empty()
    }

    /// How many flags the set holds.
    pub fn len(&self) -> usize {
        self.system.count_ones() as usize + self.other.len()
    }

    /// Iterates in order.
    pub fn iter(&self) -> impl Iterator<Item = &Flag> {
        SYSTEM
            .iter()
            .enumerate()
            .filter(|(i, _)| self.system & (1 << i) != 0)
            .map(|(_, f)| f)
            .chain(self.other.iter())
    }

    /// Keeps the flags for which `keep` holds.
    fn filtered(&self, keep: impl Fn(&Flag) -> bool) -> FlagSet {
        let mut system = 0;
        for (i, f) in SYSTEM.iter().enumerate() {
            if self.system & (1 << i) != 0 && keep(f) {
                system |= 1 << i;
            }
        }
        FlagSet {
            system,
            other: self.other.iter().filter(|f| keep(f)).cloned().collect(),
        }
    }

    /// Flags in `self` but not in `other`.
    pub fn difference(&self, other: &FlagSet) -> FlagSet {
        self.filtered(|f| !other.contains(f))
    }

    /// Flags in both.
    pub fn intersection(&self, other: &FlagSet) -> FlagSet {
        self.filtered(|f| other.contains(f))
    }

    /// Flags in either.
    pub fn union(&self, other: &FlagSet) -> FlagSet {
        let mut out = self.clone();
        out.system |= other.system;
        for f in &other.other {
            if let Err(i) = out.other.binary_search(f) {
                out.other.insert(i, f.clone());
            }
        }
        out
    }
}

impl FromIterator<Flag> for FlagSet {
    fn from_iter<T: IntoIterator<Item = Flag>>(iter: T) -> Self {
        let mut set = FlagSet::new();
        for f in iter {
            set.insert(f);
        }
        set
    }
}

/// What the server lets us store permanently in a folder (PERMANENTFLAGS, RFC 3501 7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermanentFlags {
    /// The flags listed.
    pub flags: FlagSet,
    /// Whether `\*` was listed: new keywords may be created.
    pub new_keywords: bool,
}

impl PermanentFlags {
    /// Everything may be stored: the assumption when PERMANENTFLAGS is missing (RFC 3501 6.3.1,
    /// seed V0037).
    pub fn all() -> PermanentFlags {
        PermanentFlags {
            flags: [
                Flag::Seen,
                Flag::Answered,
                Flag::Flagged,
                Flag::Deleted,
                Flag::Draft,
            ]
            .into_iter()
            .collect(),
            new_keywords: true,
        }
    }

    /// Whether `flag` may be stored. Keywords are allowed when listed or when `\*` was given;
    /// extension system flags only when listed: we never invent flags the server did not offer
    /// (seed V0005).
    pub fn allows(&self, flag: &Flag) -> bool {
        self.flags.contains(flag) || (flag.is_keyword() && self.new_keywords)
    }
}

impl Default for PermanentFlags {
    fn default() -> Self {
        PermanentFlags::all()
    }
}

/// What the planner knows about a message's content, for recognising the same message on the
/// other side or in another folder without downloading it. See [`Content::matches`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Content {
    /// Size with CRLF line ends, i.e. what RFC822.SIZE reports (seed V0007). For a local file
    /// the store reports the size the file will have once uploaded (LF counted as CRLF).
    pub size: Option<u64>,
    /// INTERNALDATE (seed V0006); for a local file, its mtime (set from INTERNALDATE when it was
    /// downloaded, and sent as the APPEND date when it is uploaded).
    pub date: Option<UnixTime>,
    /// The Message-ID header value, when known cheaply.
    pub message_id: Option<String>,
    /// A content hash, when known (never for a remote message not yet downloaded).
    pub hash: Option<ContentHash>,
}

impl Content {
    /// Whether two descriptions denote the same message.
    ///
    /// * Both hashes known: equal hashes, and nothing else matters.
    /// * Otherwise the sizes must both be known and equal, and then either both Message-IDs are
    ///   known and equal (dates may differ after a server migration), or the dates are both
    ///   known and equal and the Message-IDs do not contradict each other.
    pub fn matches(&self, other: &Content) -> bool {
        if let (Some(a), Some(b)) = (&self.hash, &other.hash) {
            return a == b;
        }
        match (self.size, other.size) {
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
        match (&self.message_id, &other.message_id) {
            (Some(a), Some(b)) => a == b,
            _ => matches!((self.date, other.date), (Some(a), Some(b)) if a == b),
        }
    }
}

/// LIST attributes the planner cares about (RFC 3501 7.2.2, RFC 5258).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FolderAttributes {
    /// `\Noselect`: a hierarchy node that cannot hold messages.
    pub noselect: bool,
    /// `\NonExistent` (RFC 5258): listed but does not exist; treated as absent.
    pub nonexistent: bool,
}

/// One message in the server's view of a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteMessage {
    /// The UID.
    pub uid: Uid,
    /// Its flags and keywords now (`\Recent` already dropped).
    pub flags: FlagSet,
    /// Its MODSEQ (RFC 7162), when CONDSTORE is on; used for UNCHANGEDSINCE (seed V0056).
    pub modseq: Option<ModSeq>,
    /// RFC822.SIZE. Required for every UID the state does not know; may be omitted otherwise.
    pub size: Option<u64>,
    /// INTERNALDATE. Required for every UID the state does not know; may be omitted otherwise.
    pub internaldate: Option<UnixTime>,
    /// The Message-ID, when the driver fetched it (recommended for UIDs the state does not know:
    /// it makes content matching strong).
    pub message_id: Option<String>,
}

impl RemoteMessage {
    /// The content description available without a download.
    pub fn content(&self) -> Content {
        Content {
            size: self.size,
            date: self.internaldate,
            message_id: self.message_id.clone(),
            hash: None,
        }
    }
}

/// An inclusive range of UIDs, as in a VANISHED response; kept as a range so that a peer that
/// sends `1:4294967295` costs nothing (we never expand a set a peer declares).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UidRange {
    /// First UID.
    pub first: Uid,
    /// Last UID (inclusive).
    pub last: Uid,
}

impl UidRange {
    /// Whether `uid` lies in the range (either order of the ends).
    pub fn contains(&self, uid: Uid) -> bool {
        let (a, b) = if self.first <= self.last {
            (self.first, self.last)
        } else {
            (self.last, self.first)
        };
        a <= uid && uid <= b
    }
}

/// The server's messages in a folder: either every message, or only what changed since a
/// mod-sequence (RFC 7162 CONDSTORE/QRESYNC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteMessages {
    /// Every message in the folder (UID FETCH 1:* (UID FLAGS ...)).
    Complete(Vec<RemoteMessage>),
    /// Only messages whose MODSEQ is above `since` (new ones included), and the UIDs expunged
    /// since then (VANISHED). Every other UID the state knows is implied to be still there with
    /// the flags the state records. Valid only when `since` equals the state's HIGHESTMODSEQ and
    /// the UIDVALIDITY is unchanged; otherwise the planner refuses the folder with
    /// [`super::RefusalReason::NeedsCompleteView`].
    Changes {
        /// The HIGHESTMODSEQ the changes are relative to.
        since: ModSeq,
        /// Changed and new messages.
        changed: Vec<RemoteMessage>,
        /// Expunged UIDs.
        vanished: Vec<UidRange>,
    },
}

/// What SELECT/EXAMINE and the fetches told us about a folder's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteMailbox {
    /// UIDVALIDITY; `None` if the server sent none (seed V0037: the folder is then synced
    /// read-only by content matching).
    pub uidvalidity: Option<UidValidity>,
    /// UIDNEXT; `None` when missing (it is then derived as the highest UID plus one, V0037).
    pub uidnext: Option<Uid>,
    /// HIGHESTMODSEQ, with CONDSTORE.
    pub highestmodseq: Option<ModSeq>,
    /// PERMANENTFLAGS ([`PermanentFlags::all`] when missing, V0037).
    pub permanent_flags: PermanentFlags,
    /// The folder was opened READ-ONLY (seed V0039), or EXAMINEd for a pull-only account
    /// (V0040): the plan then holds no server write for it.
    pub read_only: bool,
    /// The messages.
    pub messages: RemoteMessages,
}

/// One folder in the server's LIST, with its contents when the driver examined it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFolder {
    /// The folder.
    pub path: FolderPath,
    /// Its LIST attributes.
    pub attributes: FolderAttributes,
    /// The hierarchy delimiter the server gave (`None` for a flat namespace).
    pub delimiter: Option<char>,
    /// The contents; `None` when the folder was not examined this run (or is `\Noselect`): no
    /// message of it is planned then, and it takes no part in move detection.
    pub mailbox: Option<RemoteMailbox>,
}

/// Where a Maildir file sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Location {
    /// `new/`: delivered, not yet seen by a mail reader.
    New,
    /// `cur/`.
    Cur,
}

/// One file in a local Maildir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMessage {
    /// Its identity (base name).
    pub id: LocalId,
    /// `new/` or `cur/`.
    pub location: Location,
    /// Flags from the `:2,` suffix, plus the keywords the store keeps for it (seed V0005: the
    /// state database holds local keywords; the store reports them here as the local truth).
    pub flags: FlagSet,
    /// Size with CRLF line ends (see [`Content::size`]).
    pub size: u64,
    /// The file's mtime.
    pub mtime: UnixTime,
    /// Message-ID, when cheap to read.
    pub message_id: Option<String>,
    /// Content hash, when cheap (for example cached by the store).
    pub hash: Option<ContentHash>,
    /// The file holds only the header or a placeholder (partial download, V0010): it is never
    /// uploaded and never replaces a full copy (seed V0070).
    pub partial: bool,
}

impl LocalMessage {
    /// The content description of the file.
    pub fn content(&self) -> Content {
        Content {
            size: Some(self.size),
            date: Some(self.mtime),
            message_id: self.message_id.clone(),
            hash: self.hash,
        }
    }
}

/// One local Maildir folder and every message in it (the local view is always complete: a scan
/// of `new/` and `cur/` is cheap next to a network round trip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFolder {
    /// The folder.
    pub path: FolderPath,
    /// Its messages.
    pub messages: Vec<LocalMessage>,
}

/// One message the state remembers as synced (or, with `uid: None`, as held locally and waiting
/// to be matched to a server message after a UIDVALIDITY change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateMessage {
    /// The UID under the folder's recorded UIDVALIDITY; `None` once the UIDVALIDITY changed and
    /// before the message was matched again (V0003).
    pub uid: Option<Uid>,
    /// The local file it is paired with.
    pub local: LocalId,
    /// The flags both sides last agreed on, as the server holds them (flags the server cannot
    /// store, V0005, are absent here and live only in the local flags).
    pub flags: FlagSet,
    /// RFC822.SIZE (seed V0007).
    pub size: u64,
    /// INTERNALDATE (seed V0006).
    pub internaldate: UnixTime,
    /// Message-ID, if known.
    pub message_id: Option<String>,
    /// Content hash, if known.
    pub hash: Option<ContentHash>,
    /// The local copy is partial (headers only, V0010).
    pub partial: bool,
}

impl StateMessage {
    /// The content description recorded for the message.
    pub fn content(&self) -> Content {
        Content {
            size: Some(self.size),
            date: Some(self.internaldate),
            message_id: self.message_id.clone(),
            hash: self.hash,
        }
    }
}

/// A local change that cannot reach the server yet (read-only folder, seed V0039), recorded once
/// so that it is reported, kept, and not retried on every run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PendingKey {
    /// A new local file waiting to be uploaded.
    Upload(LocalId),
    /// Local flag changes on this UID waiting to be stored.
    Flags(Uid),
    /// A local deletion of this UID waiting to be expunged.
    Expunge(Uid),
}

/// The state database's record of one folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFolder {
    /// The folder.
    pub path: FolderPath,
    /// UIDVALIDITY the UIDs below belong to.
    pub uidvalidity: UidValidity,
    /// UIDNEXT last recorded.
    pub uidnext: Option<Uid>,
    /// HIGHESTMODSEQ last recorded.
    pub highestmodseq: Option<ModSeq>,
    /// The messages.
    pub messages: Vec<StateMessage>,
    /// Pending local changes already reported (V0039).
    pub pending: Vec<PendingKey>,
    /// Messages left out of this view because neither side changed them: a *partial* view,
    /// where `messages` holds only the rows a server delta or a local change names, the
    /// local view holds only their files and the server view is a delta
    /// ([`RemoteMessages::Changes`]). What is left out is in sync on both sides, so nothing
    /// is planned for it; it only counts towards the folder's size for the safety valve. 0
    /// for a complete view.
    pub omitted: usize,
}

/// An identifier of a journal entry (an intent row of the store's state database).
///
/// Defined here, once, for the planner, the store and the sync, like [`ContentHash`]: the
/// planner names the intents it drops ([`crate::Op::DropIntent`]) and the store, which depends
/// on this crate, hands its rows out with this id. SQLite keeps it as the intents table's
/// `INTEGER PRIMARY KEY`, an `i64` that it only ever assigns positive; the store converts
/// between the two, checked, where it reads and writes the row, so no id wraps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IntentId(pub u64);

/// A journaled step that started but whose result was not committed (the process died).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// An APPEND of a local file began; the server may or may not hold the copy now.
    Append {
        /// The journal entry.
        id: IntentId,
        /// The folder appended to.
        folder: FolderPath,
        /// The local file.
        local: LocalId,
        /// What was sent: size, APPEND date, Message-ID, hash.
        content: Content,
    },
}

impl Intent {
    /// The journal entry's id.
    pub fn id(&self) -> IntentId {
        match self {
            Intent::Append { id, .. } => *id,
        }
    }
}

/// Everything the planner needs for one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncInput {
    /// The server's folders (LIST "" "*", V0041), INBOX included by the driver even if LIST
    /// omitted it (V0042).
    pub remote: Vec<RemoteFolder>,
    /// The local Maildir folders.
    pub local: Vec<LocalFolder>,
    /// The state database's folders; empty for a fresh or lost database.
    pub state: Vec<StateFolder>,
    /// Unfinished journal entries.
    pub intents: Vec<Intent>,
    /// Server messages that hold the content of a local file no state row names: for each such
    /// file, the bound state rows of *other* folders with the file's content hash (the state
    /// database's hash index). They let a file a mail reader copied into another folder become
    /// a `UID COPY` of the server message instead of an APPEND ([`crate::Op::CopyRemote`]).
    /// The source folder need not be in the other views: a folder the gather skipped as
    /// unchanged is trusted as the state describes it. Empty: every new file is uploaded.
    pub server_copies: Vec<ServerCopy>,
}

/// A server message whose content a new local file holds (see [`SyncInput::server_copies`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCopy {
    /// The folder of the new local file.
    pub folder: FolderPath,
    /// The new local file.
    pub local: LocalId,
    /// The folder holding the server message (never `folder`).
    pub from: FolderPath,
    /// The state row binding it there: its UID (under the folder's recorded UIDVALIDITY),
    /// synced flags and content (size, INTERNALDATE, Message-ID, hash), which a copy keeps.
    pub row: StateMessage,
}

/// How much of a new message to download (V0010).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DownloadMode {
    /// Whole messages (default).
    #[default]
    Full,
    /// Headers only; bodies are fetched later on demand.
    HeadersOnly,
    /// Whole messages up to this RFC822.SIZE; larger ones as headers with a placeholder.
    MaxSize(u64),
}

/// The safety valve: refuse a folder's plan when it deletes too much, as a mass deletion is more
/// likely a fault (a wrong path, a broken listing) than the user's wish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SafetyValve {
    /// A folder with at most this many messages on a side is never refused.
    pub min_messages: usize,
    /// Refuse when deletions on a side exceed this percentage of that side's messages.
    pub max_percent: u8,
}

impl Default for SafetyValve {
    fn default() -> Self {
        SafetyValve {
            min_messages: 20,
            max_percent: 50,
        }
    }
}

impl SafetyValve {
    /// Whether deleting `deletions` of `total` messages is too much.
    pub fn trips(&self, deletions: usize, total: usize) -> bool {
        total > self.min_messages
            && (deletions as u128) * 100 > (total as u128) * u128::from(self.max_percent)
    }
}

/// Planner settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlanConfig {
    /// The deletion safety valve.
    pub valve: SafetyValve,
    /// `--force`: plan deletions even when the valve trips.
    pub force: bool,
    /// Partial download mode.
    pub download: DownloadMode,
    /// Pull only (seed V0040): every folder is treated as read-only on the server. Server
    /// changes come down; nothing is planned that writes to the server (no APPEND, STORE,
    /// EXPUNGE, MOVE, CREATE or DELETE); local changes are kept and marked pending; a folder
    /// that exists only locally is left alone.
    pub pull: bool,
    /// Keep local files that match no server message local-only (reported as
    /// [`crate::Warning::KeptLocal`]) instead of uploading them: set for the first sync into a
    /// Maildir another tool made, whose leftovers (messages that tool never uploaded, files
    /// the server has since expunged) must not turn into new server mail.
    pub keep_new_local: bool,
}
