//! Protocol atoms shared by the parser and the encoder.
//!
//! These types hold only values that are valid on the wire, so the encoder never has to
//! re-check them and the parser hands out nothing the encoder could not send back (round
//! trips of flags are required by seed N6).
//!
//! [`Uid`], [`UidValidity`] and [`ModSeq`] live here too: they are protocol values, and this
//! is the lowest crate that the planner, the store and the sync all depend on, so each has one
//! definition that all of them share.

use std::fmt;
use std::num::{NonZeroU32, NonZeroU64};

/// A command tag. mailfold's own tags are 4 characters from `a-z0-9` (seed C0001); tags read
/// from a server are kept as sent, as long as they are valid `tag` ABNF.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// Validates a tag: 1 or more `ASTRING-CHAR`s other than `+` (RFC 3501 section 9).
    pub fn new(s: impl Into<String>) -> Result<Self, InvalidValue> {
        let s = s.into();
        if !s.is_empty() && s.bytes().all(|b| is_astring_char(b) && b != b'+') {
            Ok(Tag(s))
        } else {
            Err(InvalidValue::new("tag", &s))
        }
    }

    /// The tag text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({})", self.0)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A message flag (RFC 3501 2.3.2). System flags are matched case-insensitively; keywords keep
/// their original case (servers are case-insensitive about them, but users are not).
///
/// This is the flag as the wire carries it, `\Recent` and the PERMANENTFLAGS marker `\*`
/// included, because the parser must read and the encoder must be able to write them. The
/// planner has a flag type of its own (`mailfold_plan::Flag`) for what a message can hold and a
/// store can keep, without those two; `mailfold_plan::Flag::from_wire` maps this one to it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flag {
    /// `\Seen`
    Seen,
    /// `\Answered`
    Answered,
    /// `\Flagged`
    Flagged,
    /// `\Deleted`
    Deleted,
    /// `\Draft`
    Draft,
    /// `\Recent`: session flag, read-only; never sent in STORE or APPEND (seed V0004).
    Recent,
    /// `\*` in PERMANENTFLAGS: new keywords may be created.
    MayCreate,
    /// An unknown `\Word` flag extension, kept without the backslash (seed N6).
    Extension(String),
    /// A keyword such as `$Forwarded` or `Junk` (seed V0005).
    Keyword(String),
}

impl Flag {
    /// Parses a flag from its wire text (`\Seen`, `$Junk`, `\*`). Returns `None` for text that
    /// is not a valid flag atom.
    pub fn parse(s: &str) -> Option<Flag> {
        if let Some(rest) = s.strip_prefix('\\') {
            if rest == "*" {
                return Some(Flag::MayCreate);
            }
            if rest.is_empty() || !rest.bytes().all(is_atom_char) {
                return None;
            }
            let f = match rest.to_ascii_lowercase().as_str() {
                "seen" => Flag::Seen,
                "answered" => Flag::Answered,
                "flagged" => Flag::Flagged,
                "deleted" => Flag::Deleted,
                "draft" => Flag::Draft,
                "recent" => Flag::Recent,
                _ => Flag::Extension(rest.to_string()),
            };
            Some(f)
        } else if !s.is_empty() && s.bytes().all(is_atom_char) {
            Some(Flag::Keyword(s.to_string()))
        } else {
            None
        }
    }

    /// Builds a keyword flag, validating it as an atom.
    pub fn keyword(s: &str) -> Result<Flag, InvalidValue> {
        if !s.is_empty() && !s.starts_with('\\') && s.bytes().all(is_atom_char) {
            Ok(Flag::Keyword(s.to_string()))
        } else {
            Err(InvalidValue::new("keyword", s))
        }
    }

    /// True for flags a client may set with STORE or APPEND (everything but `\Recent` and `\*`).
    pub fn is_storable(&self) -> bool {
        !matches!(self, Flag::Recent | Flag::MayCreate)
    }

    /// True for the RFC 3501 system flags (including `\Recent`).
    pub fn is_system(&self) -> bool {
        matches!(
            self,
            Flag::Seen
                | Flag::Answered
                | Flag::Flagged
                | Flag::Deleted
                | Flag::Draft
                | Flag::Recent
        )
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Flag::Seen => f.write_str("\\Seen"),
            Flag::Answered => f.write_str("\\Answered"),
            Flag::Flagged => f.write_str("\\Flagged"),
            Flag::Deleted => f.write_str("\\Deleted"),
            Flag::Draft => f.write_str("\\Draft"),
            Flag::Recent => f.write_str("\\Recent"),
            Flag::MayCreate => f.write_str("\\*"),
            Flag::Extension(s) => write!(f, "\\{s}"),
            Flag::Keyword(s) => f.write_str(s),
        }
    }
}

/// A message UID (RFC 3501 2.3.1.1): never zero.
///
/// The one definition of the type for the whole workspace: the planner, the state database and
/// the sync all name UIDs with it, so a value moves between them without conversion. The
/// parser and the command types of this crate still carry plain `u32` and `UidSet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uid(pub NonZeroU32);

impl Uid {
    /// `None` for 0, which is not a UID.
    pub fn new(n: u32) -> Option<Uid> {
        NonZeroU32::new(n).map(Uid)
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A mailbox's UIDVALIDITY (RFC 3501 2.3.1.1): never zero. Shared like [`Uid`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UidValidity(pub NonZeroU32);

impl UidValidity {
    /// `None` for 0.
    pub fn new(n: u32) -> Option<UidValidity> {
        NonZeroU32::new(n).map(UidValidity)
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

impl fmt::Display for UidValidity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A CONDSTORE mod-sequence (RFC 7162 3.1.1: a positive 63-bit number). Shared like [`Uid`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModSeq(pub NonZeroU64);

impl ModSeq {
    /// `None` for 0.
    pub fn new(n: u64) -> Option<ModSeq> {
        NonZeroU64::new(n).map(ModSeq)
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for ModSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A mailbox name as it travels on the wire: modified UTF-7 (RFC 3501 5.1.3), or UTF-8 once
/// UTF8=ACCEPT is enabled. `INBOX` is normalised to upper case, since it is case-insensitive
/// (RFC 3501 5.1); every other name is kept byte-exact (seed V0015, V0016).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mailbox(Vec<u8>);

impl Mailbox {
    /// Wraps a wire name as received from a server or typed as raw wire text.
    pub fn from_wire(bytes: impl Into<Vec<u8>>) -> Self {
        let bytes = bytes.into();
        if bytes.eq_ignore_ascii_case(b"INBOX") {
            Mailbox(b"INBOX".to_vec())
        } else {
            Mailbox(bytes)
        }
    }

    /// Encodes a human (UTF-8) name into modified UTF-7 wire form (seed V0021).
    pub fn from_utf8(name: &str) -> Self {
        Self::from_wire(crate::utf7::encode(name).into_bytes())
    }

    /// The INBOX.
    pub fn inbox() -> Self {
        Mailbox(b"INBOX".to_vec())
    }

    /// The raw wire bytes.
    pub fn as_wire(&self) -> &[u8] {
        &self.0
    }

    /// True for INBOX (any case).
    pub fn is_inbox(&self) -> bool {
        self.0 == b"INBOX"
    }

    /// Decodes the wire name to UTF-8. Names that are not valid modified UTF-7 are an error
    /// (a server bug worth reporting, never a panic).
    pub fn to_utf8(&self) -> Result<String, crate::utf7::Utf7Error> {
        crate::utf7::decode(&self.0)
    }
}

/// Serialised as its Display form (`\\Seen`, `$Forwarded`), the form a user would type.
#[cfg(feature = "serde")]
impl serde::Serialize for Flag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Serialised as the tag text.
#[cfg(feature = "serde")]
impl serde::Serialize for Tag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Serialised as the wire name, lossily as UTF-8 (still modified UTF-7: what the server
/// sent, which is what a bug report needs).
#[cfg(feature = "serde")]
impl serde::Serialize for Mailbox {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mailbox({:?})", String::from_utf8_lossy(&self.0))
    }
}

/// A value that failed validation, with the kind of value expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidValue {
    /// What kind of value was expected ("tag", "atom", "keyword", …).
    pub expected: &'static str,
    /// The rejected input, lossily printed and shortened for messages.
    pub got: String,
}

impl InvalidValue {
    /// Builds the error, cutting the shown input to a readable length.
    pub fn new(expected: &'static str, got: &str) -> Self {
        let got: String = got.chars().take(64).collect();
        InvalidValue { expected, got }
    }
}

impl fmt::Display for InvalidValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {:?}", self.expected, self.got)
    }
}

impl std::error::Error for InvalidValue {}

/// Byte classes of RFC 3501 section 9, one table lookup per byte: the parser's token loops
/// call these for every byte of a response, where a chain of comparisons would cost more.
const ATOM: u8 = 1;
/// `ASTRING-CHAR`: an atom char or `]` (resp-specials).
const ASTRING: u8 = 2;
/// An atom char other than `[`: response and FETCH item names stop at a section
/// (`BODY[`, `OK[ALERT]`).
const NAME: u8 = 4;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    // CHAR minus CTL: 0x21..=0x7e (SP is excluded too: it is in atom-specials).
    let mut b = 0x21;
    while b < 0x7f {
        // atom-specials other than SP, CTL and the list/quoted-specials below.
        let special = matches!(
            b as u8,
            b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']'
        );
        if !special {
            t[b] = ATOM | ASTRING | if b as u8 == b'[' { 0 } else { NAME };
        }
        b += 1;
    }
    t[b']' as usize] = ASTRING;
    t
};

/// `ATOM-CHAR` of RFC 3501: any CHAR except atom-specials.
#[inline(always)]
pub const fn is_atom_char(b: u8) -> bool {
    CLASS[b as usize] & ATOM != 0
}

/// `ASTRING-CHAR` of RFC 3501: an `ATOM-CHAR` or `]` (resp-specials).
#[inline(always)]
pub const fn is_astring_char(b: u8) -> bool {
    CLASS[b as usize] & ASTRING != 0
}

/// An `ATOM-CHAR` other than `[`: the characters of a response or FETCH item name, which
/// ends where a section or response code begins.
#[inline(always)]
pub(crate) const fn is_name_char(b: u8) -> bool {
    CLASS[b as usize] & NAME != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_case_insensitively_and_keep_keyword_case() {
        assert_eq!(Flag::parse("\\SEEN"), Some(Flag::Seen));
        assert_eq!(Flag::parse("$Junk"), Some(Flag::Keyword("$Junk".into())));
        assert_eq!(Flag::parse("\\Foo"), Some(Flag::Extension("Foo".into())));
        assert_eq!(Flag::parse("\\*"), Some(Flag::MayCreate));
        assert_eq!(Flag::parse("a b"), None);
        assert_eq!(Flag::parse(""), None);
        assert_eq!(Flag::Extension("Foo".into()).to_string(), "\\Foo");
    }

    #[test]
    fn byte_classes_follow_rfc3501_abnf() {
        for b in 0..=255u8 {
            // ATOM-CHAR = <any CHAR except atom-specials>; atom-specials = "(" / ")" / "{" /
            // SP / CTL / list-wildcards / quoted-specials / resp-specials.
            let atom = b.is_ascii() && !b.is_ascii_control() && !b" (){%*\"\\]".contains(&b);
            assert_eq!(is_atom_char(b), atom, "{b}");
            assert_eq!(is_astring_char(b), atom || b == b']', "{b}");
            assert_eq!(is_name_char(b), atom && b != b'[', "{b}");
        }
    }

    #[test]
    fn tags_reject_specials() {
        assert!(Tag::new("a001").is_ok());
        assert!(Tag::new("a+1").is_err());
        assert!(Tag::new("").is_err());
        assert!(Tag::new("a b").is_err());
    }

    #[test]
    fn inbox_is_case_insensitive() {
        assert!(Mailbox::from_wire("inBox").is_inbox());
        assert!(!Mailbox::from_wire("INBOX.x").is_inbox());
    }
}
