//! The streaming parser: any byte stream, fed in any chunking, never panics, and the memory it
//! holds stays within the caps plus one chunk.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailfold_proto::framing::FramingConfig;
use mailfold_proto::parse::{parse_response, Event, ParserConfig, ResponseParser};

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let chunk = usize::from(data[0] % 64) + 1;
    let input = &data[1..];
    let framing = FramingConfig {
        max_line: 4096,
        max_inline_literal: 256,
        max_response: 16384,
    };
    let mut parser = ResponseParser::new(ParserConfig {
        framing,
        expect_greeting: data[0] & 0x80 != 0,
    });
    let mut streamed: u64 = 0;
    for piece in input.chunks(chunk) {
        parser.feed(piece);
        while let Some(ev) = parser.next() {
            match ev {
                Ok(Event::BodyChunk(c)) => streamed += c.len() as u64,
                Ok(_) | Err(_) => {}
            }
        }
        assert!(
            parser.buffered() <= framing.max_response + framing.max_line + chunk,
            "parser holds {} bytes",
            parser.buffered()
        );
    }
    assert!(streamed <= input.len() as u64);
    // The whole-buffer API must agree on not panicking either.
    let _ = parse_response(input);
});
