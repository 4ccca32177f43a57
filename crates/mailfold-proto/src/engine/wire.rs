//! The engine's glue to the encoder and the parser: commands become [`Segment`]s to write,
//! server bytes become [`Incoming`] items.

use crate::command::Command;
use crate::core::Tag;
use crate::encode::{self, EncodeCaps, LiteralData, LiteralMode, Part};
use crate::parse::{Event as ParseEvent, ParserConfig, ResponseParser, StreamedItem};
use crate::response::Response;

use super::session::SessionState;

/// A piece of a command to write.
#[derive(Debug)]
pub(crate) enum Segment {
    /// Bytes to write now.
    Data(Vec<u8>),
    /// Stop until the server sends `+` (a synchronizing literal follows).
    AwaitContinuation,
    /// The driver writes this many bytes of its own (streamed APPEND).
    DriverLiteral(u64),
}

/// Where a streamed body literal belongs (from the parser's `BodyStart`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyPart {
    /// Sequence number of the message.
    pub seq: u32,
    /// Which FETCH item (`BODY[section]<origin>`, `BINARY[…]`, `RFC822…`).
    pub item: StreamedItem,
    /// The literal's declared size: what the server promises, not yet received (never
    /// allocate it).
    pub len: u64,
}

/// One thing read from the server.
pub(crate) enum Incoming {
    Response(Response),
    BodyStart(BodyPart),
    BodyChunk(Vec<u8>),
    BodyEnd,
    /// A response that failed to parse; the parser skipped it.
    Malformed(String),
}

/// The parser, wrapped.
#[derive(Debug)]
pub(crate) struct Input {
    parser: ResponseParser,
}

impl Input {
    pub(crate) fn new(cfg: ParserConfig) -> Self {
        Input {
            parser: ResponseParser::new(cfg),
        }
    }

    pub(crate) fn feed(&mut self, data: &[u8]) {
        self.parser.feed(data);
    }

    pub(crate) fn buffered(&self) -> usize {
        self.parser.buffered()
    }

    /// Stream offset of the next unconsumed byte: it moves whenever the parser finishes a
    /// response, hands out literal bytes or skips garbage, and stands still while an
    /// unfinished response waits for more bytes.
    pub(crate) fn offset(&self) -> u64 {
        self.parser.offset()
    }

    /// The next item and how many stream bytes it took (for the time budgets).
    pub(crate) fn next(&mut self) -> Option<(Incoming, u64)> {
        let before = self.parser.offset();
        let item = match self.parser.next()? {
            Ok(ParseEvent::Response(r)) => Incoming::Response(r),
            Ok(ParseEvent::BodyStart { seq, item, len }) => {
                Incoming::BodyStart(BodyPart { seq, item, len })
            }
            Ok(ParseEvent::BodyChunk(b)) => Incoming::BodyChunk(b.to_vec()),
            Ok(ParseEvent::BodyEnd) => Incoming::BodyEnd,
            Err(e) => Incoming::Malformed(e.to_string()),
        };
        Some((item, self.parser.offset().saturating_sub(before)))
    }
}

/// What the encoder may use, from the session's capabilities. Unknown capabilities mean a
/// plain IMAP4rev1 server: the safest assumption.
pub(crate) fn encode_caps(session: &SessionState, sasl_ir: bool) -> EncodeCaps {
    let mut caps = EncodeCaps::default();
    if let Some(c) = &session.capabilities {
        caps.imap4rev1 = c.is_imap4rev1();
        caps.literal_plus = c.has("LITERAL+");
        caps.literal_minus = c.has("LITERAL-");
        caps.binary = c.has("BINARY");
        caps.sasl_ir = c.has("SASL-IR");
    }
    // The caller decided on SASL-IR when it built the AUTHENTICATE (it may know better,
    // e.g. from the greeting's capability code).
    caps.sasl_ir |= sasl_ir;
    caps.utf8_accept = session
        .enabled
        .iter()
        .any(|e| e.eq_ignore_ascii_case("UTF8=ACCEPT"));
    caps
}

/// Encodes a command into segments.
pub(crate) fn encode(
    tag: &Tag,
    cmd: &Command,
    session: &SessionState,
) -> Result<Vec<Segment>, String> {
    let sasl_ir = matches!(
        cmd,
        Command::Authenticate {
            initial_response: Some(_),
            ..
        }
    );
    let caps = encode_caps(session, sasl_ir);
    let encoded = encode::encode(tag, cmd, &caps).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for part in encoded.into_parts() {
        match part {
            Part::Line { bytes, .. } => out.push(Segment::Data(bytes)),
            Part::Literal { mode, data, .. } => {
                if mode == LiteralMode::Sync {
                    out.push(Segment::AwaitContinuation);
                }
                match data {
                    LiteralData::Inline(b) => out.push(Segment::Data(b)),
                    LiteralData::Driver { len } => out.push(Segment::DriverLiteral(len)),
                }
            }
        }
    }
    Ok(out)
}

fn single_line(e: encode::Encoded) -> Vec<u8> {
    // These helpers always produce exactly one line part.
    e.into_parts()
        .into_iter()
        .flat_map(|p| match p {
            Part::Line { bytes, .. } => bytes,
            Part::Literal { .. } => Vec::new(),
        })
        .collect()
}

/// `DONE\r\n` (RFC 2177).
pub(crate) fn done() -> Vec<u8> {
    single_line(encode::encode_done())
}

/// A base64 AUTHENTICATE response line.
pub(crate) fn auth_line(data: &[u8]) -> Vec<u8> {
    single_line(encode::encode_continuation(data))
}

/// `*\r\n`: cancel the exchange (RFC 3501 6.2.2).
pub(crate) fn auth_cancel() -> Vec<u8> {
    single_line(encode::encode_auth_cancel())
}

/// Decodes a continuation's text as base64 (RFC 4648 section 4; see `crate::base64` for
/// what is tolerated). An empty text is an empty challenge.
pub(crate) fn decode_challenge(text: &str) -> Option<Vec<u8>> {
    crate::base64::decode(text)
}

/// A short description of a response for error messages.
pub(crate) fn describe(r: &Response) -> String {
    let s = format!("{r:?}");
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_challenges_decode() {
        assert_eq!(decode_challenge("").unwrap(), b"");
        assert_eq!(decode_challenge("Zm9v").unwrap(), b"foo");
        assert_eq!(decode_challenge("Zm9vYg==").unwrap(), b"foob");
        assert_eq!(decode_challenge("Zm9vYmE=").unwrap(), b"fooba");
        assert_eq!(decode_challenge("Zm9vYmE").unwrap(), b"fooba");
        assert!(decode_challenge("Zm9v!").is_none());
        assert!(decode_challenge("Z").is_none());
    }
}
