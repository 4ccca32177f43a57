//! The streaming, forgiving response parser (seed N3–N6).
//!
//! [`ResponseParser`] is sans-IO: the caller feeds it bytes as they arrive from the
//! transport and pulls [`Event`]s out. Its driving contract:
//!
//! 1. [`ResponseParser::feed`] appends bytes. It never fails and never parses.
//! 2. [`ResponseParser::next`] returns the next event, or `None` when it needs more bytes
//!    (needing more data is not an error). Call it until `None` before feeding again; this
//!    keeps the internal buffer bounded by the [`FramingConfig`] caps plus one feed.
//! 3. A malformed response yields exactly one `Some(Err(ParseError))` carrying the stream
//!    offset, what was expected and an excerpt; the parser then skips that response (using
//!    the framing, or by resynchronising at the next line that starts like a response) and
//!    the following responses parse normally.
//! 4. A FETCH body literal (`BODY[…]`, `BINARY[…]`, `RFC822`, `RFC822.HEADER`,
//!    `RFC822.TEXT`) larger than [`FramingConfig::max_inline_literal`] is not buffered: the
//!    parser emits [`Event::BodyStart`], then [`Event::BodyChunk`]s borrowing the fed bytes
//!    as they arrive, then [`Event::BodyEnd`], and finally the complete
//!    [`Response::Fetch`] in which that item is [`BodyValue::Streamed`]. Smaller literals are
//!    inlined into the response.
//!
//! [`parse_response`] parses one response from a complete buffer, for tests and tools.
//!
//! The grammar is RFC 3501 section 9 plus the extension responses listed in
//! [`crate::response`]. Deviations that real servers send are tolerated and listed in
//! `docs/quirks.md`; each has a `quirk_…` test in `tests/quirks.rs`. Recursion (body
//! structures, nested lists) is bounded by [`MAX_DEPTH`], so no input can overflow the stack.

use std::borrow::Cow;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;

use crate::core::{is_astring_char, is_atom_char, is_name_char, Flag, Mailbox, Tag};
use crate::framing::{Frame, FrameError, Framer, FramingConfig};
use crate::response::*;
use crate::seqset::{SeqSet, UidSet};

/// Deepest nesting of parenthesised lists and body parts accepted. Real messages rarely
/// nest MIME beyond 10 levels; 64 leaves room while keeping recursion shallow.
pub const MAX_DEPTH: u32 = 64;

/// Parser settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParserConfig {
    /// Size caps (see [`FramingConfig`]).
    pub framing: FramingConfig,
    /// Treat the first untagged OK/PREAUTH/BYE as the server greeting
    /// ([`Response::Greeting`]). True by default; false when attaching mid-session.
    pub expect_greeting: bool,
}

impl Default for ParserConfig {
    fn default() -> Self {
        ParserConfig {
            framing: FramingConfig::default(),
            expect_greeting: true,
        }
    }
}

/// What went wrong, by cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The bytes do not follow the grammar.
    Syntax,
    /// Nesting deeper than [`MAX_DEPTH`].
    TooDeep,
    /// A line exceeded [`FramingConfig::max_line`].
    LineTooLong,
    /// A response exceeded [`FramingConfig::max_response`].
    ResponseTooLarge,
    /// A literal above the inline cap where it cannot be streamed (not a FETCH body).
    LiteralTooLarge,
    /// A literal size of 4294967295 or more, or with more than 10 digits.
    LiteralSize,
    /// The buffer ends before the response does ([`parse_response`] only).
    Incomplete,
}

/// A malformed response: where, what was expected, and what was there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The cause.
    pub kind: ParseErrorKind,
    /// Byte offset in the stream (from the first byte fed) where the problem was seen.
    pub offset: u64,
    /// What the parser expected there.
    pub expected: &'static str,
    /// Up to 48 bytes from the problem position on, printable ASCII with escapes.
    pub excerpt: String,
}

impl ParseError {
    /// True when more bytes would have let [`parse_response`] succeed.
    pub fn is_incomplete(&self) -> bool {
        self.kind == ParseErrorKind::Incomplete
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed server response at byte {}: expected {} ({:?}), found \"{}\"",
            self.offset, self.expected, self.kind, self.excerpt
        )
    }
}

impl std::error::Error for ParseError {}

fn excerpt(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes.iter().take(48) {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(char::from(b)),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

/// Which FETCH item a streamed literal belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum StreamedItem {
    /// `BODY[section]<origin>`
    Body {
        /// The section.
        section: Section,
        /// The partial-fetch origin.
        origin: Option<u32>,
    },
    /// `BINARY[part]<origin>`
    Binary {
        /// Part numbers.
        section: Vec<u32>,
        /// The partial-fetch origin.
        origin: Option<u32>,
    },
    /// `RFC822`
    Rfc822,
    /// `RFC822.HEADER`
    Rfc822Header,
    /// `RFC822.TEXT`
    Rfc822Text,
}

impl StreamedItem {
    fn into_item(self, data: BodyValue) -> FetchItem {
        match self {
            StreamedItem::Body { section, origin } => FetchItem::BodySection {
                section,
                origin,
                data,
            },
            StreamedItem::Binary { section, origin } => FetchItem::Binary {
                section,
                origin,
                data,
            },
            StreamedItem::Rfc822 => FetchItem::Rfc822(data),
            StreamedItem::Rfc822Header => FetchItem::Rfc822Header(data),
            StreamedItem::Rfc822Text => FetchItem::Rfc822Text(data),
        }
    }
}

/// One thing the parser produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete response.
    Response(Response),
    /// A large FETCH body literal begins; its bytes follow as [`Event::BodyChunk`]s.
    BodyStart {
        /// The message sequence number of the FETCH.
        seq: u32,
        /// Which item.
        item: StreamedItem,
        /// The literal's declared size.
        len: u64,
    },
    /// Some bytes of the literal announced by the last [`Event::BodyStart`], byte-exact.
    BodyChunk(&'a [u8]),
    /// The literal is complete; the rest of the FETCH follows as a [`Event::Response`].
    BodyEnd,
}

/// A FETCH whose parsing was interrupted by a streamed literal.
#[derive(Debug)]
struct PendingFetch {
    seq: u32,
    items: Vec<FetchItem>,
}

#[derive(Debug)]
enum State {
    /// At a response boundary.
    Idle,
    /// Handing out literal bytes; `remaining` still to come.
    Streaming {
        remaining: u64,
        pending: PendingFetch,
    },
    /// After a streamed literal: the rest of the FETCH.
    Rest { pending: PendingFetch },
    /// Discarding `remaining` literal bytes of a failed response, then its line.
    SkipLiteral { remaining: u64 },
    /// Discarding through the next line end, then resynchronising.
    SkipLine,
    /// Discarding whole lines until one starts like a response.
    Resync,
}

/// The streaming parser; see the module docs for the driving contract.
pub struct ResponseParser {
    cfg: ParserConfig,
    framer: Framer,
    buf: Vec<u8>,
    /// First unconsumed byte in `buf`.
    start: usize,
    /// Stream offset of `buf[start]`.
    offset: u64,
    state: State,
    expect_greeting: bool,
}

impl fmt::Debug for ResponseParser {
    /// Sizes and state only: the buffer may hold message bodies, which do not belong in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseParser")
            .field("config", &self.cfg)
            .field("buffered", &self.buffered())
            .field("offset", &self.offset)
            .field("state", &self.state)
            .finish()
    }
}

/// What one step of the state machine decided.
enum Step {
    Again,
    NeedMore,
    Response(Response),
    Error(ParseError),
    BodyStart(u32, StreamedItem, u64),
    Chunk(usize, usize),
    BodyEnd,
}

impl ResponseParser {
    /// A parser with the given settings.
    pub fn new(cfg: ParserConfig) -> Self {
        ResponseParser {
            cfg,
            framer: Framer::new(cfg.framing),
            buf: Vec::new(),
            start: 0,
            offset: 0,
            state: State::Idle,
            expect_greeting: cfg.expect_greeting,
        }
    }

    /// Appends bytes received from the server.
    pub fn feed(&mut self, data: &[u8]) {
        if self.start > 0 {
            // Only the unconsumed tail moves; it is at most one partial response.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes fed but not yet consumed.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Stream offset of the next unconsumed byte.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// True between [`Event::BodyStart`] and the final FETCH response.
    pub fn in_fetch_body(&self) -> bool {
        matches!(self.state, State::Streaming { .. } | State::Rest { .. })
    }

    /// The next event, `None` if more bytes are needed. See the module docs.
    #[allow(clippy::should_implement_trait)] // an Iterator cannot lend `BodyChunk` bytes.
    pub fn next(&mut self) -> Option<Result<Event<'_>, ParseError>> {
        loop {
            match self.step() {
                Step::Again => continue,
                Step::NeedMore => {
                    if self.start == self.buf.len() {
                        self.buf.clear();
                        self.start = 0;
                    }
                    return None;
                }
                Step::Response(r) => return Some(Ok(Event::Response(r))),
                Step::Error(e) => return Some(Err(e)),
                Step::BodyStart(seq, item, len) => {
                    return Some(Ok(Event::BodyStart { seq, item, len }))
                }
                Step::Chunk(a, b) => return Some(Ok(Event::BodyChunk(&self.buf[a..b]))),
                Step::BodyEnd => return Some(Ok(Event::BodyEnd)),
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
    }

    fn step(&mut self) -> Step {
        let state = std::mem::replace(&mut self.state, State::Idle);
        match state {
            State::Idle => self.step_frame(None),
            State::Rest { pending } => self.step_frame(Some(pending)),
            State::Streaming { remaining, pending } => {
                if remaining == 0 {
                    self.state = State::Rest { pending };
                    return Step::BodyEnd;
                }
                let avail = self.buffered();
                if avail == 0 {
                    self.state = State::Streaming { remaining, pending };
                    return Step::NeedMore;
                }
                let k = usize::try_from(remaining).map_or(avail, |r| r.min(avail));
                let a = self.start;
                self.consume(k);
                self.state = State::Streaming {
                    remaining: remaining - k as u64,
                    pending,
                };
                Step::Chunk(a, a + k)
            }
            State::SkipLiteral { remaining } => {
                let avail = self.buffered();
                let k = usize::try_from(remaining).map_or(avail, |r| r.min(avail));
                self.consume(k);
                let remaining = remaining - k as u64;
                if remaining == 0 {
                    self.state = State::SkipLine;
                    Step::Again
                } else {
                    self.state = State::SkipLiteral { remaining };
                    Step::NeedMore
                }
            }
            State::SkipLine => match memchr::memchr(b'\n', &self.buf[self.start..]) {
                Some(i) => {
                    self.consume(i + 1);
                    self.state = State::Resync;
                    Step::Again
                }
                None => {
                    let n = self.buffered();
                    self.consume(n);
                    self.state = State::SkipLine;
                    Step::NeedMore
                }
            },
            State::Resync => {
                let rest = &self.buf[self.start..];
                match memchr::memchr(b'\n', rest) {
                    Some(i) => {
                        if starts_response(&rest[..i]) {
                            self.state = State::Idle;
                        } else {
                            self.consume(i + 1);
                            self.state = State::Resync;
                        }
                        Step::Again
                    }
                    None => {
                        if rest.len() > self.cfg.framing.max_line {
                            // Too long to be a response start we could frame anyway.
                            self.state = State::SkipLine;
                            return Step::Again;
                        }
                        self.state = State::Resync;
                        Step::NeedMore
                    }
                }
            }
        }
    }

    /// Frames and parses the next response, or the rest of a FETCH after a streamed literal.
    /// One step on the buffered bytes: a complete response, the start of a streamed FETCH
    /// body, a framing error, or a request for more bytes.
    fn step_frame(&mut self, pending: Option<PendingFetch>) -> Step {
        if self.buffered() == 0 {
            return self.need_more(pending);
        }
        match self.framer.frame(&self.buf[self.start..]) {
            Ok(None) => self.need_more(pending),
            Ok(Some(Frame::Complete { len })) => self.complete_frame(pending, len),
            Ok(Some(Frame::LargeLiteral {
                header_start,
                data_start,
                len,
            })) => self.large_literal_frame(pending, header_start, data_start, len),
            Err(fe) => self.frame_error(fe),
        }
    }

    /// Waits for more bytes, keeping the FETCH whose rest is still to come.
    fn need_more(&mut self, pending: Option<PendingFetch>) -> Step {
        self.state = match pending {
            Some(pending) => State::Rest { pending },
            None => State::Idle,
        };
        Step::NeedMore
    }

    /// A whole response of `len` buffered bytes (or the rest of a FETCH after a streamed
    /// body), parsed and consumed.
    fn complete_frame(&mut self, pending: Option<PendingFetch>, len: usize) -> Step {
        let input = &self.buf[self.start..self.start + len];
        let result = match pending {
            None => parse_complete(input, self.expect_greeting),
            Some(p) => {
                let mut cur = Cur::new(input);
                fetch_rest(&mut cur, p.seq, p.items, false).and_then(|r| match r {
                    FetchOutcome::Done(f) => Ok(Response::Fetch(f)),
                    FetchOutcome::Stream { .. } => Err(cur.err("a complete FETCH")),
                })
            }
        };
        let base = self.offset;
        // Field-wise (not `consume`) so `input` may still borrow `buf`.
        self.start += len;
        self.offset += len as u64;
        self.expect_greeting = false;
        match result {
            Ok(r) => Step::Response(r),
            Err(e) => Step::Error(e.into_error(base, input)),
        }
    }

    /// A response whose literal is over the inline cap: a FETCH body starts streaming; any
    /// other literal is skipped and reported (only FETCH bodies stream).
    fn large_literal_frame(
        &mut self,
        pending: Option<PendingFetch>,
        header_start: usize,
        data_start: usize,
        len: u64,
    ) -> Step {
        let input = &self.buf[self.start..self.start + header_start];
        let mut cur = Cur::new(input);
        let outcome = match pending {
            None => fetch_prefix(&mut cur),
            Some(p) => fetch_rest(&mut cur, p.seq, p.items, true),
        };
        let base = self.offset;
        self.expect_greeting = false;
        match outcome {
            Ok(FetchOutcome::Stream {
                seq,
                mut items,
                item,
            }) => {
                items.push(item.clone().into_item(BodyValue::Streamed { len }));
                self.consume(data_start);
                self.state = State::Streaming {
                    remaining: len,
                    pending: PendingFetch { seq, items },
                };
                Step::BodyStart(seq, item, len)
            }
            // A FETCH that is malformed before the literal: report the real
            // problem rather than the literal's size.
            Err(p) if p.0.pos < header_start && starts_fetch(input) => {
                let e = p.into_error(base, input);
                self.consume(data_start.min(self.buffered()));
                self.state = State::SkipLiteral { remaining: len };
                Step::Error(e)
            }
            _ => {
                let e = ParseError {
                    kind: ParseErrorKind::LiteralTooLarge,
                    offset: base + header_start as u64,
                    expected: "a literal within the inline cap (only FETCH bodies stream)",
                    excerpt: excerpt(&self.buf[self.start + header_start..]),
                };
                self.consume(data_start.min(self.buffered()));
                self.state = State::SkipLiteral { remaining: len };
                Step::Error(e)
            }
        }
    }

    /// A framing error: reported, and the bytes it covers skipped so that the next response
    /// parses (one malformed response poisons only itself).
    fn frame_error(&mut self, fe: FrameError) -> Step {
        self.expect_greeting = false;
        let base = self.offset;
        let rest = &self.buf[self.start..];
        let (kind, at, expected) = match fe {
            FrameError::LineTooLong { line_start } => (
                ParseErrorKind::LineTooLong,
                line_start,
                "a line end within the line cap",
            ),
            FrameError::ResponseTooLarge { header_start, .. } => (
                ParseErrorKind::ResponseTooLarge,
                header_start,
                "a response within the size cap",
            ),
            FrameError::LiteralSize { header_start, .. } => (
                ParseErrorKind::LiteralSize,
                header_start,
                "a literal size below 4294967295",
            ),
        };
        let e = ParseError {
            kind,
            offset: base + at as u64,
            expected,
            excerpt: excerpt(rest.get(at..).unwrap_or_default()),
        };
        match fe {
            FrameError::LineTooLong { .. } => {
                let n = self.buffered();
                self.consume(n);
                self.state = State::SkipLine;
            }
            FrameError::ResponseTooLarge {
                data_start, len, ..
            } => {
                self.consume(data_start);
                self.state = State::SkipLiteral { remaining: len };
            }
            FrameError::LiteralSize { line_end, .. } => {
                self.consume(line_end);
                self.state = State::Resync;
            }
        }
        Step::Error(e)
    }
}

/// True if `input` begins `* n FETCH`.
fn starts_fetch(input: &[u8]) -> bool {
    let mut c = Cur::new(input);
    c.eat(b'*')
        && c.sp().is_ok()
        && c.number().is_ok()
        && c.sp().is_ok()
        && c.name().is_ok_and(|n| kw(n, b"FETCH"))
}

/// True if a line starts like a response: `*`, `+`, or a tag followed by a status word.
fn starts_response(line: &[u8]) -> bool {
    match line.first() {
        Some(b'*') | Some(b'+') => true,
        Some(_) => {
            let tag_len = line
                .iter()
                .take_while(|&&b| is_astring_char(b) && b != b'+')
                .count();
            if tag_len == 0 {
                return false;
            }
            let rest = &line[tag_len..];
            let rest = trim_ws_start(rest);
            if rest.len() == line.len() - tag_len {
                return false; // no separator after the tag
            }
            let word_len = rest.iter().take_while(|b| b.is_ascii_alphabetic()).count();
            let word = &rest[..word_len];
            [&b"OK"[..], b"NO", b"BAD", b"BYE", b"PREAUTH"]
                .iter()
                .any(|w| word.eq_ignore_ascii_case(w))
        }
        None => false,
    }
}

fn trim_ws_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    &s[n..]
}

/// Parses one response from the start of a complete buffer. Returns it with the number of
/// bytes it took. All literals are inlined; a buffer that ends early gives an error whose
/// [`ParseError::is_incomplete`] is true.
pub fn parse_response(input: &[u8]) -> Result<(Response, usize), ParseError> {
    parse_with(input, false)
}

/// As [`parse_response`], but an untagged OK/PREAUTH/BYE is read as a [`Response::Greeting`].
pub fn parse_greeting(input: &[u8]) -> Result<(Response, usize), ParseError> {
    parse_with(input, true)
}

fn parse_with(input: &[u8], greeting: bool) -> Result<(Response, usize), ParseError> {
    let mut framer = Framer::new(FramingConfig::unbounded());
    match framer.frame(input) {
        Ok(Some(Frame::Complete { len })) => {
            let r = parse_complete(&input[..len], greeting).map_err(|e| e.into_error(0, input))?;
            Ok((r, len))
        }
        Ok(None) | Ok(Some(Frame::LargeLiteral { .. })) => Err(ParseError {
            kind: ParseErrorKind::Incomplete,
            offset: input.len() as u64,
            expected: "the rest of the response",
            excerpt: String::new(),
        }),
        Err(FrameError::LiteralSize { header_start, .. }) => Err(ParseError {
            kind: ParseErrorKind::LiteralSize,
            offset: header_start as u64,
            expected: "a literal size below 4294967295",
            excerpt: excerpt(input.get(header_start..).unwrap_or_default()),
        }),
        Err(e) => Err(ParseError {
            kind: ParseErrorKind::ResponseTooLarge,
            offset: 0,
            expected: "a response within the size cap",
            excerpt: e.to_string(),
        }),
    }
}

// ---------------------------------------------------------------------------------------
// The cursor and its primitives.

/// An internal error: position within the parsed slice. Boxed so that the `Result`s on
/// the hot path stay small (errors are rare; moving large results is not).
#[derive(Debug)]
struct PErr(Box<PErrInner>);

#[derive(Debug)]
struct PErrInner {
    pos: usize,
    expected: &'static str,
    kind: ParseErrorKind,
}

impl PErr {
    #[cold]
    fn new(pos: usize, expected: &'static str, kind: ParseErrorKind) -> Self {
        PErr(Box::new(PErrInner {
            pos,
            expected,
            kind,
        }))
    }

    fn into_error(self, base: u64, input: &[u8]) -> ParseError {
        let e = *self.0;
        ParseError {
            kind: e.kind,
            offset: base + e.pos as u64,
            expected: e.expected,
            excerpt: excerpt(input.get(e.pos..).unwrap_or_default()),
        }
    }
}

type PResult<T> = Result<T, PErr>;

struct Cur<'a> {
    buf: &'a [u8],
    pos: usize,
    depth: u32,
    /// The copy of `buf[shared_base..]` that long strings of this response share (see
    /// [`ByteString`]), made at the first long string.
    shared: Option<Arc<[u8]>>,
    shared_base: usize,
}

fn upper_string(b: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(b).into_owned();
    s.make_ascii_uppercase();
    s
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl<'a> Cur<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Cur {
            buf,
            pos: 0,
            depth: 0,
            shared: None,
            shared_base: 0,
        }
    }

    fn err(&self, expected: &'static str) -> PErr {
        PErr::new(self.pos, expected, ParseErrorKind::Syntax)
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    #[inline]
    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    #[inline]
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8, what: &'static str) -> PResult<()> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    /// Skips any run of spaces and TABs (seed N4: servers send runs and TABs).
    #[inline(always)]
    fn ws(&mut self) {
        // Nearly always none or one SP: decide those with one or two loads.
        match self.buf.get(self.pos) {
            Some(b' ') => {
                self.pos += 1;
                if let Some(b' ' | b'\t') = self.buf.get(self.pos) {
                    self.ws_run();
                }
            }
            Some(b'\t') => self.ws_run(),
            _ => {}
        }
    }

    #[cold]
    fn ws_run(&mut self) {
        while let Some(b' ' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    /// At least one space or TAB.
    fn sp(&mut self) -> PResult<()> {
        let p = self.pos;
        self.ws();
        if self.pos == p {
            Err(self.err("a space"))
        } else {
            Ok(())
        }
    }

    /// True at a line end (after optional trailing blanks), without consuming it.
    fn at_line_end(&self) -> bool {
        let mut p = self.pos;
        while let Some(b' ' | b'\t') = self.buf.get(p) {
            p += 1;
        }
        matches!(self.buf.get(p), None | Some(b'\r' | b'\n'))
    }

    /// Trailing blanks (seed N4), then CRLF or a bare LF, then the end of the frame.
    fn line_end(&mut self) -> PResult<()> {
        self.ws();
        self.eat(b'\r');
        if !self.eat(b'\n') && !self.at_end() {
            return Err(self.err("the end of the line"));
        }
        if !self.at_end() {
            return Err(self.err("the end of the response"));
        }
        Ok(())
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(PErr::new(
                self.pos,
                "less deeply nested lists",
                ParseErrorKind::TooDeep,
            ))
        } else {
            Ok(())
        }
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    #[inline(always)]
    fn take_while(&mut self, mut f: impl FnMut(u8) -> bool) -> &'a [u8] {
        let s = self.pos;
        let rest = &self.buf[s..];
        let n = rest.iter().position(|&b| !f(b)).unwrap_or(rest.len());
        self.pos += n;
        &rest[..n]
    }

    /// [`Cur::take_while`] that must take at least one byte, else `expected` is the error.
    fn take_some(
        &mut self,
        f: impl FnMut(u8) -> bool,
        expected: &'static str,
    ) -> PResult<&'a [u8]> {
        let t = self.take_while(f);
        if t.is_empty() {
            Err(self.err(expected))
        } else {
            Ok(t)
        }
    }

    /// The rest of a parenthesised list whose `(` is already consumed: `item` for each
    /// element up to the closing `)`, which is consumed too. Blanks before an element or
    /// the `)` are skipped (servers put extra spaces between list elements).
    #[inline]
    fn each_until_close(&mut self, mut item: impl FnMut(&mut Self) -> PResult<()>) -> PResult<()> {
        loop {
            self.ws();
            if self.eat(b')') {
                return Ok(());
            }
            item(self)?;
        }
    }

    /// [`Cur::each_until_close`] collecting the elements.
    fn list_until_close<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> PResult<T>,
    ) -> PResult<Vec<T>> {
        let mut v = Vec::new();
        self.each_until_close(|c| {
            v.push(item(c)?);
            Ok(())
        })?;
        Ok(v)
    }

    fn atom(&mut self) -> PResult<&'a [u8]> {
        self.take_some(is_atom_char, "an atom")
    }

    /// A response or item name: atom characters up to `[` (so `OK[ALERT]` splits).
    fn name(&mut self) -> PResult<&'a [u8]> {
        self.take_some(is_name_char, "a name")
    }

    fn number64(&mut self) -> PResult<u64> {
        let s = self.pos;
        let mut n: u64 = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(d - b'0')))
                .ok_or_else(|| self.err("a number below 2^64"))?;
            self.pos += 1;
        }
        if self.pos == s {
            return Err(self.err("a number"));
        }
        Ok(n)
    }

    fn number(&mut self) -> PResult<u32> {
        let s = self.pos;
        let n = self.number64()?;
        u32::try_from(n).map_err(|_| PErr::new(s, "a number below 2^32", ParseErrorKind::Syntax))
    }

    fn nz_number(&mut self) -> PResult<NonZeroU32> {
        let s = self.pos;
        NonZeroU32::new(self.number()?)
            .ok_or_else(|| PErr::new(s, "a non-zero number", ParseErrorKind::Syntax))
    }

    #[inline]
    fn is_nil(&self) -> bool {
        self.buf
            .get(self.pos..self.pos + 3)
            // Servers send `NIL`; the case-insensitive test only for anything else.
            .is_some_and(|w| w == b"NIL" || w.eq_ignore_ascii_case(b"NIL"))
            && !self
                .buf
                .get(self.pos + 3)
                .copied()
                .is_some_and(is_atom_char)
    }

    #[inline]
    fn nil(&mut self) -> bool {
        if self.is_nil() {
            self.pos += 3;
            true
        } else {
            false
        }
    }

    /// A quoted string; borrowed unless it has escapes. Raw 8-bit bytes are accepted (seed
    /// N4 quirk list: servers send UTF-8 in quoted strings).
    #[inline]
    fn quoted(&mut self) -> PResult<Cow<'a, [u8]>> {
        self.expect(b'"', "a quoted string")?;
        let s = self.pos;
        let rest = &self.buf[s..];
        // Fast path: no escapes, so the string is a slice of the input.
        if let Some(i) = find_quote_end(rest) {
            if rest[i] == b'"' {
                self.pos = s + i + 1;
                return Ok(Cow::Borrowed(&rest[..i]));
            }
        }
        self.quoted_slow()
    }

    /// Escapes, or no closing quote: rare, so kept out of line.
    #[cold]
    #[inline(never)]
    fn quoted_slow(&mut self) -> PResult<Cow<'a, [u8]>> {
        let mut out = Vec::with_capacity(16);
        loop {
            match self.peek() {
                None | Some(b'\n') => return Err(self.err("a closing quote")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ (b'\\' | b'"')) => {
                            out.push(c);
                            self.pos += 1;
                        }
                        // Not a valid escape: keep the backslash, as sent.
                        _ => out.push(b'\\'),
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// A literal `{n}`, `{n+}` or `~{n}`, line end, then n bytes, borrowed. The framer has
    /// already checked that the bytes are present; this re-checks rather than trust it.
    fn literal(&mut self) -> PResult<&'a [u8]> {
        self.eat(b'~');
        self.expect(b'{', "a literal")?;
        let n = self.number()?;
        self.eat(b'+');
        self.expect(b'}', "'}' closing a literal size")?;
        self.eat(b'\r');
        self.expect(b'\n', "a line end after a literal size")?;
        let n = n as usize;
        let s = self.pos;
        match self.buf.get(s..s + n) {
            Some(data) => {
                self.pos += n;
                Ok(data)
            }
            None => Err(PErr::new(s, "literal data", ParseErrorKind::Incomplete)),
        }
    }

    fn is_literal_start(&self) -> bool {
        match self.peek() {
            Some(b'{') => true,
            Some(b'~') => self.buf.get(self.pos + 1) == Some(&b'{'),
            _ => false,
        }
    }

    /// `string` (quoted or literal).
    #[inline]
    fn string(&mut self) -> PResult<Cow<'a, [u8]>> {
        if self.is_literal_start() {
            Ok(Cow::Borrowed(self.literal()?))
        } else if self.peek() == Some(b'"') {
            self.quoted()
        } else {
            Err(self.err("a string"))
        }
    }

    /// An nstring (`None` for NIL), written straight into `dst`.
    ///
    /// Writing in place matters more than it looks: a short string is built with a few
    /// narrow stores, and moving the finished value on at once (through a `Result`, then
    /// into a field) reads it back before those stores have retired, a store-forwarding
    /// stall on every field. That stall, not the instruction count, dominated the
    /// ENVELOPE profile (see docs/parser-bench.md).
    #[inline(always)]
    fn nstring_into(&mut self, dst: &mut Option<ByteString>) -> PResult<()> {
        match self.peek() {
            Some(b'"') => {
                // The common case inline, without the `Cow` detour of `quoted`: no escapes,
                // so the string is the bytes up to the next quote.
                let start = self.pos + 1;
                let rest = self.buf.get(start..).unwrap_or_default();
                if let Some(i) = find_quote_end(rest) {
                    if rest.get(i) == Some(&b'"') {
                        self.pos = start + i + 1;
                        // Short strings: one fixed-size copy from the input (bytes past
                        // the string are never exposed).
                        let d = dst.get_or_insert_with(ByteString::default);
                        if !d.set_from_window(rest, i) {
                            *d = self.owned_string(start, &rest[..i]);
                        }
                        return Ok(());
                    }
                }
                *dst = self.nstring_escaped()?;
                Ok(())
            }
            Some(b'N' | b'n') if self.nil() => {
                *dst = None;
                Ok(())
            }
            _ if self.is_literal_start() => {
                let data = self.literal()?;
                *dst = Some(self.owned_string(self.pos - data.len(), data));
                Ok(())
            }
            _ => Err(self.err("a string")),
        }
    }

    /// [`Cur::nstring_into`] for a field where NIL is not allowed: NIL is read as empty
    /// (quirk: NIL for body encoding, media type and the like).
    #[inline(always)]
    fn string_or_nil_into(&mut self, dst: &mut ByteString) -> PResult<()> {
        if self.peek() == Some(b'"') {
            let start = self.pos + 1;
            let rest = self.buf.get(start..).unwrap_or_default();
            if let Some(i) = find_quote_end(rest) {
                if rest.get(i) == Some(&b'"') {
                    self.pos = start + i + 1;
                    if !dst.set_from_window(rest, i) {
                        *dst = self.owned_string(start, &rest[..i]);
                    }
                    return Ok(());
                }
            }
        }
        let mut v = None;
        self.nstring_into(&mut v)?;
        *dst = v.unwrap_or_default();
        Ok(())
    }

    #[inline(always)]
    fn nstring_owned(&mut self) -> PResult<Option<ByteString>> {
        let mut v = None;
        self.nstring_into(&mut v)?;
        Ok(v)
    }

    /// A quoted string with escapes (or without its closing quote: an error).
    #[cold]
    #[inline(never)]
    fn nstring_escaped(&mut self) -> PResult<Option<ByteString>> {
        let start = self.pos + 1;
        Ok(Some(match self.quoted()? {
            Cow::Borrowed(b) => self.owned_string(start, b),
            Cow::Owned(v) => ByteString::from(v),
        }))
    }

    /// `b`, found at `start` in the input, as a [`ByteString`]: inline if short, else a
    /// range of this response's shared copy (made now if this is the first long string and
    /// the rest of the response is small enough), else its own allocation.
    #[inline(never)]
    fn owned_string(&mut self, start: usize, b: &'a [u8]) -> ByteString {
        if b.len() > crate::response::INLINE {
            let rest = self.buf.len().saturating_sub(start);
            if self.shared.is_none() && rest <= SHARED_RESPONSE_MAX {
                if let Some(tail) = self.buf.get(start..) {
                    self.shared = Some(Arc::from(tail));
                    self.shared_base = start;
                }
            }
            if let Some(buf) = &self.shared {
                let shared = start
                    .checked_sub(self.shared_base)
                    .and_then(|at| ByteString::shared(buf, at, b.len()));
                if let Some(s) = shared {
                    return s;
                }
            }
        }
        ByteString::new(b)
    }

    /// A string where NIL is not allowed, NIL read as empty (quirk: NIL for body encoding,
    /// media type and the like).
    #[inline(always)]
    fn string_or_nil(&mut self) -> PResult<ByteString> {
        Ok(self.nstring_owned()?.unwrap_or_default())
    }

    /// `astring`: an atom of ASTRING-CHARs, a quoted string or a literal (seed V0017).
    fn astring(&mut self) -> PResult<Cow<'a, [u8]>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{' | b'~') if self.is_literal_start() => Ok(Cow::Borrowed(self.literal()?)),
            _ => {
                let a = self.take_while(|b| is_astring_char(b) || b >= 0x80);
                if a.is_empty() {
                    Err(self.err("an atom or string"))
                } else {
                    Ok(Cow::Borrowed(a))
                }
            }
        }
    }

    /// Skips one value of any shape (atom, number, string, NIL, nested list) and returns its
    /// wire bytes; used to keep unknown items raw.
    fn raw_value(&mut self) -> PResult<&'a [u8]> {
        let s = self.pos;
        self.skip_value()?;
        Ok(&self.buf[s..self.pos])
    }

    fn skip_value(&mut self) -> PResult<()> {
        match self.peek() {
            Some(b'(') => {
                self.enter()?;
                self.pos += 1;
                self.each_until_close(Self::skip_value)?;
                self.leave();
                Ok(())
            }
            Some(b'"') => self.quoted().map(|_| ()),
            Some(b'{' | b'~') if self.is_literal_start() => self.literal().map(|_| ()),
            _ => {
                let mut depth = 0u32;
                let s = self.pos;
                // Atom-like token; `[...]` may contain spaces (e.g. a section spec).
                while let Some(b) = self.peek() {
                    match b {
                        b'[' => depth += 1,
                        b']' if depth > 0 => depth -= 1,
                        b' ' | b'\t' | b'(' | b')' | b'\r' | b'\n' if depth == 0 => break,
                        b'\r' | b'\n' => break,
                        _ => {}
                    }
                    self.pos += 1;
                }
                if self.pos == s {
                    Err(self.err("a value"))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Rest of the line, without trailing blanks and the line end.
    fn rest_of_line(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.pos..];
        let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let mut line = &rest[..end];
        self.pos += end;
        while let Some((&last, init)) = line.split_last() {
            if matches!(last, b'\r' | b' ' | b'\t') {
                line = init;
            } else {
                break;
            }
        }
        line
    }

    /// A token of sequence-set characters.
    fn set_token(&mut self) -> PResult<&'a [u8]> {
        self.take_some(
            |b| b.is_ascii_digit() || matches!(b, b':' | b',' | b'*'),
            "a sequence set",
        )
    }

    fn seq_set(&mut self) -> PResult<SeqSet> {
        let s = self.pos;
        let t = self.set_token()?;
        SeqSet::parse(t).map_err(|_| PErr::new(s, "a valid sequence set", ParseErrorKind::Syntax))
    }

    fn uid_set(&mut self) -> PResult<UidSet> {
        let s = self.pos;
        let t = self.set_token()?;
        UidSet::parse(t).map_err(|_| PErr::new(s, "a valid UID set", ParseErrorKind::Syntax))
    }

    /// UID ranges in wire order (for COPYUID), no `*`.
    fn uid_ranges(&mut self) -> PResult<Vec<(u32, u32)>> {
        let mut out = Vec::new();
        loop {
            let a = self.nz_number()?.get();
            let b = if self.eat(b':') {
                self.nz_number()?.get()
            } else {
                a
            };
            out.push((a, b));
            if !self.eat(b',') {
                return Ok(out);
            }
        }
    }
}

/// Offset of the first `"`, `\\` or LF: eight bytes at a time with the classic SWAR
/// zero-byte test, since quoted strings are mostly too short for a SIMD search to pay off.
#[inline]
fn find_quote_end(s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    #[inline(always)]
    fn zero_bytes(x: u64) -> u64 {
        // High bit set in each byte of `x` that is zero (exact for the lowest such byte,
        // which is the only one used).
        x.wrapping_sub(LO) & !x & HI
    }
    let chunks = s.chunks_exact(8);
    let tail = chunks.remainder();
    for (k, c) in chunks.enumerate() {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        let v = u64::from_le_bytes(a);
        let m = zero_bytes(v ^ (LO * u64::from(b'"')))
            | zero_bytes(v ^ (LO * u64::from(b'\\')))
            | zero_bytes(v ^ (LO * u64::from(b'\n')));
        if m != 0 {
            return Some(k * 8 + (m.trailing_zeros() / 8) as usize);
        }
    }
    let base = s.len() - tail.len();
    tail.iter()
        .position(|&b| matches!(b, b'"' | b'\\' | b'\n'))
        .map(|p| base + p)
}

/// Case-insensitive keyword comparison.
#[inline]
fn kw(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

// ---------------------------------------------------------------------------------------
// Responses.

fn parse_complete(input: &[u8], greeting: bool) -> PResult<Response> {
    let mut c = Cur::new(input);
    let r = response(&mut c, greeting)?;
    Ok(r)
}

fn response(c: &mut Cur<'_>, greeting: bool) -> PResult<Response> {
    match c.peek() {
        Some(b'+') => {
            c.pos += 1;
            let (code, text) = resp_text(c)?;
            c.line_end()?;
            Ok(Response::Continue(Continue { code, text }))
        }
        Some(b'*') => {
            c.pos += 1;
            c.sp()?;
            untagged(c, greeting)
        }
        _ => {
            let t = c.take_while(|b| is_astring_char(b) && b != b'+');
            let tag = std::str::from_utf8(t)
                .ok()
                .and_then(|t| Tag::new(t).ok())
                .ok_or_else(|| c.err("a tag, '*' or '+'"))?;
            c.sp()?;
            let name = c.name()?;
            let kind = status_kind(name)
                .filter(|k| matches!(k, StatusKind::Ok | StatusKind::No | StatusKind::Bad))
                .ok_or_else(|| c.err("OK, NO or BAD"))?;
            let (code, text) = resp_text(c)?;
            c.line_end()?;
            Ok(Response::Status(StatusResponse {
                tag: Some(tag),
                kind,
                code,
                text,
            }))
        }
    }
}

fn status_kind(name: &[u8]) -> Option<StatusKind> {
    Some(match name.len() {
        2 if kw(name, b"OK") => StatusKind::Ok,
        2 if kw(name, b"NO") => StatusKind::No,
        3 if kw(name, b"BAD") => StatusKind::Bad,
        3 if kw(name, b"BYE") => StatusKind::Bye,
        7 if kw(name, b"PREAUTH") => StatusKind::PreAuth,
        _ => return None,
    })
}

/// `resp-text` after a status word or `+`: optional blanks, optional `[code]`, optional
/// text. A missing text is accepted (seed N4).
fn resp_text(c: &mut Cur<'_>) -> PResult<(Option<Code>, String)> {
    c.ws();
    let code = if c.peek() == Some(b'[') {
        c.pos += 1;
        Some(resp_code(c)?)
    } else {
        None
    };
    c.ws();
    let text = c.rest_of_line();
    Ok((code, lossy(text)))
}

fn resp_code(c: &mut Cur<'_>) -> PResult<Code> {
    let name = c.name()?;
    let after_name = c.pos;
    // The raw extent: up to the first `]` on the line (codes never nest brackets).
    let rest = &c.buf[after_name..];
    let line_end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
    let close = memchr::memchr(b']', &rest[..line_end])
        .map(|i| after_name + i)
        .ok_or_else(|| c.err("']' closing a response code"))?;
    let mut sub = Cur::new(&c.buf[..close]);
    sub.pos = after_name;
    let code = match known_code(&mut sub, name) {
        Ok(code) if sub.at_end() => code,
        // A known code with arguments we cannot read is kept raw, never fatal (V0062).
        _ => {
            let raw = trim_ws_start(&c.buf[after_name..close]);
            Code::Other {
                name: upper_string(name),
                raw: ByteString::from(raw),
            }
        }
    };
    c.pos = close + 1;
    Ok(code)
}

/// The arguments of a response code this parser knows (RFC 3501 7.1 `resp-text-code`, and
/// RFC 4315, 7162, 2221's). Long by design: one short arm per code, so the list of codes
/// reads in one place against the grammar.
fn known_code(c: &mut Cur<'_>, name: &[u8]) -> PResult<Code> {
    let mut up = [0u8; 24];
    let name = upper_into(name, &mut up);
    let code = match name {
        b"ALERT" => Code::Alert,
        b"PARSE" => Code::Parse,
        b"READ-ONLY" => Code::ReadOnly,
        b"READ-WRITE" => Code::ReadWrite,
        b"TRYCREATE" => Code::TryCreate,
        b"UIDNOTSTICKY" => Code::UidNotSticky,
        b"NOMODSEQ" => Code::NoModSeq,
        b"CLOSED" => Code::Closed,
        b"BADCHARSET" => {
            c.ws();
            let v = if c.eat(b'(') {
                c.list_until_close(|c| Ok(ByteString::from(c.astring()?)))?
            } else {
                Vec::new()
            };
            Code::BadCharset(v)
        }
        b"CAPABILITY" => Code::Capability(capabilities(c)?),
        b"PERMANENTFLAGS" => {
            c.sp()?;
            Code::PermanentFlags(flag_list(c)?)
        }
        b"UIDNEXT" => {
            c.sp()?;
            Code::UidNext(c.number()?)
        }
        b"UIDVALIDITY" => {
            c.sp()?;
            Code::UidValidity(c.nz_number()?)
        }
        b"UNSEEN" => {
            c.sp()?;
            Code::Unseen(c.number()?)
        }
        b"APPENDUID" => {
            c.sp()?;
            let uid_validity = c.nz_number()?;
            c.sp()?;
            Code::AppendUid {
                uid_validity,
                uids: c.uid_set()?,
            }
        }
        b"COPYUID" => {
            c.sp()?;
            let uid_validity = c.nz_number()?;
            c.sp()?;
            let source = c.uid_ranges()?;
            c.sp()?;
            let dest = c.uid_ranges()?;
            Code::CopyUid(CopyUid {
                uid_validity,
                source,
                dest,
            })
        }
        b"HIGHESTMODSEQ" => {
            c.sp()?;
            Code::HighestModSeq(c.number64()?)
        }
        b"MODIFIED" => {
            c.sp()?;
            Code::Modified(c.seq_set()?)
        }
        b"REFERRAL" => {
            c.sp()?;
            let url = c.take_while(|_| true);
            Code::Referral(lossy(url))
        }
        _ => return Err(c.err("a known response code")),
    };
    c.ws();
    Ok(code)
}

/// Upper-cases a short name into `buf`; longer names come back as an empty slice, which
/// matches no keyword.
#[inline]
fn upper_into<'b>(name: &'b [u8], buf: &'b mut [u8; 24]) -> &'b [u8] {
    if name.len() > buf.len() {
        return &[];
    }
    // Servers send names in upper case; no copy is needed then.
    if !name.iter().any(u8::is_ascii_lowercase) {
        return name;
    }
    for (d, s) in buf.iter_mut().zip(name) {
        *d = s.to_ascii_uppercase();
    }
    &buf[..name.len()]
}

fn capabilities(c: &mut Cur<'_>) -> PResult<Vec<String>> {
    let mut caps = Vec::new();
    loop {
        c.ws();
        match c.peek() {
            Some(b) if is_atom_char(b) => caps.push(upper_string(c.atom()?)),
            _ => return Ok(caps),
        }
    }
}

/// One untagged response after `* ` (RFC 3501 7, `response-data`), or the greeting.
/// Long by design: one arm per response name, each a call to that response's parser, so the
/// list of responses reads in one place against the grammar.
fn untagged(c: &mut Cur<'_>, greeting: bool) -> PResult<Response> {
    if c.peek().is_some_and(|b| b.is_ascii_digit()) {
        let n = c.number()?;
        c.sp()?;
        let name = c.name()?;
        let mut up = [0u8; 24];
        let r = match upper_into(name, &mut up) {
            b"FETCH" => {
                // Quirk: some servers omit the space before the list (`1 FETCH(`).
                c.ws();
                c.expect(b'(', "'(' opening FETCH data")?;
                match fetch_rest(c, n, Vec::with_capacity(FETCH_ITEMS), false)? {
                    FetchOutcome::Done(f) => return Ok(Response::Fetch(f)),
                    FetchOutcome::Stream { .. } => return Err(c.err("a complete FETCH")),
                }
            }
            b"EXISTS" => Response::Exists(n),
            b"RECENT" => Response::Recent(n),
            b"EXPUNGE" => Response::Expunge(n),
            _ => {
                c.ws();
                let raw = c.rest_of_line();
                return finish(
                    c,
                    Response::Other(OtherResponse {
                        number: Some(n),
                        name: upper_string(name),
                        raw: ByteString::from(raw),
                    }),
                );
            }
        };
        return finish(c, r);
    }
    let name = c.name()?;
    if let Some(kind) = status_kind(name) {
        let (code, text) = resp_text(c)?;
        c.line_end()?;
        if greeting {
            let kind = match kind {
                StatusKind::Ok => Some(GreetingKind::Ok),
                StatusKind::PreAuth => Some(GreetingKind::PreAuth),
                StatusKind::Bye => Some(GreetingKind::Bye),
                _ => None,
            };
            if let Some(kind) = kind {
                return Ok(Response::Greeting(Greeting { kind, code, text }));
            }
        }
        return Ok(Response::Status(StatusResponse {
            tag: None,
            kind,
            code,
            text,
        }));
    }
    let mut up = [0u8; 24];
    let r = match upper_into(name, &mut up) {
        b"CAPABILITY" => Response::Capability(capabilities(c)?),
        b"LIST" => Response::List(mailbox_list(c)?),
        b"LSUB" => Response::Lsub(mailbox_list(c)?),
        b"STATUS" => Response::MailboxStatus(mailbox_status(c)?),
        b"SEARCH" => Response::Search(search(c)?),
        b"ESEARCH" => Response::Esearch(esearch(c)?),
        b"FLAGS" => {
            c.ws();
            Response::Flags(flag_list(c)?)
        }
        b"ENABLED" => Response::Enabled(capabilities(c)?),
        b"ID" => Response::Id(id_params(c)?),
        b"NAMESPACE" => Response::Namespace(namespaces(c)?),
        b"VANISHED" => Response::Vanished(vanished(c)?),
        _ => {
            c.ws();
            let raw = c.rest_of_line();
            Response::Other(OtherResponse {
                number: None,
                name: upper_string(name),
                raw: ByteString::from(raw),
            })
        }
    };
    finish(c, r)
}

fn finish(c: &mut Cur<'_>, r: Response) -> PResult<Response> {
    c.line_end()?;
    Ok(r)
}

/// `flag-list`: `(` flags `)`, empty allowed. Unknown `\Word`s become
/// [`Flag::Extension`] (seed N6); system flags are matched case-insensitively.
fn flag_list(c: &mut Cur<'_>) -> PResult<Vec<Flag>> {
    c.expect(b'(', "'(' opening a flag list")?;
    c.ws();
    if c.eat(b')') {
        return Ok(Vec::new());
    }
    // Four is what the first push would allocate anyway; asking directly skips the
    // growth path.
    let mut flags = Vec::with_capacity(4);
    c.each_until_close(|c| {
        flags.push(flag(c)?);
        Ok(())
    })?;
    Ok(flags)
}

fn flag(c: &mut Cur<'_>) -> PResult<Flag> {
    if c.eat(b'\\') {
        if c.eat(b'*') {
            return Ok(Flag::MayCreate);
        }
        let a = c.atom().map_err(|_| c.err("a flag name after '\\'"))?;
        let mut up = [0u8; 24];
        Ok(match upper_into(a, &mut up) {
            b"SEEN" => Flag::Seen,
            b"ANSWERED" => Flag::Answered,
            b"FLAGGED" => Flag::Flagged,
            b"DELETED" => Flag::Deleted,
            b"DRAFT" => Flag::Draft,
            b"RECENT" => Flag::Recent,
            _ => Flag::Extension(lossy(a)),
        })
    } else {
        let a = c.atom().map_err(|_| c.err("a flag"))?;
        Ok(Flag::Keyword(lossy(a)))
    }
}

fn delimiter(c: &mut Cur<'_>) -> PResult<Option<char>> {
    if c.nil() {
        return Ok(None);
    }
    let s = c.pos;
    let q = c.quoted()?;
    let text = String::from_utf8_lossy(&q);
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(ch), None) => Ok(Some(ch)),
        _ => Err(PErr::new(
            s,
            "a one-character hierarchy delimiter",
            ParseErrorKind::Syntax,
        )),
    }
}

fn mailbox_list(c: &mut Cur<'_>) -> PResult<MailboxList> {
    c.sp()?;
    c.expect(b'(', "'(' opening mailbox attributes")?;
    let attributes = c.list_until_close(|c| {
        let s = c.pos;
        c.eat(b'\\');
        c.atom()?;
        Ok(ListAttribute::from_wire(&c.buf[s..c.pos]))
    })?;
    c.ws();
    let delimiter = delimiter(c)?;
    c.sp()?;
    let mailbox = Mailbox::from_wire(c.astring()?.into_owned());
    c.ws();
    let extended = if c.eat(b'(') {
        c.list_until_close(list_extended)?
    } else {
        Vec::new()
    };
    Ok(MailboxList {
        attributes,
        delimiter,
        mailbox,
        extended,
    })
}

/// One `mbox-list-extended-item` (RFC 5258 / RFC 9051): its tag, a space and its value.
fn list_extended(c: &mut Cur<'_>) -> PResult<ListExtended> {
    let label = c.astring()?;
    c.sp()?;
    Ok(if kw(&label, b"CHILDINFO") {
        c.expect(b'(', "'(' opening CHILDINFO")?;
        ListExtended::ChildInfo(c.list_until_close(|c| Ok(ByteString::from(c.astring()?)))?)
    } else if kw(&label, b"OLDNAME") {
        c.expect(b'(', "'(' opening OLDNAME")?;
        c.ws();
        let m = Mailbox::from_wire(c.astring()?.into_owned());
        c.ws();
        c.expect(b')', "')' closing OLDNAME")?;
        ListExtended::OldName(m)
    } else {
        ListExtended::Other {
            name: upper_string(&label),
            raw: ByteString::from(c.raw_value()?),
        }
    })
}

fn mailbox_status(c: &mut Cur<'_>) -> PResult<MailboxStatus> {
    c.sp()?;
    let mailbox = Mailbox::from_wire(c.astring()?.into_owned());
    c.ws();
    c.expect(b'(', "'(' opening STATUS items")?;
    let items = c.list_until_close(|c| {
        let name = c.atom()?;
        c.sp()?;
        let mut up = [0u8; 24];
        Ok(match upper_into(name, &mut up) {
            b"MESSAGES" => StatusItem::Messages(c.number()?),
            b"RECENT" => StatusItem::Recent(c.number()?),
            b"UIDNEXT" => StatusItem::UidNext(c.number()?),
            b"UIDVALIDITY" => StatusItem::UidValidity(c.nz_number()?),
            b"UNSEEN" => StatusItem::Unseen(c.number()?),
            b"DELETED" => StatusItem::Deleted(c.number()?),
            b"HIGHESTMODSEQ" => StatusItem::HighestModSeq(c.number64()?),
            b"SIZE" => StatusItem::Size(c.number64()?),
            _ => StatusItem::Other {
                name: upper_string(name),
                raw: ByteString::from(c.raw_value()?),
            },
        })
    })?;
    Ok(MailboxStatus { mailbox, items })
}

fn search(c: &mut Cur<'_>) -> PResult<Search> {
    let mut s = Search::default();
    loop {
        c.ws();
        match c.peek() {
            Some(b'0'..=b'9') => s.ids.push(c.number()?),
            Some(b'(') => {
                c.pos += 1;
                c.ws();
                let n = c.atom()?;
                if !kw(n, b"MODSEQ") {
                    return Err(c.err("MODSEQ"));
                }
                c.sp()?;
                s.modseq = Some(c.number64()?);
                c.ws();
                c.expect(b')', "')' closing MODSEQ")?;
            }
            _ => return Ok(s),
        }
    }
}

fn esearch(c: &mut Cur<'_>) -> PResult<Esearch> {
    let mut e = Esearch {
        tag: None,
        uid: false,
        items: Vec::new(),
    };
    c.ws();
    if c.eat(b'(') {
        // search-correlator: `(TAG "a1")`, possibly with RFC 7377 MAILBOX/UIDVALIDITY.
        c.each_until_close(|c| {
            let key = c.atom()?;
            c.sp()?;
            let val = c.astring()?;
            if kw(key, b"TAG") {
                e.tag = std::str::from_utf8(&val)
                    .ok()
                    .and_then(|t| Tag::new(t).ok());
            }
            Ok(())
        })?;
    }
    loop {
        c.ws();
        if c.at_line_end() {
            return Ok(e);
        }
        let name = c.atom()?;
        let mut up = [0u8; 24];
        let upn = upper_into(name, &mut up);
        if upn == b"UID" {
            e.uid = true;
            continue;
        }
        c.sp()?;
        let item = match upn {
            b"MIN" => EsearchItem::Min(c.number()?),
            b"MAX" => EsearchItem::Max(c.number()?),
            b"COUNT" => EsearchItem::Count(c.number()?),
            b"ALL" => EsearchItem::All(c.seq_set()?),
            b"MODSEQ" => EsearchItem::ModSeq(c.number64()?),
            _ => EsearchItem::Other {
                name: upper_string(name),
                raw: ByteString::from(c.raw_value()?),
            },
        };
        e.items.push(item);
    }
}

fn vanished(c: &mut Cur<'_>) -> PResult<Vanished> {
    c.sp()?;
    let mut earlier = false;
    if c.eat(b'(') {
        c.ws();
        let a = c.atom()?;
        if !kw(a, b"EARLIER") {
            return Err(c.err("EARLIER"));
        }
        c.ws();
        c.expect(b')', "')' after EARLIER")?;
        earlier = true;
        c.sp()?;
    }
    Ok(Vanished {
        earlier,
        uids: c.uid_set()?,
    })
}

fn id_params(c: &mut Cur<'_>) -> PResult<Vec<(ByteString, Option<ByteString>)>> {
    c.ws();
    if c.nil() {
        return Ok(Vec::new());
    }
    c.expect(b'(', "'(' or NIL")?;
    c.list_until_close(|c| {
        let k = ByteString::from(c.string()?);
        c.sp()?;
        Ok((k, c.nstring_owned()?))
    })
}

fn namespaces(c: &mut Cur<'_>) -> PResult<Namespaces> {
    let mut ns = Namespaces::default();
    for slot in [&mut ns.personal, &mut ns.other, &mut ns.shared] {
        c.sp()?;
        if c.nil() {
            continue;
        }
        c.expect(b'(', "'(' or NIL")?;
        c.each_until_close(|c| {
            c.expect(b'(', "'(' opening a namespace")?;
            c.ws();
            let prefix = ByteString::from(c.string()?);
            c.sp()?;
            let delimiter = delimiter(c)?;
            let extensions = c.list_until_close(|c| {
                let name = ByteString::from(c.string()?);
                c.sp()?;
                c.expect(b'(', "'(' opening namespace extension values")?;
                let vals = c.list_until_close(|c| Ok(ByteString::from(c.string()?)))?;
                Ok((name, vals))
            })?;
            slot.push(NamespaceDesc {
                prefix,
                delimiter,
                extensions,
            });
            Ok(())
        })?;
    }
    Ok(ns)
}

// ---------------------------------------------------------------------------------------
// FETCH.

/// Room for the items of a typical FETCH (a header listing sends UID, FLAGS, INTERNALDATE,
/// RFC822.SIZE, ENVELOPE and BODYSTRUCTURE): growing the vector would cost a reallocation
/// and a copy of every item already parsed.
const FETCH_ITEMS: usize = 8;

enum FetchOutcome {
    Done(Fetch),
    /// The input ended where a body item's value begins (prefix mode).
    Stream {
        seq: u32,
        items: Vec<FetchItem>,
        item: StreamedItem,
    },
}

/// `* n FETCH (` … for a response that continues with a large literal.
fn fetch_prefix(c: &mut Cur<'_>) -> PResult<FetchOutcome> {
    c.expect(b'*', "'*'")?;
    c.sp()?;
    let n = c.number()?;
    c.sp()?;
    let name = c.name()?;
    if !kw(name, b"FETCH") {
        return Err(c.err("FETCH"));
    }
    c.ws();
    c.expect(b'(', "'(' opening FETCH data")?;
    fetch_rest(c, n, Vec::with_capacity(FETCH_ITEMS), true)
}

/// FETCH items after `(` (or after a streamed literal) up to `)` and the line end. In
/// `prefix` mode the input stops just before a large literal, which must be the value of a
/// body item.
fn fetch_rest(
    c: &mut Cur<'_>,
    seq: u32,
    mut items: Vec<FetchItem>,
    prefix: bool,
) -> PResult<FetchOutcome> {
    loop {
        c.ws();
        if c.eat(b')') {
            c.line_end()?;
            return Ok(FetchOutcome::Done(Fetch { seq, items }));
        }
        if c.at_end() {
            return Err(c.err("a FETCH item or ')'"));
        }
        if let Some(item) = fetch_item(c, prefix, &mut items)? {
            return Ok(FetchOutcome::Stream { seq, items, item });
        }
    }
}

/// The value of a body item: NIL, a quoted string or a literal; in prefix mode the end of
/// input means "a large literal follows".
fn body_value(c: &mut Cur<'_>, prefix: bool) -> PResult<Option<BodyValue>> {
    c.ws();
    if prefix && c.at_end() {
        return Ok(None);
    }
    if c.nil() {
        return Ok(Some(BodyValue::Nil));
    }
    Ok(Some(BodyValue::Inline(ByteString::from(c.string()?))))
}

fn origin(c: &mut Cur<'_>) -> PResult<Option<u32>> {
    if c.eat(b'<') {
        let n = c.number()?;
        c.expect(b'>', "'>' closing a partial origin")?;
        Ok(Some(n))
    } else {
        Ok(None)
    }
}

/// One FETCH item, pushed onto `items` (directly rather than returned: an item is 88
/// bytes, and passing it back through a `Result` copied it twice, the first copy reading
/// bytes just written, a store-forwarding stall). Returns the body item whose value is a
/// literal to stream, in prefix mode, instead. Long for the same reason: one arm per
/// `msg-att` item of RFC 3501 7.4.2, and the common items build in place; only the rare
/// ones (`RFC822*`, vendor items) are parsed by functions of their own.
fn fetch_item(
    c: &mut Cur<'_>,
    prefix: bool,
    items: &mut Vec<FetchItem>,
) -> PResult<Option<StreamedItem>> {
    // The name is scanned and checked for lower case in one pass: item names are most of
    // the bytes that are not strings in a FETCH, and they nearly always come upper-cased.
    let s = c.pos;
    let mut lower = false;
    let name = c.take_while(|b| {
        lower |= b.is_ascii_lowercase();
        is_name_char(b)
    });
    if name.is_empty() {
        return Err(PErr::new(s, "a name", ParseErrorKind::Syntax));
    }
    let mut up = [0u8; 24];
    let key = if lower {
        upper_into(name, &mut up)
    } else {
        name
    };
    let item = match key {
        b"UID" => {
            c.sp()?;
            FetchItem::Uid(c.number()?)
        }
        b"FLAGS" => {
            c.ws();
            FetchItem::Flags(flag_list(c)?)
        }
        b"MODSEQ" => {
            c.ws();
            c.expect(b'(', "'(' opening MODSEQ")?;
            c.ws();
            let m = c.number64()?;
            c.ws();
            c.expect(b')', "')' closing MODSEQ")?;
            FetchItem::ModSeq(m)
        }
        b"RFC822.SIZE" => {
            c.sp()?;
            FetchItem::Rfc822Size(c.number64()?)
        }
        b"INTERNALDATE" => {
            c.sp()?;
            let s = c.pos;
            let q = c.string()?;
            let d = date_time(&q).ok_or_else(|| {
                PErr::new(
                    s,
                    "a date-time like \"17-Jul-1996 02:44:25 -0700\"",
                    ParseErrorKind::Syntax,
                )
            })?;
            FetchItem::InternalDate(d)
        }
        b"ENVELOPE" => {
            c.ws();
            FetchItem::Envelope(envelope(c)?)
        }
        b"BODYSTRUCTURE" => {
            c.ws();
            FetchItem::BodyStructure(body(c)?)
        }
        b"BODY" if c.peek() != Some(b'[') => {
            c.ws();
            FetchItem::Body(body(c)?)
        }
        b"BODY" => {
            let section = section(c)?;
            let origin = origin(c)?;
            return body_item(c, StreamedItem::Body { section, origin }, prefix, items);
        }
        b"BINARY" => {
            let section = binary_section(c)?;
            let origin = origin(c)?;
            return body_item(c, StreamedItem::Binary { section, origin }, prefix, items);
        }
        b"BINARY.SIZE" => {
            let section = binary_section(c)?;
            c.sp()?;
            FetchItem::BinarySize {
                section,
                size: c.number64()?,
            }
        }
        b"RFC822" | b"RFC822.HEADER" | b"RFC822.TEXT" => {
            // RFC 3501 7.4.2; the three names differ in length.
            let which = match name.len() {
                6 => StreamedItem::Rfc822,
                13 => StreamedItem::Rfc822Header,
                _ => StreamedItem::Rfc822Text,
            };
            return body_item(c, which, prefix, items);
        }
        // Vendor or unknown item (e.g. X-GM-LABELS): keep the value raw (seed N3).
        _ => other_item(c, name, prefix)?,
    };
    items.push(item);
    Ok(None)
}

/// The value of a body item whose name (and section) `which` describes: the whole item is
/// pushed to `items`, or in prefix mode `which` comes back when the value is a literal
/// still to be streamed (as [`fetch_item`] returns it).
fn body_item(
    c: &mut Cur<'_>,
    which: StreamedItem,
    prefix: bool,
    items: &mut Vec<FetchItem>,
) -> PResult<Option<StreamedItem>> {
    match body_value(c, prefix)? {
        Some(data) => {
            items.push(which.into_item(data));
            Ok(None)
        }
        None => Ok(Some(which)),
    }
}

/// An item this parser does not know (a vendor's, such as `X-GM-LABELS`), with its section
/// if it has one: the name upper-cased and the value kept raw (seed N3).
fn other_item(c: &mut Cur<'_>, name: &[u8], prefix: bool) -> PResult<FetchItem> {
    let mut full_name = lossy(name);
    if c.peek() == Some(b'[') {
        let s = c.pos;
        let close =
            memchr::memchr(b']', &c.buf[s..]).ok_or_else(|| c.err("']' closing a section"))?;
        c.pos = s + close + 1;
        full_name.push_str(&String::from_utf8_lossy(&c.buf[s..c.pos]));
    }
    full_name.make_ascii_uppercase();
    c.ws();
    if prefix && c.at_end() {
        return Err(c.err("a value within the inline cap"));
    }
    Ok(FetchItem::Other {
        name: full_name,
        raw: ByteString::from(c.raw_value()?),
    })
}

/// `section` of RFC 3501 (`[` … `]`), after the item name.
fn section(c: &mut Cur<'_>) -> PResult<Section> {
    c.expect(b'[', "'[' opening a section")?;
    let mut sec = Section {
        part: part_numbers(c)?,
        ..Section::default()
    };
    if c.eat(b']') {
        return Ok(sec);
    }
    let word = c.take_while(|b| b.is_ascii_alphanumeric() || b == b'.');
    let mut up = [0u8; 24];
    sec.spec = match upper_into(word, &mut up) {
        b"HEADER" => SectionSpec::Header,
        b"TEXT" => SectionSpec::Text,
        b"MIME" => SectionSpec::Mime,
        b"HEADER.FIELDS" | b"HEADER.FIELDS.NOT" => {
            let not = word.len() > 13;
            c.ws();
            c.expect(b'(', "'(' opening a header list")?;
            let v = c.list_until_close(|c| Ok(ByteString::from(c.astring_header()?)))?;
            if not {
                SectionSpec::HeaderFieldsNot(v)
            } else {
                SectionSpec::HeaderFields(v)
            }
        }
        _ => return Err(c.err("HEADER, TEXT, MIME or HEADER.FIELDS")),
    };
    c.ws();
    c.expect(b']', "']' closing a section")?;
    Ok(sec)
}

impl<'a> Cur<'a> {
    /// A header field name in a section: an astring, but `]` ends it even in atom form.
    fn astring_header(&mut self) -> PResult<Cow<'a, [u8]>> {
        match self.peek() {
            Some(b'"' | b'{' | b'~') => self.astring(),
            _ => Ok(Cow::Borrowed(self.atom()?)),
        }
    }
}

fn binary_section(c: &mut Cur<'_>) -> PResult<Vec<u32>> {
    c.expect(b'[', "'[' opening a binary section")?;
    let v = part_numbers(c)?;
    c.expect(b']', "']' closing a binary section")?;
    Ok(v)
}

/// The part path at the start of a section (`1.2.3`, RFC 3501 `section-part`), dot-separated;
/// empty when the section does not start with a digit. A trailing dot before a section text
/// (`1.HEADER`) is consumed.
fn part_numbers(c: &mut Cur<'_>) -> PResult<Vec<u32>> {
    let mut v = Vec::new();
    while c.peek().is_some_and(|b| b.is_ascii_digit()) {
        v.push(c.number()?);
        if !c.eat(b'.') {
            break;
        }
    }
    Ok(v)
}

/// `date-time` content: `dd-Mon-yyyy hh:mm:ss +zzzz`; the day may be one digit or
/// space-padded (RFC 3501 `date-day-fixed`, and servers that drop the pad).
pub fn date_time(s: &[u8]) -> Option<DateTime> {
    if let Some(d) = date_time_fixed(s) {
        return Some(d);
    }
    let s = trim_ws_start(s);
    let dash = s.iter().position(|&b| b == b'-')?;
    let day = small_num(s.get(..dash)?)?;
    let rest = s.get(dash + 1..)?;
    let month = DateTime::month_from_name(rest.get(..3)?)?;
    if rest.get(3) != Some(&b'-') {
        return None;
    }
    let year = small_num(rest.get(4..8)?)?;
    let rest = trim_ws_start(rest.get(8..)?);
    let hour = small_num(rest.get(0..2)?)?;
    let minute = small_num(rest.get(3..5)?)?;
    let second = small_num(rest.get(6..8)?)?;
    if rest.get(2) != Some(&b':') || rest.get(5) != Some(&b':') {
        return None;
    }
    let zone = trim_ws_start(rest.get(8..)?);
    let sign: i16 = match zone.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let zh = small_num(zone.get(1..3)?)?;
    let zm = small_num(zone.get(3..5)?)?;
    if !trim_ws_start(zone.get(5..)?).is_empty() {
        return None;
    }
    checked_date_time(year, month, [day, hour, minute, second], (sign, zh, zm))
}

/// The exact RFC 3501 form (`date-day-fixed`, 26 bytes, as nearly every server sends it)
/// read by position, without the general parser's scanning; `None` for anything else.
#[inline]
fn date_time_fixed(s: &[u8]) -> Option<DateTime> {
    let s: &[u8; 26] = s.try_into().ok()?;
    let d = |i: usize| -> Option<u32> {
        let b = s[i].wrapping_sub(b'0');
        (b < 10).then_some(u32::from(b))
    };
    let d2 = |i: usize| Some(d(i)? * 10 + d(i + 1)?);
    if s[2] != b'-' || s[6] != b'-' || s[11] != b' ' || s[14] != b':' || s[17] != b':' {
        return None;
    }
    if s[20] != b' ' {
        return None;
    }
    let day = if s[0] == b' ' { d(1)? } else { d2(0)? };
    let month = DateTime::month_from_name(&s[3..6])?;
    let year = d2(7)? * 100 + d2(9)?;
    let (hour, minute, second) = (d2(12)?, d2(15)?, d2(18)?);
    let sign: i16 = match s[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (zh, zm) = (d2(22)?, d2(24)?);
    checked_date_time(year, month, [day, hour, minute, second], (sign, zh, zm))
}

/// The fields read by [`date_time`] or [`date_time_fixed`] checked for range (second 60 is
/// a leap second): `[day, hour, minute, second]`, and the zone as (sign, hours, minutes).
#[inline]
fn checked_date_time(
    year: u32,
    month: u8,
    [day, hour, minute, second]: [u32; 4],
    (sign, zh, zm): (i16, u32, u32),
) -> Option<DateTime> {
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 || zm > 59 {
        return None;
    }
    Some(DateTime {
        year: u16::try_from(year).ok()?,
        month,
        day: u8::try_from(day).ok()?,
        hour: u8::try_from(hour).ok()?,
        minute: u8::try_from(minute).ok()?,
        second: u8::try_from(second).ok()?,
        offset_minutes: sign * i16::try_from(zh * 60 + zm).ok()?,
    })
}

fn small_num(s: &[u8]) -> Option<u32> {
    let s = trim_ws_start(s);
    if s.is_empty() || s.len() > 4 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |n, &d| n * 10 + u32::from(d - b'0')))
}

fn envelope(c: &mut Cur<'_>) -> PResult<Box<Envelope>> {
    c.expect(b'(', "'(' opening an ENVELOPE")?;
    // Filled in place: an Envelope is a few hundred bytes, not worth moving around.
    let mut e = Box::<Envelope>::default();
    c.ws();
    c.nstring_into(&mut e.date)?;
    c.ws();
    c.nstring_into(&mut e.subject)?;
    for list in [
        &mut e.from,
        &mut e.sender,
        &mut e.reply_to,
        &mut e.to,
        &mut e.cc,
        &mut e.bcc,
    ] {
        c.ws();
        addresses(c, list)?;
    }
    c.ws();
    c.nstring_into(&mut e.in_reply_to)?;
    c.ws();
    c.nstring_into(&mut e.message_id)?;
    c.ws();
    c.expect(b')', "')' closing an ENVELOPE")?;
    Ok(e)
}

/// An address list, filled in place (an inline address is a hundred bytes: moving the
/// list through a `Result` would copy it twice).
fn addresses(c: &mut Cur<'_>, v: &mut SmallList<Address>) -> PResult<()> {
    if c.nil() {
        return Ok(());
    }
    c.expect(b'(', "'(' or NIL for an address list")?;
    // Quirk: spaces between addresses (skipped by `each_until_close`).
    c.each_until_close(|c| {
        c.expect(b'(', "'(' opening an address")?;
        // Pushed empty and filled in place (see `Cur::nstring_into`).
        let a = v.push_default();
        for f in [&mut a.name, &mut a.adl, &mut a.mailbox, &mut a.host] {
            c.ws();
            c.nstring_into(f)?;
        }
        c.ws();
        c.expect(b')', "')' closing an address")
    })
}

/// `body`: a parenthesised single part or multipart structure, depth-bounded.
fn body(c: &mut Cur<'_>) -> PResult<BodyStructure> {
    c.expect(b'(', "'(' opening a body structure")?;
    c.enter()?;
    c.ws();
    let r = if c.peek() == Some(b'(') {
        multipart(c)
    } else {
        single_part(c)
    }?;
    c.ws();
    c.expect(b')', "')' closing a body structure")?;
    c.leave();
    Ok(r)
}

fn multipart(c: &mut Cur<'_>) -> PResult<BodyStructure> {
    let mut parts = Vec::with_capacity(4);
    while c.peek() == Some(b'(') {
        parts.push(body(c)?);
        c.ws();
    }
    // Boxed first and filled in place, like a single part.
    let mut m = Box::new(Multipart {
        parts,
        media_subtype: ByteString::default(),
        ext: None,
    });
    c.string_or_nil_into(&mut m.media_subtype)?;
    c.ws();
    if c.peek() != Some(b')') {
        let x = m.ext.insert(MultipartExt::default());
        params(c, &mut x.params)?;
        ext_tail(
            c,
            &mut x.disposition,
            &mut x.language,
            &mut x.location,
            &mut x.extensions,
        )?;
    }
    Ok(BodyStructure::Multipart(m))
}

fn single_part(c: &mut Cur<'_>) -> PResult<BodyStructure> {
    // Filled in place on the heap: a SinglePart is a few hundred bytes.
    let mut p = Box::new(SinglePart {
        media_type: ByteString::default(),
        media_subtype: ByteString::default(),
        params: SmallList::new(),
        id: None,
        description: None,
        encoding: ByteString::default(),
        size: 0,
        kind: SingleKind::Basic,
        ext: None,
    });
    c.string_or_nil_into(&mut p.media_type)?;
    c.ws();
    c.string_or_nil_into(&mut p.media_subtype)?;
    c.ws();
    params(c, &mut p.params)?;
    c.ws();
    c.nstring_into(&mut p.id)?;
    c.ws();
    c.nstring_into(&mut p.description)?;
    c.ws();
    c.string_or_nil_into(&mut p.encoding)?;
    c.ws();
    p.size = c.number()?;
    c.ws();
    if kw(&p.media_type, b"TEXT") {
        // Quirk: a TEXT part without its line count, directly closed.
        let lines = if c.peek() == Some(b')') {
            0
        } else {
            c.number()?
        };
        p.kind = SingleKind::Text { lines };
    } else if kw(&p.media_type, b"MESSAGE")
        && (kw(&p.media_subtype, b"RFC822") || kw(&p.media_subtype, b"GLOBAL"))
        && c.peek() == Some(b'(')
    {
        let envelope = envelope(c)?;
        c.ws();
        let body = body(c)?;
        c.ws();
        let lines = c.number()?;
        p.kind = SingleKind::Message {
            envelope,
            body,
            lines,
        };
    }
    c.ws();
    if c.peek() != Some(b')') {
        let x = p.ext.get_or_insert_with(SinglePartExt::default);
        c.nstring_into(&mut x.md5)?;
        ext_tail(
            c,
            &mut x.disposition,
            &mut x.language,
            &mut x.location,
            &mut x.extensions,
        )?;
    }
    Ok(BodyStructure::Single(p))
}

/// The optional fields after md5 / multipart params: each present only if the previous
/// one is (RFC 3501 `body-ext-1part`, `body-ext-mpart`), then any further extensions (N5).
fn ext_tail(
    c: &mut Cur<'_>,
    disposition: &mut Option<Disposition>,
    language: &mut Vec<ByteString>,
    location: &mut Option<ByteString>,
    extensions: &mut Vec<BodyExtension>,
) -> PResult<()> {
    c.ws();
    if c.peek() == Some(b')') {
        return Ok(());
    }
    *disposition = body_disposition(c)?;
    c.ws();
    if c.peek() == Some(b')') {
        return Ok(());
    }
    *language = body_language(c)?;
    c.ws();
    if c.peek() == Some(b')') {
        return Ok(());
    }
    c.nstring_into(location)?;
    loop {
        c.ws();
        if c.peek() == Some(b')') {
            return Ok(());
        }
        extensions.push(body_extension(c)?);
    }
}

/// Body parameters, filled in place like [`addresses`].
fn params(c: &mut Cur<'_>, v: &mut BodyParams) -> PResult<()> {
    if c.nil() {
        return Ok(());
    }
    c.expect(b'(', "'(' or NIL for body parameters")?;
    c.each_until_close(|c| {
        let (k, val) = v.push_default();
        c.string_or_nil_into(k)?;
        c.ws();
        // Quirk: NIL parameter values (e.g. a NIL boundary).
        c.nstring_into(val)
    })
}

fn body_disposition(c: &mut Cur<'_>) -> PResult<Option<Disposition>> {
    if c.nil() {
        return Ok(None);
    }
    if c.peek() != Some(b'(') {
        // Quirk: a bare string instead of `(string params)`.
        return Ok(Some(Disposition {
            kind: ByteString::from(c.string()?),
            params: SmallList::new(),
        }));
    }
    c.pos += 1;
    c.ws();
    let kind = c.string_or_nil()?;
    c.ws();
    let mut params = SmallList::new();
    self::params(c, &mut params)?;
    c.ws();
    c.expect(b')', "')' closing a disposition")?;
    Ok(Some(Disposition { kind, params }))
}

fn body_language(c: &mut Cur<'_>) -> PResult<Vec<ByteString>> {
    if c.eat(b'(') {
        return c.list_until_close(Cur::string_or_nil);
    }
    Ok(c.nstring_owned()?.into_iter().collect())
}

fn body_extension(c: &mut Cur<'_>) -> PResult<BodyExtension> {
    match c.peek() {
        Some(b'(') => {
            c.enter()?;
            c.pos += 1;
            let v = c.list_until_close(body_extension)?;
            c.leave();
            Ok(BodyExtension::List(v))
        }
        Some(b'0'..=b'9') => Ok(BodyExtension::Number(c.number64()?)),
        _ => Ok(match c.nstring_owned()? {
            None => BodyExtension::Nil,
            Some(s) => BodyExtension::String(s),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> Response {
        let (r, n) = parse_response(s.as_bytes()).unwrap();
        assert_eq!(n, s.len(), "consumed all of {s:?}");
        r
    }

    #[test]
    fn fixed_date_time_path_agrees_with_the_general_parser() {
        for s in [
            "17-Jul-1996 02:44:25 -0700",
            " 1-Feb-2024 23:59:60 +1400",
            "01-feb-2024 00:00:00 +0000",
            "31-Dec-9999 12:34:56 -1259",
            "32-Jan-2024 00:00:00 +0000",
            "17-Jul-1996 24:44:25 -0700",
            "17-Jul-1996 02:44:25 *0700",
            "17-Jux-1996 02:44:25 -0700",
            "1a-Jul-1996 02:44:25 -0700",
            "17-Jul-1996 02:44:25 -0760",
            "17/Jul-1996 02:44:25 -0700",
        ] {
            let general = date_time(format!("{s} ").as_bytes());
            assert_eq!(date_time_fixed(s.as_bytes()), general, "{s}");
            assert_eq!(date_time(s.as_bytes()), general, "{s}");
        }
    }

    #[test]
    fn quote_end_search_matches_a_plain_scan() {
        let specials = [b'"', b'\\', b'\n'];
        for len in 0..40 {
            for at in 0..=len {
                for &sp in &specials {
                    let mut v = vec![b'a'; len];
                    if at < len {
                        v[at] = sp;
                    }
                    // Bytes that trip naive SWAR tests must not give false hits.
                    if len > 2 {
                        v[0] = 0x80;
                        if at != 1 {
                            v[1] = 0x01;
                        }
                    }
                    let want = v.iter().position(|b| specials.contains(b));
                    assert_eq!(find_quote_end(&v), want, "len {len} at {at}");
                }
            }
        }
    }

    #[test]
    fn status_and_greeting() {
        assert!(matches!(
            parse_greeting(b"* OK IMAP4rev1 ready\r\n").unwrap().0,
            Response::Greeting(Greeting {
                kind: GreetingKind::Ok,
                ..
            })
        ));
        let r = one("a1 OK [READ-WRITE] SELECT completed\r\n");
        let Response::Status(s) = r else { panic!() };
        assert_eq!(s.code, Some(Code::ReadWrite));
        assert_eq!(s.text, "SELECT completed");
    }

    #[test]
    fn streaming_large_literal() {
        let cfg = ParserConfig {
            framing: FramingConfig {
                max_inline_literal: 4,
                ..FramingConfig::default()
            },
            expect_greeting: false,
        };
        let mut p = ResponseParser::new(cfg);
        p.feed(b"* 1 FETCH (UID 7 BODY[] {10}\r\n01234");
        let mut got = Vec::new();
        let mut chunks = Vec::new();
        while let Some(ev) = p.next() {
            match ev.unwrap() {
                Event::BodyChunk(b) => chunks.extend_from_slice(b),
                e => got.push(format!("{e:?}")),
            }
        }
        p.feed(b"56789 FLAGS (\\Seen))\r\n* 2 EXISTS\r\n");
        while let Some(ev) = p.next() {
            match ev.unwrap() {
                Event::BodyChunk(b) => chunks.extend_from_slice(b),
                e => got.push(format!("{e:?}")),
            }
        }
        assert_eq!(chunks, b"0123456789");
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(got[0].starts_with("BodyStart"));
        assert_eq!(got[1], "BodyEnd");
        assert!(got[2].contains("Streamed { len: 10 }"), "{}", got[2]);
        assert!(got[2].contains("Seen"));
        assert!(got[3].contains("Exists(2)"));
    }
}
