//! Reading a raw server byte stream as responses, for a user who wants to see exactly what a
//! misbehaving server sent and where the parser stopped understanding it.
//!
//! The parser is the one every session uses (the forgiving reader of seed N3–N6), so what a
//! transcript shows is what a sync would have understood.

use mailfold_proto::parse::{self, ParserConfig, ResponseParser};
use serde::Serialize;

/// A parsed response; serializes as the protocol engine's own response type.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct ParsedResponse(mailfold_proto::response::Response);

/// Which FETCH item a streamed body belongs to; serializes as the engine's own type.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct StreamedItem(mailfold_proto::parse::StreamedItem);

/// A response that did not parse: skipped, parsing goes on at the next line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptError {
    /// What went wrong, in words.
    pub message: String,
    /// Byte offset in the stream where the problem was seen.
    pub offset: u64,
    /// What the parser expected there.
    pub expected: &'static str,
    /// The cause, as a name.
    pub kind: String,
}

/// One thing found in the stream.
#[derive(Debug)]
pub enum TranscriptEvent {
    /// A complete response.
    Response(Box<ParsedResponse>),
    /// A large FETCH body literal begins (its bytes are not kept).
    BodyStart {
        /// The message sequence number of the FETCH.
        seq: u32,
        /// Which item.
        item: StreamedItem,
        /// The literal's declared size.
        len: u64,
    },
    /// This many bytes of the body literal arrived.
    BodyChunk(usize),
    /// The body literal ended; the FETCH response that holds it follows.
    BodyEnd,
    /// A malformed response.
    Error(TranscriptError),
}

/// A server stream fed in pieces and read back as [`TranscriptEvent`]s.
#[derive(Debug)]
pub struct Transcript {
    parser: ResponseParser,
}

impl Transcript {
    /// A transcript that starts with the server's greeting when `greeting` is true.
    pub fn new(greeting: bool) -> Transcript {
        Transcript {
            parser: ResponseParser::new(ParserConfig {
                expect_greeting: greeting,
                ..ParserConfig::default()
            }),
        }
    }

    /// Adds bytes of the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.parser.feed(bytes);
    }

    /// The next event the bytes fed so far make complete.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<TranscriptEvent> {
        Some(match self.parser.next()? {
            Ok(parse::Event::Response(r)) => TranscriptEvent::Response(Box::new(ParsedResponse(r))),
            Ok(parse::Event::BodyStart { seq, item, len }) => TranscriptEvent::BodyStart {
                seq,
                item: StreamedItem(item),
                len,
            },
            Ok(parse::Event::BodyChunk(c)) => TranscriptEvent::BodyChunk(c.len()),
            Ok(parse::Event::BodyEnd) => TranscriptEvent::BodyEnd,
            Err(e) => TranscriptEvent::Error(TranscriptError {
                message: e.to_string(),
                offset: e.offset,
                expected: e.expected,
                kind: format!("{:?}", e.kind),
            }),
        })
    }

    /// Bytes fed that do not yet form a complete response.
    pub fn buffered(&self) -> usize {
        self.parser.buffered()
    }

    /// Offset in the stream of the first byte not yet consumed.
    pub fn offset(&self) -> u64 {
        self.parser.offset()
    }
}
