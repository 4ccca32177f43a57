//! Framing: finding where one server response ends, before anything is parsed.
//!
//! An IMAP response is one or more lines; a line that ends in a literal header (`{n}`,
//! `{n+}` or the RFC 3516 binary form `~{n}`) is followed by exactly `n` bytes of literal
//! data and then the rest of the response (RFC 3501 4.3). The [`Framer`] walks a buffer that
//! starts at a response boundary and reports either the length of the complete response,
//! or that it needs more bytes, or that a literal is too large to hold in memory (the parser
//! then streams it, see [`crate::parse`]).
//!
//! The framer never allocates and never trusts a declared size: a literal's bytes are only
//! counted as they are present, the caps of [`FramingConfig`] are checked before waiting
//! for more data, and a literal size of 4294967295 or more (or more than 10 digits) is a
//! clean [`FrameError`], not an overflow. Scanning is resumable, so a long line arriving in
//! small pieces is scanned once, not once per piece. Bare LF line ends are accepted (seed N4).

use std::fmt;

/// Size limits for one response. Memory held by the parser is bounded by these plus the
/// bytes given to one `feed` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FramingConfig {
    /// Longest accepted line (between line ends or literals), in bytes.
    pub max_line: usize,
    /// Largest literal held inside a response. Larger literals in a FETCH body position are
    /// streamed in chunks; anywhere else they are an error.
    pub max_inline_literal: u64,
    /// Largest response held in memory: its lines plus inlined literals (streamed literal
    /// bytes do not count).
    pub max_response: usize,
}

impl Default for FramingConfig {
    /// 16 MiB lines (a UID SEARCH over a million messages is ~8 MB), 64 KiB inline
    /// literals (message bodies above that are streamed), 32 MiB per response.
    fn default() -> Self {
        FramingConfig {
            max_line: 16 << 20,
            max_inline_literal: 64 << 10,
            max_response: 32 << 20,
        }
    }
}

impl FramingConfig {
    /// No practical caps: for parsing a buffer that is already in memory.
    pub fn unbounded() -> Self {
        FramingConfig {
            max_line: usize::MAX,
            max_inline_literal: u64::MAX,
            max_response: usize::MAX,
        }
    }
}

/// What the framer found at the start of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete response (or the rest of one after a streamed literal) of `len` bytes,
    /// including its final line end and any inlined literals.
    Complete {
        /// Length in bytes.
        len: usize,
    },
    /// The text before `header_start` is followed by a literal larger than
    /// [`FramingConfig::max_inline_literal`]; its bytes start at `data_start` (which may be
    /// beyond the bytes given so far).
    LargeLiteral {
        /// Offset of the literal header (`{` or `~`).
        header_start: usize,
        /// Offset of the first literal byte.
        data_start: usize,
        /// Declared literal size.
        len: u64,
    },
}

/// A framing failure. After one, the parser skips what it can identify and resynchronises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// No line end within [`FramingConfig::max_line`] bytes of `line_start`.
    LineTooLong {
        /// Where the overlong line began.
        line_start: usize,
    },
    /// An inlined literal would take the response over [`FramingConfig::max_response`].
    ResponseTooLarge {
        /// Offset of the literal header.
        header_start: usize,
        /// Offset of the first literal byte.
        data_start: usize,
        /// Declared literal size.
        len: u64,
    },
    /// A literal header whose size has more than 10 digits or is 4294967295 or more.
    LiteralSize {
        /// Offset of the literal header.
        header_start: usize,
        /// Offset just past the header's line end.
        line_end: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::LineTooLong { .. } => f.write_str("line longer than the configured cap"),
            FrameError::ResponseTooLarge { len, .. } => {
                write!(f, "literal of {len} bytes takes the response over its cap")
            }
            FrameError::LiteralSize { .. } => f.write_str("literal size out of range"),
        }
    }
}

impl std::error::Error for FrameError {}

/// A resumable scanner for one response; see the module docs.
///
/// Contract: pass the same buffer start (growing at the end) to [`Framer::frame`] until it
/// returns something other than `Ok(None)`; it then resets itself for the next response.
#[derive(Clone, Debug)]
pub struct Framer {
    cfg: FramingConfig,
    /// Where the current line begins (relative to the response start).
    line_start: usize,
    /// How far the current line has been searched for a line end.
    scanned: usize,
}

/// Longest decimal number below 4294967295 has 10 digits.
const MAX_LITERAL_DIGITS: usize = 10;

impl Framer {
    /// A framer with the given caps.
    pub fn new(cfg: FramingConfig) -> Self {
        Framer {
            cfg,
            line_start: 0,
            scanned: 0,
        }
    }

    /// The caps in force.
    pub fn config(&self) -> &FramingConfig {
        &self.cfg
    }

    /// Forgets any partial scan (after the caller skipped bytes).
    pub fn reset(&mut self) {
        self.line_start = 0;
        self.scanned = 0;
    }

    /// Looks for the end of the response at the start of `buf`. `Ok(None)` means more bytes
    /// are needed (and the caps still hold).
    pub fn frame(&mut self, buf: &[u8]) -> Result<Option<Frame>, FrameError> {
        let r = self.scan(buf);
        if !matches!(r, Ok(None)) {
            self.reset();
        }
        r
    }

    fn scan(&mut self, buf: &[u8]) -> Result<Option<Frame>, FrameError> {
        loop {
            if self.line_start > buf.len() {
                // Still waiting for the bytes of an inlined literal.
                return Ok(None);
            }
            let from = self.scanned.max(self.line_start);
            let limit = self
                .line_start
                .saturating_add(self.cfg.max_line)
                .saturating_add(2)
                .min(buf.len());
            let nl = match buf.get(from..limit).and_then(|w| memchr::memchr(b'\n', w)) {
                Some(i) => from + i,
                None => {
                    self.scanned = limit;
                    if buf.len() - self.line_start > self.cfg.max_line.saturating_add(1) {
                        return Err(FrameError::LineTooLong {
                            line_start: self.line_start,
                        });
                    }
                    return Ok(None);
                }
            };
            let line = &buf[self.line_start..nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > self.cfg.max_line {
                return Err(FrameError::LineTooLong {
                    line_start: self.line_start,
                });
            }
            let header_rel = match literal_header(line) {
                LiteralHeader::None => return Ok(Some(Frame::Complete { len: nl + 1 })),
                LiteralHeader::Invalid(at) => {
                    return Err(FrameError::LiteralSize {
                        header_start: self.line_start + at,
                        line_end: nl + 1,
                    })
                }
                LiteralHeader::Size(at, n) => (at, n),
            };
            let (at, n) = header_rel;
            let header_start = self.line_start + at;
            let data_start = nl + 1;
            if n > self.cfg.max_inline_literal {
                return Ok(Some(Frame::LargeLiteral {
                    header_start,
                    data_start,
                    len: n,
                }));
            }
            // n < 2^32, so this fits in usize on every platform with at least 32-bit usize;
            // the checked form keeps 16-bit targets honest.
            let end = usize::try_from(n)
                .ok()
                .and_then(|n| data_start.checked_add(n))
                .filter(|&e| e <= self.cfg.max_response);
            let Some(end) = end else {
                return Err(FrameError::ResponseTooLarge {
                    header_start,
                    data_start,
                    len: n,
                });
            };
            self.line_start = end;
            self.scanned = end;
        }
    }
}

/// Result of looking for a literal header at the end of a line (without its line end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiteralHeader {
    /// The line does not end in a literal header.
    None,
    /// A header at this offset announcing this many bytes.
    Size(usize, u64),
    /// A header at this offset whose size is out of range.
    Invalid(usize),
}

/// Finds a literal header (`{n}`, `{n+}`, `~{n}`) ending `line`.
pub fn literal_header(line: &[u8]) -> LiteralHeader {
    let Some(body) = line.strip_suffix(b"}") else {
        return LiteralHeader::None;
    };
    // `{n+}` is the non-synchronising form (RFC 7888); servers do not need it but some
    // proxies echo it.
    let body = body.strip_suffix(b"+").unwrap_or(body);
    let digits = body.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let brace = body.len() - digits;
    if digits == 0 || brace == 0 || body[brace - 1] != b'{' {
        return LiteralHeader::None;
    }
    let mut at = brace - 1;
    if at > 0 && line[at - 1] == b'~' {
        at -= 1;
    }
    if digits > MAX_LITERAL_DIGITS {
        return LiteralHeader::Invalid(at);
    }
    let mut n: u64 = 0;
    for &d in &body[brace..] {
        n = n * 10 + u64::from(d - b'0');
    }
    // 10 digits fit in u64 easily; the RFC's `number` is below 2^32, and 4294967295 itself
    // is refused so that `len + 1` style arithmetic downstream can never wrap a u32.
    if n >= u64::from(u32::MAX) {
        return LiteralHeader::Invalid(at);
    }
    LiteralHeader::Size(at, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_all(cfg: FramingConfig, buf: &[u8]) -> Result<Option<Frame>, FrameError> {
        Framer::new(cfg).frame(buf)
    }

    #[test]
    fn lines_and_literals() {
        let cfg = FramingConfig::default();
        assert_eq!(
            frame_all(cfg, b"* OK hi\r\nrest"),
            Ok(Some(Frame::Complete { len: 9 }))
        );
        assert_eq!(
            frame_all(cfg, b"* OK hi\nrest"),
            Ok(Some(Frame::Complete { len: 8 }))
        );
        let s = b"* 1 FETCH (BODY[] {3}\r\nabc)\r\nX";
        assert_eq!(
            frame_all(cfg, s),
            Ok(Some(Frame::Complete { len: s.len() - 1 }))
        );
        assert_eq!(frame_all(cfg, b"* 1 FETCH (BODY[] {3}\r\nab"), Ok(None));
        assert_eq!(frame_all(cfg, b"* OK no end"), Ok(None));
    }

    #[test]
    fn literal_headers() {
        assert_eq!(literal_header(b"x {5}"), LiteralHeader::Size(2, 5));
        assert_eq!(literal_header(b"x {5+}"), LiteralHeader::Size(2, 5));
        assert_eq!(literal_header(b"x ~{5}"), LiteralHeader::Size(2, 5));
        assert_eq!(literal_header(b"x {}"), LiteralHeader::None);
        assert_eq!(literal_header(b"{5}"), LiteralHeader::Size(0, 5));
        assert_eq!(literal_header(b"x 5}"), LiteralHeader::None);
        assert_eq!(
            literal_header(b"x {4294967294}"),
            LiteralHeader::Size(2, 4294967294)
        );
        assert_eq!(literal_header(b"x {4294967295}"), LiteralHeader::Invalid(2));
        assert_eq!(
            literal_header(b"x {99999999999}"),
            LiteralHeader::Invalid(2)
        );
        assert_eq!(
            literal_header(b"x {999999999999999999999999999999}"),
            LiteralHeader::Invalid(2)
        );
    }

    #[test]
    fn resumes_without_rescanning_and_enforces_caps() {
        let cfg = FramingConfig {
            max_line: 10,
            max_inline_literal: 4,
            max_response: 30,
        };
        let mut f = Framer::new(cfg);
        assert_eq!(f.frame(b"* OK"), Ok(None));
        assert_eq!(f.frame(b"* OK a\r\n"), Ok(Some(Frame::Complete { len: 8 })));
        assert_eq!(
            f.frame(b"* OK 0123456789012"),
            Err(FrameError::LineTooLong { line_start: 0 })
        );
        assert_eq!(
            f.frame(b"* X {9}\r\n"),
            Ok(Some(Frame::LargeLiteral {
                header_start: 4,
                data_start: 9,
                len: 9
            }))
        );
    }
}
