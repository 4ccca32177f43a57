//! Typed server responses: everything RFC 3501 section 7 defines, plus the extension
//! responses a sync client needs (CONDSTORE/QRESYNC, UIDPLUS, ENABLE, ID, NAMESPACE, ESEARCH,
//! LIST-EXTENDED, SPECIAL-USE, BINARY).
//!
//! These are plain owned values: the parser ([`crate::parse`]) builds them, the engine and the
//! CLI read them. Nothing here parses or encodes. What the server sent but no type models
//! (unknown response codes, untagged responses, FETCH items, STATUS items, LIST extended
//! items) is kept raw rather than dropped or treated as fatal (seed N3, V0062).
//!
//! Byte strings from the server are [`ByteString`]s: kept byte-exact (seed V0015), since
//! header values, mailbox names and bodies are not guaranteed to be UTF-8. Numbers are `u32`
//! where the RFC says `number`/`nz-number`, `u64` for mod-sequences and sizes.
//!
//! With the `serde` feature every type here implements `serde::Serialize`; byte strings are
//! rendered as UTF-8 (lossily), sets in their compact wire form and dates in IMAP form.

use std::fmt;
use std::num::NonZeroU32;
use std::ops::Deref;
use std::sync::Arc;

use crate::core::{Flag, Mailbox, Tag};
use crate::seqset::{SeqSet, UidSet};

#[cfg(feature = "serde")]
use serde::Serialize;

/// A byte string from the server, kept byte-exact. Derefs to `[u8]`; `Debug` (and serde)
/// show it as lossy UTF-8.
///
/// Strings of up to 22 bytes (most header atoms, addresses, MIME types and parameters) are
/// stored inline, so parsing an ENVELOPE or BODYSTRUCTURE does not allocate per field.
/// Longer strings parsed from one response of at most [`SHARED_RESPONSE_MAX`] bytes share
/// one reference-counted copy of that response (dates, subjects, Message-IDs: one
/// allocation per response instead of one per string); such a string keeps that copy alive
/// for as long as it lives. Strings built by hand, and those from larger responses, own
/// their bytes. All forms behave the same: equality, hashing and order go by the bytes.
#[derive(Clone)]
pub struct ByteString(Repr);

pub(crate) const INLINE: usize = 22;

/// Largest response whose long strings share one buffer (see [`ByteString`]): bounds what
/// one retained string can keep alive, while covering ENVELOPE/BODYSTRUCTURE lines, which
/// are typically 0.5 to 3 KB.
pub const SHARED_RESPONSE_MAX: usize = 8 << 10;

#[derive(Clone)]
enum Repr {
    Inline {
        len: u8,
        buf: [u8; INLINE],
    },
    Heap(Box<[u8]>),
    /// `buf[start..start + len]`; the constructor checked the range. `u32`/`u16` keep the
    /// whole type at 24 bytes, the size of the other forms.
    Shared {
        start: u32,
        len: u16,
        buf: Arc<[u8]>,
    },
}

// Addresses, parameters and envelopes are arrays of these: growing it would cost memory
// traffic on every response.
const _: () = assert!(std::mem::size_of::<ByteString>() == 24);

impl ByteString {
    /// Copies a byte slice.
    pub fn new(b: &[u8]) -> Self {
        if b.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..b.len()].copy_from_slice(b);
            // len <= 22, so the cast is lossless.
            ByteString(Repr::Inline {
                len: b.len() as u8,
                buf,
            })
        } else {
            ByteString(Repr::Heap(b.into()))
        }
    }

    /// `buf[start..start + len]` as a string sharing `buf`; `None` if the range is out of
    /// bounds or too large for the shared form.
    #[inline]
    pub(crate) fn shared(buf: &Arc<[u8]>, start: usize, len: usize) -> Option<Self> {
        buf.get(start..start.checked_add(len)?)?;
        Some(ByteString(Repr::Shared {
            start: u32::try_from(start).ok()?,
            len: u16::try_from(len).ok()?,
            buf: Arc::clone(buf),
        }))
    }

    /// Sets `self` to the first `len` bytes of `window`, stored inline with one fixed-size
    /// copy straight from the window into place; false (and `self` unchanged) if `len` is
    /// over the inline size or the window is shorter than that size. The window bytes past
    /// `len` land in the unused tail, never exposed.
    ///
    /// The copy goes directly into `self` because building the value elsewhere and moving
    /// it reads back bytes just stored with overlapping writes, which the CPU cannot
    /// forward: a pipeline stall per string (see docs/parser-bench.md).
    #[inline(always)]
    pub(crate) fn set_from_window(&mut self, window: &[u8], len: usize) -> bool {
        let Some(src) = window.get(..INLINE) else {
            return false;
        };
        if len > INLINE {
            return false;
        }
        if !matches!(self.0, Repr::Inline { .. }) {
            *self = ByteString::default();
        }
        if let Repr::Inline { len: l, buf } = &mut self.0 {
            buf.copy_from_slice(src);
            // len <= 22: lossless.
            *l = len as u8;
        }
        true
    }

    /// The bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, buf } => &buf[..usize::from(*len)],
            Repr::Heap(b) => b,
            // In bounds by construction (`shared`); the empty fallback is never taken.
            Repr::Shared { start, len, buf } => {
                let start = *start as usize;
                buf.get(start..start + usize::from(*len))
                    .unwrap_or_default()
            }
        }
    }

    /// Lossy UTF-8 view, for display.
    pub fn to_str_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.as_bytes())
    }

    /// The bytes as a vector.
    pub fn into_vec(self) -> Vec<u8> {
        match self.0 {
            Repr::Inline { .. } | Repr::Shared { .. } => self.as_bytes().to_vec(),
            Repr::Heap(b) => b.into_vec(),
        }
    }
}

impl Default for ByteString {
    fn default() -> Self {
        ByteString::new(b"")
    }
}

impl Deref for ByteString {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<[u8]> for ByteString {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for ByteString {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for ByteString {}

impl std::hash::Hash for ByteString {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

impl PartialOrd for ByteString {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ByteString {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl From<&[u8]> for ByteString {
    fn from(b: &[u8]) -> Self {
        ByteString::new(b)
    }
}

impl From<Vec<u8>> for ByteString {
    fn from(b: Vec<u8>) -> Self {
        if b.len() <= INLINE {
            ByteString::new(&b)
        } else {
            ByteString(Repr::Heap(b.into_boxed_slice()))
        }
    }
}

impl From<std::borrow::Cow<'_, [u8]>> for ByteString {
    fn from(b: std::borrow::Cow<'_, [u8]>) -> Self {
        match b {
            std::borrow::Cow::Borrowed(b) => ByteString::new(b),
            std::borrow::Cow::Owned(v) => ByteString::from(v),
        }
    }
}

impl From<&str> for ByteString {
    fn from(s: &str) -> Self {
        ByteString::new(s.as_bytes())
    }
}

impl PartialEq<[u8]> for ByteString {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_bytes() == other
    }
}

impl PartialEq<&[u8]> for ByteString {
    fn eq(&self, other: &&[u8]) -> bool {
        self.as_bytes() == *other
    }
}

impl PartialEq<&str> for ByteString {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl fmt::Debug for ByteString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

#[cfg(feature = "serde")]
impl Serialize for ByteString {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

/// A list that holds its first element inline and moves to the heap from the second on.
///
/// Address lists (From, Sender, Reply-To, To, Cc) and body parameter lists mostly have one
/// entry; storing it in place saves an allocation (and a free) per list, which is most of
/// the cost of an ENVELOPE/BODYSTRUCTURE line once strings are inline (see
/// `docs/parser-bench.md`). It reads like a `Vec`: it derefs to a slice, compares equal to a
/// `Vec` or slice with the same elements, converts from and into `Vec`, and serialises as a
/// sequence.
#[derive(Clone)]
pub struct SmallList<T>(ListRepr<T>);

#[derive(Clone)]
enum ListRepr<T> {
    /// Zero or one element.
    Inline(Option<T>),
    /// Two or more (or a `Vec` converted in, whatever its length).
    Heap(Vec<T>),
}

impl<T> SmallList<T> {
    /// An empty list; does not allocate.
    pub const fn new() -> Self {
        SmallList(ListRepr::Inline(None))
    }

    /// Appends an element; only the second push allocates.
    #[inline]
    pub fn push(&mut self, value: T) {
        match &mut self.0 {
            ListRepr::Heap(v) => v.push(value),
            ListRepr::Inline(slot @ None) => *slot = Some(value),
            ListRepr::Inline(slot) => {
                let mut v = Vec::with_capacity(4);
                v.extend(slot.take());
                v.push(value);
                self.0 = ListRepr::Heap(v);
            }
        }
    }

    /// Appends a default element and returns it, for filling in place: the parser writes
    /// each field where it stays instead of building the element and moving it in.
    #[inline]
    pub(crate) fn push_default(&mut self) -> &mut T
    where
        T: Default,
    {
        if let ListRepr::Inline(slot @ Some(_)) = &mut self.0 {
            let mut v = Vec::with_capacity(4);
            v.extend(slot.take());
            self.0 = ListRepr::Heap(v);
        }
        match &mut self.0 {
            ListRepr::Inline(slot) => slot.insert(T::default()),
            ListRepr::Heap(v) => {
                v.push(T::default());
                let last = v.len() - 1;
                // Invariant: not empty right after a push.
                &mut v[last]
            }
        }
    }

    /// The elements as a slice.
    #[inline]
    pub fn as_slice(&self) -> &[T] {
        match &self.0 {
            ListRepr::Inline(o) => o.as_slice(),
            ListRepr::Heap(v) => v,
        }
    }

    /// The elements as a mutable slice.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        match &mut self.0 {
            ListRepr::Inline(o) => o.as_mut_slice(),
            ListRepr::Heap(v) => v,
        }
    }

    /// The elements as a vector.
    pub fn into_vec(self) -> Vec<T> {
        match self.0 {
            ListRepr::Inline(o) => o.into_iter().collect(),
            ListRepr::Heap(v) => v,
        }
    }
}

impl<T> Default for SmallList<T> {
    fn default() -> Self {
        SmallList::new()
    }
}

impl<T> Deref for SmallList<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T> std::ops::DerefMut for SmallList<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<T> AsRef<[T]> for SmallList<T> {
    fn as_ref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T> From<Vec<T>> for SmallList<T> {
    fn from(v: Vec<T>) -> Self {
        SmallList(ListRepr::Heap(v))
    }
}

impl<T> From<SmallList<T>> for Vec<T> {
    fn from(l: SmallList<T>) -> Self {
        l.into_vec()
    }
}

impl<T> FromIterator<T> for SmallList<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut l = SmallList::new();
        for x in iter {
            l.push(x);
        }
        l
    }
}

impl<T> Extend<T> for SmallList<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for x in iter {
            self.push(x);
        }
    }
}

impl<T> IntoIterator for SmallList<T> {
    type Item = T;
    type IntoIter = SmallListIntoIter<T>;
    fn into_iter(self) -> Self::IntoIter {
        SmallListIntoIter(match self.0 {
            ListRepr::Inline(o) => Ok(o.into_iter()),
            ListRepr::Heap(v) => Err(v.into_iter()),
        })
    }
}

/// The owning iterator of a [`SmallList`].
pub struct SmallListIntoIter<T>(Result<std::option::IntoIter<T>, std::vec::IntoIter<T>>);

impl<T> Iterator for SmallListIntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        match &mut self.0 {
            Ok(i) => i.next(),
            Err(i) => i.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            Ok(i) => i.size_hint(),
            Err(i) => i.size_hint(),
        }
    }
}

impl<'a, T> IntoIterator for &'a SmallList<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl<'a, T> IntoIterator for &'a mut SmallList<T> {
    type Item = &'a mut T;
    type IntoIter = std::slice::IterMut<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_mut_slice().iter_mut()
    }
}

impl<T: PartialEq> PartialEq for SmallList<T> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Eq> Eq for SmallList<T> {}

impl<T: PartialEq> PartialEq<Vec<T>> for SmallList<T> {
    fn eq(&self, other: &Vec<T>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: PartialEq> PartialEq<SmallList<T>> for Vec<T> {
    fn eq(&self, other: &SmallList<T>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: PartialEq> PartialEq<[T]> for SmallList<T> {
    fn eq(&self, other: &[T]) -> bool {
        self.as_slice() == other
    }
}

impl<T: std::hash::Hash> std::hash::Hash for SmallList<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state)
    }
}

impl<T: fmt::Debug> fmt::Debug for SmallList<T> {
    /// Like a `Vec`: `[a, b]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

#[cfg(feature = "serde")]
impl<T: Serialize> Serialize for SmallList<T> {
    /// As a sequence, exactly like a `Vec`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.as_slice())
    }
}

/// Content-Type or Content-Disposition parameters: `(name, value)`, a NIL value as `None`.
pub type BodyParams = SmallList<(ByteString, Option<ByteString>)>;

/// One complete server response.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
#[non_exhaustive]
pub enum Response {
    /// The server greeting (RFC 3501 7.1): the first response of a connection. Only
    /// [`crate::parse::ResponseParser`] produces it, for the first response it sees.
    Greeting(Greeting),
    /// A tagged or untagged status response: OK, NO, BAD, BYE or PREAUTH (RFC 3501 7.1).
    Status(StatusResponse),
    /// A command continuation request `+ …` (RFC 3501 7.5).
    Continue(Continue),
    /// `* CAPABILITY …` (RFC 3501 7.2.1).
    Capability(Vec<String>),
    /// `* LIST …` (RFC 3501 7.2.2, RFC 5258, RFC 6154).
    List(MailboxList),
    /// `* LSUB …` (RFC 3501 7.2.3).
    Lsub(MailboxList),
    /// `* STATUS mailbox (…)` (RFC 3501 7.2.4).
    MailboxStatus(MailboxStatus),
    /// `* SEARCH …` (RFC 3501 7.2.5, with the RFC 7162 `(MODSEQ n)` suffix).
    Search(Search),
    /// `* ESEARCH …` (RFC 4731).
    Esearch(Esearch),
    /// `* FLAGS (…)` (RFC 3501 7.2.6, seed V0068).
    Flags(Vec<Flag>),
    /// `* n EXISTS` (RFC 3501 7.3.1).
    Exists(u32),
    /// `* n RECENT` (RFC 3501 7.3.2, seed V0069).
    Recent(u32),
    /// `* n EXPUNGE` (RFC 3501 7.4.1).
    Expunge(u32),
    /// `* n FETCH (…)` (RFC 3501 7.4.2).
    Fetch(Fetch),
    /// `* ENABLED …` (RFC 5161).
    Enabled(Vec<String>),
    /// `* ID (…)` or `* ID NIL` (RFC 2971): field/value pairs, empty for NIL.
    Id(Vec<(ByteString, Option<ByteString>)>),
    /// `* NAMESPACE …` (RFC 2342).
    Namespace(Namespaces),
    /// `* VANISHED [(EARLIER)] uid-set` (RFC 7162 3.2.10).
    Vanished(Vanished),
    /// An untagged response this crate does not model, kept raw (seed N3).
    Other(OtherResponse),
}

/// The kind of a greeting (RFC 3501 7.1: `greeting = "*" SP (resp-cond-auth / resp-cond-bye)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub enum GreetingKind {
    /// Not yet authenticated.
    Ok,
    /// Already authenticated (e.g. by the transport).
    PreAuth,
    /// The server refuses the connection.
    Bye,
}

/// The server greeting.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct Greeting {
    /// OK, PREAUTH or BYE.
    pub kind: GreetingKind,
    /// The response code, often `[CAPABILITY …]` (seed V0065).
    pub code: Option<Code>,
    /// Human-readable text (may be empty: seed N4).
    pub text: String,
}

/// The condition of a status response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub enum StatusKind {
    /// OK
    Ok,
    /// NO
    No,
    /// BAD
    Bad,
    /// PREAUTH (only valid in a greeting; accepted anywhere)
    PreAuth,
    /// BYE
    Bye,
}

/// A status response, tagged (the completion of a command) or untagged.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct StatusResponse {
    /// The tag, or `None` for an untagged (`*`) response.
    pub tag: Option<Tag>,
    /// OK, NO, BAD, PREAUTH or BYE.
    pub kind: StatusKind,
    /// The bracketed response code, if any.
    pub code: Option<Code>,
    /// Human-readable text (may be empty: seed N4).
    pub text: String,
}

/// A command continuation request (RFC 3501 7.5). A bare `+` has empty text.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct Continue {
    /// A response code, if the text started with one.
    pub code: Option<Code>,
    /// The text, or the base64 challenge during AUTHENTICATE.
    pub text: String,
}

/// A response code (RFC 3501 7.1 and extensions); seed V0062.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
#[non_exhaustive]
pub enum Code {
    /// `ALERT`: the text must be shown to the user (seed V0063).
    Alert,
    /// `BADCHARSET`, with the charsets the server supports, if it listed them.
    BadCharset(Vec<ByteString>),
    /// `CAPABILITY …`: the capabilities, upper-cased (seed V0065).
    Capability(Vec<String>),
    /// `PARSE`: the server could not parse a message's headers.
    Parse,
    /// `PERMANENTFLAGS (…)`; `\*` is [`Flag::MayCreate`].
    PermanentFlags(Vec<Flag>),
    /// `READ-ONLY`
    ReadOnly,
    /// `READ-WRITE` (seed V0038).
    ReadWrite,
    /// `TRYCREATE`
    TryCreate,
    /// `UIDNEXT n`
    UidNext(u32),
    /// `UIDVALIDITY n`: never 0 (RFC 3501 `nz-number`).
    UidValidity(NonZeroU32),
    /// `UNSEEN n`: the sequence number of the first unseen message.
    Unseen(u32),
    /// `APPENDUID uidvalidity uid-set` (RFC 4315; a set with MULTIAPPEND).
    AppendUid {
        /// UIDVALIDITY of the destination mailbox.
        uid_validity: NonZeroU32,
        /// UIDs given to the appended messages.
        uids: UidSet,
    },
    /// `COPYUID uidvalidity source-set dest-set` (RFC 4315).
    CopyUid(CopyUid),
    /// `UIDNOTSTICKY` (RFC 4315).
    UidNotSticky,
    /// `HIGHESTMODSEQ n` (RFC 7162).
    HighestModSeq(u64),
    /// `NOMODSEQ` (RFC 7162).
    NoModSeq,
    /// `MODIFIED set` (RFC 7162 3.1.3): message numbers, or UIDs after a UID STORE; the
    /// caller knows which command it answers.
    Modified(SeqSet),
    /// `CLOSED` (RFC 7162 3.2.11).
    Closed,
    /// `REFERRAL url` (RFC 2221).
    Referral(String),
    /// Any other code (or a known code whose arguments did not parse), kept raw.
    Other {
        /// The code name as sent.
        name: String,
        /// Everything between the name and `]`, without the separating space.
        raw: ByteString,
    },
}

/// The `COPYUID` response code. UIDs pair up by position in wire order (RFC 4315 3), so the
/// ranges are kept as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct CopyUid {
    /// UIDVALIDITY of the destination mailbox.
    pub uid_validity: NonZeroU32,
    /// Source UID ranges `(first, last)` in wire order (`last` may be below `first`).
    pub source: Vec<(u32, u32)>,
    /// Destination UID ranges in wire order.
    pub dest: Vec<(u32, u32)>,
}

impl CopyUid {
    /// The source UIDs as a set.
    pub fn source_set(&self) -> UidSet {
        ranges_to_set(&self.source)
    }

    /// The destination UIDs as a set.
    pub fn dest_set(&self) -> UidSet {
        ranges_to_set(&self.dest)
    }

    /// `(source, dest)` UID pairs in order, lazily (a huge range is never expanded).
    pub fn pairs(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        expand(&self.source).zip(expand(&self.dest))
    }
}

fn ranges_to_set(r: &[(u32, u32)]) -> UidSet {
    // Ranges were validated as non-zero when parsed, so this cannot fail; an empty set is
    // the harmless fallback.
    UidSet::from_ranges(r.iter().map(|&(a, b)| (a.min(b), a.max(b)))).unwrap_or_default()
}

fn expand(r: &[(u32, u32)]) -> impl Iterator<Item = u32> + '_ {
    r.iter().flat_map(|&(a, b)| {
        let (up, down) = if a <= b {
            (Some(a..=b), None)
        } else {
            (None, Some((b..=a).rev()))
        };
        up.into_iter().flatten().chain(down.into_iter().flatten())
    })
}

/// A LIST or LSUB reply.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct MailboxList {
    /// Name attributes (seed V0066).
    pub attributes: Vec<ListAttribute>,
    /// Hierarchy delimiter, `None` for a flat namespace (`NIL`).
    pub delimiter: Option<char>,
    /// The mailbox name, as on the wire (modified UTF-7 unless UTF8=ACCEPT).
    pub mailbox: Mailbox,
    /// LIST-EXTENDED extended data items (RFC 5258), e.g. CHILDINFO or OLDNAME.
    pub extended: Vec<ListExtended>,
}

impl MailboxList {
    /// True when the list carries the given attribute.
    pub fn has(&self, attr: &ListAttribute) -> bool {
        self.attributes.contains(attr)
    }

    /// The special-use attribute (RFC 6154), if any.
    pub fn special_use(&self) -> Option<&ListAttribute> {
        self.attributes.iter().find(|a| a.is_special_use())
    }
}

/// A mailbox name attribute (RFC 3501 7.2.2, RFC 5258, RFC 6154).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub enum ListAttribute {
    /// `\Noinferiors`
    NoInferiors,
    /// `\Noselect`
    NoSelect,
    /// `\Marked`
    Marked,
    /// `\Unmarked`
    Unmarked,
    /// `\HasChildren` (RFC 5258)
    HasChildren,
    /// `\HasNoChildren` (RFC 5258)
    HasNoChildren,
    /// `\NonExistent` (RFC 5258)
    NonExistent,
    /// `\Subscribed` (RFC 5258)
    Subscribed,
    /// `\Remote` (RFC 5258)
    Remote,
    /// `\All` (special use)
    All,
    /// `\Archive` (special use)
    Archive,
    /// `\Drafts` (special use)
    Drafts,
    /// `\Flagged` (special use)
    Flagged,
    /// `\Junk` (special use)
    Junk,
    /// `\Sent` (special use)
    Sent,
    /// `\Trash` (special use)
    Trash,
    /// Any other attribute, as sent (with its backslash if it had one).
    Other(String),
}

impl ListAttribute {
    /// Maps attribute text (with the backslash) case-insensitively.
    pub fn from_wire(s: &[u8]) -> ListAttribute {
        const TABLE: &[(&str, ListAttribute)] = &[
            ("\\Noinferiors", ListAttribute::NoInferiors),
            ("\\Noselect", ListAttribute::NoSelect),
            ("\\Marked", ListAttribute::Marked),
            ("\\Unmarked", ListAttribute::Unmarked),
            ("\\HasChildren", ListAttribute::HasChildren),
            ("\\HasNoChildren", ListAttribute::HasNoChildren),
            ("\\NonExistent", ListAttribute::NonExistent),
            ("\\Subscribed", ListAttribute::Subscribed),
            ("\\Remote", ListAttribute::Remote),
            ("\\All", ListAttribute::All),
            ("\\Archive", ListAttribute::Archive),
            ("\\Drafts", ListAttribute::Drafts),
            ("\\Flagged", ListAttribute::Flagged),
            ("\\Junk", ListAttribute::Junk),
            ("\\Sent", ListAttribute::Sent),
            ("\\Trash", ListAttribute::Trash),
        ];
        for (name, attr) in TABLE {
            if s.eq_ignore_ascii_case(name.as_bytes()) {
                return attr.clone();
            }
        }
        ListAttribute::Other(String::from_utf8_lossy(s).into_owned())
    }

    /// True for the RFC 6154 special-use attributes.
    pub fn is_special_use(&self) -> bool {
        self.special_use_name().is_some()
    }

    /// A special-use attribute as it is written (`\Sent`, RFC 6154); `None` for the others.
    pub fn special_use_name(&self) -> Option<&'static str> {
        Some(match self {
            ListAttribute::All => "\\All",
            ListAttribute::Archive => "\\Archive",
            ListAttribute::Drafts => "\\Drafts",
            ListAttribute::Flagged => "\\Flagged",
            ListAttribute::Junk => "\\Junk",
            ListAttribute::Sent => "\\Sent",
            ListAttribute::Trash => "\\Trash",
            _ => return None,
        })
    }
}

/// A LIST-EXTENDED extended data item (RFC 5258 `mbox-list-extended-item`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub enum ListExtended {
    /// `CHILDINFO (…)`: selection options matched by children, e.g. `SUBSCRIBED`.
    ChildInfo(Vec<ByteString>),
    /// `OLDNAME (name)` (RFC 5465): the name before a rename.
    OldName(Mailbox),
    /// Any other item, with its value kept raw.
    Other {
        /// The item label.
        name: String,
        /// The value's wire bytes.
        raw: ByteString,
    },
}

/// A `* STATUS` reply.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct MailboxStatus {
    /// The mailbox the counts belong to.
    pub mailbox: Mailbox,
    /// The items, in wire order.
    pub items: Vec<StatusItem>,
}

impl MailboxStatus {
    /// MESSAGES, if present.
    pub fn messages(&self) -> Option<u32> {
        self.items.iter().find_map(|i| match i {
            StatusItem::Messages(n) => Some(*n),
            _ => None,
        })
    }

    /// UIDNEXT, if present.
    pub fn uid_next(&self) -> Option<u32> {
        self.items.iter().find_map(|i| match i {
            StatusItem::UidNext(n) => Some(*n),
            _ => None,
        })
    }

    /// UIDVALIDITY, if present.
    pub fn uid_validity(&self) -> Option<NonZeroU32> {
        self.items.iter().find_map(|i| match i {
            StatusItem::UidValidity(n) => Some(*n),
            _ => None,
        })
    }

    /// HIGHESTMODSEQ, if present.
    pub fn highest_modseq(&self) -> Option<u64> {
        self.items.iter().find_map(|i| match i {
            StatusItem::HighestModSeq(n) => Some(*n),
            _ => None,
        })
    }
}

/// One STATUS data item.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub enum StatusItem {
    /// MESSAGES
    Messages(u32),
    /// RECENT
    Recent(u32),
    /// UIDNEXT
    UidNext(u32),
    /// UIDVALIDITY
    UidValidity(NonZeroU32),
    /// UNSEEN (a count here, unlike the response code)
    Unseen(u32),
    /// DELETED (RFC 9051)
    Deleted(u32),
    /// HIGHESTMODSEQ (RFC 7162)
    HighestModSeq(u64),
    /// SIZE (RFC 8438)
    Size(u64),
    /// An item this crate does not know, with its value kept raw.
    Other {
        /// The item name.
        name: String,
        /// The value's wire bytes.
        raw: ByteString,
    },
}

/// A `* SEARCH` reply (seed V0067).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct Search {
    /// Matching sequence numbers or UIDs (the command decides which), in wire order.
    pub ids: Vec<u32>,
    /// The `(MODSEQ n)` suffix of RFC 7162 3.1.5, if present.
    pub modseq: Option<u64>,
}

/// A `* ESEARCH` reply (RFC 4731).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct Esearch {
    /// The tag of the command it answers (`(TAG "a1")`), if given.
    pub tag: Option<Tag>,
    /// True when the numbers are UIDs.
    pub uid: bool,
    /// Result items in wire order.
    pub items: Vec<EsearchItem>,
}

/// An ESEARCH result item.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub enum EsearchItem {
    /// MIN n
    Min(u32),
    /// MAX n
    Max(u32),
    /// COUNT n
    Count(u32),
    /// ALL set: UIDs when [`Esearch::uid`] is true, else sequence numbers.
    All(SeqSet),
    /// MODSEQ n (RFC 7162)
    ModSeq(u64),
    /// Any other item, with its value kept raw.
    Other {
        /// The item name.
        name: String,
        /// The value's wire bytes.
        raw: ByteString,
    },
}

impl EsearchItem {
    /// The ALL set as UIDs (the same numbers, typed as UIDs; only meaningful when
    /// [`Esearch::uid`] is true).
    pub fn all_as_uids(&self) -> Option<UidSet> {
        match self {
            EsearchItem::All(s) => UidSet::from_ranges(s.ranges()).ok(),
            _ => None,
        }
    }
}

/// A `* VANISHED` reply (RFC 7162 3.2.10).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct Vanished {
    /// True for `VANISHED (EARLIER)`: a reply to a FETCH/SELECT, not a new expunge.
    pub earlier: bool,
    /// The expunged UIDs.
    pub uids: UidSet,
}

/// The three namespace classes of RFC 2342; an absent class (`NIL`) is an empty list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct Namespaces {
    /// Personal namespaces.
    pub personal: Vec<NamespaceDesc>,
    /// Other users' namespaces.
    pub other: Vec<NamespaceDesc>,
    /// Shared namespaces.
    pub shared: Vec<NamespaceDesc>,
}

/// One namespace: a prefix and its delimiter.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct NamespaceDesc {
    /// The prefix, e.g. `INBOX.` or `""`.
    pub prefix: ByteString,
    /// The hierarchy delimiter, `None` for NIL.
    pub delimiter: Option<char>,
    /// Namespace response extensions: `(name, values)`.
    pub extensions: Vec<(ByteString, Vec<ByteString>)>,
}

/// An unknown untagged response, kept raw.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct OtherResponse {
    /// A leading number if the response had one (`* 3 XFOO`).
    pub number: Option<u32>,
    /// The response name as sent.
    pub name: String,
    /// Everything after the name (and its space), without the line end.
    pub raw: ByteString,
}

/// A `* n FETCH (…)` reply.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct Fetch {
    /// The message sequence number.
    pub seq: u32,
    /// The data items, in wire order.
    pub items: Vec<FetchItem>,
}

impl Fetch {
    /// The UID item, if present.
    pub fn uid(&self) -> Option<u32> {
        self.items.iter().find_map(|i| match i {
            FetchItem::Uid(u) => Some(*u),
            _ => None,
        })
    }

    /// The FLAGS item, if present.
    pub fn flags(&self) -> Option<&[Flag]> {
        self.items.iter().find_map(|i| match i {
            FetchItem::Flags(f) => Some(f.as_slice()),
            _ => None,
        })
    }

    /// The MODSEQ item, if present.
    pub fn modseq(&self) -> Option<u64> {
        self.items.iter().find_map(|i| match i {
            FetchItem::ModSeq(m) => Some(*m),
            _ => None,
        })
    }

    /// The RFC822.SIZE item, if present.
    pub fn rfc822_size(&self) -> Option<u64> {
        self.items.iter().find_map(|i| match i {
            FetchItem::Rfc822Size(m) => Some(*m),
            _ => None,
        })
    }

    /// The INTERNALDATE item, if present.
    pub fn internal_date(&self) -> Option<&DateTime> {
        self.items.iter().find_map(|i| match i {
            FetchItem::InternalDate(d) => Some(d),
            _ => None,
        })
    }

    /// The ENVELOPE item, if present.
    pub fn envelope(&self) -> Option<&Envelope> {
        self.items.iter().find_map(|i| match i {
            FetchItem::Envelope(e) => Some(&**e),
            _ => None,
        })
    }

    /// The BODYSTRUCTURE (or, failing that, BODY) structure item, if present.
    pub fn body_structure(&self) -> Option<&BodyStructure> {
        let bs = self.items.iter().find_map(|i| match i {
            FetchItem::BodyStructure(b) => Some(b),
            _ => None,
        });
        bs.or_else(|| {
            self.items.iter().find_map(|i| match i {
                FetchItem::Body(b) => Some(b),
                _ => None,
            })
        })
    }

    /// The first `BODY[section]` item with exactly this section, if present.
    pub fn section(&self, section: &Section) -> Option<&BodyValue> {
        self.items.iter().find_map(|i| match i {
            FetchItem::BodySection {
                section: s, data, ..
            } if s == section => Some(data),
            _ => None,
        })
    }
}

/// A FETCH data item (RFC 3501 7.4.2 `msg-att`, plus CONDSTORE, BINARY and vendor items).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
#[non_exhaustive]
pub enum FetchItem {
    /// FLAGS (…), `\Recent` included (seed V0004).
    Flags(Vec<Flag>),
    /// INTERNALDATE "dd-Mon-yyyy hh:mm:ss +zzzz"
    InternalDate(DateTime),
    /// RFC822.SIZE
    Rfc822Size(u64),
    /// ENVELOPE (seed V0008/V0072)
    Envelope(Box<Envelope>),
    /// BODY (the non-extensible structure form)
    Body(BodyStructure),
    /// BODYSTRUCTURE (seed V0009/V0071)
    BodyStructure(BodyStructure),
    /// `BODY[section]<origin>` (seed V0053 for the partial form)
    BodySection {
        /// Which part.
        section: Section,
        /// The `<origin>` of a partial fetch: the first octet's offset.
        origin: Option<u32>,
        /// The data.
        data: BodyValue,
    },
    /// `BINARY[part]<origin>` (RFC 3516)
    Binary {
        /// Part numbers (empty for the whole message).
        section: Vec<u32>,
        /// The `<origin>` of a partial fetch.
        origin: Option<u32>,
        /// The decoded data.
        data: BodyValue,
    },
    /// `BINARY.SIZE[part]` (RFC 3516)
    BinarySize {
        /// Part numbers.
        section: Vec<u32>,
        /// Decoded size in octets.
        size: u64,
    },
    /// UID
    Uid(u32),
    /// MODSEQ (n) (RFC 7162)
    ModSeq(u64),
    /// RFC822 (the whole message)
    Rfc822(BodyValue),
    /// RFC822.HEADER
    Rfc822Header(BodyValue),
    /// RFC822.TEXT
    Rfc822Text(BodyValue),
    /// Any other item (e.g. Gmail's X-GM-LABELS, X-GM-MSGID), with its value kept raw.
    Other {
        /// The item name as sent.
        name: String,
        /// The value's wire bytes (a list keeps its parentheses).
        raw: ByteString,
    },
}

/// The value of a body-carrying FETCH item.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub enum BodyValue {
    /// The server sent NIL.
    Nil,
    /// The bytes, held in the response (literals up to the parser's inline cap).
    Inline(ByteString),
    /// The bytes were handed out as [`crate::parse::Event::BodyChunk`] events and are not
    /// held here; `len` is the literal's size.
    Streamed {
        /// Literal size in octets.
        len: u64,
    },
}

impl BodyValue {
    /// The inline bytes, if held.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            BodyValue::Inline(b) => Some(b),
            _ => None,
        }
    }

    /// The size in octets (0 for NIL).
    pub fn len(&self) -> u64 {
        match self {
            BodyValue::Nil => 0,
            BodyValue::Inline(b) => b.len() as u64,
            BodyValue::Streamed { len } => *len,
        }
    }

    /// True for NIL or an empty value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A body section specifier (RFC 3501 6.4.5 `section`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct Section {
    /// Part numbers, e.g. `[1, 2]` for `1.2`; empty for the whole message.
    pub part: Vec<u32>,
    /// What of that part.
    pub spec: SectionSpec,
}

/// The text part of a section specifier.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub enum SectionSpec {
    /// The whole part (`BODY[]`, `BODY[1.2]`).
    #[default]
    Full,
    /// HEADER
    Header,
    /// HEADER.FIELDS (…)
    HeaderFields(Vec<ByteString>),
    /// HEADER.FIELDS.NOT (…)
    HeaderFieldsNot(Vec<ByteString>),
    /// TEXT
    Text,
    /// MIME
    Mime,
}

/// An ENVELOPE (RFC 3501 7.4.2). Strings are `None` for NIL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct Envelope {
    /// Date header.
    pub date: Option<ByteString>,
    /// Subject header (still RFC 2047-encoded).
    pub subject: Option<ByteString>,
    /// From
    pub from: SmallList<Address>,
    /// Sender
    pub sender: SmallList<Address>,
    /// Reply-To
    pub reply_to: SmallList<Address>,
    /// To
    pub to: SmallList<Address>,
    /// Cc
    pub cc: SmallList<Address>,
    /// Bcc
    pub bcc: SmallList<Address>,
    /// In-Reply-To
    pub in_reply_to: Option<ByteString>,
    /// Message-ID
    pub message_id: Option<ByteString>,
}

/// An address in an ENVELOPE. A group is an address with `host: None` opening it
/// (`mailbox` = group name) and one with `mailbox: None` closing it (RFC 3501 7.4.2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct Address {
    /// Display name.
    pub name: Option<ByteString>,
    /// Source route (obsolete).
    pub adl: Option<ByteString>,
    /// Local part.
    pub mailbox: Option<ByteString>,
    /// Domain.
    pub host: Option<ByteString>,
}

/// A BODY or BODYSTRUCTURE (RFC 3501 7.4.2); seed V0009/V0071, N5.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub enum BodyStructure {
    /// A non-multipart body part.
    Single(Box<SinglePart>),
    /// A multipart body.
    Multipart(Box<Multipart>),
}

impl BodyStructure {
    /// The part at `path` (1-based part numbers as in `BODY[1.2]`); the empty path is the
    /// structure itself. A `message/rfc822` part's number steps into its embedded body.
    pub fn part(&self, path: &[u32]) -> Option<&BodyStructure> {
        let Some((&first, rest)) = path.split_first() else {
            return Some(self);
        };
        let idx = usize::try_from(first.checked_sub(1)?).ok()?;
        match self {
            BodyStructure::Multipart(m) => m.parts.get(idx)?.part(rest),
            BodyStructure::Single(s) => match &s.kind {
                SingleKind::Message { body, .. } => body.part(path),
                _ if first == 1 && rest.is_empty() => Some(self),
                _ => None,
            },
        }
    }
}

/// A non-multipart body part.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct SinglePart {
    /// Media type, e.g. `TEXT` (NIL read as empty: see docs/quirks.md).
    pub media_type: ByteString,
    /// Media subtype, e.g. `PLAIN`.
    pub media_subtype: ByteString,
    /// Content-Type parameters; a NIL value is `None`.
    pub params: BodyParams,
    /// Content-ID
    pub id: Option<ByteString>,
    /// Content-Description
    pub description: Option<ByteString>,
    /// Content-Transfer-Encoding (NIL read as empty: see docs/quirks.md).
    pub encoding: ByteString,
    /// Size in octets (of the encoded body).
    pub size: u32,
    /// Type-specific fields.
    pub kind: SingleKind,
    /// Extension data (BODYSTRUCTURE only), if the server sent any.
    pub ext: Option<SinglePartExt>,
}

/// Type-specific fields of a single part.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub enum SingleKind {
    /// Any type other than TEXT and MESSAGE/RFC822.
    Basic,
    /// TEXT/*: the size in lines.
    Text {
        /// Body size in lines.
        lines: u32,
    },
    /// MESSAGE/RFC822 (and MESSAGE/GLOBAL): the embedded message.
    Message {
        /// The embedded message's envelope.
        envelope: Box<Envelope>,
        /// The embedded message's structure.
        body: BodyStructure,
        /// Size in lines.
        lines: u32,
    },
}

/// Extension data of a single part (RFC 3501 `body-ext-1part`). Absent trailing fields
/// are `None`/empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct SinglePartExt {
    /// Content-MD5
    pub md5: Option<ByteString>,
    /// Content-Disposition
    pub disposition: Option<Disposition>,
    /// Content-Language values.
    pub language: Vec<ByteString>,
    /// Content-Location
    pub location: Option<ByteString>,
    /// Further extension fields (seed N5), kept as parsed values.
    pub extensions: Vec<BodyExtension>,
}

/// A multipart body.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct Multipart {
    /// The parts, in order (at least one).
    pub parts: Vec<BodyStructure>,
    /// Subtype, e.g. `MIXED`.
    pub media_subtype: ByteString,
    /// Extension data (BODYSTRUCTURE only), if the server sent any.
    pub ext: Option<MultipartExt>,
}

/// Extension data of a multipart (RFC 3501 `body-ext-mpart`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct MultipartExt {
    /// Content-Type parameters (e.g. BOUNDARY); a NIL value is `None`.
    pub params: BodyParams,
    /// Content-Disposition
    pub disposition: Option<Disposition>,
    /// Content-Language values.
    pub language: Vec<ByteString>,
    /// Content-Location
    pub location: Option<ByteString>,
    /// Further extension fields (seed N5).
    pub extensions: Vec<BodyExtension>,
}

/// A Content-Disposition in a body structure.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct Disposition {
    /// e.g. `attachment` or `inline`.
    pub kind: ByteString,
    /// Parameters such as `filename`; a NIL value is `None`.
    pub params: BodyParams,
}

/// A body extension field of unknown meaning (RFC 3501 `body-extension`), seed N5.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub enum BodyExtension {
    /// NIL
    Nil,
    /// A number.
    Number(u64),
    /// A string.
    String(ByteString),
    /// A parenthesised list, nested to any (bounded) depth.
    List(Vec<BodyExtension>),
}

/// An IMAP `date-time` (INTERNALDATE): a local time with its UTC offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DateTime {
    /// Year, e.g. 1996.
    pub year: u16,
    /// Month 1–12.
    pub month: u8,
    /// Day of the month 1–31.
    pub day: u8,
    /// Hour 0–23.
    pub hour: u8,
    /// Minute 0–59.
    pub minute: u8,
    /// Second 0–60 (a leap second is accepted).
    pub second: u8,
    /// Offset from UTC in minutes, e.g. -420 for `-0700`.
    pub offset_minutes: i16,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl DateTime {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub fn unix_timestamp(&self) -> i64 {
        days_from_civil(i64::from(self.year), self.month, self.day) * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - i64::from(self.offset_minutes) * 60
    }

    /// The UTC date-time (offset `+0000`) `secs` seconds after 1970-01-01T00:00:00Z: the
    /// inverse of [`DateTime::unix_timestamp`] for UTC values. `None` when the year is
    /// outside 0–65535.
    pub fn from_unix_utc(secs: i64) -> Option<DateTime> {
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let rem = secs.rem_euclid(86_400);
        Some(DateTime {
            year: u16::try_from(year).ok()?,
            month,
            day,
            hour: u8::try_from(rem / 3600).ok()?,
            minute: u8::try_from(rem % 3600 / 60).ok()?,
            second: u8::try_from(rem % 60).ok()?,
            offset_minutes: 0,
        })
    }

    /// Month number (1–12) for an English three-letter month name, any case.
    pub fn month_from_name(name: &[u8]) -> Option<u8> {
        MONTHS
            .iter()
            .position(|m| m.as_bytes().eq_ignore_ascii_case(name))
            .and_then(|i| u8::try_from(i + 1).ok())
    }
}

/// Days since 1970-01-01 of a date of the proleptic Gregorian calendar, after H. Hinnant's
/// well-known algorithm: the year is shifted to start in March so that leap days fall at its
/// end, and counted in eras of 400 years (146 097 days) from 0000-03-01.
fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let y = year - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month 1–12, day 1–31) of a day count.
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both fit a u8 by construction: day 1–31, month 1–12.
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u8;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

impl fmt::Display for DateTime {
    /// The IMAP form, e.g. `17-Jul-1996 02:44:25 -0700`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let month = MONTHS
            .get(usize::from(self.month.saturating_sub(1)))
            .copied()
            .unwrap_or("???");
        let sign = if self.offset_minutes < 0 { '-' } else { '+' };
        let off = self.offset_minutes.unsigned_abs();
        write!(
            f,
            "{:02}-{}-{:04} {:02}:{:02}:{:02} {}{:02}{:02}",
            self.day,
            month,
            self.year,
            self.hour,
            self.minute,
            self.second,
            sign,
            off / 60,
            off % 60
        )
    }
}

#[cfg(feature = "serde")]
impl Serialize for DateTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_date_times_round_trip_through_unix_seconds() {
        let t = DateTime::from_unix_utc(951_782_400).unwrap();
        assert_eq!(t.to_string(), "29-Feb-2000 00:00:00 +0000");
        let t = DateTime::from_unix_utc(1_700_000_000).unwrap();
        assert_eq!(t.to_string(), "14-Nov-2023 22:13:20 +0000");
        for secs in [
            0,
            -1,
            86_399,
            86_400,
            -62_167_219_200, // 0000-01-01
            253_402_300_799, // 9999-12-31T23:59:59
            4_102_444_799,
        ] {
            assert_eq!(
                DateTime::from_unix_utc(secs).unwrap().unix_timestamp(),
                secs
            );
        }
        assert_eq!(DateTime::from_unix_utc(-62_167_219_201), None);
    }

    #[test]
    fn small_list_reads_like_a_vec() {
        let mut l = SmallList::new();
        assert!(l.is_empty());
        assert_eq!(l, Vec::<u32>::new());
        l.push(1);
        assert_eq!(l, vec![1]);
        assert!(matches!(l.0, ListRepr::Inline(Some(1))));
        l.push(2);
        l.push(3);
        assert_eq!(l, vec![1, 2, 3]);
        assert_eq!(l.iter().sum::<u32>(), 6);
        assert_eq!(l[1], 2);
        *l.push_default() = 9;
        assert_eq!(l.clone().into_vec(), vec![1, 2, 3, 9]);
        assert_eq!(l.into_iter().collect::<Vec<_>>(), vec![1, 2, 3, 9]);

        // Equality and hashing go by elements, whichever form holds them.
        let inline: SmallList<u8> = [7].into_iter().collect();
        let heap = SmallList::from(vec![7u8]);
        assert_eq!(inline, heap);
        let hash = |l: &SmallList<u8>| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            l.hash(&mut h);
            h.finish()
        };
        assert_eq!(hash(&inline), hash(&heap));
        assert_eq!(format!("{inline:?}"), "[7]");

        let mut d: SmallList<u8> = SmallList::default();
        *d.push_default() = 4;
        *d.push_default() = 5;
        assert_eq!(d, vec![4, 5]);
    }

    #[test]
    fn byte_string_forms_are_interchangeable() {
        let long = b"a string well over twenty-two bytes long";
        let buf: Arc<[u8]> = Arc::from(&b"xx a string well over twenty-two bytes long yy"[..]);
        let shared = ByteString::shared(&buf, 3, long.len()).unwrap();
        let owned = ByteString::new(long);
        assert_eq!(shared, owned);
        assert_eq!(shared.as_bytes(), long);
        assert_eq!(shared.clone().into_vec(), long.to_vec());
        assert_eq!(shared.cmp(&owned), std::cmp::Ordering::Equal);
        // Out of range or too long for the shared form: refused, never a panic.
        assert!(ByteString::shared(&buf, 40, 10).is_none());
        assert!(ByteString::shared(&buf, usize::MAX, 2).is_none());

        let mut s = owned.clone();
        assert!(s.set_from_window(b"short and then other bytes", 5));
        assert_eq!(s, "short");
        assert!(!s.set_from_window(b"too short", 3), "window under 22 bytes");
        assert_eq!(s, "short");
        assert!(!s.set_from_window(long, 23));
        assert_eq!(std::mem::size_of::<ByteString>(), 24);
    }

    #[test]
    fn unix_timestamp_matches_known_values() {
        let d = DateTime {
            year: 1970,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
            offset_minutes: 0,
        };
        assert_eq!(d.unix_timestamp(), 0);
        // 17-Jul-1996 02:44:25 -0700 == 1996-07-17T09:44:25Z
        let d = DateTime {
            year: 1996,
            month: 7,
            day: 17,
            hour: 2,
            minute: 44,
            second: 25,
            offset_minutes: -420,
        };
        assert_eq!(d.unix_timestamp(), 837_596_665);
        assert_eq!(d.to_string(), "17-Jul-1996 02:44:25 -0700");
    }

    #[test]
    fn copyuid_pairs_follow_wire_order() {
        let c = CopyUid {
            uid_validity: NonZeroU32::MIN,
            source: vec![(304, 304), (319, 320)],
            dest: vec![(3958, 3956)],
        };
        let p: Vec<_> = c.pairs().collect();
        assert_eq!(p, vec![(304, 3958), (319, 3957), (320, 3956)]);
        assert_eq!(c.dest_set().to_string(), "3956:3958");
    }
}
